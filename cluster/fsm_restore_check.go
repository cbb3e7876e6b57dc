package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// A snapshot is the leader's word about the whole state, so before a node
// installs one it re-derives that state from what carries its own authority
// and checks that the snapshot says the same (DESIGN.md, "Snapshots are
// checked before they are installed"):
//
//	(a) its consortium is the one this node is pinned to, and its stored
//	    genesis hashes to that id;
//	(b) its governance history replays from that genesis through the
//	    state machine's own handlers (k-of-n signatures, contiguous
//	    sequence numbers, the ledger's content rules), and the partners,
//	    keys, replicas, deny-list, catalogs, policy and coordinator set it
//	    stores are exactly what the replay gives;
//	(c) every reservation and release is signed by the key governance gave
//	    its partner, every release's id is its content hash, it validates
//	    against its catalog (privacy.Validator) and matches its reservation;
//	(d) the Merkle tree recomputed from the stored leaves in order is the
//	    stored tree, and the leaves are exactly the stored releases;
//	(e) each partner-quarter's spend is the sum of that partner's
//	    reservations over it, within the highest cap governance ever set;
//	(f) it extends every tree this node has seen (its own head and the
//	    checkpoints it stores), its own checkpoints' signatures verify, and
//	    its applied index is not below this node's nor below the number of
//	    entries its content needs.
//
// checkSnapshot is a function of the snapshot's read-only transaction and
// of what the node already trusts (restoreBasis); it writes nothing but a
// scratch ledger for the governance replay, which it removes. Every error
// names what disagrees.

// restoreBasis is what a snapshot is checked against: what this node
// already holds and trusts.
type restoreBasis struct {
	consortium  string      // the pinned consortium id
	applied     uint64      // this node's applied index
	head        tlog.Tree   // this node's Merkle tree head
	checkpoints []tlog.Tree // the checkpoints this node stores (size, root)
	scratchDir  string      // where the governance replay's scratch ledger goes
}

// checkSnapshot checks the ledger in tx (a snapshot at index snapIndex)
// against b.
func checkSnapshot(tx *bbolt.Tx, snapIndex uint64, b restoreBasis) error {
	if snapIndex < b.applied {
		return fmt.Errorf("snapshot is at index %d, below this node's applied index %d", snapIndex, b.applied)
	}
	if err := checkBucketSet(tx); err != nil {
		return err
	}
	g, err := checkSnapshotConsortium(tx, b.consortium)
	if err != nil {
		return err
	}
	gov, err := replayGovernance(tx, g, b.scratchDir)
	if err != nil {
		return err
	}
	st, err := loadSnapshotState(tx, gov)
	if err != nil {
		return err
	}
	st.consortium = b.consortium
	if err := st.checkReservations(tx); err != nil {
		return err
	}
	if err := st.checkReleases(tx); err != nil {
		return err
	}
	if err := st.checkMerkle(tx); err != nil {
		return err
	}
	if err := st.checkSpend(tx); err != nil {
		return err
	}
	if err := st.checkCheckpoints(tx, g); err != nil {
		return err
	}
	if err := st.checkSeen(b); err != nil {
		return err
	}
	if need := st.entries(); snapIndex < need {
		return fmt.Errorf("snapshot is at index %d, but its content needs at least %d entries (genesis, %d governance statements, %d reservations, %d releases, %d checkpoint signatures)",
			snapIndex, need, gov.statements, len(st.reservations), st.tree.N, st.cosigs)
	}
	return nil
}

// checkBucketSet refuses a file whose top-level buckets are not the
// ledger's: an extra bucket would be state no check below looks at.
func checkBucketSet(tx *bbolt.Tx) error {
	want := append(fsmBuckets(), MerkleBucket)
	for _, name := range want {
		if name != MerkleBucket && tx.Bucket([]byte(name)) == nil {
			return fmt.Errorf("snapshot has no %s bucket", name)
		}
	}
	return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if !slices.Contains(want, string(name)) {
			return fmt.Errorf("snapshot has an unknown bucket %q", name)
		}
		return nil
	})
}

// --- (a) the consortium -------------------------------------------------

