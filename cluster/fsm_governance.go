package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// The consortium's state changes only here: once at genesis, and then by
// statements signed by k of the coordinators (package governance). A
// statement is checked — consortium id, sequence number, signatures against
// the coordinator set in force — then its action is checked against the
// ledger, and only then does anything get written: the action's effect, the
// statement itself in the governance bucket (the history verifiers replay)
// and the new sequence number. A refusal at any step leaves no trace, so a
// refused statement's number stays free for the corrected one.

// --- genesis ------------------------------------------------------------

func applyGenesis(tx *bbolt.Tx, g *Genesis) (ApplyResult, error) {
	meta := bucket(tx, bucketMeta)
	if name := meta.Get([]byte(keyName)); name != nil {
		return ApplyResult{}, refuse("genesis already applied: this ledger belongs to consortium %q", name)
	}
	if err := checkConsortiumName(g.Name); err != nil {
		return ApplyResult{}, err
	}
	if err := g.Validate(); err != nil {
		return ApplyResult{}, refuse("genesis: %v", err)
	}
	id, err := g.ID()
	if err != nil {
		return ApplyResult{}, refuse("genesis: %v", err)
	}
	partners := make([]Partner, len(g.Partners))
	for i, gp := range g.Partners {
		partners[i] = Partner{ID: gp.ID, Name: gp.Name, PublicKey: gp.PublicKey, Role: RoleVoter}
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
	policy := privacy.Policy(g.Policy)
	if err := policy.Validate(); err != nil {
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
	if err := putJSON(meta, keyPolicy, policy); err != nil {
		return ApplyResult{}, err
	}
	set := governance.Set{Coordinators: g.Coordinators, Threshold: g.Threshold}
	if err := putJSON(meta, keyCoordinators, set); err != nil {
		return ApplyResult{}, err
	}
	// The genesis itself is kept (canonical, so its SHA-256 is the id): a
	// node checking a snapshot replays the governance history from it
	// (fsm_restore_check.go), even a node that was given only the id.
	canonGenesis, err := g.Canonical()
	if err != nil {
		return ApplyResult{}, refuse("genesis: %v", err)
	}
	for _, e := range []kv{
		{bucketMeta, keyGenesis, canonGenesis},
		{bucketMeta, keyConsortiumID, []byte(id)},
		{bucketMeta, keyMaxCap, binary.BigEndian.AppendUint64(nil, uint64(g.MaxCapMicro))},
		{bucketMeta, keyGovSeq, binary.BigEndian.AppendUint64(nil, 0)},
		{bucketMeta, keyName, []byte(g.Name)},
	} {
		if err := meta.Put([]byte(e.key), e.value); err != nil {
			return ApplyResult{}, fmt.Errorf("put %s: %w", e.key, err)
		}
	}
	return ApplyResult{}, nil
}

func checkConsortiumName(name string) error {
	if name == "" || len(name) > 100 || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return refuse("consortium name %q: must be 1 to 100 bytes of printable UTF-8", name)
	}
	return nil
}

// --- the envelope -------------------------------------------------------

// governanceState is what a statement is checked against.
type governanceState struct {
	consortium string
	next       uint64
	set        governance.Set
	maxCap     int64
}

func loadGovernance(tx *bbolt.Tx) (governanceState, error) {
	meta := bucket(tx, bucketMeta)
	var g governanceState
	g.consortium = string(meta.Get([]byte(keyConsortiumID)))
	if g.consortium == "" {
		return g, refuse("the ledger has no consortium yet: genesis must come first")
	}
	last, err := getInt64(meta, keyGovSeq)
	if err != nil {
		return g, err
	}
	g.next = uint64(last) + 1
	if g.maxCap, err = getInt64(meta, keyMaxCap); err != nil {
		return g, err
	}
	found, err := getJSON(meta, keyCoordinators, &g.set)
	if err == nil && !found {
		err = fmt.Errorf("ledger corrupt: no coordinator set")
	}
	return g, err
}

// checkStatement is the envelope check: consortium, sequence number and
// k-of-n coordinator signatures.
func checkStatement(tx *bbolt.Tx, s *governance.Signed) (governanceState, error) {
	g, err := loadGovernance(tx)
	if err != nil {
		return g, err
	}
	if err := s.Statement.Action.Check(); err != nil {
		return g, refuse("governance statement %d: %v", s.Statement.Seq, err)
	}
	if _, err := governance.Verify(*s, g.consortium, g.next, g.set); err != nil {
		return g, refuse("governance statement refused: %v", err)
	}
	return g, nil
}

func applyGovern(tx *bbolt.Tx, s *governance.Signed) (ApplyResult, error) {
	g, err := checkStatement(tx, s)
	if err != nil {
		return ApplyResult{}, err
	}
	w, err := admitAction(tx, g, s.Statement)
	if err != nil {
		return ApplyResult{}, err
	}
	// Everything is checked: from here on only storage can fail.
	if err := w.put(tx); err != nil {
		return ApplyResult{}, err
	}
	data, err := s.Encode()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("encode statement %d: %w", s.Statement.Seq, err)
	}
	seq := binary.BigEndian.AppendUint64(nil, s.Statement.Seq)
	hist := bucket(tx, bucketGovernance)
	hist.FillPercent = appendFillPercent // sequence numbers are only ever appended
	if err := hist.Put(seq, data); err != nil {
		return ApplyResult{}, fmt.Errorf("put statement %d: %w", s.Statement.Seq, err)
	}
	if err := bucket(tx, bucketMeta).Put([]byte(keyGovSeq), seq); err != nil {
		return ApplyResult{}, fmt.Errorf("put governance seq: %w", err)
	}
	return ApplyResult{Existing: w.noop, Seq: s.Statement.Seq}, nil
}

