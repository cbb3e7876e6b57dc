package store

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The tests in this file kill mutants of the store's open path (unlock)
// that `make mutate` found alive (docs/testing.md).

// TestOpenRefusesTamperedMeta: with the right passphrase, Open still
// refuses a store whose format version is another 8-byte number, whose
// unencrypted public key is not the sealed signing key's, or whose sealed
// signing seed or quarter book key decrypts (sealed under the store's own
// data key) to the wrong length. Each refusal names what is wrong.
func TestOpenRefusesTamperedMeta(t *testing.T) {
	other, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, st *Store) (key, value []byte)
		want   string
	}{
		{"format version 99", func(t *testing.T, st *Store) ([]byte, []byte) {
			return keyVersion, u64(99)
		}, "store format version is not supported"},
		{"another public key", func(t *testing.T, st *Store) ([]byte, []byte) {
			return keyPublic, other
		}, "the public key does not match the signing key"},
		{"a signing seed of 31 bytes", func(t *testing.T, st *Store) ([]byte, []byte) {
			return keySigning, sealT(t, st, st.priv.Seed()[:31], adSigningKey)
		}, "the signing key does not decrypt"},
		{"a quarter book key of 31 bytes", func(t *testing.T, st *Store) ([]byte, []byte) {
			return keyQuarterKey, sealT(t, st, st.quarterKey[:31], adQuarterKey)
		}, "the quarter book key does not decrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Init(dir, "RS", pass, testKDF); err != nil {
				t.Fatal(err)
			}
			st, err := Open(dir, pass)
			if err != nil {
				t.Fatal(err)
			}
			k, v := tc.tamper(t, st)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(k, v) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			st, err = Open(dir, pass)
			if err == nil {
				st.Close()
				t.Fatalf("a store with %s opened", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func sealT(t *testing.T, st *Store, plain, ad []byte) []byte {
	t.Helper()
	b, err := seal(st.aead, nil, plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
