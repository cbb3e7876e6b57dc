package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// Every handler below checks everything first and writes only once the
// command is known to be admitted: bbolt has no savepoints, and one
// transaction carries a whole batch, so a refusal must leave no trace.
// Refusals are *privacy.Refusal errors; any other error is a storage
// failure that aborts the batch.

// refuse returns a refusal: a deterministic, user-facing reason.
func refuse(format string, a ...any) error {
	return &privacy.Refusal{Reason: fmt.Sprintf(format, a...)}
}

func applyCommand(tx *bbolt.Tx, p *prepared) (ApplyResult, error) {
	c := p.cmd
	if c.Type == CmdGenesis {
		return applyGenesis(tx, c.Genesis)
	}
	if bucket(tx, bucketMeta).Get([]byte(keyName)) == nil {
		return ApplyResult{}, refuse("the ledger has no consortium yet: genesis must come first")
	}
	switch c.Type {
	case CmdAddPartner:
		return applyAddPartner(tx, *c.Partner)
	case CmdRemovePartner:
		return applyRemovePartner(tx, c.ID)
	case CmdAddReplica:
		return applyAddReplica(tx, c.ID)
	case CmdRemoveReplica:
		return applyRemoveReplica(tx, c.ID)
	case CmdSetCatalog:
		return applySetCatalog(tx, c.Catalog)
	case CmdSetPolicy:
		return applySetPolicy(tx, *c.Policy)
	case CmdReserve:
		return applyReserve(tx, c.Reservation, p)
	case CmdPublish:
		return applyPublish(tx, c.Release, p)
	case CmdCosign:
		return applyCosign(tx, c.Cosign)
	}
	// DecodeCommand already refused unknown types; this guards the switch.
	return ApplyResult{}, refuse("unknown command type %q", c.Type)
}

// --- consortium ---------------------------------------------------------

func applyGenesis(tx *bbolt.Tx, g *Genesis) (ApplyResult, error) {
	meta := bucket(tx, bucketMeta)
	if name := meta.Get([]byte(keyName)); name != nil {
		return ApplyResult{}, refuse("genesis already applied: this ledger belongs to consortium %q", name)
	}
	if err := checkConsortiumName(g.Name); err != nil {
		return ApplyResult{}, err
	}
	if len(g.Partners) == 0 {
		return ApplyResult{}, refuse("genesis needs at least one partner")
	}
	partners := slices.Clone(g.Partners)
	for i := range partners {
		partners[i].Role = RoleVoter
		if err := checkPartner(partners[i]); err != nil {
			return ApplyResult{}, err
		}
		for _, q := range partners[:i] {
			if q.ID == partners[i].ID {
				return ApplyResult{}, refuse("partner %s is listed twice", q.ID)
			}
			if bytes.Equal(q.PublicKey, partners[i].PublicKey) {
				return ApplyResult{}, refuse("partners %s and %s have the same public key", q.ID, partners[i].ID)
			}
		}
	}
	if err := g.Policy.Validate(); err != nil {
		return ApplyResult{}, refuse("%v", err)
	}
	cat, canon, err := parseCatalog(g.Catalog)
	if err != nil {
		return ApplyResult{}, err
	}
	for _, p := range partners {
		if err := putJSON(bucket(tx, bucketPartners), p.ID, p); err != nil {
			return ApplyResult{}, err
		}
	}
	if err := putCatalog(tx, cat.Hash(), canon); err != nil {
		return ApplyResult{}, err
	}
	if err := putJSON(meta, keyPolicy, g.Policy); err != nil {
		return ApplyResult{}, err
	}
	return ApplyResult{}, meta.Put([]byte(keyName), []byte(g.Name))
}

func checkConsortiumName(name string) error {
	if name == "" || len(name) > 100 || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return refuse("consortium name %q: must be 1 to 100 bytes of printable UTF-8", name)
	}
	return nil
}

