package store

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

const keyLen = chacha20poly1305.KeySize

// Associated data for the two secrets in the meta bucket, so a wrapped key
// cannot be passed off as the signing key or the other way round.
var (
	adDataKey    = []byte("roundtable/v1 data key")
	adSigningKey = []byte("roundtable/v1 signing key")
	adQuarterKey = []byte("roundtable/v1 quarter book key")
	macKeyLabel  = []byte("roundtable/v1 case-id mac key")
)

var errOpen = errors.New("authentication failed")

// seal encrypts plaintext with a fresh random nonce and returns
// nonce‖ciphertext, appended to dst.
func seal(aead cipher.AEAD, dst, plaintext, ad []byte) ([]byte, error) {
	n := len(dst)
	dst = append(dst, make([]byte, aead.NonceSize())...)
	if _, err := rand.Read(dst[n:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(dst, dst[n:], plaintext, ad), nil
}

// sealWithNonce is seal with a nonce the caller drew from crypto/rand (in
// bulk, to save a system call per record).
func sealWithNonce(aead cipher.AEAD, dst, nonce, plaintext, ad []byte) []byte {
	n := len(dst)
	dst = append(dst, nonce...)
	return aead.Seal(dst, dst[n:], plaintext, ad)
}

// open reverses seal.
func open(aead cipher.AEAD, dst, sealed, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, errOpen
	}
	out, err := aead.Open(dst, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, errOpen
	}
	return out, nil
}

// deriveMACKey gives the key of the case-id HMAC. It is derived from, not
// equal to, the data key so the data key is used for one purpose only.
func deriveMACKey(dataKey []byte) []byte { return deriveKey(dataKey, macKeyLabel) }

// deriveKey gives the sub-key of the data key for one purpose, named by
// label.
func deriveKey(dataKey, label []byte) []byte {
	m := hmac.New(sha256.New, dataKey)
	m.Write(label)
	return m.Sum(nil)
}
