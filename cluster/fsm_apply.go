package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
	case CmdGovern:
		return applyGovern(tx, c.Statement)
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
	if err := checkConsortium(tx, "reservation", r.ID, r.Consortium); err != nil {
		return ApplyResult{}, err
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
	if err := checkConsortium(tx, "release", s.ID, rel.Consortium); err != nil {
		return ApplyResult{}, err
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
	// The origin names the consortium id, so a co-signature made for
	// another consortium (even one with this name and these partner keys)
	// is refused.
	meta := bucket(tx, bucketMeta)
	if want := CheckpointOrigin(string(meta.Get([]byte(keyName))), string(meta.Get([]byte(keyConsortiumID)))); origin != want {
		return ApplyResult{}, refuse("checkpoint is for %q, this ledger is %q", origin, want)
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