func checkSnapshotConsortium(tx *bbolt.Tx, pinned string) (Genesis, error) {
	meta := bucket(tx, bucketMeta)
	id := string(meta.Get([]byte(keyConsortiumID)))
	switch {
	case pinned == "":
		return Genesis{}, errors.New("this node has no pinned consortium to check the snapshot against")
	case id == "":
		return Genesis{}, fmt.Errorf("snapshot holds no consortium (no genesis), this node belongs to consortium %s", pinned)
	case id != pinned:
		return Genesis{}, fmt.Errorf("snapshot is a ledger of consortium %s, this node belongs to consortium %s", id, pinned)
	}
	raw := meta.Get([]byte(keyGenesis))
	if raw == nil {
		return Genesis{}, errors.New("snapshot holds no genesis record to replay its governance from")
	}
	g, err := governance.ParseGenesis(raw)
	if err != nil {
		return Genesis{}, fmt.Errorf("snapshot's genesis: %w", err)
	}
	gid, err := g.ID()
	if err != nil {
		return Genesis{}, fmt.Errorf("snapshot's genesis: %w", err)
	}
	if gid != pinned {
		return Genesis{}, fmt.Errorf("snapshot's genesis hashes to %s, not to its consortium id %s", gid, pinned)
	}
	return g, nil
}

// --- (b) governance -----------------------------------------------------

// governanceReplay is what replaying the history gave.
type governanceReplay struct {
	statements int   // number of statements
	maxCapEver int64 // the highest budget cap the genesis or any statement set
}

// governanceBuckets are the buckets only genesis and governance write.
var governanceBuckets = []string{bucketPartners, bucketReplicas, bucketDenied, bucketCatalogs, bucketGovernance}

// replayGovernance applies the snapshot's genesis and governance history to
// a scratch ledger with the state machine's own handlers, then compares
// every bucket governance writes, and meta, with the snapshot's.
func replayGovernance(tx *bbolt.Tx, g Genesis, dir string) (governanceReplay, error) {
	out := governanceReplay{maxCapEver: g.Policy.CapMicro}
	tmp, err := os.CreateTemp(dir, "governance-replay-*.db")
	if err != nil {
		return out, fmt.Errorf("governance replay: %w", err)
	}
	path := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(path)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return out, fmt.Errorf("governance replay: %w", err)
	}
	defer db.Close()
	err = db.Update(func(scratch *bbolt.Tx) error {
		for _, name := range fsmBuckets() {
			if _, err := scratch.CreateBucket([]byte(name)); err != nil {
				return fmt.Errorf("governance replay: %w", err)
			}
		}
		if _, err := applyGenesis(scratch, &g); err != nil {
			return fmt.Errorf("snapshot's genesis does not apply: %w", err)
		}
		c := bucket(tx, bucketGovernance).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			out.statements++
			if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(out.statements) {
				return fmt.Errorf("governance history: entry %d has key %x, want sequence number %d", out.statements, k, out.statements)
			}
			var s governance.Signed
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("governance statement %d: %w", out.statements, err)
			}
			if _, err := applyGovern(scratch, &s); err != nil {
				return fmt.Errorf("governance statement %d does not replay from the genesis: %w", out.statements, err)
			}
			if a := s.Statement.Action; a.Type == governance.SetPolicy && a.Policy != nil {
				out.maxCapEver = max(out.maxCapEver, a.Policy.CapMicro)
			}
		}
		for _, name := range governanceBuckets {
			if err := sameBucket(name, bucket(tx, name), bucket(scratch, name), nil); err != nil {
				return err
			}
		}
		return sameBucket(bucketMeta, bucket(tx, bucketMeta), bucket(scratch, bucketMeta), []byte(keyApplied))
	})
	return out, err
}

// sameBucket compares a snapshot bucket with the replay's, key by key,
// skipping the key skip, and names the first difference.
func sameBucket(name string, got, want *bbolt.Bucket, skip []byte) error {
	gc, wc := got.Cursor(), want.Cursor()
	gk, gv := gc.First()
	wk, wv := wc.First()
	for gk != nil || wk != nil {
		if skip != nil && bytes.Equal(gk, skip) {
			gk, gv = gc.Next()
			continue
		}
		switch c := compareKeys(gk, wk); {
		case c < 0:
			return fmt.Errorf("%s/%s is in the snapshot, but replaying the governance history from the genesis gives no such entry", name, printable(gk))
		case c > 0:
			return fmt.Errorf("%s/%s is missing from the snapshot, but replaying the governance history from the genesis gives %s", name, printable(wk), printable(wv))
		case gv == nil || wv == nil || !bytes.Equal(gv, wv):
			return fmt.Errorf("%s/%s is %s in the snapshot, but replaying the governance history from the genesis gives %s", name, printable(gk), printable(gv), printable(wv))
		}
		gk, gv = gc.Next()
		wk, wv = wc.Next()
	}
	return nil
}

