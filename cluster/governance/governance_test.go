package governance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("governance test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(name string) ed25519.PublicKey { return key(name).Public().(ed25519.PublicKey) }

func coords(names ...string) []Coordinator {
	var cs []Coordinator
	for _, n := range names {
		cs = append(cs, Coordinator{Name: n, PublicKey: pub(n)})
	}
	return cs
}

func testGenesis(k int, names ...string) Genesis {
	return Genesis{
		Name: "western-balkans", Coordinators: coords(names...), Threshold: k, MaxCapMicro: 3_000_000,
		Partners: []Partner{{ID: "RS", Name: "NGO RS", PublicKey: pub("RS")}, {ID: "AL", Name: "NGO AL", PublicKey: pub("AL")}},
		Policy:   Policy{Accounting: "pure", CapMicro: 1_000_000},
		Catalog:  json.RawMessage(`{"version": 1, "indicators": [{"name": "victims", "b": 2, "a": 1}]}`),
	}
}

func signed(t *testing.T, id string, seq uint64, a Action, signers ...string) Signed {
	t.Helper()
	s := Signed{Statement: Statement{Consortium: id, Seq: seq, Action: a}}
	for _, n := range signers {
		if err := s.Sign(key(n)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func genesisID(t *testing.T, g Genesis) string {
	t.Helper()
	id, err := g.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGenesisIDIgnoresLayout: the consortium id depends on the file's
// content, not its whitespace or the key order inside the catalog, and
// changes with any field.
func TestGenesisIDIgnoresLayout(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	compact, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(g, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	reordered := bytes.Replace(compact, []byte(`"b":2,"a":1`), []byte(`"a": 1, "b": 2`), 1)
	if bytes.Equal(reordered, compact) {
		t.Fatal("test fixture: the catalog keys were not reordered")
	}
	want := genesisID(t, g)
	if len(want) != 64 {
		t.Fatalf("id %q is not 64 hex digits", want)
	}
	for name, data := range map[string][]byte{"compact": compact, "indented": indented, "reordered": reordered} {
		got, err := IDOfFile(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s: id %s, want %s", name, got, want)
		}
	}
	changed := g
	changed.MaxCapMicro++
	if genesisID(t, changed) == want {
		t.Error("a different ceiling gave the same consortium id")
	}
	changed = g
	changed.Threshold = 1
	if genesisID(t, changed) == want {
		t.Error("a different threshold gave the same consortium id")
	}
}

func TestParseGenesisRefuses(t *testing.T) {
	ok := testGenesis(2, "c1", "c2", "c3")
	tests := []struct {
		name string
		edit func(g *Genesis)
		want string
	}{
		{"no coordinators", func(g *Genesis) { g.Coordinators = nil }, "no coordinators"},
		{"threshold 0", func(g *Genesis) { g.Threshold = 0 }, "threshold 0"},
		{"threshold above n", func(g *Genesis) { g.Threshold = 4 }, "threshold 4"},
		{"duplicate key", func(g *Genesis) { g.Coordinators[1].PublicKey = pub("c1") }, "same key"},
		{"short key", func(g *Genesis) { g.Coordinators[0].PublicKey = g.Coordinators[0].PublicKey[:31] }, "31 bytes"},
		{"no ceiling", func(g *Genesis) { g.MaxCapMicro = 0 }, "max_cap_micro"},
		{"cap above ceiling", func(g *Genesis) { g.Policy.CapMicro = 3_000_001 }, "above the genesis ceiling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := ok
			g.Coordinators = coords("c1", "c2", "c3")
			tt.edit(&g)
			data, err := json.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseGenesis(data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseGenesis: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	data, _ := json.Marshal(ok)
	if _, err := ParseGenesis(append(bytes.TrimSuffix(data, []byte("}")), []byte(`,"extra":1}`)...)); err == nil {
		t.Error("an unknown field was accepted")
	}
}

// TestVerifyThreshold: k = 2 of 3. One signature, the same key twice, a
// non-coordinator's key and a bad signature do not reach the threshold;
// two distinct coordinators do. Without the distinct-key rule the "same
// key twice" case would count two signatures from one holder.
func TestVerifyThreshold(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	id := genesisID(t, g)
	set := Set{Coordinators: g.Coordinators, Threshold: 2}
	act := Action{Type: SetPolicy, Policy: &Policy{Accounting: "pure", CapMicro: 2_000_000}}

	twice := signed(t, id, 1, act, "c1")
	twice.Signatures = append(twice.Signatures, twice.Signatures[0])
	badSig := signed(t, id, 1, act, "c1", "c2")
	badSig.Signatures[1].Sig = bytes.Clone(badSig.Signatures[1].Sig)
	badSig.Signatures[1].Sig[0] ^= 1
	altered := signed(t, id, 1, act, "c1", "c2")
	altered.Statement.Action.Policy = &Policy{Accounting: "pure", CapMicro: 3_000_000}

	tests := []struct {
		name string
		s    Signed
		next uint64
		want string // "" = accepted
	}{
		{"two of three", signed(t, id, 1, act, "c1", "c3"), 1, ""},
		{"three of three", signed(t, id, 1, act, "c1", "c2", "c3"), 1, ""},
		{"one signature", signed(t, id, 1, act, "c2"), 1, "1 valid coordinator signature(s), the threshold is 2 of 3"},
		{"same key twice", twice, 1, "1 valid coordinator signature(s)"},
		{"non-coordinator key", signed(t, id, 1, act, "c1", "mallory"), 1, "1 valid coordinator signature(s)"},
		{"bad signature", badSig, 1, "1 valid coordinator signature(s)"},
		{"action altered after signing", altered, 1, "0 valid coordinator signature(s)"},
		{"unsigned", signed(t, id, 1, act), 1, "0 valid coordinator signature(s)"},
		{"replay of seq 1 at 2", signed(t, id, 1, act, "c1", "c2"), 2, "already applied (replay)"},
		{"seq 3 at 2", signed(t, id, 3, act, "c1", "c2"), 2, "out of order"},
		{"other consortium", signed(t, strings.Repeat("0", 64), 1, act, "c1", "c2"), 1, "statement is for consortium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.s, id, tt.next, set)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ge *Error
			if !errors.As(err, &ge) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify: %v, want a refusal containing %q", err, tt.want)
			}
		})
	}
}

func TestActionCheck(t *testing.T) {
	tests := []struct {
		a    Action
		want string
	}{
		{Action{Type: "add_partner"}, "has no partner"},
		{Action{Type: "remove_node", ID: "RS", Catalog: json.RawMessage(`{}`)}, "unexpected catalog"},
		{Action{Type: "remove_node", ID: "RS", Address: "x:1"}, "unexpected address"},
		{Action{Type: "frobnicate", ID: "RS"}, "unknown governance action"},
		{Action{Type: Revoke, Revoke: &Revocation{}}, "neither"},
		{Action{Type: Rotate, Rotate: &Rotation{Coordinators: coords("a"), Threshold: 2}}, "threshold 2"},
	}
	for _, tt := range tests {
		if err := tt.a.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.a, err, tt.want)
		}
	}
}

// history builds a governance history for g: add ME, rotate to c4+c5
// (2 of 2, signed by the old set), remove AL, add a replica.
func history(t *testing.T, g Genesis) []Signed {
	id := genesisID(t, g)
	return []Signed{
		signed(t, id, 1, Action{Type: AddPartner, Partner: &Partner{ID: "ME", Name: "NGO ME", PublicKey: pub("ME")}}, "c1", "c2"),
		signed(t, id, 2, Action{Type: Rotate, Rotate: &Rotation{Coordinators: coords("c4", "c5"), Threshold: 2}}, "c2", "c3"),
		signed(t, id, 3, Action{Type: RemovePartner, ID: "AL"}, "c4", "c5"),
		signed(t, id, 4, Action{Type: AddReplica, ID: "replica-r1"}, "c5", "c4"),
	}
}

func TestReplay(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	st, err := Replay(g, history(t, g))
	if err != nil {
		t.Fatalf("Replay of the real history: %v", err)
	}
	if st.Next != 5 || st.Set.Threshold != 2 || len(st.Set.Coordinators) != 2 || st.Set.Coordinators[0].Name != "c4" {
		t.Errorf("state after replay: next %d, set %+v", st.Next, st.Set)
	}
	if got := strings.Join(st.Active(), ","); got != "ME,RS" {
		t.Errorf("active partners %s, want ME,RS", got)
	}
	keys := st.Keys()
	if !keys["AL"].Equal(pub("AL")) || !keys["ME"].Equal(pub("ME")) {
		t.Error("Keys lost a removed partner's or an added partner's key")
	}
	for _, p := range st.Partners {
		if p.ID == "ME" && p.Added != 1 || p.ID == "AL" && p.Removed != 3 {
			t.Errorf("partner period %+v", p)
		}
	}
}

// TestReplayRefusesTampering: every way of altering the real history is
// caught at the statement altered.
func TestReplayRefusesTampering(t *testing.T) {
	g := testGenesis(2, "c1", "c2", "c3")
	id := genesisID(t, g)
	tests := []struct {
		name string
		edit func(h []Signed) []Signed
		want string
	}{
		{"key swapped in an admitted statement", func(h []Signed) []Signed {
			h[0].Statement.Action.Partner.PublicKey = pub("mallory")
			return h
		}, "statement 1 of the history: statement 1 has 0 valid"},
		{"statement dropped", func(h []Signed) []Signed { return append(h[:1], h[2:]...) }, "out of order"},
		{"statements swapped", func(h []Signed) []Signed { h[2], h[3] = h[3], h[2]; return h }, "out of order"},
		{"old keys after rotation", func(h []Signed) []Signed {
			h[2] = signed(t, id, 3, Action{Type: RemovePartner, ID: "AL"}, "c1", "c2")
			return h
		}, "statement 3 has 0 valid"},
		{"forged extra partner", func(h []Signed) []Signed {
			return append(h, signed(t, id, 5, Action{Type: AddPartner, Partner: &Partner{ID: "MK", Name: "x", PublicKey: pub("MK")}}, "c4"))
		}, "statement 5 has 1 valid"},
		{"other genesis", func(h []Signed) []Signed {
			h[0] = signed(t, strings.Repeat("1", 64), 1, h[0].Statement.Action, "c1", "c2")
			return h
		}, "statement is for consortium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Replay(g, tt.edit(history(t, g)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Replay: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestKeyFile: a key file round-trips with its passphrase, refuses a wrong
// one and a swapped public key, and is never overwritten.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c1.key")
	fast := KDFParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1} // the floor
	pk, err := GenerateKeyFile(path, []byte("correct horse"), fast)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	priv, err := OpenKeyFile(path, []byte("correct horse"))
	if err != nil {
		t.Fatalf("open with the right passphrase: %v", err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pk) {
		t.Fatal("the key read back is not the key generated")
	}
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, priv.Seed()) {
		t.Fatal("the private key is in the file in the clear")
	}
	if _, err := OpenKeyFile(path, []byte("wrong horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	if _, err := GenerateKeyFile(path, []byte("x"), fast); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %v", err)
	}
	// Swap the public key in the file: the associated data no longer matches.
	var kf map[string]any
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &kf); err != nil {
		t.Fatal(err)
	}
	kf["public_key"] = pub("mallory")
	raw, _ = json.Marshal(kf)
	swapped := filepath.Join(dir, "swapped.key")
	if err := os.WriteFile(swapped, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyFile(swapped, []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("swapped public key: %v, want ErrWrongPassphrase", err)
	}
	if _, err := GenerateKeyFile(filepath.Join(dir, "empty.key"), nil, fast); err == nil {
		t.Fatal("an empty passphrase was accepted")
	}
}

// sealOldFormat writes a coordinator key file the way releases before
// keyseal did, with the parameters given (which may be below today's
// floor): the format must still be read, byte for byte.
func sealOldFormat(t *testing.T, path string, pass []byte, p KDFParams) ed25519.PrivateKey {
	t.Helper()
	pk, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	aead, err := chacha20poly1305.NewX(argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, 32))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, priv.Seed(), append([]byte("roundtable/v1 coordinator key\x00"), pk...))
	raw, err := json.Marshal(map[string]any{"version": 1, "kdf": p, "salt": salt, "public_key": pk, "sealed": sealed})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestKeyFileFloorAndMode: a key file written before the floor with t=1 and
// 8 MiB (as the demo and the system tests did) is refused with the command
// that re-seals it; ResealKeyFile keeps the key and makes it open; a file
// that others can read is refused with the chmod to run.
func TestKeyFileFloorAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c1.key")
	pass := []byte("correct horse battery")
	priv := sealOldFormat(t, path, pass, KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1})
	_, err := OpenKeyFile(path, pass)
	if err == nil || !strings.Contains(err.Error(), "below the minimum") || !strings.Contains(err.Error(), "roundtable coordinator rekey --key "+path) {
		t.Fatalf("open of a t=1, 8 MiB key file: %v, want a refusal naming coordinator rekey", err)
	}
	if _, err := GenerateKeyFile(filepath.Join(dir, "weak.key"), pass, KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}); err == nil {
		t.Fatal("keygen below the floor succeeded")
	}
	if err := ResealKeyFile(path, pass, pass, KDFParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := OpenKeyFile(path, pass)
	if err != nil {
		t.Fatalf("after re-sealing: %v", err)
	}
	if !got.Equal(priv) {
		t.Fatal("re-sealing changed the key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "c1.key is readable by others (mode 0644): run chmod 600 " + path
	if _, err := OpenKeyFile(path, pass); err == nil || err.Error() != want {
		t.Fatalf("open of a 0644 key file: %v, want %q", err, want)
	}
}
