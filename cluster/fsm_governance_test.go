package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// govNodes is three ledgers that applied the same history, as three
// partner nodes would: an attack must leave every one of them unchanged.
type govNodes struct {
	fs  []*FSM
	log *fsmLog
	id  string // consortium id
}

func newGovNodes(t *testing.T) *govNodes {
	t.Helper()
	g := &govNodes{log: &fsmLog{}}
	logs := g.log.add(t, fsmGenesis(t, "AL", "BA", "RS"), govAddReplica("replica-r1"))
	for range 3 {
		f := newTestFSM(t)
		for i, r := range applyAll(t, f, logs) {
			if !r.OK {
				t.Fatalf("setup entry %d refused: %s", i, r.Refusal)
			}
		}
		g.fs = append(g.fs, f)
	}
	g.id = g.log.consortium
	return g
}

// attack applies data on every node and checks each refuses it with want
// and keeps its state hash.
func (g *govNodes) attack(t *testing.T, data []byte, want string) {
	t.Helper()
	e := g.log.raw(data)
	for i, f := range g.fs {
		before := stateHash(t, f)
		res := applyAll(t, f, []*raft.Log{e})[0]
		if res.OK {
			t.Fatalf("node %d admitted the statement (%+v), want a refusal containing %q", i, res, want)
		}
		if !strings.Contains(res.Refusal, want) {
			t.Fatalf("node %d: refusal %q, want it to contain %q", i, res.Refusal, want)
		}
		if after := stateHash(t, f); after != before {
			t.Fatalf("node %d: the refused statement changed the state", i)
		}
		// The node's pre-check refuses it too, before raft (the ceiling is
		// an action rule, checked on apply only).
		if err := f.CheckStatement(mustDecodeStatement(t, data)); err == nil && !strings.Contains(want, "ceiling") {
			t.Errorf("node %d: CheckStatement passes what Apply refuses (%s)", i, want)
		}
	}
}

func mustDecodeStatement(t *testing.T, data []byte) governance.Signed {
	t.Helper()
	c, err := DecodeCommand(data)
	if err != nil || c.Statement == nil {
		return governance.Signed{}
	}
	return *c.Statement
}

func (g *govNodes) statement(t *testing.T, seq uint64, a governance.Action, signers ...string) []byte {
	t.Helper()
	return enc(t, NewGovern(signStatement(t, g.id, seq, a, signers...)))
}

var addMallory = governance.Action{Type: governance.AddPartner,
	Partner: &governance.Partner{ID: "ME", Name: "attacker", PublicKey: []byte(fsmKey("mallory").Public().(ed25519.PublicKey))}}

