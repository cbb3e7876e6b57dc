// Package keyseal protects keys with a passphrase, one way for every key
// file of the project: Argon2id (RFC 9106) derives a key-encryption key from
// the passphrase, XChaCha20-Poly1305 seals the secret under it, and the
// Argon2id parameters and salt are stored beside the ciphertext so a file
// opens with what it was sealed with.
//
// It also holds what every key file is checked for: parameters below the
// floor (OWASP's minimum for Argon2id, m = 19 MiB and t = 2), file modes
// that let other users read the file, and passphrases that are easy to
// guess. It imports nothing of the project, so the store (node/store), the
// CA (cluster) and the coordinator keys (cluster/governance) share it.
package keyseal

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Params are the Argon2id parameters (RFC 9106 §3.1).
type Params struct {
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // parallelism
}

// Default are the production parameters: t=3, 64 MiB, 2 threads, about a
// second on the small machines partners run (RFC 9106 §4 second recommended
// option, with memory lowered for 1–2 GB hosts).
func Default() Params { return Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2} }

// Minimum is the floor below which nothing is sealed or opened: OWASP's
// minimum configuration for Argon2id (m = 19 MiB, t = 2, p = 1). Tests and
// the demo use it because it is the fastest accepted setting.
func Minimum() Params { return Params{Time: MinTime, MemoryKiB: MinMemoryKiB, Threads: 1} }

// The floor (Minimum) and the bounds that keep a corrupted or hostile file
// from making an open allocate unbounded memory or spin for hours.
const (
	MinTime         = 2
	MinMemoryKiB    = 19 * 1024
	maxKDFMemoryKiB = 4 * 1024 * 1024
	maxKDFTime      = 64
	// SaltLen is the length of the random salt stored beside the parameters.
	SaltLen = 16
	// KeyLen is the length of a derived key.
	KeyLen = 32
)

// ErrBelowFloor is wrapped by CheckFloor's error.
var ErrBelowFloor = errors.New("argon2id parameters below the minimum")

// Validate refuses parameters Argon2id cannot use, that are out of bounds,
// or that are below the floor.
func (p Params) Validate() error {
	if err := p.CheckBounds(); err != nil {
		return err
	}
	return p.CheckFloor()
}

// CheckBounds refuses parameters Argon2id cannot use or that would make a
// derivation unreasonably expensive. It says nothing about the floor, so a
// file sealed with weak parameters can still be read to re-seal it.
func (p Params) CheckBounds() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1–%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d–%d KiB", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// CheckFloor refuses parameters weaker than Minimum, with an error wrapping
// ErrBelowFloor that names both.
func (p Params) CheckFloor() error {
	if p.Time < MinTime || p.MemoryKiB < MinMemoryKiB {
		return fmt.Errorf("%w: %s; want at least t=%d and %d MiB (OWASP's minimum for Argon2id)",
			ErrBelowFloor, p, MinTime, MinMemoryKiB/1024)
	}
	return nil
}

// String describes the parameters for messages: "t=3, 64 MiB, 2 threads".
func (p Params) String() string {
	mem := fmt.Sprintf("%d KiB", p.MemoryKiB)
	if p.MemoryKiB%1024 == 0 {
		mem = fmt.Sprintf("%d MiB", p.MemoryKiB/1024)
	}
	return fmt.Sprintf("t=%d, %s, %d threads", p.Time, mem, p.Threads)
}

// Key derives a KeyLen-byte key from passphrase and salt. The caller has
// checked the parameters' bounds.
func (p Params) Key(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, KeyLen)
}
