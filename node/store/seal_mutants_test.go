package store

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestSealOpenLengths: open takes back what seal made for every plaintext
// length, the empty one included (nonce and tag only), and refuses
// anything shorter than a nonce and a tag, and any altered byte. (It kills
// the length check written <=; docs/testing.md.)
func TestSealOpenLengths(t *testing.T) {
	aead, err := chacha20poly1305.NewX(bytes.Repeat([]byte{7}, keyLen))
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("test")
	for _, n := range []int{0, 1, 32} {
		pt := bytes.Repeat([]byte{'x'}, n)
		sealed, err := seal(aead, nil, pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := open(aead, nil, sealed, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%d-byte plaintext: open = %q, %v", n, got, err)
		}
		for _, bad := range [][]byte{sealed[:len(sealed)-1], append(bytes.Clone(sealed[:len(sealed)-1]), sealed[len(sealed)-1]^1)} {
			if _, err := open(aead, nil, bad, ad); !errors.Is(err, errOpen) {
				t.Errorf("%d-byte plaintext, sealed value cut or altered: %v, want errOpen", n, err)
			}
		}
	}
}