// TestGovernanceAttacksRefused: before issue 8 the state machine applied
// add_partner, remove_partner, set_policy and the rest from whoever put
// them in the log, so any partner node (or anyone holding one coordinator
// token) could register a fake partner or lift the budget cap. Now each of
// these is refused on every node, and no node's state changes.
func TestGovernanceAttacksRefused(t *testing.T) {
	g := newGovNodes(t)
	next := uint64(2) // the replica took statement 1

	// The attack as it worked before: an unsigned add_partner command.
	g.attack(t, []byte(`{"v":1,"type":"add_partner","partner":{"id":"ME","name":"attacker","public_key":"`+
		b64([]byte(fsmKey("mallory").Public().(ed25519.PublicKey)))+`"}}`), "unsigned governance command")
	g.attack(t, []byte(`{"v":1,"type":"set_policy","policy":{"accounting":"pure","cap_micro":1000000000}}`), "unsigned governance command")
	g.attack(t, []byte(`{"v":1,"type":"remove_partner","id":"AL"}`), "unsigned governance command")

	// Signed, but not enough: k = 2 of 3.
	g.attack(t, g.statement(t, next, addMallory), "0 valid coordinator signature(s), the threshold is 2 of 3")
	g.attack(t, g.statement(t, next, addMallory, "c1"), "1 valid coordinator signature(s)")
	twice := signStatement(t, g.id, next, addMallory, "c1")
	twice.Signatures = append(twice.Signatures, twice.Signatures[0])
	g.attack(t, enc(t, NewGovern(twice)), "1 valid coordinator signature(s)")
	mallory := governance.Signed{Statement: governance.Statement{Consortium: g.id, Seq: next, Action: addMallory}}
	if err := mallory.Sign(fsmKey("mallory")); err != nil {
		t.Fatal(err)
	}
	if err := mallory.Sign(fsmCoordinatorKey("c1")); err != nil {
		t.Fatal(err)
	}
	g.attack(t, enc(t, NewGovern(mallory)), "1 valid coordinator signature(s)")

	// Wrong consortium: a statement signed by the same coordinators for
	// another consortium (another genesis) is worthless here.
	g.attack(t, enc(t, NewGovern(signStatement(t, strings.Repeat("ab", 32), next, addMallory, "c1", "c2"))), "statement is for consortium")

	// Replay: statement 1 (add the replica), captured and sent again, and
	// an old statement number with a new action.
	old, err := g.fs[0].Statement(1)
	if err != nil {
		t.Fatal(err)
	}
	g.attack(t, enc(t, NewGovern(old)), "statement 1 was already applied (replay)")
	g.attack(t, g.statement(t, 1, addMallory, "c1", "c2"), "already applied (replay)")
	// Reordering: statement 3 before statement 2.
	g.attack(t, g.statement(t, next+1, addMallory, "c1", "c2"), "out of order")

	// Above the genesis ceiling (ε 3): refused whoever signs, even all three.
	g.attack(t, g.statement(t, next, governance.Action{Type: governance.SetPolicy,
		Policy: &governance.Policy{Accounting: privacy.PureDP, CapMicro: 3*privacy.Micro + 1}}, "c1", "c2", "c3"), "above the ceiling the genesis sets")

	// The honest statement at that number still goes in, on every node.
	honest := g.log.raw(g.statement(t, next, governance.Action{Type: governance.SetPolicy,
		Policy: &governance.Policy{Accounting: privacy.PureDP, CapMicro: 3 * privacy.Micro}}, "c2", "c3"))
	var hashes []string
	for i, f := range g.fs {
		res := applyAll(t, f, []*raft.Log{honest})[0]
		if !res.OK || res.Seq != next {
			t.Fatalf("node %d: honest statement: %+v", i, res)
		}
		hashes = append(hashes, stateHash(t, f))
		if p, _ := f.Policy(); p.CapMicro != 3*privacy.Micro {
			t.Fatalf("node %d: policy %+v after the honest statement", i, p)
		}
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatal("nodes disagree after the honest statement")
	}
	h, set, err := g.fs[0].Governance()
	if err != nil || h.Next != next+1 || len(h.Statements) != 2 || set.Threshold != 2 {
		t.Fatalf("governance history %+v %+v %v", h, set, err)
	}
}

