package keyseal

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// The tests in this file kill mutants that `make mutate` found alive in
// this package, or that gremlins cannot see (the conditions of a tagless
// switch; docs/testing.md).

// TestParamsBounds: every bound of CheckBounds and of the floor, at the
// limit (accepted) and one past it (refused).
func TestParamsBounds(t *testing.T) {
	tests := []struct {
		p      Params
		bounds bool // within CheckBounds
	}{
		{Params{Time: 1, MemoryKiB: 8, Threads: 1}, true},
		{Params{Time: 0, MemoryKiB: 8, Threads: 1}, false},
		{Params{Time: 64, MemoryKiB: 8, Threads: 1}, true},
		{Params{Time: 65, MemoryKiB: 8, Threads: 1}, false},
		{Params{Time: 1, MemoryKiB: 8, Threads: 0}, false},
		{Params{Time: 1, MemoryKiB: 16, Threads: 2}, true},
		{Params{Time: 1, MemoryKiB: 15, Threads: 2}, false},
		{Params{Time: 1, MemoryKiB: 4 * 1024 * 1024, Threads: 1}, true},
		{Params{Time: 1, MemoryKiB: 4*1024*1024 + 1, Threads: 1}, false},
	}
	for _, tc := range tests {
		if err := tc.p.CheckBounds(); (err == nil) != tc.bounds {
			t.Errorf("%s: CheckBounds() = %v, want within bounds %v", tc.p, err, tc.bounds)
		}
	}
	floor := []struct {
		p     Params
		below bool
	}{
		{Params{Time: MinTime, MemoryKiB: MinMemoryKiB, Threads: 1}, false},
		{Params{Time: MinTime - 1, MemoryKiB: 64 * 1024, Threads: 1}, true},
		{Params{Time: 3, MemoryKiB: MinMemoryKiB - 1, Threads: 1}, true},
	}
	for _, tc := range floor {
		if err := tc.p.CheckFloor(); errors.Is(err, ErrBelowFloor) != tc.below {
			t.Errorf("%s: CheckFloor() = %v, want below the floor %v", tc.p, err, tc.below)
		}
	}
	if s := Default().String(); s != "t=3, 64 MiB, 2 threads" {
		t.Errorf("Default().String() = %q", s)
	}
	if s := (Params{Time: 2, MemoryKiB: 1000, Threads: 1}).String(); s != "t=2, 1000 KiB, 1 threads" {
		t.Errorf("String() = %q", s)
	}
}

// TestKeyFileMalformedSealed: a sealed field too short to hold a nonce and
// a tag, a sealed seed of the wrong length under the right passphrase, and
// trailing data after the JSON are refused with an error, not a panic and
// not a key.
func TestKeyFileMalformedSealed(t *testing.T) {
	dir := t.TempDir()
	priv := newKey(t)
	pass := []byte("correct horse battery staple")
	good, err := marshalUnchecked("test key", priv, pass, Minimum())
	if err != nil {
		t.Fatal(err)
	}
	var kf keyFile
	if err := json.Unmarshal(good, &kf); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := kf
	short.Sealed = kf.Sealed[:10]
	shortJSON, _ := json.Marshal(short)

	// A 16-byte "seed" sealed correctly under the right passphrase.
	half := kf
	aead, err := chacha20poly1305.NewX(kf.KDF.Key(pass, kf.Salt))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	half.Sealed = aead.Seal(nonce, nonce, priv.Seed()[:16], keyFileAD("test key", kf.PublicKey))
	halfJSON, _ := json.Marshal(half)

	for name, data := range map[string][]byte{"short": shortJSON, "half-seed": halfJSON} {
		got, err := ReadKeyFile(write(name, data), "test key", pass)
		if !errors.Is(err, ErrWrongPassphrase) || got != nil {
			t.Errorf("%s sealed field: key %v, err %v; want ErrWrongPassphrase", name, got != nil, err)
		}
	}
	trailing := append(bytes.TrimSpace(good), []byte(` {"version":1}`)...)
	if _, err := ReadKeyFile(write("trailing", trailing), "test key", pass); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Errorf("trailing data: %v, want a refusal", err)
	}
	if k, err := ReadKeyFile(write("good", good), "test key", pass); err != nil || !k.Equal(priv) {
		t.Fatalf("the unaltered file: %v", err)
	}
}

// TestReplaceWritesData: Replace leaves exactly the new bytes, mode 0600.
func TestReplaceWritesData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("after Replace: %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if !IsKeyFile([]byte(" \n{\"version\":1}")) || IsKeyFile([]byte("-----BEGIN PRIVATE KEY-----")) || IsKeyFile([]byte("  ")) {
		t.Error("IsKeyFile does not tell a JSON key file from PEM or blank input")
	}
}

// TestEstimateBitsExact: the estimate, computed by hand from its rule
// (log2 of the class size per character, one bit for a repeat or a run
// step), for strings that reach every class; and the length warning at its
// limit.
func TestEstimateBitsExact(t *testing.T) {
	l := math.Log2
	tests := []struct {
		s    string
		bits float64
	}{
		{"a", l(26)},
		{"Z", l(26)},
		{"A", l(26)},
		{"abc", l(26) + 2},
		{"cba", l(26) + 2},
		{"aa", l(26) + 1},
		{"a9", l(26) + l(10)},
		{"0 ~", l(10) + l(2) + l(33)},
		{"é", l(64)},
		{"\x01", l(64)},
		{"az", 2 * l(26)},
	}
	for _, tc := range tests {
		if got := EstimateBits([]byte(tc.s)); math.Abs(got-tc.bits) > 1e-9 {
			t.Errorf("EstimateBits(%q) = %.4f, want %.4f", tc.s, got, tc.bits)
		}
	}
	// 12 characters, varied enough: no warning; 11: the length warning.
	if w := Weakness([]byte("Kq7#mZ2!pX9w")); w != "" {
		t.Errorf("a 12-character varied passphrase: %q", w)
	}
	if w := Weakness([]byte("Kq7#mZ2!pX9")); !strings.Contains(w, "11 characters") {
		t.Errorf("an 11-character passphrase: %q, want the length warning", w)
	}
}
