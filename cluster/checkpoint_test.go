package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var testCheckpointPartners = []string{"roundtable-AL", "roundtable-BA", "roundtable-RS", "roundtable-XK"}

// partnerKey derives a fixed key per name so signatures (deterministic in
// ed25519) and the golden fixture are reproducible.
func partnerKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("roundtable test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testNoteSigner(t *testing.T, name string) note.Signer {
	t.Helper()
	s, err := NewNoteSigner(name, partnerKey(name))
	if err != nil {
		t.Fatalf("NewNoteSigner(%q): %v", name, err)
	}
	return s
}

func testNoteVerifiers(t *testing.T, names ...string) note.Verifiers {
	t.Helper()
	var vs []note.Verifier
	for _, n := range names {
		v, err := NewNoteVerifier(n, partnerKey(n).Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatalf("NewNoteVerifier(%q): %v", n, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...)
}

func testCheckpointTree() tlog.Tree {
	return tlog.Tree{N: 42, Hash: tlog.RecordHash([]byte("root"))}
}

func TestNoteSignerKeyHash(t *testing.T) {
	name := "roundtable-RS"
	priv := partnerKey(name)
	s := testNoteSigner(t, name)
	// note's key hash: first 4 bytes of SHA-256(name || "\n" || 0x01 || pub).
	h := sha256.Sum256(append([]byte(name+"\n\x01"), priv.Public().(ed25519.PublicKey)...))
	if want := binary.BigEndian.Uint32(h[:4]); s.KeyHash() != want || s.Name() != name {
		t.Fatalf("signer %s %08x, want %s %08x", s.Name(), s.KeyHash(), name, want)
	}
	v, err := NewNoteVerifier(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyHash() != s.KeyHash() {
		t.Fatalf("verifier hash %08x != signer hash %08x", v.KeyHash(), s.KeyHash())
	}
	sig, err := s.Sign([]byte("msg\n"))
	if err != nil || !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte("msg\n"), sig) {
		t.Fatalf("Sign is not plain ed25519 over the message: %v", err)
	}
}

// TestNoteSignerManyKeys covers keys whose base64 contains '+', the
// separator of note's key strings (about half of all keys).
func TestNoteSignerManyKeys(t *testing.T) {
	withPlus := 0
	for i := range 64 {
		name := "node-" + strings.Repeat("x", i%5) + string(rune('a'+i%26))
		priv := partnerKey(name + string(rune(i)))
		vkey, err := NewNoteVerifierKey(name, priv.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(vkey, "+") > 2 {
			withPlus++
		}
		s, err := NewNoteSigner(name, priv)
		if err != nil {
			t.Fatalf("NewNoteSigner for %s: %v", vkey, err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := SignCheckpoint("roundtable/wb", testCheckpointTree(), s)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, by, err := OpenCheckpoint(msg, note.VerifierList(v)); err != nil || len(by) != 1 {
			t.Fatalf("key %s: open = %v, %v", vkey, by, err)
		}
	}
	if withPlus == 0 {
		t.Fatal("no key had '+' in its base64; the case is not covered")
	}
}

func TestNoteKeyBadInputs(t *testing.T) {
	priv := partnerKey("x")
	for _, name := range []string{"", "has space", "a+b", "tab\there", string([]byte{0xff})} {
		if _, err := NewNoteSigner(name, priv); err == nil {
			t.Errorf("NewNoteSigner(%q): want error", name)
		}
		if _, err := NewNoteVerifier(name, priv.Public().(ed25519.PublicKey)); err == nil {
			t.Errorf("NewNoteVerifier(%q): want error", name)
		}
	}
	if _, err := NewNoteSigner("ok", priv[:10]); err == nil {
		t.Error("NewNoteSigner with a short key: want error")
	}
	if _, err := NewNoteVerifier("ok", ed25519.PublicKey(priv[:31])); err == nil {
		t.Error("NewNoteVerifier with a short key: want error")
	}
}

// testConsortiumID stands for a consortium id (a genesis hash) in the
// checkpoint tests that need no ledger.
const testConsortiumID = "5e1f0c4ad2b9e3f7a6c8d1b0e2f4a6c8d0e2f4a6c8b1d3f5a7c9e0b2d4f6a8c0"

func TestCheckpointRoundTripGolden(t *testing.T) {
	origin := CheckpointOrigin("western-balkans", testConsortiumID)
	msg, err := SignCheckpoint(origin, testCheckpointTree(), testNoteSigner(t, "roundtable-RS"))
	if err != nil {
		t.Fatalf("SignCheckpoint: %v", err)
	}
	// The body is the C2SP checkpoint layout: origin, size, base64 root.
	wantBody := "roundtable/western-balkans/" + testConsortiumID + "\n42\n" + testCheckpointTree().Hash.String() + "\n\n"
	if !strings.HasPrefix(string(msg), wantBody) {
		t.Fatalf("checkpoint text:\n%s\nwant prefix:\n%s", msg, wantBody)
	}
	golden := filepath.Join("testdata", "merkle_checkpoint_golden.txt")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (UPDATE_GOLDEN=1 regenerates): %v", err)
	}
	if !bytes.Equal(msg, want) {
		t.Fatalf("signed checkpoint changed:\n%s\nwant:\n%s", msg, want)
	}
	gotOrigin, tree, signedBy, err := OpenCheckpoint(msg, testNoteVerifiers(t, testCheckpointPartners...))
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	if gotOrigin != origin || tree != testCheckpointTree() || !slices.Equal(signedBy, []string{"roundtable-RS"}) {
		t.Fatalf("OpenCheckpoint = %q %v %v", gotOrigin, tree, signedBy)
	}
}

func TestCheckpointCoSigning(t *testing.T) {
	verifiers := testNoteVerifiers(t, testCheckpointPartners...)
	msg, err := SignCheckpoint(CheckpointOrigin("wb", testConsortiumID), testCheckpointTree(), testNoteSigner(t, "roundtable-RS"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		signer   string
		signedBy []string
		regional bool
	}{
		{"roundtable-AL", []string{"roundtable-AL", "roundtable-RS"}, false},
		{"roundtable-AL", []string{"roundtable-AL", "roundtable-RS"}, false}, // re-signing does not double count
		{"roundtable-XK", []string{"roundtable-AL", "roundtable-RS", "roundtable-XK"}, true},
	}
	for i, st := range steps {
		msg, err = AddCheckpointSignature(msg, testNoteSigner(t, st.signer))
		if err != nil {
			t.Fatalf("step %d: AddCheckpointSignature(%s): %v", i, st.signer, err)
		}
		_, tree, signedBy, err := OpenCheckpoint(msg, verifiers)
		if err != nil {
			t.Fatalf("step %d: OpenCheckpoint: %v", i, err)
		}
		if tree != testCheckpointTree() || !slices.Equal(signedBy, st.signedBy) {
			t.Fatalf("step %d: tree %v signedBy %v, want %v", i, tree, signedBy, st.signedBy)
		}
		if got := IsRegional(signedBy, testCheckpointPartners); got != st.regional {
			t.Fatalf("step %d: IsRegional(%v) = %v, want %v", i, signedBy, got, st.regional)
		}
	}
	if n := strings.Count(string(msg), "\n— "); n != 3 {
		t.Fatalf("note carries %d signature lines, want 3:\n%s", n, msg)
	}
}

func TestIsRegional(t *testing.T) {
	six := []string{"AL", "BA", "XK", "RS", "ME", "MK"}
	tests := []struct {
		name     string
		signedBy []string
		partners []string
		want     bool
	}{
		{"3 of 4", []string{"AL", "BA", "RS"}, []string{"AL", "BA", "RS", "XK"}, true},
		{"2 of 4 is a tie, not a majority", []string{"AL", "BA"}, []string{"AL", "BA", "RS", "XK"}, false},
		{"4 of 6", []string{"AL", "BA", "RS", "XK"}, six, true},
		{"3 of 6", []string{"AL", "BA", "RS"}, six, false},
		{"2 of 3", []string{"AL", "RS"}, []string{"AL", "RS", "XK"}, true},
		{"1 of 1", []string{"RS"}, []string{"RS"}, true},
		{"0 of 1", nil, []string{"RS"}, false},
		{"no partners", []string{"RS"}, nil, false},
		{"outsiders do not count", []string{"AL", "EVIL1", "EVIL2", "EVIL3"}, []string{"AL", "BA", "RS"}, false},
		{"repeats do not count", []string{"AL", "AL", "AL"}, []string{"AL", "BA", "RS"}, false},
		{"duplicate partner entries count once", []string{"AL", "BA"}, []string{"AL", "BA", "RS", "RS"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRegional(tt.signedBy, tt.partners); got != tt.want {
				t.Fatalf("IsRegional(%v, %v) = %v, want %v", tt.signedBy, tt.partners, got, tt.want)
			}
		})
	}
}

func TestCheckpointTamperFails(t *testing.T) {
	verifiers := testNoteVerifiers(t, testCheckpointPartners...)
	msg, err := SignCheckpoint(CheckpointOrigin("wb", testConsortiumID), testCheckpointTree(), testNoteSigner(t, "roundtable-RS"), testNoteSigner(t, "roundtable-AL"))
	if err != nil {
		t.Fatal(err)
	}
	otherRoot := tlog.RecordHash([]byte("other")).String()
	sigLine := strings.Index(string(msg), "— roundtable-AL ")
	tests := map[string][]byte{
		"size changed":   bytes.Replace(msg, []byte("\n42\n"), []byte("\n43\n"), 1),
		"root changed":   bytes.Replace(msg, []byte(testCheckpointTree().Hash.String()), []byte(otherRoot), 1),
		"origin changed": bytes.Replace(msg, []byte("roundtable/wb"), []byte("roundtable/xx"), 1),
		"signature bit flipped": func() []byte {
			b := bytes.Clone(msg)
			i := sigLine + len("— roundtable-AL ") + 10
			b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
			return b
		}(),
		"no signatures": msg[:bytes.Index(msg, []byte("\n\n"))+2],
		"not a note":    []byte("roundtable/wb\n42\n"),
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := OpenCheckpoint(bad, verifiers); err == nil {
				t.Fatalf("OpenCheckpoint accepted:\n%s", bad)
			}
		})
	}
	var invalid *note.InvalidSignatureError
	_, _, _, err = OpenCheckpoint(tests["size changed"], verifiers)
	if !errors.As(err, &invalid) {
		t.Fatalf("changed size: error %v, want a note.InvalidSignatureError", err)
	}
}

func TestCheckpointUnknownSignerIgnored(t *testing.T) {
	verifiers := testNoteVerifiers(t, testCheckpointPartners...)
	// An outsider, and an impostor using a partner's name with its own key.
	outsider := testNoteSigner(t, "roundtable-EVIL")
	impostor, err := NewNoteSigner("roundtable-BA", partnerKey("not BA"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := SignCheckpoint(CheckpointOrigin("wb", testConsortiumID), testCheckpointTree(), outsider, impostor, testNoteSigner(t, "roundtable-RS"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, signedBy, err := OpenCheckpoint(msg, verifiers)
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	if !slices.Equal(signedBy, []string{"roundtable-RS"}) {
		t.Fatalf("signedBy = %v, want only roundtable-RS", signedBy)
	}
	// Only unknown signers: nothing verifiable, so it is refused.
	only, err := SignCheckpoint(CheckpointOrigin("wb", testConsortiumID), testCheckpointTree(), outsider, impostor)
	if err != nil {
		t.Fatal(err)
	}
	var unverified *note.UnverifiedNoteError
	if _, _, _, err := OpenCheckpoint(only, verifiers); !errors.As(err, &unverified) {
		t.Fatalf("OpenCheckpoint of outsider-only note = %v, want note.UnverifiedNoteError", err)
	}
	// Co-signing keeps an outsider's line; it is still not counted.
	cos, err := AddCheckpointSignature(only, testNoteSigner(t, "roundtable-AL"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, signedBy, err := OpenCheckpoint(cos, verifiers); err != nil || !slices.Equal(signedBy, []string{"roundtable-AL"}) {
		t.Fatalf("after co-sign: %v, %v", signedBy, err)
	}
}

func TestCheckpointBadInputs(t *testing.T) {
	rs := testNoteSigner(t, "roundtable-RS")
	for _, origin := range []string{"", "two\nlines", "nul\x00", string([]byte{0xff})} {
		if _, err := SignCheckpoint(origin, testCheckpointTree(), rs); err == nil {
			t.Errorf("SignCheckpoint(origin %q): want error", origin)
		}
	}
	if _, err := SignCheckpoint("roundtable/wb", testCheckpointTree()); err == nil {
		t.Error("SignCheckpoint with no signers: want error")
	}
	if _, err := SignCheckpoint("roundtable/wb", tlog.Tree{N: -1}, rs); err == nil {
		t.Error("SignCheckpoint with negative size: want error")
	}
	// A well-signed note whose text is not a checkpoint is refused both
	// when opening and when co-signing.
	notCheckpoint, err := note.Sign(&note.Note{Text: "roundtable/wb\nforty-two\nxyz\n"}, rs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := OpenCheckpoint(notCheckpoint, testNoteVerifiers(t, "roundtable-RS")); err == nil {
		t.Error("OpenCheckpoint of a non-checkpoint note: want error")
	}
	if _, err := AddCheckpointSignature(notCheckpoint, testNoteSigner(t, "roundtable-AL")); err == nil {
		t.Error("AddCheckpointSignature of a non-checkpoint note: want error")
	}
	if _, err := AddCheckpointSignature([]byte("garbage"), rs); err == nil {
		t.Error("AddCheckpointSignature of garbage: want error")
	}
}

// TestCheckpointOverMerkleLog ties the two halves: a checkpoint of the real
// tree head, and an inclusion proof checked against the signed root.
func TestCheckpointOverMerkleLog(t *testing.T) {
	leaves := merkleTestLeaves(9)
	db := openMerkleDB(t)
	appendLeaves(t, db, leaves)
	var head tlog.Tree
	var proof tlog.RecordProof
	merkleView(t, db, func(tx *bbolt.Tx) (err error) {
		if head, err = TreeHead(tx); err != nil {
			return err
		}
		proof, err = InclusionProof(tx, 4, head.N)
		return err
	})
	msg, err := SignCheckpoint(CheckpointOrigin("wb", testConsortiumID), head, testNoteSigner(t, "roundtable-RS"))
	if err != nil {
		t.Fatal(err)
	}
	_, tree, _, err := OpenCheckpoint(msg, testNoteVerifiers(t, "roundtable-RS"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(proof, tree.N, tree.Hash, 4, leaves[4]); err != nil {
		t.Fatalf("inclusion against signed checkpoint: %v", err)
	}
}
