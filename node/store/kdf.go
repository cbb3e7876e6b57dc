package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the Argon2id parameters (RFC 9106) that turn a passphrase
// into the key-encryption key wrapping the store's data key. They are kept
// in the store file so a store opens with the parameters it was sealed with.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // parallelism
}

// DefaultKDFParams are the production parameters: t=3, 64 MiB, 2 threads,
// about a second on the small machines partners run (RFC 9106 §4 second
// recommended option, with memory lowered for 1–2 GB hosts).
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}
}

// Limits that keep a corrupted or hostile file from making Open allocate
// unbounded memory or spin for hours.
const (
	maxKDFMemoryKiB = 4 * 1024 * 1024
	maxKDFTime      = 64
	saltLen         = 16
	kdfRecordLen    = 4 + 4 + 1 + saltLen
)

// Validate refuses parameters Argon2id cannot use or that are out of bounds.
func (p KDFParams) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1–%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d–%d KiB", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

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

func (k kdf) key(passphrase []byte) []byte {
	return argon2.IDKey(passphrase, k.salt[:], k.Time, k.MemoryKiB, k.Threads, keyLen)
}

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
	if err := k.Validate(); err != nil {
		return kdf{}, fmt.Errorf("stored kdf parameters: %w", err)
	}
	return k, nil
}
