package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"roundtable/keyseal"
)

// KDFParams are the Argon2id parameters (RFC 9106) that turn a passphrase
// into the key-encryption key wrapping the store's data key. They are kept
// in the store file so a store opens with the parameters it was sealed with.
// They are keyseal's, so the store, the CA key and the coordinator keys
// share one floor.
type KDFParams = keyseal.Params

// DefaultKDFParams are the production parameters (keyseal.Default: t=3,
// 64 MiB, 2 threads).
func DefaultKDFParams() KDFParams { return keyseal.Default() }

// MinKDFParams are the weakest parameters a store is created or opened
// with (keyseal.Minimum: t=2, 19 MiB, OWASP's minimum). Tests use them.
func MinKDFParams() KDFParams { return keyseal.Minimum() }

const (
	saltLen      = keyseal.SaltLen
	kdfRecordLen = 4 + 4 + 1 + saltLen
)

// kdf is the parameters plus the salt, as stored in the meta bucket.
type kdf struct {
	KDFParams
	salt [saltLen]byte
}

func newKDF(p KDFParams) (kdf, error) {
	if err := p.Validate(); err != nil {
		return kdf{}, err
	}
	k := kdf{KDFParams: p}
	if _, err := rand.Read(k.salt[:]); err != nil {
		return kdf{}, fmt.Errorf("salt: %w", err)
	}
	return k, nil
}

func (k kdf) key(passphrase []byte) []byte { return k.Key(passphrase, k.salt[:]) }

func (k kdf) marshal() []byte {
	b := make([]byte, kdfRecordLen)
	binary.BigEndian.PutUint32(b[0:], k.Time)
	binary.BigEndian.PutUint32(b[4:], k.MemoryKiB)
	b[8] = k.Threads
	copy(b[9:], k.salt[:])
	return b
}

func unmarshalKDF(b []byte) (kdf, error) {
	if len(b) != kdfRecordLen {
		return kdf{}, fmt.Errorf("kdf record has %d bytes, want %d", len(b), kdfRecordLen)
	}
	var k kdf
	k.Time = binary.BigEndian.Uint32(b[0:])
	k.MemoryKiB = binary.BigEndian.Uint32(b[4:])
	k.Threads = b[8]
	copy(k.salt[:], b[9:])
	// Only the bounds: a store sealed below the floor must stay readable
	// so Rekey can strengthen it; Open refuses it (checkFloor).
	if err := k.CheckBounds(); err != nil {
		return kdf{}, fmt.Errorf("stored kdf parameters: %w", err)
	}
	return k, nil
}
