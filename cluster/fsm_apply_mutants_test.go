package cluster

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// The tests in this file kill mutants of applyPublish and applyCosign that
// `make mutate` found alive (docs/testing.md).

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
