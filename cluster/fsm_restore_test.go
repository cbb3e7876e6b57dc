package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// Snapshots are checked before they are installed (fsm_restore_check.go).
// Each forged snapshot below is made by editing a real snapshot's bbolt
// file and recomputing the stream's header and hash, so it passes every
// integrity check the old Restore made (checked by passesIntegrity: that is
// the attack succeeding without the content check), and only the content
// check can refuse it. After each refusal the node's state hash, Merkle
// root and applied index are unchanged, the evidence file is kept and the
// refusal is reported (FSM.SnapshotRefusal, which /v1/health shows).

// restoreFixture is a leader's ledger and a follower that has seen a prefix
// of it, including a checkpoint co-signed by a majority.
type restoreFixture struct {
	leader, follower *FSM
	followerDir      string
	cat              string
	snap             []byte // the leader's snapshot, newer than the follower
}

// restoreRefused restores forged on fx's follower and fails unless it is
// refused with a reason containing want and leaves the follower as it was.
func restoreRefused(t *testing.T, fx *restoreFixture, forged []byte, want string) {
	t.Helper()
	before := viewOf(t, fx.follower)
	err := fx.follower.Restore(io.NopCloser(bytes.NewReader(forged)))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Restore(forged) = %v, want a refusal containing %q", err, want)
	}
	if after := viewOf(t, fx.follower); after != before {
		t.Fatalf("refused snapshot changed the node: %+v, was %+v", after, before)
	}
}

func newRestoreFixture(t *testing.T) *restoreFixture {
	t.Helper()
	fx := &restoreFixture{leader: newTestFSM(t), followerDir: t.TempDir(), cat: fsmCatalogHash(t)}
	fx.follower = openTestFSM(t, fx.followerDir)
	l := &fsmLog{}
	both := func(cmds ...Command) {
		logs := l.add(t, cmds...)
		for _, f := range []*FSM{fx.leader, fx.follower} {
			for i, r := range applyAll(t, f, logs) {
				if !r.OK {
					t.Fatalf("%s refused: %s", cmds[i].Type, r.Refusal)
				}
			}
		}
	}
	leaderOnly := func(cmds ...Command) { mustApply(t, fx.leader, l, cmds...) }
	g := fsmGenesis(t, "AL", "BA", "RS", "MK") // first: reservations bind to its consortium
	r1 := fsmReservation(t, fx.cat, "r1", "RS", "RS", "2024-Q1", 400_000)
	r2 := fsmReservation(t, fx.cat, "r2", "AL", "AL", "2024-Q1", 300_000)
	r3 := fsmReservation(t, fx.cat, "r3", "RS", "RS", "2024", 200_000)
	r4 := fsmReservation(t, fx.cat, "r4", "BA", "BA", "2024-Q2", 500_000)
	r5 := fsmReservation(t, fx.cat, "r5", "RS", "RS", "2024-Q3", 300_000) // stays unused
	both(g, govRemovePartner("MK"), govAddReplica("replica-1"),
		NewReserve(r1), NewPublish(fsmRelease(t, r1.Reservation, "RS", 1)),
		NewReserve(r2), NewPublish(fsmRelease(t, r2.Reservation, "AL", 2)))
	fx.cosign(t, both, fx.leader, "AL", "BA", "RS")
	leaderOnly(govAddPartner(fsmPartner("XK")), govSetPolicy(privacy.Policy{Accounting: privacy.PureDP, CapMicro: 2 * privacy.Micro}),
		NewReserve(r3), NewPublish(fsmRelease(t, r3.Reservation, "RS", 3)),
		NewReserve(r4), NewPublish(fsmRelease(t, r4.Reservation, "BA", 4)), NewReserve(r5))
	fx.cosign(t, leaderOnly, fx.leader, "AL", "RS")
	pinAs(t, fx.follower, fx.leader)
	fx.snap = snapshotBytes(t, fx.leader)
	return fx
}

