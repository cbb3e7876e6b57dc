package governance

import (
	"encoding/json"
	"strings"
	"testing"
)

// The tests in this file kill mutants that `make mutate` found alive in
// this package (docs/testing.md): each case sits on a boundary of a
// threshold, ceiling, name or key rule that the tests above reach from
// one side only.

// TestGenesisBoundaries: the threshold, the budget ceiling and the
// coordinator names are checked at both sides of each limit. A threshold
// check written k <= 1, a ceiling written < 0 or cap >= ceiling, or a name
// rule with one || turned into && fails here.
func TestGenesisBoundaries(t *testing.T) {
	tests := []struct {
		name string
		edit func(g *Genesis)
		want string // "" = accepted
	}{
		{"threshold 1 of 3", func(g *Genesis) { g.Threshold = 1 }, ""},
		{"threshold 3 of 3", func(g *Genesis) { g.Threshold = 3 }, ""},
		{"threshold 0", func(g *Genesis) { g.Threshold = 0 }, "threshold 0 is not between 1"},
		{"threshold -1", func(g *Genesis) { g.Threshold = -1 }, "threshold -1 is not between 1"},
		{"cap equal to the ceiling", func(g *Genesis) { g.Policy.CapMicro = g.MaxCapMicro }, ""},
		{"ceiling 0 with cap 0", func(g *Genesis) { g.MaxCapMicro, g.Policy.CapMicro = 0, 0 }, "must be positive"},
		{"ceiling -1 with cap -1", func(g *Genesis) { g.MaxCapMicro, g.Policy.CapMicro = -1, -1 }, "must be positive"},
		{"name of 100 bytes", func(g *Genesis) { g.Coordinators[0].Name = strings.Repeat("a", 100) }, ""},
		{"name of 101 bytes", func(g *Genesis) { g.Coordinators[0].Name = strings.Repeat("a", 101) }, "1 to 100 bytes"},
		{"empty name", func(g *Genesis) { g.Coordinators[0].Name = "" }, "1 to 100 bytes"},
		{"name not UTF-8", func(g *Genesis) { g.Coordinators[0].Name = "c\xff" }, "1 to 100 bytes"},
		{"name with a control character", func(g *Genesis) { g.Coordinators[0].Name = "c\x07" }, "1 to 100 bytes"},
		{"name twice", func(g *Genesis) { g.Coordinators[2].Name = "c1" }, "listed twice"},
		{"no partners", func(g *Genesis) { g.Partners = nil }, `"partners" is empty`},
		{"no name", func(g *Genesis) { g.Name = "" }, `"name" is empty`},
		{"no catalog", func(g *Genesis) { g.Catalog = nil }, `"catalog" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGenesis(2, "c1", "c2", "c3")
			tt.edit(&g)
			err := g.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestGenesisIDBindsCatalog: two genesis files that differ only in the
// catalog's content have different consortium ids, and trailing data
// after the catalog value is refused. If the canonical encoding dropped the
// catalog, every statement signed for one catalog would verify under the
// other.
func TestGenesisIDBindsCatalog(t *testing.T) {
	a := testGenesis(2, "c1", "c2", "c3")
	b := testGenesis(2, "c1", "c2", "c3")
	b.Catalog = json.RawMessage(`{"version": 1, "indicators": [{"name": "victims", "b": 3, "a": 1}]}`)
	if genesisID(t, a) == genesisID(t, b) {
		t.Fatal("genesis files with different catalogs have the same consortium id")
	}
	c := testGenesis(2, "c1", "c2", "c3")
	c.Catalog = json.RawMessage(`{"version": 1} {"version": 2}`)
	if _, err := c.ID(); err == nil {
		t.Fatal("a catalog with trailing data was given a consortium id")
	}
}

// TestRevokeNamesSerialOrNode: a serial alone, a node id alone, or both,
// make a revocation (a check written with || in place of && refuses one).
func TestRevokeNamesSerialOrNode(t *testing.T) {
	for _, r := range []Revocation{{Serial: "12345"}, {NodeID: "RS"}, {Serial: "12345", NodeID: "RS"}} {
		if err := (Action{Type: Revoke, Revoke: &r}).Check(); err != nil {
			t.Errorf("revoke %+v refused: %v", r, err)
		}
	}
}

// TestVerifySignatureBoundToItsKey: a signature entry counts only for the
// key it names. c1's valid signature filed under c2's key, or under a
// stranger's, is not a signature by c2 nor by the stranger, and does not
// count for c1 either: with c3's signature that is one of the two needed.
func TestVerifySignatureBoundToItsKey(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	id := genesisID(t, g)
	set := Set{Coordinators: g.Coordinators, Threshold: 2}
	act := Action{Type: SetPolicy, Policy: &Policy{Accounting: "pure", CapMicro: 2_000_000}}
	for _, label := range []string{"c2", "mallory"} {
		s := signed(t, id, 1, act, "c1", "c3")
		s.Signatures[0].Key = pub(label)
		signers, err := Verify(s, id, 1, set)
		if err == nil || !strings.Contains(err.Error(), "1 valid coordinator signature(s)") {
			t.Errorf("c1's signature filed under %s: signers %v, err %v; want one valid signature", label, signers, err)
		}
	}
}

// TestReplayPartnerPeriods walks the partner rules of Replay that the real
// history does not reach: the first founder (index 0) removed and
// re-added, a removal repeated (it must not move the period's end), a
// rename of an active partner, and the refusals (a changed key, one key for
// two partners, removing a partner never added).
func TestReplayPartnerPeriods(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	id := genesisID(t, g)
	add := func(seq uint64, pid, name, keyOf string) Signed {
		return signed(t, id, seq, Action{Type: AddPartner, Partner: &Partner{ID: pid, Name: name, PublicKey: pub(keyOf)}}, "c1", "c2")
	}
	remove := func(seq uint64, typ, pid string) Signed {
		return signed(t, id, seq, Action{Type: typ, ID: pid}, "c1", "c2")
	}
	h := []Signed{
		add(1, "RS", "NGO Serbia", "RS"), // active, first period: a rename
		remove(2, RemovePartner, "RS"),
		remove(3, RemoveNode, "RS"), // already removed: no change
		add(4, "RS", "NGO RS again", "RS"),
		add(5, "AL", "NGO Albania", "AL"), // active: a rename
		remove(6, RemoveNode, "replica-x"),
	}
	st, err := Replay(g, h)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	type period struct {
		id, name       string
		added, removed uint64
	}
	var got []period
	for _, p := range st.Partners {
		got = append(got, period{p.ID, p.Name, p.Added, p.Removed})
	}
	want := []period{{"RS", "NGO Serbia", 0, 2}, {"AL", "NGO Albania", 0, 0}, {"RS", "NGO RS again", 4, 0}}
	if len(got) != len(want) {
		t.Fatalf("periods %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("period %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if a := strings.Join(st.Active(), ","); a != "AL,RS" {
		t.Errorf("active %s, want AL,RS", a)
	}

	refusals := []struct {
		name string
		last Signed
		want string
	}{
		{"changed key", add(1, "RS", "NGO RS", "mallory"), "changes the key of partner RS"},
		{"another partner's key", add(1, "MK", "NGO MK", "AL"), "adds partner MK with the key of partner AL"},
		{"never added", remove(1, RemovePartner, "MK"), "removes partner MK, which was never added"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Replay(g, []Signed{tt.last})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Replay: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestSignReplacesOwnSignature: signing twice with one key leaves one
// signature, the latest.
func TestSignReplacesOwnSignature(t *testing.T) {
	act := Action{Type: RemoveNode, ID: "RS"}
	s := signed(t, "id", 1, act, "c1", "c2")
	first := s.Signatures[0].Sig
	s.Statement.Seq = 2
	if err := s.Sign(key("c1")); err != nil {
		t.Fatal(err)
	}
	if len(s.Signatures) != 2 || !s.Signatures[0].Key.Equal(pub("c1")) || string(s.Signatures[0].Sig) == string(first) {
		t.Fatalf("after re-signing: %d signatures, first by %x", len(s.Signatures), []byte(s.Signatures[0].Key))
	}
}

// TestParseSignedRefuses: unknown fields and a malformed action are
// refused when a signed statement is read.
func TestParseSignedRefuses(t *testing.T) {
	s := signed(t, "id", 1, Action{Type: RemoveNode, ID: "RS"}, "c1")
	data, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSigned(data); err != nil {
		t.Fatalf("a well-formed statement was refused: %v", err)
	}
	extra := append([]byte(strings.TrimSuffix(string(data), "}")), `,"extra":1}`...)
	noID := []byte(strings.Replace(string(data), `"id":"RS"`, `"id":""`, 1))
	for name, in := range map[string][]byte{"unknown field": extra, "action without its id": noID} {
		if _, err := ParseSigned(in); err == nil || !strings.Contains(err.Error(), "governance statement") {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}
