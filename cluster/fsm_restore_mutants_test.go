package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/privacy"
)

// The tests in this file kill mutants of the snapshot checks
// (fsm_restore_check.go) that hand-applied mutants found alive
// (docs/testing.md).

// TestRestoreBudgetBoundaries: an honest snapshot whose reservations sit
// on the budget's edges — one of a single micro unit, and a quarter spent
// to exactly the cap governance set — is installed: the snapshot check
// refuses only a spend below one micro or above the highest cap ever set.
func TestRestoreBudgetBoundaries(t *testing.T) {
	leader, follower := newTestFSM(t), newTestFSM(t)
	cat := fsmCatalogHash(t)
	log := &fsmLog{}
	g := fsmGenesis(t, "RS", "AL") // cap ε 1 = 1,000,000 micro
	tiny := fsmReservation(t, cat, "tiny", "RS", "RS", "2024-Q1", 1)
	rest := fsmReservation(t, cat, "rest", "RS", "RS", "2024-Q1", privacy.Micro-1)
	mustApply(t, leader, log, g, NewReserve(tiny), NewReserve(rest))
	pinAs(t, follower, leader)
	if err := follower.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, leader)))); err != nil {
		t.Fatalf("Restore(honest snapshot at the budget's edges): %v", err)
	}
	if got, want := viewOf(t, follower), viewOf(t, leader); got != want {
		t.Fatalf("after restore the follower is %+v, want the leader's %+v", got, want)
	}
}

// TestRestoreRefusesShortGovernanceKey: a governance history entry whose
// key is not an 8-byte sequence number is refused with a reason, before
// the key is read as one (a short key would otherwise panic the node).
func TestRestoreRefusesShortGovernanceKey(t *testing.T) {
	fx := newRestoreFixture(t)
	forged := forgeSnapshot(t, fx.snap, func(tx *bbolt.Tx) {
		b := bucket(tx, bucketGovernance)
		k, v := b.Cursor().Last() // a 4-byte key sorts after the 8-byte ones
		if k == nil {
			t.Fatal("the fixture has no governance history")
		}
		v = bytes.Clone(v)
		if err := b.Delete(k); err != nil {
			t.Fatal(err)
		}
		put(t, b, string(k[4:]), v)
	})
	before := viewOf(t, fx.follower)
	err := fx.follower.Restore(io.NopCloser(bytes.NewReader(forged)))
	if err == nil || !strings.Contains(err.Error(), "has key") || !strings.Contains(err.Error(), "want sequence number") {
		t.Fatalf("Restore(short governance key) = %v, want a refusal naming the key", err)
	}
	if after := viewOf(t, fx.follower); after != before {
		t.Fatalf("refused snapshot changed the node: %+v, was %+v", after, before)
	}
}

// TestRestoreRefusesForgedIndexes: a snapshot whose releases index maps
// two releases to each other's leaves (so the ledger would serve each
// one's inclusion proof for the other), whose stored Merkle tree has a
// hash beyond the tree recomputed from the leaves, or whose last leaf is
// stored under a key that is not its 8-byte index, is refused with a
// reason, and the node is unchanged.
func TestRestoreRefusesForgedIndexes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, tx *bbolt.Tx)
		want  string
	}{
		{"two releases' leaves swapped", func(t *testing.T, tx *bbolt.Tx) {
			b := bucket(tx, bucketReleases)
			c := b.Cursor()
			k1, v1 := c.First()
			k2, v2 := c.Next()
			if k2 == nil {
				t.Fatal("the fixture has fewer than two releases")
			}
			k1, v1, k2, v2 = bytes.Clone(k1), bytes.Clone(v1), bytes.Clone(k2), bytes.Clone(v2)
			put(t, b, string(k1), v2)
			put(t, b, string(k2), v1)
		}, "the releases index gives leaf"},
		{"a Merkle hash beyond the tree", func(t *testing.T, tx *bbolt.Tx) {
			hashes := tx.Bucket([]byte(MerkleBucket)).Bucket([]byte(merkleHashes))
			n := hashes.Stats().KeyN
			put(t, hashes, string(hashKey(int64(n))), make([]byte, 32))
		}, "differs from the tree recomputed from the leaves"},
		{"the last leaf under a 9-byte key", func(t *testing.T, tx *bbolt.Tx) {
			b := bucket(tx, bucketLeaves)
			k, v := b.Cursor().Last()
			k, v = bytes.Clone(k), bytes.Clone(v)
			if err := b.Delete(k); err != nil {
				t.Fatal(err)
			}
			put(t, b, string(append(k, 0)), v)
		}, "leaves must be numbered from 0 without gaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newRestoreFixture(t)
			restoreRefused(t, fx, forgeSnapshot(t, fx.snap, func(tx *bbolt.Tx) { tc.forge(t, tx) }), tc.want)
		})
	}
}