// cosign has the named partners co-sign f's current tree head.
func (fx *restoreFixture) cosign(t *testing.T, apply func(...Command), f *FSM, partners ...string) {
	t.Helper()
	head, err := f.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.ConsortiumID()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range partners {
		apply(NewCosign(p, (&fsmBase{}).cosignNote(t, p, CheckpointOrigin("western-balkans", id), head)))
	}
}

// nodeView is what must not change when a snapshot is refused.
type nodeView struct {
	hash    string
	head    tlog.Tree
	applied uint64
}

func viewOf(t *testing.T, f *FSM) nodeView {
	t.Helper()
	head, err := f.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	return nodeView{hash: stateHash(t, f), head: head, applied: f.AppliedIndex()}
}

// An honest snapshot of a ledger with governance (a removal, a replica, a
// new partner, a policy change), releases by several partners, an unused
// reservation and co-signed checkpoints passes the check and is installed.
func TestRestoreChecksAndInstallsHonestSnapshot(t *testing.T) {
	fx := newRestoreFixture(t)
	before := viewOf(t, fx.follower)
	if err := fx.follower.Restore(io.NopCloser(bytes.NewReader(fx.snap))); err != nil {
		t.Fatalf("Restore(honest snapshot): %v", err)
	}
	got, want := viewOf(t, fx.follower), viewOf(t, fx.leader)
	if got != want || got == before {
		t.Fatalf("after restore the follower is %+v, want the leader's %+v (was %+v)", got, want, before)
	}
	if r := fx.follower.SnapshotRefusal(); r != nil {
		t.Fatalf("honest snapshot reported as refused: %+v", r)
	}
	if ev, _ := filepath.Glob(filepath.Join(fx.followerDir, RejectedSnapshotPrefix+"*")); len(ev) != 0 {
		t.Fatalf("evidence files after an honest restore: %v", ev)
	}
}