// checkPartner validates a partner's content.
func checkPartner(p Partner) error {
	if c, err := aggregate.ParseCountry("partner id", p.ID); err != nil || string(c) != p.ID {
		return refuse("partner id %q: must be an ISO 3166-1 alpha-2 code in capitals (XK for Kosovo)", p.ID)
	}
	if p.Name == "" || len(p.Name) > 200 || !utf8.ValidString(p.Name) || strings.ContainsFunc(p.Name, unicode.IsControl) {
		return refuse("partner %s: name must be 1 to 200 bytes of printable UTF-8", p.ID)
	}
	if len(p.PublicKey) != ed25519.PublicKeySize {
		return refuse("partner %s: public key has %d bytes, want %d (ed25519)", p.ID, len(p.PublicKey), ed25519.PublicKeySize)
	}
	if p.Role != "" && p.Role != RoleVoter {
		return refuse("partner %s: role %q cannot be set directly (a partner is added as %s)", p.ID, p.Role, RoleVoter)
	}
	return nil
}

func applyAddPartner(tx *bbolt.Tx, p Partner) (ApplyResult, error) {
	p.Role = RoleVoter
	if err := checkPartner(p); err != nil {
		return ApplyResult{}, err
	}
	b := bucket(tx, bucketPartners)
	old, found, err := getPartner(tx, p.ID)
	if err != nil {
		return ApplyResult{}, err
	}
	if found && !bytes.Equal(old.PublicKey, p.PublicKey) {
		if old.Role == RoleRemoved {
			return ApplyResult{}, refuse("partner %s was removed; it can rejoin only with its old key, so its past releases keep verifying", p.ID)
		}
		return ApplyResult{}, refuse("partner %s is already registered with a different key", p.ID)
	}
	if found && old.Role == RoleVoter && old.Name == p.Name {
		return ApplyResult{Existing: true}, nil
	}
	// No two partners may share a key: whoever holds it could sign as both.
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var q Partner
		if err := json.Unmarshal(v, &q); err != nil {
			return ApplyResult{}, fmt.Errorf("ledger corrupt: partner %s: %w", k, err)
		}
		if q.ID != p.ID && bytes.Equal(q.PublicKey, p.PublicKey) {
			return ApplyResult{}, refuse("public key is already registered to partner %s", q.ID)
		}
	}
	return ApplyResult{}, putJSON(b, p.ID, p)
}

func applyRemovePartner(tx *bbolt.Tx, id string) (ApplyResult, error) {
	p, found, err := getPartner(tx, id)
	if err != nil {
		return ApplyResult{}, err
	}
	if !found {
		return ApplyResult{}, refuse("partner %s is not registered", id)
	}
	if p.Role == RoleRemoved {
		return ApplyResult{Existing: true}, nil
	}
	voters, err := voterIDs(tx)
	if err != nil {
		return ApplyResult{}, err
	}
	if len(voters) == 1 {
		return ApplyResult{}, refuse("partner %s is the last voting partner; a consortium needs at least one", id)
	}
	p.Role = RoleRemoved
	return ApplyResult{}, putJSON(bucket(tx, bucketPartners), id, p)
}

// checkLedgerID validates replica and reservation ids: short, printable,
// and safe as a bbolt key, a URL path segment and a log field.
func checkLedgerID(what, id string) error {
	ok := id != "" && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
	}
	if !ok {
		return refuse("%s id %q: must be 1 to 128 characters of A-Z a-z 0-9 - _ . :", what, id)
	}
	return nil
}

func applyAddReplica(tx *bbolt.Tx, id string) (ApplyResult, error) {
	if err := checkLedgerID("replica", id); err != nil {
		return ApplyResult{}, err
	}
	b := bucket(tx, bucketReplicas)
	if b.Get([]byte(id)) != nil {
		return ApplyResult{Existing: true}, nil
	}
	return ApplyResult{}, b.Put([]byte(id), []byte{1})
}