// compareKeys orders cursor keys, nil (exhausted) last.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

// printable shortens a key or value for an error message.
func printable(b []byte) string {
	const limit = 160
	s := string(b)
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == 0xfffd {
			s = hex.EncodeToString(b)
			break
		}
	}
	if b == nil {
		return "(nothing)"
	}
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// --- the state the rest is checked against ------------------------------

// snapshotState is what the content checks share: the partner keys and
// policy the replay vouched for, the catalogs' validators, and what the
// checks found so far.
type snapshotState struct {
	gov          governanceReplay
	keys         map[string]ed25519.PublicKey // partner id → key (removed partners too); lookups only
	policy       privacy.Policy
	catalogs     map[string]*aggregate.Catalog // lookups only
	validators   map[string]*privacy.Validator // lookups only
	reservations map[string]reservationRecord  // lookups only
	spend        map[string]int64              // spendKey → sum of reservations; lookups only
	hashes       []tlog.Hash                   // the recomputed Merkle tree's stored hashes
	tree         tlog.Tree                     // its head
	cosigs       int                           // checkpoint signatures stored
	consortium   string                        // the pinned id every reservation and release must name
}

func loadSnapshotState(tx *bbolt.Tx, gov governanceReplay) (*snapshotState, error) {
	st := &snapshotState{gov: gov, keys: map[string]ed25519.PublicKey{}, catalogs: map[string]*aggregate.Catalog{},
		validators: map[string]*privacy.Validator{}, reservations: map[string]reservationRecord{}, spend: map[string]int64{}}
	err := bucket(tx, bucketPartners).ForEach(func(k, v []byte) error {
		var p Partner
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("partner %s: %w", k, err)
		}
		st.keys[p.ID] = p.PublicKey
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.policy, err = loadPolicy(tx); err != nil {
		return nil, err
	}
	err = bucket(tx, bucketCatalogs).ForEach(func(k, _ []byte) error {
		cat, _, err := loadCatalog(tx, string(k))
		if err != nil {
			return err
		}
		v, err := privacy.NewValidator(cat)
		if err != nil {
			return fmt.Errorf("catalog %s cannot check releases: %w", k, err)
		}
		st.catalogs[string(k)], st.validators[string(k)] = cat, v
		return nil
	})
	return st, err
}

// entries is the least number of raft entries that can have produced the
// state: one for genesis and one per statement, reservation, release and
// stored checkpoint signature.
func (st *snapshotState) entries() uint64 {
	return 1 + uint64(st.gov.statements) + uint64(len(st.reservations)) + uint64(st.tree.N) + uint64(st.cosigs)
}

// --- (c) reservations and releases --------------------------------------

// verifyReservationSig and verifyReleaseSig are the signature checks Apply
// makes (applyReserve, prepareEntry), in one place here.
func verifyReservationSig(sr *privacy.SignedReservation, pub ed25519.PublicKey) error {
	return sr.Verify(pub)
}

func verifyReleaseSig(s *privacy.Signed, pub ed25519.PublicKey, body []byte) error {
	return s.VerifyCanonical(pub, body)
}

// checkReservations checks every reservation as applyReserve admitted it
// (signature, content, accounting) and sums the spend they charged.
func (st *snapshotState) checkReservations(tx *bbolt.Tx) error {
	var recs []reservationRecord
	err := bucket(tx, bucketReservations).ForEach(func(k, v []byte) error {
		var rec reservationRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("reservation %s: %w", printable(k), err)
		}
		if rec.Reservation.Reservation.ID != string(k) {
			return fmt.Errorf("reservation stored under %s has id %q", printable(k), rec.Reservation.Reservation.ID)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	errs := make([]error, len(recs))
	parallel(len(recs), func(i int) { errs[i] = st.checkReservation(&recs[i]) })
	for i, err := range errs { // the first in key order, whatever the scheduling
		if err != nil {
			return fmt.Errorf("reservation %s: %w", recs[i].Reservation.Reservation.ID, err)
		}
	}
	for _, rec := range recs {
		r := rec.Reservation.Reservation
		st.reservations[r.ID] = rec
		for _, q := range r.Period.Quarters() {
			st.spend[spendKey(r.Partner, q)] += r.SpendMicro
		}
	}
	return nil
}

func (st *snapshotState) checkReservation(rec *reservationRecord) error {
	r := &rec.Reservation.Reservation
	if err := checkLedgerID("reservation", r.ID); err != nil {
		return err
	}
	pub, ok := st.keys[r.Partner]
	if !ok {
		return fmt.Errorf("partner %s was never registered by governance", r.Partner)
	}
	if err := verifyReservationSig(&rec.Reservation, pub); err != nil {
		return fmt.Errorf("signature does not verify with the key governance registered for partner %s", r.Partner)
	}
	if r.Consortium != st.consortium {
		return fmt.Errorf("signed for consortium %q, this node belongs to consortium %s", r.Consortium, st.consortium)
	}
	cat, ok := st.catalogs[r.CatalogHash]
	if !ok {
		return fmt.Errorf("unknown catalog %s", r.CatalogHash)
	}
	if err := checkReservationContent(cat, r.CatalogHash, r); err != nil {
		return err
	}
	if r.Period.Year < 1900 || r.Period.Year > 9999 || r.Period.Quarter < 0 || r.Period.Quarter > 4 {
		return fmt.Errorf("period %q is not a quarter or a year", r.Period)
	}
	if r.Accounting != st.policy.Accounting {
		return fmt.Errorf("accounting %q differs from the policy's %s (accounting cannot change once budget is spent)", r.Accounting, st.policy.Accounting)
	}
	if r.SpendMicro < 1 {
		return fmt.Errorf("spends %d micro; a reservation spends a positive budget", r.SpendMicro)
	}
	return nil
}

// leafCheck is the state-independent part of checking one leaf, done in
// parallel.
type leafCheck struct {
	signed privacy.Signed
	err    error
}

// checkReleases checks every leaf in order: that it is a canonically
// encoded release whose id is its content hash, signed by its partner's
// governance key, valid against its catalog and matching its reservation,
// and that the releases bucket maps exactly these ids to these leaves. It
// recomputes the Merkle tree as it goes. Leaves are checked in chunks on
// every core; the first failure in leaf order is reported.
func (st *snapshotState) checkReleases(tx *bbolt.Tx) error {
	const chunk = 512
	var (
		index  int64
		raw    = make([][]byte, 0, chunk)
		checks = make([]leafCheck, chunk)
		used   = map[string]string{} // reservation → release; lookups only
	)
	flush := func() error {
		base := index - int64(len(raw))
		parallel(len(raw), func(i int) { checks[i] = st.checkLeaf(raw[i]) })
		for i, data := range raw {
			leaf := base + int64(i)
			c := &checks[i]
			if c.err != nil {
				return fmt.Errorf("leaf %d: %w", leaf, c.err)
			}
			if err := st.checkLeafInLedger(tx, leaf, &c.signed, used); err != nil {
				return fmt.Errorf("leaf %d (release %s): %w", leaf, c.signed.ID, err)
			}
			hs, err := tlog.StoredHashes(leaf, data, memHashes(st.hashes))
			if err != nil {
				return fmt.Errorf("leaf %d: merkle: %w", leaf, err)
			}
			st.hashes = append(st.hashes, hs...)
			c.signed = privacy.Signed{} // let the chunk's releases go
		}
		raw = raw[:0]
		return nil
	}
	c := bucket(tx, bucketLeaves).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(index) {
			return fmt.Errorf("leaves: entry %d has key %x; leaves must be numbered from 0 without gaps", index, k)
		}
		raw = append(raw, v)
		index++
		if len(raw) == chunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	st.tree.N = index
	if n := bucket(tx, bucketReleases).Stats().KeyN; int64(n) != index {
		return fmt.Errorf("the releases index has %d entries for %d leaves: every release must be a leaf and every leaf a release", n, index)
	}
	for id, rec := range st.reservations { // order-free: any failure refuses, and the message names one
		if rec.Release != "" && used[id] != rec.Release {
			return fmt.Errorf("reservation %s says release %s used it, but no leaf is that release", id, rec.Release)
		}
	}
	return nil
}

// checkLeaf is everything about one leaf that needs no other entry:
// decoding, canonical encoding, id, signature and catalog conformance.
func (st *snapshotState) checkLeaf(data []byte) leafCheck {
	var c leafCheck
	s := &c.signed
	if err := json.Unmarshal(data, s); err != nil {
		c.err = fmt.Errorf("not a signed release: %w", err)
		return c
	}
	body, err := s.Release.Canonical()
	if err != nil {
		c.err = fmt.Errorf("release cannot be encoded canonically: %w", err)
		return c
	}
	sum := sha256.Sum256(body)
	if id := hex.EncodeToString(sum[:]); id != s.ID {
		c.err = fmt.Errorf("release id %s is not the hash of its content (%s)", s.ID, id)
		return c
	}
	if !bytes.Equal(leafDataFrom(s.ID, body, s.Signature), data) {
		c.err = fmt.Errorf("release %s is not stored in its canonical leaf encoding", s.ID)
		return c
	}
	rel := &s.Release
	pub, ok := st.keys[rel.Partner]
	if !ok {
		c.err = fmt.Errorf("release %s: partner %s was never registered by governance", s.ID, rel.Partner)
		return c
	}
	if err := verifyReleaseSig(s, pub, body); err != nil {
		c.err = fmt.Errorf("release %s: signature does not verify with the key governance registered for partner %s", s.ID, rel.Partner)
		return c
	}
	if rel.Version != privacy.FormatVersion {
		c.err = fmt.Errorf("release %s: format version %d is not supported", s.ID, rel.Version)
		return c
	}
	if rel.Consortium != st.consortium {
		c.err = fmt.Errorf("release %s: signed for consortium %q, this node belongs to consortium %s", s.ID, rel.Consortium, st.consortium)
		return c
	}
	v, ok := st.validators[rel.CatalogHash]
	if !ok {
		c.err = fmt.Errorf("release %s: unknown catalog %s", s.ID, rel.CatalogHash)
		return c
	}
	c.err = checkReleaseContent(v, s)
	return c
}

// checkLeafInLedger checks a leaf against the rest of the ledger: the
// releases index and its reservation.
func (st *snapshotState) checkLeafInLedger(tx *bbolt.Tx, leaf int64, s *privacy.Signed, used map[string]string) error {
	if v := bucket(tx, bucketReleases).Get([]byte(s.ID)); len(v) != 8 || int64(binary.BigEndian.Uint64(v)) != leaf {
		return fmt.Errorf("the releases index gives leaf %x for it", v)
	}
	rel := &s.Release
	rec, ok := st.reservations[rel.Reservation]
	if !ok {
		return fmt.Errorf("its reservation %q is not in the snapshot", rel.Reservation)
	}
	if rec.Release != s.ID {
		return fmt.Errorf("its reservation %s records release %q as its use", rel.Reservation, rec.Release)
	}
	if prev, dup := used[rel.Reservation]; dup {
		return fmt.Errorf("reservation %s is used by release %s too", rel.Reservation, prev)
	}
	used[rel.Reservation] = s.ID
	unused := rec
	unused.Release = ""
	return matchReservation(s, unused)
}

// memHashes is a tlog.HashReader over the recomputed tree's stored hashes.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d is not in the recomputed tree (%d hashes)", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// --- (d) the Merkle tree ------------------------------------------------

// checkMerkle compares the stored tree with the one recomputed from the
// leaves: the same size and every stored hash the same.
func (st *snapshotState) checkMerkle(tx *bbolt.Tx) error {
	size, err := TreeSize(tx)
	if err != nil {
		return err
	}
	if size != st.tree.N {
		return fmt.Errorf("merkle tree has size %d, but the snapshot holds %d leaves", size, st.tree.N)
	}
	var stored *bbolt.Bucket
	if root := tx.Bucket([]byte(MerkleBucket)); root != nil {
		stored = root.Bucket([]byte(merkleHashes))
	}
	n := 0
	if stored != nil {
		c := stored.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if n >= len(st.hashes) || !bytes.Equal(k, hashKey(int64(n))) || !bytes.Equal(v, st.hashes[n][:]) {
				return fmt.Errorf("merkle tree: stored hash %x differs from the tree recomputed from the leaves", k)
			}
			n++
		}
	}
	if n != len(st.hashes) {
		return fmt.Errorf("merkle tree stores %d hashes, the leaves give %d", n, len(st.hashes))
	}
	if st.tree.Hash, err = tlog.TreeHash(st.tree.N, memHashes(st.hashes)); err != nil {
		return fmt.Errorf("merkle tree: %w", err)
	}
	return nil
}

// --- (e) spend ----------------------------------------------------------

// checkSpend compares the spend bucket with the reservations' sums, both
// ways, and each against the highest cap governance ever allowed.
func (st *snapshotState) checkSpend(tx *bbolt.Tx) error {
	seen := 0
	err := bucket(tx, bucketSpend).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("spend %s has %d bytes, want 8", printable(k), len(v))
		}
		got, want := int64(binary.BigEndian.Uint64(v)), st.spend[string(k)]
		if got != want {
			return fmt.Errorf("spend %s is %d micro, but its reservations add up to %d micro", printable(k), got, want)
		}
		if got > st.gov.maxCapEver {
			return fmt.Errorf("spend %s is %d micro, above the highest cap governance ever set (%d micro)", printable(k), got, st.gov.maxCapEver)
		}
		seen++
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(st.spend) {
		for k, want := range st.spend { // order-free: any one names the problem
			if bucket(tx, bucketSpend).Get([]byte(k)) == nil {
				return fmt.Errorf("spend %s is missing, but its reservations add up to %d micro", k, want)
			}
		}
	}
	return nil
}

// --- (f) checkpoints and what this node has seen ------------------------

// checkCheckpoints checks the snapshot's own checkpoints: text, origin,
// root at their size, and every stored signature.
func (st *snapshotState) checkCheckpoints(tx *bbolt.Tx, g Genesis) error {
	id, _ := g.ID()
	origins := []string{CheckpointOrigin(g.Name, id)}
	c := bucket(tx, bucketCheckpoints).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		cp := bucket(tx, bucketCheckpoints).Bucket(k)
		if v != nil || cp == nil || len(k) != 8 {
			return fmt.Errorf("checkpoints: entry %x is not a checkpoint", k)
		}
		size := int64(binary.BigEndian.Uint64(k))
		text := cp.Get([]byte(keyText))
		origin, tree, err := parseCheckpoint(text)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", size, err)
		}
		if canon, err := formatCheckpoint(origin, tree); err != nil || !bytes.Equal(canon, text) {
			return fmt.Errorf("checkpoint %d: text is not in canonical form", size)
		}
		if !slices.Contains(origins, origin) {
			return fmt.Errorf("checkpoint %d is for %q, not this consortium", size, origin)
		}
		if err := st.rootAt(tree, fmt.Sprintf("its checkpoint at size %d", size)); err != nil {
			return err
		}
		if tree.N != size {
			return fmt.Errorf("checkpoint stored under size %d is for size %d", size, tree.N)
		}
		if err := st.checkCosigs(cp, text, size); err != nil {
			return err
		}
	}
	return nil
}