// write is an admitted action's effect, computed before anything is
// written: put applies it. noop marks an action that changes nothing (a
// repeated one); the statement is still recorded.
type write struct {
	noop bool
	puts []kv // in order
	dels []kv // bucket and key only
}

type kv struct {
	bucket, key string
	value       []byte
}

func (w *write) putJSON(bucketName, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	w.puts = append(w.puts, kv{bucketName, key, data})
	return nil
}

func (w *write) del(bucketName, key string) {
	w.dels = append(w.dels, kv{bucket: bucketName, key: key})
}

func (w *write) put(tx *bbolt.Tx) error {
	for _, d := range w.dels {
		if err := bucket(tx, d.bucket).Delete([]byte(d.key)); err != nil {
			return fmt.Errorf("delete %s/%s: %w", d.bucket, d.key, err)
		}
	}
	for _, p := range w.puts {
		if err := bucket(tx, p.bucket).Put([]byte(p.key), p.value); err != nil {
			return fmt.Errorf("put %s/%s: %w", p.bucket, p.key, err)
		}
	}
	return nil
}

// admitAction decides an action against the ledger and returns its write.
func admitAction(tx *bbolt.Tx, g governanceState, st governance.Statement) (*write, error) {
	a := st.Action
	switch a.Type {
	case governance.AddPartner:
		return admitAddPartner(tx, Partner{ID: a.Partner.ID, Name: a.Partner.Name, PublicKey: a.Partner.PublicKey, Address: a.Address})
	case governance.RemovePartner:
		return admitRemovePartner(tx, a.ID, st.Seq)
	case governance.AddReplica:
		return admitAddReplica(tx, a.ID, a.Address)
	case governance.RemoveReplica:
		return admitRemoveReplica(tx, a.ID, st.Seq)
	case governance.RemoveNode:
		if _, found, err := getPartner(tx, a.ID); err != nil || found {
			if err != nil {
				return nil, err
			}
			return admitRemovePartner(tx, a.ID, st.Seq)
		}
		if bucket(tx, bucketReplicas).Get([]byte(a.ID)) != nil {
			return admitRemoveReplica(tx, a.ID, st.Seq)
		}
		return nil, refuse("node %q is neither a registered partner nor a registered replica", a.ID)
	case governance.SetCatalog:
		return admitSetCatalog(tx, a.Catalog)
	case governance.SetPolicy:
		return admitSetPolicy(tx, privacy.Policy(*a.Policy), g.maxCap)
	case governance.Rotate:
		w := &write{}
		return w, w.putJSON(bucketMeta, keyCoordinators, governance.Set{Coordinators: a.Rotate.Coordinators, Threshold: a.Rotate.Threshold})
	case governance.Revoke:
		return admitRevoke(tx, *a.Revoke, st.Seq)
	}
	return nil, refuse("unknown governance action %q", a.Type)
}

// --- partners and replicas ----------------------------------------------

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
	return checkAddress(p.ID, p.Address)
}