func applyRemoveReplica(tx *bbolt.Tx, id string) (ApplyResult, error) {
	b := bucket(tx, bucketReplicas)
	if b.Get([]byte(id)) == nil {
		return ApplyResult{}, refuse("replica %q is not registered", id)
	}
	return ApplyResult{}, b.Delete([]byte(id))
}

func applySetCatalog(tx *bbolt.Tx, raw json.RawMessage) (ApplyResult, error) {
	cat, canon, err := parseCatalog(raw)
	if err != nil {
		return ApplyResult{}, err
	}
	hash := cat.Hash()
	meta := bucket(tx, bucketMeta)
	current := string(meta.Get([]byte(keyCatalog)))
	if hash == current {
		return ApplyResult{Existing: true}, nil
	}
	if bucket(tx, bucketCatalogs).Get([]byte(hash)) == nil {
		cur, _, err := loadCatalog(tx, current)
		if err != nil {
			return ApplyResult{}, err
		}
		if cat.Version <= cur.Version {
			return ApplyResult{}, refuse("catalog version %d is not newer than the current version %d", cat.Version, cur.Version)
		}
	}
	return ApplyResult{}, putCatalog(tx, hash, canon)
}

// putCatalog stores a catalog version (if new) and makes it current.
func putCatalog(tx *bbolt.Tx, hash string, canon []byte) error {
	if err := bucket(tx, bucketCatalogs).Put([]byte(hash), canon); err != nil {
		return fmt.Errorf("put catalog %s: %w", hash, err)
	}
	return bucket(tx, bucketMeta).Put([]byte(keyCatalog), []byte(hash))
}

func applySetPolicy(tx *bbolt.Tx, p privacy.Policy) (ApplyResult, error) {
	if err := p.Validate(); err != nil {
		return ApplyResult{}, refuse("%v", err)
	}
	old, err := loadPolicy(tx)
	if err != nil {
		return ApplyResult{}, err
	}
	if old == p {
		return ApplyResult{Existing: true}, nil
	}
	if old.Accounting != p.Accounting {
		// Spend is kept in the unit of the accounting mode; switching would
		// add ε to ρ.
		if k, _ := bucket(tx, bucketSpend).Cursor().First(); k != nil {
			return ApplyResult{}, refuse("cannot change accounting from %s to %s: budget has already been spent in %s units", old.Accounting, p.Accounting, old.Accounting)
		}
	}
	return ApplyResult{}, putJSON(bucket(tx, bucketMeta), keyPolicy, p)
}

// --- budget -------------------------------------------------------------

// reservationRecord is how a reservation is stored: as signed, plus the
// release that consumed it (empty until one does).
type reservationRecord struct {
	Reservation privacy.SignedReservation `json:"reservation"`
	Release     string                    `json:"release,omitempty"`
}