func TestRestoreRefusesForgedSnapshots(t *testing.T) {
	mallory := fsmKey("mallory")
	tests := []struct {
		name string
		// forge edits the leader's snapshot file.
		forge func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx)
		want  string // substring of the refusal
	}{
		{"made-up release with a forged signature", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// RS's unused reservation r5, now "used" by a release RS never
			// signed: the leaf, the index and the tree are all consistent.
			rec := getRecord(t, tx, "r5")
			s := fixtureRelease(t, fixtureCatalog(t, fx.cat), rec.Reservation.Reservation, mallory, 9)
			appendRelease(t, tx, s)
			rec.Release = s.ID
			putRecord(t, tx, rec)
		}, "signature does not verify with the key governance registered for partner RS"},
		{"partner key swapped in the partners bucket", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// The forger registers its own key for RS and re-signs all of
			// RS's reservations and releases with it.
			p := getPartnerT(t, tx, "RS")
			p.PublicKey = mallory.Public().(ed25519.PublicKey)
			putJSONT(t, tx, bucketPartners, "RS", p)
			resignPartner(t, tx, "RS", mallory)
		}, "partners/RS is"},
		{"governance statement with too few signatures", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// The cap raised to the ceiling by one coordinator of the
			// threshold two, recorded with its effect.
			meta := bucket(tx, bucketMeta)
			seq := binary.BigEndian.Uint64(meta.Get([]byte(keyGovSeq))) + 1
			id := string(meta.Get([]byte(keyConsortiumID)))
			pol := governance.Policy{Accounting: privacy.PureDP, CapMicro: 3 * privacy.Micro}
			s := signStatement(t, id, seq, governance.Action{Type: governance.SetPolicy, Policy: &pol}, "c1")
			data, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			put(t, bucket(tx, bucketGovernance), string(binary.BigEndian.AppendUint64(nil, seq)), data)
			put(t, meta, keyGovSeq, binary.BigEndian.AppendUint64(nil, seq))
			putJSONT(t, tx, bucketMeta, keyPolicy, privacy.Policy(pol))
		}, "does not replay from the genesis"},
		{"spend lowered below the reservations", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			put(t, bucket(tx, bucketSpend), "RS/2024-Q1", binary.BigEndian.AppendUint64(nil, 100_000))
		}, "spend RS/2024-Q1 is 100000 micro, but its reservations add up to 600000 micro"},
		{"merkle tree rewritten with a different leaf", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// The leaves stay; the stored tree is the one of a log whose
			// leaf 1 is something else.
			var leaves [][]byte
			_ = bucket(tx, bucketLeaves).ForEach(func(_, v []byte) error { leaves = append(leaves, bytes.Clone(v)); return nil })
			leaves[1] = []byte(`{"id":"made-up"}`)
			rebuildTree(t, tx, leaves)
		}, "merkle tree: stored hash"},
		{"tree inconsistent with a checkpoint the node saw", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// RS, as a malicious leader, replaces its own first release with
			// another version it signs itself: every signature is valid,
			// the tree is consistent with its leaves, the snapshot's own
			// checkpoints are dropped. Only what the follower saw differs.
			rec := getRecord(t, tx, "r1")
			old := rec.Release
			s := fixtureRelease(t, fixtureCatalog(t, fx.cat), rec.Reservation.Reservation, fsmKey("RS"), 77)
			replaceRelease(t, tx, old, s)
			rec.Release = s.ID
			putRecord(t, tx, rec)
			if err := tx.DeleteBucket([]byte(bucketCheckpoints)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.CreateBucket([]byte(bucketCheckpoints)); err != nil {
				t.Fatal(err)
			}
		}, "but this node's own ledger has"},
		{"another consortium's ledger", nil, "snapshot is a ledger of consortium"},
		{"applied index 1,000,001 with nothing behind it", nil, "snapshot holds no consortium"},
		{"applied index below what its content needs", func(t *testing.T, fx *restoreFixture, tx *bbolt.Tx) {
			// Just above the follower's index, far below the entries the
			// leader's content took.
			put(t, bucket(tx, bucketMeta), keyApplied, binary.BigEndian.AppendUint64(nil, fx.follower.AppliedIndex()+1))
		}, "but its content needs at least"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newRestoreFixture(t)
			var forged []byte
			switch tc.name {
			case "another consortium's ledger":
				forged = otherConsortiumSnapshot(t)
			case "applied index 1,000,001 with nothing behind it":
				forged = emptyLedgerSnapshot(t, 1_000_001)
			default:
				forged = forgeSnapshot(t, fx.snap, func(tx *bbolt.Tx) { tc.forge(t, fx, tx) })
			}
			index := binary.BigEndian.Uint64(forged[8:16])
			passesIntegrity(t, forged)
			restoreRefused(t, fx, forged, tc.want)
			evidence := filepath.Join(fx.followerDir, fmt.Sprintf("%s%d.db", RejectedSnapshotPrefix, index))
			body, err := os.ReadFile(evidence)
			if err != nil {
				t.Fatalf("evidence: %v", err)
			}
			if sum := sha256.Sum256(body); !bytes.Equal(sum[:], forged[len(forged)-32:]) {
				t.Error("evidence file is not the refused snapshot's body")
			}
			if reason, err := os.ReadFile(strings.TrimSuffix(evidence, ".db") + ".reason.txt"); err != nil || !strings.Contains(string(reason), tc.want) {
				t.Errorf("reason file = %q, %v; want it to contain %q", reason, err, tc.want)
			}
			r := fx.follower.SnapshotRefusal()
			if r == nil || r.Index != index || r.Evidence != evidence || !strings.Contains(r.Reason, tc.want) || r.Count != 1 {
				t.Errorf("SnapshotRefusal() = %+v, want index %d, evidence %s", r, index, evidence)
			}
			if left, _ := filepath.Glob(filepath.Join(fx.followerDir, LedgerFile+".restore-*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
			// The honest snapshot still installs afterwards.
			if err := fx.follower.Restore(io.NopCloser(bytes.NewReader(fx.snap))); err != nil {
				t.Fatalf("Restore(honest) after a refusal: %v", err)
			}
			if got, want := viewOf(t, fx.follower), viewOf(t, fx.leader); got != want {
				t.Fatalf("after the honest snapshot: %+v, want %+v", got, want)
			}
		})
	}
}