// checkAddress validates an optional raft address: host:port, printable.
func checkAddress(id, addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || len(addr) > 255 || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return refuse("%s: address %q must be host:port", id, addr)
	}
	return nil
}

func admitAddPartner(tx *bbolt.Tx, p Partner) (*write, error) {
	p.Role = RoleVoter
	if err := checkPartner(p); err != nil {
		return nil, err
	}
	old, found, err := getPartner(tx, p.ID)
	if err != nil {
		return nil, err
	}
	if found && !bytes.Equal(old.PublicKey, p.PublicKey) {
		if old.Role == RoleRemoved {
			return nil, refuse("partner %s was removed; it can rejoin only with its old key, so its past releases keep verifying", p.ID)
		}
		return nil, refuse("partner %s is already registered with a different key", p.ID)
	}
	w := &write{}
	if found && old.Role == RoleVoter && old.Name == p.Name && old.Address == p.Address {
		w.noop = true
		return w, nil
	}
	// No two partners may share a key: whoever holds it could sign as both.
	c := bucket(tx, bucketPartners).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var q Partner
		if err := json.Unmarshal(v, &q); err != nil {
			return nil, fmt.Errorf("ledger corrupt: partner %s: %w", k, err)
		}
		if q.ID != p.ID && bytes.Equal(q.PublicKey, p.PublicKey) {
			return nil, refuse("public key is already registered to partner %s", q.ID)
		}
	}
	w.del(bucketDenied, denyIDKey(p.ID)) // re-admitted: its certificate may connect again
	return w, w.putJSON(bucketPartners, p.ID, p)
}