func applyReserve(tx *bbolt.Tx, sr *privacy.SignedReservation, p *prepared) (ApplyResult, error) {
	r := sr.Reservation
	if err := checkLedgerID("reservation", r.ID); err != nil {
		return ApplyResult{}, err
	}
	rec, found, err := getReservation(tx, r.ID)
	if err != nil {
		return ApplyResult{}, err
	}
	if found {
		same, err := sameJSON(rec.Reservation.Reservation, r)
		if err != nil {
			return ApplyResult{}, err
		}
		if !same {
			return ApplyResult{}, refuse("reservation id %s is already taken by a different reservation", r.ID)
		}
		spend, err := spendOf(tx, r.Partner, r.Period.Quarters())
		return ApplyResult{Existing: true, Spend: spend}, err
	}
	pub, err := registeredKey(tx, r.Partner)
	if err != nil {
		return ApplyResult{}, err
	}
	if !p.verified(pub, sr.Verify) {
		return ApplyResult{}, refuse("signature does not verify: reservation %s is not signed by partner %s's registered key", r.ID, r.Partner)
	}
	cat, err := p.batch.catalog(tx, r.CatalogHash)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := checkReservationContent(cat, r.CatalogHash, &r); err != nil {
		return ApplyResult{}, err
	}
	if r.Period.Year < 1900 || r.Period.Year > 9999 || r.Period.Quarter < 0 || r.Period.Quarter > 4 {
		return ApplyResult{}, refuse("reservation %s: period %q is not a quarter or a year", r.ID, r.Period)
	}
	policy, err := loadPolicy(tx)
	if err != nil {
		return ApplyResult{}, err
	}
	spent := bucket(tx, bucketSpend)
	var corrupt error
	next, err := privacy.Admit(policy, r.Accounting, r.Period, r.SpendMicro, func(q aggregate.Period) int64 {
		v, err := getInt64(spent, spendKey(r.Partner, q))
		if err != nil && corrupt == nil {
			corrupt = err
		}
		return v
	})
	if corrupt != nil {
		return ApplyResult{}, corrupt
	}
	if err != nil {
		return ApplyResult{}, err // a *privacy.Refusal: over budget, wrong accounting, ...
	}
	for _, qs := range next {
		if err := spent.Put([]byte(spendKey(r.Partner, qs.Quarter)), binary.BigEndian.AppendUint64(nil, uint64(qs.SpentMicro))); err != nil {
			return ApplyResult{}, fmt.Errorf("put spend: %w", err)
		}
	}
	if err := putJSON(bucket(tx, bucketReservations), r.ID, reservationRecord{Reservation: *sr}); err != nil {
		return ApplyResult{}, err
	}
	return ApplyResult{Spend: next}, nil
}

func spendKey(partner string, q aggregate.Period) string { return partner + "/" + q.String() }

// spendOf reads the spend of the given quarters, in order.
func spendOf(tx *bbolt.Tx, partner string, quarters []aggregate.Period) ([]privacy.QuarterSpend, error) {
	out := make([]privacy.QuarterSpend, 0, len(quarters))
	for _, q := range quarters {
		v, err := getInt64(bucket(tx, bucketSpend), spendKey(partner, q))
		if err != nil {
			return nil, err
		}
		out = append(out, privacy.QuarterSpend{Quarter: q, SpentMicro: v})
	}
	return out, nil
}

// --- releases -----------------------------------------------------------

