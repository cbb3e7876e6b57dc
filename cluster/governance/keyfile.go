package governance

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// A coordinator key file holds one ed25519 private key sealed the way a
// partner's store seals its keys (node/store): XChaCha20-Poly1305 under a
// key derived from a passphrase with Argon2id (RFC 9106), the parameters
// and salt stored beside the ciphertext so the file opens with what it was
// sealed with. The public key is in the clear (it is in the genesis anyway)
// and bound to the ciphertext as associated data, so a file whose public
// key was swapped does not open. The key never touches a node.

// KeyFileVersion is the format version written and read.
const KeyFileVersion = 1

// KDFParams are the Argon2id parameters.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDFParams are the store's production parameters: t=3, 64 MiB, 2
// threads.
func DefaultKDFParams() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2} }

// Bounds that keep a hostile file from making OpenKeyFile allocate or spin
// without limit (the store's).
const (
	maxKDFMemoryKiB = 4 * 1024 * 1024
	maxKDFTime      = 64
	saltLen         = 16
)

// Validate refuses parameters Argon2id cannot use or that are out of bounds.
func (p KDFParams) Validate() error {
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

type keyFile struct {
	Version   int               `json:"version"`
	KDF       KDFParams         `json:"kdf"`
	Salt      []byte            `json:"salt"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	Sealed    []byte            `json:"sealed"` // nonce ‖ XChaCha20-Poly1305(seed)
}

// ErrWrongPassphrase is returned when a key file does not open with the
// passphrase given.
var ErrWrongPassphrase = errors.New("coordinator key file: wrong passphrase (or the file was altered)")

func keyFileAD(pub ed25519.PublicKey) []byte {
	return append([]byte("roundtable/v1 coordinator key\x00"), pub...)
}

// GenerateKeyFile makes a new coordinator key, writes it sealed under
// passphrase to path (mode 0600; an existing file is never overwritten)
// and returns its public key.
func GenerateKeyFile(path string, passphrase []byte, p KDFParams) (ed25519.PublicKey, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("coordinator key: the passphrase is empty")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("coordinator key: %w", err)
	}
	kf := keyFile{Version: KeyFileVersion, KDF: p, Salt: make([]byte, saltLen), PublicKey: pub}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, fmt.Errorf("coordinator key: salt: %w", err)
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, kf.Salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("coordinator key: nonce: %w", err)
	}
	kf.Sealed = aead.Seal(nonce, nonce, priv.Seed(), keyFileAD(pub))
	data, err := marshal(kf)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("coordinator key: %s already exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return nil, fmt.Errorf("coordinator key: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("coordinator key: write %s: %w", path, err)
	}
	return pub, nil
}

// OpenKeyFile reads and unseals a coordinator key file.
func OpenKeyFile(path string, passphrase []byte) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coordinator key: %w", err)
	}
	var kf keyFile
	if err := decodeStrict(data, &kf); err != nil {
		return nil, fmt.Errorf("coordinator key file %s: %w", path, err)
	}
	switch {
	case kf.Version != KeyFileVersion:
		return nil, fmt.Errorf("coordinator key file %s: version %d is not supported (want %d)", path, kf.Version, KeyFileVersion)
	case len(kf.Salt) != saltLen:
		return nil, fmt.Errorf("coordinator key file %s: salt has %d bytes, want %d", path, len(kf.Salt), saltLen)
	case len(kf.PublicKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("coordinator key file %s: public key has %d bytes, want %d", path, len(kf.PublicKey), ed25519.PublicKeySize)
	}
	if err := kf.KDF.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator key file %s: %w", path, err)
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, kf.Salt, kf.KDF.Time, kf.KDF.MemoryKiB, kf.KDF.Threads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(kf.Sealed) < ns+aead.Overhead() {
		return nil, ErrWrongPassphrase
	}
	seed, err := aead.Open(nil, kf.Sealed[:ns], kf.Sealed[ns:], keyFileAD(kf.PublicKey))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, ErrWrongPassphrase
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(kf.PublicKey) {
		return nil, fmt.Errorf("coordinator key file %s: the public key does not match the private key", path)
	}
	return priv, nil
}