// cosigLine signs text as partner's note key name with key and returns the
// line a ledger stores for it ("name base64").
func cosigLine(t *testing.T, partner string, key ed25519.PrivateKey, text []byte) []byte {
	t.Helper()
	name := PartnerNoteName(partner)
	signer, err := NewNoteSigner(name, key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(msg, []byte("\u2014 "+name+" "))
	if i < 0 {
		t.Fatalf("no signature line in %q", msg)
	}
	return bytes.TrimSuffix(msg[i+len("\u2014 "):], []byte("\n"))
}

// firstCheckpoint returns the key and bucket of the snapshot's first
// checkpoint.
func firstCheckpoint(t *testing.T, tx *bbolt.Tx) ([]byte, *bbolt.Bucket) {
	t.Helper()
	k, _ := bucket(tx, bucketCheckpoints).Cursor().First()
	if k == nil {
		t.Fatal("the fixture has no checkpoint")
	}
	return bytes.Clone(k), bucket(tx, bucketCheckpoints).Bucket(k)
}

// TestRestoreRefusesForgedCheckpoints: a checkpoint stored under a key
// that is not an 8-byte size, one whose text is not canonical (even with
// every partner's signature over that text), and one whose stored
// co-signature does not verify with the partner's governance key are each
// refused with a reason, and the node is unchanged.
func TestRestoreRefusesForgedCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, tx *bbolt.Tx)
		want  string
	}{
		{"a checkpoint under a 9-byte key", func(t *testing.T, tx *bbolt.Tx) {
			k, cp := firstCheckpoint(t, tx)
			dst, err := bucket(tx, bucketCheckpoints).CreateBucket(append(k, 0))
			if err != nil {
				t.Fatal(err)
			}
			put(t, dst, keyText, bytes.Clone(cp.Get([]byte(keyText))))
			sigs, err := dst.CreateBucket([]byte(keySigs))
			if err != nil {
				t.Fatal(err)
			}
			if err := cp.Bucket([]byte(keySigs)).ForEach(func(p, line []byte) error {
				return sigs.Put(bytes.Clone(p), bytes.Clone(line))
			}); err != nil {
				t.Fatal(err)
			}
		}, "is not a checkpoint"},
		{"non-canonical text signed by its partners", func(t *testing.T, tx *bbolt.Tx) {
			_, cp := firstCheckpoint(t, tx)
			text := append(bytes.Clone(cp.Get([]byte(keyText))), "extra\n"...)
			put(t, cp, keyText, text)
			sigs := cp.Bucket([]byte(keySigs))
			var partners []string
			_ = sigs.ForEach(func(p, _ []byte) error { partners = append(partners, string(p)); return nil })
			for _, p := range partners {
				put(t, sigs, p, cosigLine(t, p, fsmKey(p), text))
			}
		}, "text is not in canonical form"},
		{"a co-signature by another key", func(t *testing.T, tx *bbolt.Tx) {
			_, cp := firstCheckpoint(t, tx)
			text := cp.Get([]byte(keyText))
			sigs := cp.Bucket([]byte(keySigs))
			p, _ := sigs.Cursor().First()
			put(t, sigs, string(p), cosigLine(t, string(p), fsmKey("mallory"), text))
		}, "does not verify with its governance key"},
		{"a checkpoint beyond the tree, signed by its partners", func(t *testing.T, tx *bbolt.Tx) {
			size, err := TreeSize(tx)
			if err != nil {
				t.Fatal(err)
			}
			meta := bucket(tx, bucketMeta)
			origin := CheckpointOrigin(string(meta.Get([]byte(keyName))), string(meta.Get([]byte(keyConsortiumID))))
			text, err := formatCheckpoint(origin, tlog.Tree{N: size + 1, Hash: tlog.RecordHash([]byte("beyond"))})
			if err != nil {
				t.Fatal(err)
			}
			cp, err := bucket(tx, bucketCheckpoints).CreateBucket(binary.BigEndian.AppendUint64(nil, uint64(size+1)))
			if err != nil {
				t.Fatal(err)
			}
			put(t, cp, keyText, text)
			sigs, err := cp.CreateBucket([]byte(keySigs))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"AL", "RS"} {
				put(t, sigs, p, cosigLine(t, p, fsmKey(p), text))
			}
		}, "but the snapshot's tree has only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newRestoreFixture(t)
			restoreRefused(t, fx, forgeSnapshot(t, fx.snap, func(tx *bbolt.Tx) { tc.forge(t, tx) }), tc.want)
		})
	}
}