func (st *snapshotState) checkCosigs(cp *bbolt.Bucket, text []byte, size int64) error {
	sigs := cp.Bucket([]byte(keySigs))
	if sigs == nil {
		return fmt.Errorf("checkpoint %d has no signatures", size)
	}
	return sigs.ForEach(func(partner, line []byte) error {
		pub, ok := st.keys[string(partner)]
		if !ok {
			return fmt.Errorf("checkpoint %d: signed by %s, which governance never registered", size, printable(partner))
		}
		name := PartnerNoteName(string(partner))
		v, err := NewNoteVerifier(name, pub)
		if err != nil {
			return fmt.Errorf("checkpoint %d: partner %s: %w", size, partner, err)
		}
		msg := append(append(slices.Clone(text), '\n'), "\u2014 "+string(line)+"\n"...)
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 || n.Sigs[0].Name != name {
			return fmt.Errorf("checkpoint %d: the signature stored for %s does not verify with its governance key", size, partner)
		}
		st.cosigs++
		return nil
	})
}

// rootAt checks that the recomputed tree has tree's root at tree's size.
func (st *snapshotState) rootAt(tree tlog.Tree, what string) error {
	if tree.N < 0 || tree.N > st.tree.N {
		return fmt.Errorf("%s has size %d, but the snapshot's tree has only %d leaves", what, tree.N, st.tree.N)
	}
	root, err := tlog.TreeHash(tree.N, memHashes(st.hashes))
	if err != nil {
		return fmt.Errorf("merkle tree at %d: %w", tree.N, err)
	}
	if root != tree.Hash {
		return fmt.Errorf("the snapshot's tree has root %s at size %d, but %s has %s", root, tree.N, what, tree.Hash)
	}
	return nil
}

// checkSeen checks that the snapshot extends every tree this node has
// already seen: a snapshot may add releases, never drop or change one.
func (st *snapshotState) checkSeen(b restoreBasis) error {
	if err := st.rootAt(b.head, "this node's own ledger"); err != nil {
		return err
	}
	for _, cp := range b.checkpoints {
		if err := st.rootAt(cp, fmt.Sprintf("the checkpoint this node holds at size %d", cp.N)); err != nil {
			return err
		}
	}
	return nil
}
