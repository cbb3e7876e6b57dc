package keyseal

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func TestParamsFloor(t *testing.T) {
	tests := []struct {
		p     Params
		floor bool // refused for being below the floor
		ok    bool
	}{
		{Minimum(), false, true},
		{Default(), false, true},
		{Params{Time: 1, MemoryKiB: 8, Threads: 1}, true, false},                // the t=1, 8 KiB
		{Params{Time: 1, MemoryKiB: 64 * 1024, Threads: 1}, true, false},        // t=1
		{Params{Time: 2, MemoryKiB: 19*1024 - 1, Threads: 1}, true, false},      // 1 KiB short
		{Params{Time: 2, MemoryKiB: 19 * 1024, Threads: 0}, false, false},       // unusable
		{Params{Time: 65, MemoryKiB: 19 * 1024, Threads: 1}, false, false},      // out of bounds
		{Params{Time: 2, MemoryKiB: 5 * 1024 * 1024, Threads: 1}, false, false}, // out of bounds
	}
	for _, tc := range tests {
		err := tc.p.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
		if got := errors.Is(err, ErrBelowFloor); got != tc.floor {
			t.Errorf("%s: below floor = %v, want %v (err %v)", tc.p, got, tc.floor, err)
		}
	}
	if err := (Params{Time: 1, MemoryKiB: 8, Threads: 1}).CheckBounds(); err != nil {
		t.Errorf("t=1, 8 KiB is within bounds (it must stay readable to be re-sealed): %v", err)
	}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// A key file opens with its passphrase and purpose only; one sealed below
// the floor is refused until Reseal strengthens it, and the re-sealed file
// holds the same key under the new passphrase.
func TestKeyFileFloorAndReseal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.key")
	priv := newKey(t)
	if err := WriteKeyFile(path, "test key", priv, []byte("pass one two three"), Params{Time: 1, MemoryKiB: 64, Threads: 1}); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("sealing below the floor: err %v, want ErrBelowFloor", err)
	}
	// A file written by an older release with weak parameters.
	weak := Params{Time: 1, MemoryKiB: 64, Threads: 1}
	data, err := marshalUnchecked("test key", priv, []byte("pass one two three"), weak)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path, "test key", []byte("pass one two three")); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("opening a weak file: err %v, want ErrBelowFloor", err)
	}
	if err := Reseal(path, "test key", []byte("pass one two three"), []byte("new pass four five"), Minimum()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(path, "test key", []byte("new pass four five"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) {
		t.Error("the re-sealed file holds another key")
	}
	for _, tc := range []struct{ purpose, pass string }{
		{"test key", "pass one two three"}, // the old passphrase
		{"other key", "new pass four five"},
	} {
		if _, err := ReadKeyFile(path, tc.purpose, []byte(tc.pass)); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("purpose %q, passphrase %q: err %v, want ErrWrongPassphrase", tc.purpose, tc.pass, err)
		}
	}
	if err := WriteKeyFile(path, "test key", priv, []byte("x"), Minimum()); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("WriteKeyFile over an existing file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*new*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// marshalUnchecked seals like MarshalKeyFile but skips the floor, as a
// release before the floor did.
func marshalUnchecked(purpose string, priv ed25519.PrivateKey, pass []byte, p Params) ([]byte, error) {
	pub := priv.Public().(ed25519.PublicKey)
	kf := keyFile{Version: KeyFileVersion, KDF: p, Salt: make([]byte, SaltLen), PublicKey: pub}
	rand.Read(kf.Salt)
	aead, err := chacha20poly1305.NewX(p.Key(pass, kf.Salt))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	kf.Sealed = aead.Seal(nonce, nonce, priv.Seed(), keyFileAD(purpose, pub))
	return json.Marshal(kf)
}

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	if err := os.WriteFile(path, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(path); err != nil {
		t.Fatalf("mode 0600 refused: %v", err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string
	}{
		{0o644, "node.key is readable by others (mode 0644): run chmod 600 " + path},
		{0o640, "node.key is readable by others (mode 0640): run chmod 600 " + path},
		{0o604, "node.key is readable by others (mode 0604): run chmod 600 " + path},
		{0o620, "node.key is writable by others (mode 0620): run chmod 600 " + path},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPrivate(path)
		if err == nil || err.Error() != tc.want {
			t.Errorf("mode %04o: err %v, want %q", tc.mode, err, tc.want)
		}
	}
	// ReadKeyFile checks the mode before it reads.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path, "test key", []byte("x")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadKeyFile of a 0644 file: %v", err)
	}
}

func TestWeakness(t *testing.T) {
	tests := []struct {
		pass string
		weak string // a fragment of the warning, "" for none
	}{
		{"short", "has 5 characters"},
		{"elevenchars", "has 11 characters"},
		{"aaaaaaaaaaaaaaaa", "easy to guess"},
		{"abcdefghijklmnop", "easy to guess"},
		{"13579135791357", "easy to guess"},
		{"1234567890123", "\"123456\""},
		{"my roundtable key 2024", "\"roundtable\""},
		{"Password-for-node-7", "\"password\""},
		{"correct horse battery staple", ""},
		{"Tr0ub4dor&3xq", ""},
		{"vjq4-Lx9z-pT2m-w8Rk", ""},
	}
	for _, tc := range tests {
		got := Weakness([]byte(tc.pass))
		switch {
		case tc.weak == "" && got != "":
			t.Errorf("%q: warned %q, want no warning", tc.pass, got)
		case tc.weak != "" && !strings.Contains(got, tc.weak):
			t.Errorf("%q: warning %q, want one mentioning %q", tc.pass, got, tc.weak)
		}
	}
}
