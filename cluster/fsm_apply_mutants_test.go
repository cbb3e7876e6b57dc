package cluster

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"
)

// The tests in this file kill mutants of ApplyBatch, applyPublish and
// applyCosign that `make mutate` found alive (docs/testing.md).

// TestFSMCosignRefusesNonCanonicalCheckpoint: a checkpoint text the
// parser accepts but that is not the canonical form of its origin and
// tree (tlog.ParseTree ignores lines after the hash) is refused even
// though the partner's signature on it verifies: every node must store
// the same bytes a researcher's verifier checks.
func TestFSMCosignRefusesNonCanonicalCheckpoint(t *testing.T) {
	b := newFSMBase(t)
	origin := CheckpointOrigin("western-balkans", fsmConsortium(t))
	head, err := b.f.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	canon, err := formatCheckpoint(origin, head)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewNoteSigner(PartnerNoteName("RS"), fsmKey("RS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string
		ok   bool
	}{
		{"canonical", string(canon), true},
		{"a line after the hash", string(canon) + "extra\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, tree, err := parseCheckpoint([]byte(tc.text)); err != nil || tree != head {
				t.Fatalf("the text does not parse as the head: %v %v", tree, err)
			}
			msg, err := note.Sign(&note.Note{Text: tc.text}, signer)
			if err != nil {
				t.Fatal(err)
			}
			before := stateHash(t, b.f)
			res := applyAll(t, b.f, b.log.add(t, NewCosign("RS", msg)))[0]
			if res.OK != tc.ok {
				t.Fatalf("cosign admitted %v (%s), want %v", res.OK, res.Refusal, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(res.Refusal, "not in canonical form") {
					t.Errorf("refusal %q, want the canonical-form check", res.Refusal)
				}
				if stateHash(t, b.f) != before {
					t.Error("a refused cosign changed the ledger")
				}
			}
		})
	}
}

// TestFSMBatchStraddlingAppliedIndex: a batch that starts at the applied
// index (raft redelivering after a restart) answers the entries already
// applied as such, without applying them again, and applies the rest.
func TestFSMBatchStraddlingAppliedIndex(t *testing.T) {
	b := newFSMBase(t)
	applied := b.f.AppliedIndex()
	last := b.log.logs[len(b.log.logs)-1] // the base's publish, at the applied index
	if last.Index != applied {
		t.Fatalf("the base's last entry is %d, applied %d", last.Index, applied)
	}
	before := stateHash(t, b.f)
	next := b.log.add(t, NewReserve(fsmReservation(t, b.cat, "r9", "AL", "AL", "2024-Q1", 1000)))[0]
	out := applyAll(t, b.f, []*raft.Log{last, next})
	if !out[0].Existing || !strings.Contains(out[0].Refusal, "was applied before this node restarted") {
		t.Errorf("entry %d at the applied index: %+v, want it answered as applied before", last.Index, out[0])
	}
	if !out[1].OK || out[1].Index != next.Index || b.f.AppliedIndex() != next.Index {
		t.Errorf("entry %d: %+v, applied index %d; want it applied", next.Index, out[1], b.f.AppliedIndex())
	}
	if stateHash(t, b.f) == before {
		t.Error("the new reservation did not change the state")
	}
}
