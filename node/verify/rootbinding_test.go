package verify

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/privacy"
)

// appendSigned appends s as the next leaf of l, as the FSM would.
func (l *ledger) appendSigned(t *testing.T, s privacy.Signed) {
	t.Helper()
	data, err := cluster.LeafData(&s)
	if err != nil {
		t.Fatal(err)
	}
	var leaf int64
	if err := l.db.Update(func(tx *bbolt.Tx) error {
		leaf, err = cluster.AppendLeaf(tx, data)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l.entries = append(l.entries, api.ReleaseEntry{Signed: s, Leaf: leaf, Verified: true,
		PublicKey: l.keys[s.Release.Partner].Public().(ed25519.PublicKey)})
}

// forgedProof is an inclusion proof of leaf in the current tree of l.
func forgedProof(t *testing.T, l *ledger, leaf int64) api.Proof {
	t.Helper()
	var pr api.Proof
	if err := l.db.View(func(tx *bbolt.Tx) error {
		head, err := cluster.TreeHead(tx)
		if err != nil {
			return err
		}
		p, err := cluster.InclusionProof(tx, leaf, head.N)
		if err != nil {
			return err
		}
		pr = api.Proof{Leaf: leaf, TreeSize: head.N, Root: head.Hash[:], Hashes: [][]byte{}}
		for _, h := range p {
			pr.Hashes = append(pr.Hashes, h[:])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return pr
}

// A server cannot pass off a validly signed release that was never
// admitted: it builds a second tree of the same size that holds the
// release at leaf 4 and serves a correct inclusion proof in that tree,
// beside a checkpoint a majority really signed for the ledger's own tree.
// The proof verifies on its own; only binding its root to the checkpoint
// (directly, or through the consistency proof that ties the node's current
// tree to it) refuses it.
func TestInclusionProofBoundToCheckpointRoot(t *testing.T) {
	cases := []struct {
		name string
		// checkpointed is how many of the ledger's 10 releases the
		// checkpoint covers: all (the proof's tree is the checkpoint's
		// size) or 8 (the proof is tied to the checkpoint by a
		// consistency proof from the other releases' tree).
		checkpointed int
	}{
		{"proof at the checkpoint's size", 10},
		{"proof at the current size, tied by consistency", 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t)
			l.publishN(t, tc.checkpointed, 100)
			cp := l.checkpoint(t, majority...)
			l.publishN(t, 10-tc.checkpointed, 500)
			n, url := startNode(t, l, cp)

			// Never admitted: signed by RS's real key, in no ledger.
			ghost := mustSign(t, fixtureRelease("RS", 3, 4242), l.keys["RS"])
			forged := newLedger(t)
			for i, e := range l.entries {
				if i == 4 {
					forged.appendSigned(t, ghost)
					continue
				}
				forged.appendSigned(t, e.Signed)
			}
			ghostProof := forgedProof(t, forged, 4)
			if slices.Equal(ghostProof.Root, cp.Root) {
				t.Fatal("the forged tree has the checkpoint's root")
			}

			n.mu.Lock()
			n.rel = slices.Clone(l.entries)
			n.rel[4].Signed = ghost
			n.proof = func(r *api.ReleaseResponse) {
				if r.Signed.ID == ghost.ID {
					r.Proof = ghostProof
				}
			}
			n.mu.Unlock()

			o := opts(t, url)
			rep, err := Run(context.Background(), o)
			if !errors.Is(err, ErrInclusion) {
				t.Fatalf("a release proven in a forged tree: err %v, want %v (report: %d verified, %d failed)", err, ErrInclusion, rep.Verified, rep.Failed)
			}
			for _, m := range []string{"partner RS", "leaf 4", "the checkpoint proves root"} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not mention %q: %v", m, err)
				}
			}
			if rep.Failed != 1 || rep.Verified != tc.checkpointed-1 {
				t.Errorf("report: %d verified, %d failed; want %d, 1", rep.Verified, rep.Failed, tc.checkpointed-1)
			}
			if _, statErr := os.Stat(o.StateFile); statErr == nil {
				t.Error("state file written after a failed run")
			}
		})
	}
}