// TestGovernanceRotation: a rotation signed by k of the old set installs
// the new set; the old keys stop counting at once, the new ones count.
func TestGovernanceRotation(t *testing.T) {
	g := newGovNodes(t)
	rotate := governance.Action{Type: governance.Rotate, Rotate: &governance.Rotation{
		Coordinators: fsmCoordinators("c4", "c5"), Threshold: 1}}
	// The new keys cannot rotate themselves in.
	g.attack(t, g.statement(t, 2, rotate, "c4", "c5"), "0 valid coordinator signature(s)")
	// Two of the old three can.
	rot := g.log.raw(g.statement(t, 2, rotate, "c1", "c3"))
	for _, f := range g.fs {
		if res := applyAll(t, f, []*raft.Log{rot})[0]; !res.OK {
			t.Fatalf("rotation refused: %s", res.Refusal)
		}
		if c, _ := f.Consortium(); c.Threshold != 1 || len(c.Coordinators) != 2 || c.Coordinators[0].Name != "c4" {
			t.Fatalf("coordinators after rotation: %+v %d", c.Coordinators, c.Threshold)
		}
	}
	// All three old keys together no longer count.
	g.attack(t, g.statement(t, 3, addMallory, "c1", "c2", "c3"), "0 valid coordinator signature(s), the threshold is 1 of 2")
	// One new key is enough now (1 of 2).
	add := g.log.raw(g.statement(t, 3, govAddPartner(fsmPartner("XK")).Statement.Statement.Action, "c5"))
	for _, f := range g.fs {
		if res := applyAll(t, f, []*raft.Log{add})[0]; !res.OK {
			t.Fatalf("statement under the new set refused: %s", res.Refusal)
		}
	}
	// An outside verifier replaying the history from the genesis reaches
	// the same partners.
	gen := fsmGenesis(t, "AL", "BA", "RS").Genesis
	h, _, err := g.fs[0].Governance()
	if err != nil {
		t.Fatal(err)
	}
	st, err := governance.Replay(*gen, h.Statements)
	if err != nil {
		t.Fatalf("replay of the ledger's history: %v", err)
	}
	if got := strings.Join(st.Active(), ","); got != "AL,BA,RS,XK" {
		t.Errorf("replayed partners %s", got)
	}
	// A history with the XK statement's key swapped is refused.
	h.Statements[2].Statement.Action.Partner.PublicKey = []byte(fsmKey("mallory").Public().(ed25519.PublicKey))
	if _, err := governance.Replay(*gen, h.Statements); err == nil {
		t.Fatal("replay accepted a tampered history")
	}
}

// TestDenyList: removing a partner or replica, and a revocation, put the id
// or certificate serial on the deny-list; re-adding a removed partner takes
// its id off, but a revoked serial stays revoked.
func TestDenyList(t *testing.T) {
	f := newTestFSM(t)
	l := &fsmLog{}
	mustApply(t, f, l, fsmGenesis(t, "AL", "BA", "RS"), govAddReplica("replica-r1"))
	if denied, _ := f.Denied("AL", nil); denied {
		t.Fatal("an active partner is denied")
	}
	serial := big.NewInt(0x1234567)
	mustApply(t, f, l,
		govRemovePartner("AL"),
		govRemoveNode("replica-r1"),
		gov(governance.Action{Type: governance.Revoke, Revoke: &governance.Revocation{Serial: serial.String(), Reason: "laptop stolen"}}),
		gov(governance.Action{Type: governance.Revoke, Revoke: &governance.Revocation{NodeID: "replica-r9"}}),
	)
	for _, tc := range []struct {
		id     string
		serial *big.Int
		want   string
	}{
		{"AL", nil, "partner removed"},
		{"replica-r1", nil, "replica removed"},
		{"replica-r9", nil, "certificate revoked"},
		{"BA", serial, "laptop stolen"},
	} {
		denied, why := f.Denied(tc.id, tc.serial)
		if !denied || !strings.Contains(why, tc.want) {
			t.Errorf("Denied(%s, %v) = %v %q, want true %q", tc.id, tc.serial, denied, why, tc.want)
		}
	}
	if denied, _ := f.Denied("BA", big.NewInt(99)); denied {
		t.Error("an active partner with another serial is denied")
	}
	// Re-admitted by a signed statement: the id is off the list, the
	// revoked serial is not.
	mustApply(t, f, l, govAddPartner(fsmPartner("AL")))
	if denied, why := f.Denied("AL", nil); denied {
		t.Errorf("re-added AL still denied: %s", why)
	}
	if denied, _ := f.Denied("AL", serial); !denied {
		t.Error("a revoked serial was forgiven by re-adding a partner")
	}
	// The list survives a reopen (it is ledger state, not memory).
	dir := f.dir
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := openTestFSM(t, dir)
	if denied, _ := g.Denied("replica-r1", nil); !denied {
		t.Error("deny-list lost on reopen")
	}
	// And through a snapshot.
	h := newTestFSM(t)
	pinAs(t, h, g)
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, g)))); err != nil {
		t.Fatal(err)
	}
	if denied, _ := h.Denied("replica-r1", nil); !denied {
		t.Error("deny-list lost through a snapshot")
	}
	if denied, _ := h.Denied("", serial); !denied {
		t.Error("revoked serial lost through a snapshot")
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