// LeafData returns the bytes a release's Merkle leaf hashes: the JSON
// encoding of the Signed release (id, release, signature) in struct field
// order, without HTML escaping and without a trailing newline. The leaf
// hash is RFC 6962's SHA-256(0x00 || LeafData). The ledger stores exactly
// these bytes, and ReleaseBytes returns them, so a researcher can check an
// inclusion proof on what they downloaded.
func LeafData(s *privacy.Signed) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode release %s: %w", s.ID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func applyPublish(tx *bbolt.Tx, s *privacy.Signed, p *prepared) (ApplyResult, error) {
	rel := &s.Release
	if p.body == nil {
		return ApplyResult{}, refuse("release %s cannot be encoded canonically", s.ID)
	}
	if !p.idOK {
		return ApplyResult{}, refuse("release id %s is not the hash of its content: the release was altered after signing", s.ID)
	}
	// The id is the content hash, so a known id is this very release:
	// a retry, answered with where it already is.
	if v := bucket(tx, bucketReleases).Get([]byte(s.ID)); v != nil {
		if len(v) != 8 {
			return ApplyResult{}, fmt.Errorf("ledger corrupt: leaf of release %s", s.ID)
		}
		return ApplyResult{Existing: true, ReleaseID: s.ID, Leaf: int64(binary.BigEndian.Uint64(v))}, nil
	}
	pub, err := registeredKey(tx, rel.Partner)
	if err != nil {
		return ApplyResult{}, err
	}
	if !p.verified(pub, func(pub ed25519.PublicKey) error { return s.VerifyCanonical(pub, p.body) }) {
		return ApplyResult{}, refuse("signature does not verify: release %s is not signed by partner %s's registered key", s.ID, rel.Partner)
	}
	if rel.Version != privacy.FormatVersion {
		return ApplyResult{}, refuse("release format version %d is not supported (this ledger accepts version %d)", rel.Version, privacy.FormatVersion)
	}
	v, err := p.batch.validator(tx, rel.CatalogHash)
	if err != nil {
		return ApplyResult{}, err
	}
	rec, found, err := getReservation(tx, rel.Reservation)
	if err != nil {
		return ApplyResult{}, err
	}
	if !found {
		return ApplyResult{}, refuse("reservation %q does not exist: reserve budget before drawing noise", rel.Reservation)
	}
	if err := matchReservation(s, rec); err != nil {
		return ApplyResult{}, err
	}
	if err := checkReleaseContent(v, s); err != nil {
		return ApplyResult{}, err
	}
	data := p.leaf
	leaf, err := AppendLeaf(tx, data)
	if err != nil {
		return ApplyResult{}, err
	}
	leafKey := binary.BigEndian.AppendUint64(nil, uint64(leaf))
	leaves := bucket(tx, bucketLeaves)
	leaves.FillPercent = appendFillPercent // leaf indexes are only ever appended
	if err := leaves.Put(leafKey, data); err != nil {
		return ApplyResult{}, fmt.Errorf("put leaf %d: %w", leaf, err)
	}
	if err := bucket(tx, bucketReleases).Put([]byte(s.ID), leafKey); err != nil {
		return ApplyResult{}, fmt.Errorf("put release %s: %w", s.ID, err)
	}
	rec.Release = s.ID
	if err := putJSON(bucket(tx, bucketReservations), rel.Reservation, rec); err != nil {
		return ApplyResult{}, err
	}
	return ApplyResult{ReleaseID: s.ID, Leaf: leaf}, nil
}

// --- checkpoints --------------------------------------------------------

// PartnerNoteName is the note key name under which a partner's node signs
// checkpoints ("roundtable-RS"); its key is the partner's registered key.
func PartnerNoteName(partnerID string) string { return "roundtable-" + partnerID }

func applyCosign(tx *bbolt.Tx, c *Cosign) (ApplyResult, error) {
	pub, err := registeredKey(tx, c.Partner)
	if err != nil {
		return ApplyResult{}, err
	}
	name := PartnerNoteName(c.Partner)
	v, err := NewNoteVerifier(name, pub)
	if err != nil {
		return ApplyResult{}, refuse("partner %s: %v", c.Partner, err)
	}
	n, err := note.Open(c.Note, note.VerifierList(v))
	if err != nil {
		return ApplyResult{}, refuse("signature does not verify: checkpoint is not signed by partner %s's registered key (%v)", c.Partner, err)
	}
	origin, tree, err := parseCheckpoint([]byte(n.Text))
	if err != nil {
		return ApplyResult{}, refuse("%v", err)
	}
	if consortium := string(bucket(tx, bucketMeta).Get([]byte(keyName))); origin != CheckpointOrigin(consortium) {
		return ApplyResult{}, refuse("checkpoint is for %q, this ledger is %q", origin, CheckpointOrigin(consortium))
	}
	if canon, err := formatCheckpoint(origin, tree); err != nil || string(canon) != n.Text {
		return ApplyResult{}, refuse("checkpoint text is not in canonical form")
	}
	size, hr, err := openMerkle(tx)
	if err != nil {
		return ApplyResult{}, err
	}
	if tree.N < 1 || tree.N > size {
		return ApplyResult{}, refuse("checkpoint size %d is not in the ledger (it has %d releases)", tree.N, size)
	}
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("tree hash at %d: %w", tree.N, err)
	}
	if root != tree.Hash {
		return ApplyResult{}, refuse("checkpoint root %s for size %d does not match the ledger's %s", tree.Hash, tree.N, root)
	}
	var line string
	for _, sig := range n.Sigs { // only verified signatures are in Sigs
		if sig.Name == name {
			line = sig.Name + " " + sig.Base64
		}
	}
	cp, err := bucket(tx, bucketCheckpoints).CreateBucketIfNotExists(binary.BigEndian.AppendUint64(nil, uint64(tree.N)))
	if err != nil {
		return ApplyResult{}, fmt.Errorf("checkpoint bucket: %w", err)
	}
	sigs, err := cp.CreateBucketIfNotExists([]byte(keySigs))
	if err != nil {
		return ApplyResult{}, fmt.Errorf("checkpoint signatures bucket: %w", err)
	}
	if string(sigs.Get([]byte(c.Partner))) == line {
		return ApplyResult{Existing: true, Leaf: tree.N}, nil
	}
	if err := cp.Put([]byte(keyText), []byte(n.Text)); err != nil {
		return ApplyResult{}, fmt.Errorf("put checkpoint: %w", err)
	}
	if err := sigs.Put([]byte(c.Partner), []byte(line)); err != nil {
		return ApplyResult{}, fmt.Errorf("put checkpoint signature: %w", err)
	}
	return ApplyResult{Leaf: tree.N}, nil
}