// TestRestoreRefusesGovernanceBucketTail: the comparison of a governance
// bucket with the replay runs to the end of both: a partner added after
// the last one governance added, or the last one deleted, is refused.
func TestRestoreRefusesGovernanceBucketTail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, tx *bbolt.Tx)
		want  string
	}{
		{"an extra partner sorting last", func(t *testing.T, tx *bbolt.Tx) {
			p := fsmPartner("ZZ")
			p.Role = RoleVoter
			putJSONT(t, tx, bucketPartners, p.ID, p)
		}, "partners/ZZ is in the snapshot, but replaying the governance history from the genesis gives no such entry"},
		{"the last partner deleted", func(t *testing.T, tx *bbolt.Tx) {
			b := bucket(tx, bucketPartners)
			k, _ := b.Cursor().Last()
			if err := b.Delete(bytes.Clone(k)); err != nil {
				t.Fatal(err)
			}
		}, "is missing from the snapshot, but replaying the governance history from the genesis gives"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newRestoreFixture(t)
			restoreRefused(t, fx, forgeSnapshot(t, fx.snap, func(tx *bbolt.Tx) { tc.forge(t, tx) }), tc.want)
		})
	}
}

// TestRestoreRepairsFailedLedgerAtSameIndex: a node whose ledger stopped
// (here: at a genesis entry of another consortium) installs a good
// snapshot at exactly its applied index, and applies again: only a
// snapshot below the applied index is refused as a rollback.
func TestRestoreRepairsFailedLedgerAtSameIndex(t *testing.T) {
	leader, follower := newTestFSM(t), newTestFSM(t)
	log := &fsmLog{}
	logs := log.add(t, fsmGenesis(t, "RS", "AL"), govAddReplica("replica-1"))
	for _, f := range []*FSM{leader, follower} {
		for _, r := range applyAll(t, f, logs) {
			if !r.OK {
				t.Fatalf("refused: %s", r.Refusal)
			}
		}
	}
	pinAs(t, follower, leader)
	data, err := fsmGenesis(t, "XK").Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := follower.ApplyBatch([]*raft.Log{{Index: log.next + 1, Term: 1, Type: raft.LogCommand, Data: data}})[0].(error); !ok || follower.Err() == nil {
		t.Fatal("another consortium's genesis did not stop the follower")
	}
	if follower.AppliedIndex() != leader.AppliedIndex() {
		t.Fatalf("applied %d and %d, want the same index", follower.AppliedIndex(), leader.AppliedIndex())
	}
	if err := follower.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, leader)))); err != nil {
		t.Fatalf("Restore(good snapshot at the failed ledger's index): %v", err)
	}
	if follower.Err() != nil {
		t.Fatalf("the ledger is still failed after a good snapshot: %v", follower.Err())
	}
	if got, want := viewOf(t, follower), viewOf(t, leader); got != want {
		t.Fatalf("after restore %+v, want the leader's %+v", got, want)
	}
}

// TestRestorePeriodBounds: reservations for the first and the last
// quarter the ledger admits (1900-Q1, 9999-Q4) are in an honest snapshot,
// which is installed.
func TestRestorePeriodBounds(t *testing.T) {
	leader, follower := newTestFSM(t), newTestFSM(t)
	cat := fsmCatalogHash(t)
	mustApply(t, leader, &fsmLog{}, fsmGenesis(t, "RS", "AL"),
		NewReserve(fsmReservation(t, cat, "first", "RS", "RS", "1900-Q1", 1000)),
		NewReserve(fsmReservation(t, cat, "last", "RS", "RS", "9999-Q4", 1000)))
	pinAs(t, follower, leader)
	if err := follower.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, leader)))); err != nil {
		t.Fatalf("Restore(honest snapshot with 1900-Q1 and 9999-Q4): %v", err)
	}
	if got, want := viewOf(t, follower), viewOf(t, leader); got != want {
		t.Fatalf("after restore the follower is %+v, want the leader's %+v", got, want)
	}
}
