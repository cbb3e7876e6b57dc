package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Every byte of the passphrase counts: passphrases that share a long
// prefix and differ only at the end, or only in length, do not open each
// other's store, whether the store was made with Init or re-keyed. A key
// derived from a truncated passphrase (the first 16, 32 or 64 bytes, say)
// fails this test.
func TestPassphraseEveryByteCounts(t *testing.T) {
	prefix := strings.Repeat("correct horse battery staple ", 4) // 116 bytes
	long := []byte(prefix + "A")
	tests := []struct {
		name  string
		other []byte
	}{
		{"last byte differs", []byte(prefix + "B")},
		{"one byte longer", []byte(prefix + "AA")},
		{"one byte shorter", []byte(prefix)},
		{"first 16 bytes only", long[:16]},
		{"first 64 bytes only", long[:64]},
	}
	for _, how := range []string{"init", "rekey"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			switch how {
			case "init":
				if err := Init(dir, "RS", long, testKDF); err != nil {
					t.Fatal(err)
				}
			case "rekey":
				if err := Init(dir, "RS", pass, testKDF); err != nil {
					t.Fatal(err)
				}
				if err := Rekey(context.Background(), dir, pass, long, testKDF); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range tests {
				st, err := Open(dir, tc.other)
				if err == nil {
					st.Close()
					t.Errorf("%s: a %d-byte passphrase opened a store sealed under a different %d-byte one", tc.name, len(tc.other), len(long))
					continue
				}
				if !errors.Is(err, ErrWrongPassphrase) {
					t.Errorf("%s: err %v, want ErrWrongPassphrase", tc.name, err)
				}
			}
			st, err := Open(dir, long)
			if err != nil {
				t.Fatalf("the exact passphrase does not open the store: %v", err)
			}
			st.Close()
		})
	}
}