// --- shared lookups -----------------------------------------------------

// registeredKey returns the key of a partner that may act now, or a refusal.
func registeredKey(tx *bbolt.Tx, id string) (ed25519.PublicKey, error) {
	p, found, err := getPartner(tx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse("partner %s is not registered", id)
	}
	if p.Role != RoleVoter {
		return nil, refuse("partner %s was removed from the consortium", id)
	}
	return p.PublicKey, nil
}

func getPartner(tx *bbolt.Tx, id string) (Partner, bool, error) {
	var p Partner
	found, err := getJSON(bucket(tx, bucketPartners), id, &p)
	return p, found, err
}

func getReservation(tx *bbolt.Tx, id string) (reservationRecord, bool, error) {
	var r reservationRecord
	found, err := getJSON(bucket(tx, bucketReservations), id, &r)
	return r, found, err
}

// voterIDs lists the partners that may act, sorted by id.
func voterIDs(tx *bbolt.Tx) ([]string, error) {
	var ids []string
	err := bucket(tx, bucketPartners).ForEach(func(k, v []byte) error {
		var p Partner
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("ledger corrupt: partner %s: %w", k, err)
		}
		if p.Role == RoleVoter {
			ids = append(ids, p.ID)
		}
		return nil
	})
	return ids, err
}

// loadCatalog returns a stored catalog version, or a refusal naming it.
func loadCatalog(tx *bbolt.Tx, hash string) (*aggregate.Catalog, []byte, error) {
	v := bucket(tx, bucketCatalogs).Get([]byte(hash))
	if v == nil {
		return nil, nil, refuse("unknown catalog %s", hash)
	}
	var c aggregate.Catalog
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, nil, fmt.Errorf("ledger corrupt: catalog %s: %w", hash, err)
	}
	return &c, slices.Clone(v), nil
}

func loadPolicy(tx *bbolt.Tx) (privacy.Policy, error) {
	var p privacy.Policy
	found, err := getJSON(bucket(tx, bucketMeta), keyPolicy, &p)
	if err == nil && !found {
		err = errors.New("ledger corrupt: no budget policy")
	}
	return p, err
}

func getJSON(b *bbolt.Bucket, key string, v any) (bool, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("ledger corrupt: %s: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := b.Put([]byte(key), data); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func getInt64(b *bbolt.Bucket, key string) (int64, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("ledger corrupt: %s has %d bytes, want 8", key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func sameJSON(a, b any) (bool, error) {
	x, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	return bytes.Equal(x, y), nil
}