// A node refuses the same forged snapshot every time it is offered (raft
// resends it), keeps the first evidence, logs at ERROR once, and counts
// each refusal; a restarted node still reports it from the evidence.
func TestRestoreRefusesRepeatedly(t *testing.T) {
	fx := newRestoreFixture(t)
	forged := emptyLedgerSnapshot(t, 1_000_001)
	for i := 0; i < 3; i++ {
		if err := fx.follower.Restore(io.NopCloser(bytes.NewReader(forged))); err == nil {
			t.Fatalf("attempt %d: forged snapshot installed", i+1)
		}
	}
	if r := fx.follower.SnapshotRefusal(); r == nil || r.Count != 3 || r.Index != 1_000_001 {
		t.Fatalf("SnapshotRefusal() = %+v, want 3 refusals at 1000001", r)
	}
	if err := fx.follower.Close(); err != nil {
		t.Fatal(err)
	}
	again := openTestFSM(t, fx.followerDir)
	if r := again.SnapshotRefusal(); r == nil || r.Index != 1_000_001 || !strings.Contains(r.Reason, "no consortium") {
		t.Fatalf("after restart SnapshotRefusal() = %+v, want the refusal at 1000001", r)
	}
}

// --- forging ------------------------------------------------------------

// forgeSnapshot edits a snapshot's ledger with bbolt and rebuilds the
// stream (header index from the edited ledger, length, SHA-256).
func forgeSnapshot(t *testing.T, snap []byte, edit func(tx *bbolt.Tx)) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "forged.db")
	if err := os.WriteFile(path, snap[24:len(snap)-32], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { edit(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return streamOf(t, path)
}

// streamOf frames a ledger file as a snapshot stream.
func streamOf(t *testing.T, path string) []byte {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var applied uint64
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bbolt.Tx) error { applied, err = readApplied(tx); return err })
	_ = db.Close()
	out := binary.BigEndian.AppendUint64([]byte(snapshotMagic), applied)
	out = binary.BigEndian.AppendUint64(out, uint64(len(body)))
	out = append(out, body...)
	sum := sha256.Sum256(body)
	return append(out, sum[:]...)
}

// passesIntegrity shows the forged stream passes every check Restore made
// before the content check (magic, length, hash, a bbolt file at the
// header's index): without the content check it would be installed.
func passesIntegrity(t *testing.T, snap []byte) {
	t.Helper()
	scratch := openTestFSM(t, t.TempDir())
	index, size := binary.BigEndian.Uint64(snap[8:16]), binary.BigEndian.Uint64(snap[16:24])
	tmp, err := scratch.writeRestoreFile(bytes.NewReader(snap[24:]), index, size)
	if err != nil {
		t.Fatalf("forged snapshot fails the integrity checks (%v); the test would prove nothing", err)
	}
	_ = os.Remove(tmp)
}

// otherConsortiumSnapshot is an honest ledger of another consortium (same
// partners and keys, another genesis).
func otherConsortiumSnapshot(t *testing.T) []byte {
	t.Helper()
	f := newTestFSM(t)
	g := fsmGenesis(t, "AL", "BA", "RS")
	g.Genesis.Name = "another-region"
	fsmRegisterGenesis(t, *g.Genesis) // the reservation below binds to this consortium
	cat := fsmCatalogHash(t)
	r := fsmReservation(t, cat, "o1", "RS", "RS", "2024-Q1", 100_000)
	mustApply(t, f, &fsmLog{next: 1000}, g, NewReserve(r), NewPublish(fsmRelease(t, r.Reservation, "RS", 5)))
	return snapshotBytes(t, f)
}

// emptyLedgerSnapshot is what a forger writes from scratch: a ledger file
// with nothing in it but an applied index.
func emptyLedgerSnapshot(t *testing.T, applied uint64) []byte {
	t.Helper()
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, LedgerFile)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		return bucket(tx, bucketMeta).Put([]byte(keyApplied), binary.BigEndian.AppendUint64(nil, applied))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	return streamOf(t, path)
}