func admitRemovePartner(tx *bbolt.Tx, id string, seq uint64) (*write, error) {
	p, found, err := getPartner(tx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse("partner %s is not registered", id)
	}
	w := &write{}
	if p.Role == RoleRemoved {
		w.noop = true
		return w, nil
	}
	voters, err := voterIDs(tx)
	if err != nil {
		return nil, err
	}
	if len(voters) == 1 {
		return nil, refuse("partner %s is the last voting partner; a consortium needs at least one", id)
	}
	p.Role = RoleRemoved
	if err := w.putJSON(bucketDenied, denyIDKey(id), denial{Reason: "partner removed", Seq: seq}); err != nil {
		return nil, err
	}
	return w, w.putJSON(bucketPartners, id, p)
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

// replicaRecord is how a replica is registered.
type replicaRecord struct {
	Address string `json:"address,omitempty"`
}

func admitAddReplica(tx *bbolt.Tx, id, addr string) (*write, error) {
	if err := checkLedgerID("replica", id); err != nil {
		return nil, err
	}
	if err := checkAddress(id, addr); err != nil {
		return nil, err
	}
	if _, found, err := getPartner(tx, id); err != nil || found {
		if err != nil {
			return nil, err
		}
		return nil, refuse("%s is a partner's id; a replica needs its own", id)
	}
	w := &write{}
	var old replicaRecord
	found, err := getJSON(bucket(tx, bucketReplicas), id, &old)
	if err != nil {
		return nil, err
	}
	if found && old.Address == addr {
		w.noop = true
		return w, nil
	}
	w.del(bucketDenied, denyIDKey(id))
	return w, w.putJSON(bucketReplicas, id, replicaRecord{Address: addr})
}

func admitRemoveReplica(tx *bbolt.Tx, id string, seq uint64) (*write, error) {
	if bucket(tx, bucketReplicas).Get([]byte(id)) == nil {
		return nil, refuse("replica %q is not registered", id)
	}
	w := &write{}
	w.del(bucketReplicas, id)
	return w, w.putJSON(bucketDenied, denyIDKey(id), denial{Reason: "replica removed", Seq: seq})
}

// --- catalog and policy -------------------------------------------------

func admitSetCatalog(tx *bbolt.Tx, raw json.RawMessage) (*write, error) {
	cat, canon, err := parseCatalog(raw)
	if err != nil {
		return nil, err
	}
	hash := cat.Hash()
	w := &write{}
	current := string(bucket(tx, bucketMeta).Get([]byte(keyCatalog)))
	if hash == current {
		w.noop = true
		return w, nil
	}
	if bucket(tx, bucketCatalogs).Get([]byte(hash)) == nil {
		cur, _, err := loadCatalog(tx, current)
		if err != nil {
			return nil, err
		}
		if cat.Version <= cur.Version {
			return nil, refuse("catalog version %d is not newer than the current version %d", cat.Version, cur.Version)
		}
	}
	w.puts = append(w.puts, kv{bucketCatalogs, hash, canon}, kv{bucketMeta, keyCatalog, []byte(hash)})
	return w, nil
}

// putCatalog stores a catalog version (if new) and makes it current.
func putCatalog(tx *bbolt.Tx, hash string, canon []byte) error {
	if err := bucket(tx, bucketCatalogs).Put([]byte(hash), canon); err != nil {
		return fmt.Errorf("put catalog %s: %w", hash, err)
	}
	return bucket(tx, bucketMeta).Put([]byte(keyCatalog), []byte(hash))
}

func admitSetPolicy(tx *bbolt.Tx, p privacy.Policy, maxCap int64) (*write, error) {
	if err := p.Validate(); err != nil {
		return nil, refuse("%v", err)
	}
	if p.CapMicro > maxCap {
		return nil, refuse("budget cap %d micro is above the ceiling the genesis sets (%d micro); no statement can raise it", p.CapMicro, maxCap)
	}
	old, err := loadPolicy(tx)
	if err != nil {
		return nil, err
	}
	w := &write{}
	if old == p {
		w.noop = true
		return w, nil
	}
	if old.Accounting != p.Accounting {
		// Spend is kept in the unit of the accounting mode; switching would
		// add ε to ρ.
		if k, _ := bucket(tx, bucketSpend).Cursor().First(); k != nil {
			return nil, refuse("cannot change accounting from %s to %s: budget has already been spent in %s units", old.Accounting, p.Accounting, old.Accounting)
		}
	}
	return w, w.putJSON(bucketMeta, keyPolicy, p)
}

// --- revocation and the deny-list ---------------------------------------

// denial is one entry of the deny-list.
type denial struct {
	Reason string `json:"reason"`
	Seq    uint64 `json:"seq"` // the governance statement that made it
}

func denyIDKey(id string) string           { return "id/" + id }
func denySerialKey(serial *big.Int) string { return "serial/" + serial.Text(16) }
func parseSerial(s string) (*big.Int, bool) {
	n, ok := new(big.Int).SetString(s, 10)
	return n, ok && n.Sign() > 0
}

func admitRevoke(tx *bbolt.Tx, r governance.Revocation, seq uint64) (*write, error) {
	w := &write{}
	reason := "certificate revoked"
	if r.Reason != "" {
		if len(r.Reason) > 200 || !utf8.ValidString(r.Reason) || strings.ContainsFunc(r.Reason, unicode.IsControl) {
			return nil, refuse("revocation reason must be at most 200 bytes of printable UTF-8")
		}
		reason += ": " + r.Reason
	}
	if r.Serial != "" {
		serial, ok := parseSerial(r.Serial)
		if !ok {
			return nil, refuse("certificate serial %q must be a positive decimal number (as openssl x509 -serial prints in hex, convert it)", r.Serial)
		}
		if err := w.putJSON(bucketDenied, denySerialKey(serial), denial{Reason: reason, Seq: seq}); err != nil {
			return nil, err
		}
	}
	if r.NodeID != "" {
		if err := ValidateID(r.NodeID); err != nil {
			return nil, refuse("revoke: %v", err)
		}
		if err := w.putJSON(bucketDenied, denyIDKey(r.NodeID), denial{Reason: reason, Seq: seq}); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// denyList is the in-memory copy of the denied bucket.
type denyList struct {
	ids     map[string]string // id -> reason; lookups only
	serials map[string]string // hex serial -> reason; lookups only
}

// loadDenyList rebuilds the in-memory deny-list from the file.
func (f *FSM) loadDenyList() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.loadDenyListLocked()
}

// loadDenyListLocked is loadDenyList for a caller that holds f.mu.
func (f *FSM) loadDenyListLocked() error {
	d := &denyList{ids: map[string]string{}, serials: map[string]string{}}
	err := f.db.View(func(tx *bbolt.Tx) error {
		return bucket(tx, bucketDenied).ForEach(func(k, v []byte) error {
			var e denial
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("ledger corrupt: denied %s: %w", k, err)
			}
			if id, ok := strings.CutPrefix(string(k), "id/"); ok {
				d.ids[id] = e.Reason
			} else if s, ok := strings.CutPrefix(string(k), "serial/"); ok {
				d.serials[s] = e.Reason
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load deny-list: %w", err)
	}
	f.deny.Store(d)
	return nil
}

// governanceChanged runs after a batch that admitted governance; the
// caller holds f.mu.
func (f *FSM) governanceChanged() {
	if err := f.loadDenyListLocked(); err != nil {
		f.fail(err)
	}
	f.signalGoverned()
}

func (f *FSM) signalGoverned() {
	select {
	case f.governed <- struct{}{}:
	default: // a signal is already pending; one is enough
	}
}

// Denied reports whether a node id or a certificate serial number is on the
// ledger's deny-list (a removed partner or replica, or a revoked
// certificate), and why. It reads memory only, so it is cheap enough for
// every TLS handshake. serial may be nil.
func (f *FSM) Denied(id string, serial *big.Int) (bool, string) {
	d := f.deny.Load()
	if d == nil {
		return false, ""
	}
	if r, ok := d.ids[id]; ok && id != "" {
		return true, fmt.Sprintf("%s: %s", id, r)
	}
	if serial != nil {
		if r, ok := d.serials[serial.Text(16)]; ok {
			return true, fmt.Sprintf("certificate serial %s: %s", serial, r)
		}
	}
	return false, ""
}

// GovernanceApplied signals after the ledger admitted governance (or was
// restored from a snapshot). One signal may stand for several changes.
func (f *FSM) GovernanceApplied() <-chan struct{} { return f.governed }

// --- reads --------------------------------------------------------------

// GovernanceHistory is every admitted governance statement in order, with
// what a verifier needs to replay it: the consortium id and the next
// sequence number.
type GovernanceHistory struct {
	Consortium string              `json:"consortium"`
	Next       uint64              `json:"next"`
	Threshold  int                 `json:"threshold"`
	Statements []governance.Signed `json:"statements"`
}

// Governance returns the governance history (small: a few statements a
// year) and the coordinator set in force.
func (f *FSM) Governance() (GovernanceHistory, governance.Set, error) {
	var h GovernanceHistory
	var set governance.Set
	err := f.view(func(tx *bbolt.Tx) error {
		g, err := loadGovernance(tx)
		if err != nil {
			return fmt.Errorf("governance: %w (no genesis yet)", ErrNotFound)
		}
		h.Consortium, h.Next, h.Threshold, set = g.consortium, g.next, g.set.Threshold, g.set
		h.Statements = []governance.Signed{}
		return bucket(tx, bucketGovernance).ForEach(func(k, v []byte) error {
			var s governance.Signed
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("ledger corrupt: governance statement %x: %w", k, err)
			}
			h.Statements = append(h.Statements, s)
			return nil
		})
	})
	return h, set, err
}

// CheckStatement runs the envelope checks Apply will run (consortium,
// sequence number, k-of-n signatures) against the current state, so a node
// can refuse junk before it reaches the raft log. Apply checks again.
func (f *FSM) CheckStatement(s governance.Signed) error {
	return f.view(func(tx *bbolt.Tx) error {
		_, err := checkStatement(tx, &s)
		return err
	})
}

// Statement returns the admitted statement at seq.
func (f *FSM) Statement(seq uint64) (governance.Signed, error) {
	var s governance.Signed
	err := f.view(func(tx *bbolt.Tx) error {
		found, err := getJSON(bucket(tx, bucketGovernance), string(binary.BigEndian.AppendUint64(nil, seq)), &s)
		if err == nil && !found {
			err = fmt.Errorf("governance statement %d: %w", seq, ErrNotFound)
		}
		return err
	})
	return s, err
}

// ConsortiumID returns the consortium id (the genesis hash), or ErrNotFound
// before genesis.
func (f *FSM) ConsortiumID() (string, error) {
	var id string
	err := f.view(func(tx *bbolt.Tx) error {
		id = string(bucket(tx, bucketMeta).Get([]byte(keyConsortiumID)))
		if id == "" {
			return fmt.Errorf("consortium id: %w (no genesis yet)", ErrNotFound)
		}
		return nil
	})
	return id, err
}

// sameStatement reports whether two signed statements are the same decision
// (consortium, seq and action), whatever signatures each carries.
func sameStatement(a, b governance.Signed) bool {
	x, err1 := a.Statement.SigningBytes()
	y, err2 := b.Statement.SigningBytes()
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