func put(t *testing.T, b *bbolt.Bucket, key string, v []byte) {
	t.Helper()
	if err := b.Put([]byte(key), v); err != nil {
		t.Fatal(err)
	}
}

func putJSONT(t *testing.T, tx *bbolt.Tx, bucketName, key string, v any) {
	t.Helper()
	if err := putJSON(bucket(tx, bucketName), key, v); err != nil {
		t.Fatal(err)
	}
}

func getRecord(t *testing.T, tx *bbolt.Tx, id string) reservationRecord {
	t.Helper()
	rec, found, err := getReservation(tx, id)
	if err != nil || !found {
		t.Fatalf("reservation %s: %v (found %v)", id, err, found)
	}
	return rec
}

func putRecord(t *testing.T, tx *bbolt.Tx, rec reservationRecord) {
	t.Helper()
	putJSONT(t, tx, bucketReservations, rec.Reservation.Reservation.ID, rec)
}

func getPartnerT(t *testing.T, tx *bbolt.Tx, id string) Partner {
	t.Helper()
	p, found, err := getPartner(tx, id)
	if err != nil || !found {
		t.Fatalf("partner %s: %v", id, err)
	}
	return p
}

// appendRelease adds a release as the next leaf, with a consistent tree.
func appendRelease(t *testing.T, tx *bbolt.Tx, s privacy.Signed) {
	t.Helper()
	data, err := LeafData(&s)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := AppendLeaf(tx, data)
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(nil, uint64(leaf))
	put(t, bucket(tx, bucketLeaves), string(key), data)
	put(t, bucket(tx, bucketReleases), s.ID, key)
}

// replaceRelease puts s in old's leaf and rebuilds the tree.
func replaceRelease(t *testing.T, tx *bbolt.Tx, old string, s privacy.Signed) {
	t.Helper()
	key := bucket(tx, bucketReleases).Get([]byte(old))
	if key == nil {
		t.Fatalf("release %s not in the snapshot", old)
	}
	key = bytes.Clone(key)
	data, err := LeafData(&s)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket(tx, bucketReleases).Delete([]byte(old)); err != nil {
		t.Fatal(err)
	}
	put(t, bucket(tx, bucketReleases), s.ID, key)
	put(t, bucket(tx, bucketLeaves), string(key), data)
	var leaves [][]byte
	_ = bucket(tx, bucketLeaves).ForEach(func(_, v []byte) error { leaves = append(leaves, bytes.Clone(v)); return nil })
	rebuildTree(t, tx, leaves)
}

// rebuildTree replaces the stored Merkle tree with the one over leaves.
func rebuildTree(t *testing.T, tx *bbolt.Tx, leaves [][]byte) {
	t.Helper()
	if err := tx.DeleteBucket([]byte(MerkleBucket)); err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves {
		if _, err := AppendLeaf(tx, l); err != nil {
			t.Fatal(err)
		}
	}
}

// resignPartner re-signs every reservation and release of partner with key,
// rewriting ids, the releases index, the leaves and the tree to match.
func resignPartner(t *testing.T, tx *bbolt.Tx, partner string, key ed25519.PrivateKey) {
	t.Helper()
	var recs []reservationRecord
	_ = bucket(tx, bucketReservations).ForEach(func(_, v []byte) error {
		var rec reservationRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		return nil
	})
	for _, rec := range recs {
		r := rec.Reservation.Reservation
		if r.Partner != partner {
			continue
		}
		sr, err := privacy.SignReservation(r, key)
		if err != nil {
			t.Fatal(err)
		}
		rec.Reservation = sr
		if rec.Release != "" {
			var s privacy.Signed
			leaf := bucket(tx, bucketReleases).Get([]byte(rec.Release))
			if err := json.Unmarshal(bucket(tx, bucketLeaves).Get(leaf), &s); err != nil {
				t.Fatal(err)
			}
			ns, err := privacy.Sign(s.Release, key)
			if err != nil {
				t.Fatal(err)
			}
			replaceRelease(t, tx, s.ID, ns)
			rec.Release = ns.ID
		}
		putRecord(t, tx, rec)
	}
}
