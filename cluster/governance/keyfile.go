package governance

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"roundtable/keyseal"
)

// A coordinator key file holds one ed25519 private key sealed the way every
// key of the project is (keyseal): XChaCha20-Poly1305 under a key derived
// from a passphrase with Argon2id (RFC 9106), the parameters and salt stored
// beside the ciphertext. The public key is in the clear (it is in the
// genesis anyway) and bound to the ciphertext as associated data, so a file
// whose public key was swapped does not open. The key never touches a node.

// KeyFileVersion is the format version written and read.
const KeyFileVersion = keyseal.KeyFileVersion

// keyPurpose is bound into the associated data ("roundtable/v1 coordinator
// key\x00" ‖ public key, as before keyseal), so a CA key file is never
// taken for a coordinator key or the other way round.
const keyPurpose = "coordinator key"

// KDFParams are the Argon2id parameters (keyseal's, with its floor of
// t = 2 and 19 MiB).
type KDFParams = keyseal.Params

// DefaultKDFParams are the store's production parameters: t=3, 64 MiB, 2
// threads.
func DefaultKDFParams() KDFParams { return keyseal.Default() }

// ErrWrongPassphrase is returned when a key file does not open with the
// passphrase given.
var ErrWrongPassphrase = keyseal.ErrWrongPassphrase

// GenerateKeyFile makes a new coordinator key, writes it sealed under
// passphrase to path (mode 0600; an existing file is never overwritten)
// and returns its public key. Parameters below the floor are refused.
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
	if err := keyseal.WriteKeyFile(path, keyPurpose, priv, passphrase, p); err != nil {
		return nil, err
	}
	return pub, nil
}

// OpenKeyFile reads and unseals a coordinator key file. It refuses a file
// that others can read (with the chmod to run) and one sealed below the
// floor (with the command that re-seals it).
func OpenKeyFile(path string, passphrase []byte) (ed25519.PrivateKey, error) {
	priv, err := keyseal.ReadKeyFile(path, keyPurpose, passphrase)
	if errors.Is(err, keyseal.ErrBelowFloor) {
		return nil, fmt.Errorf("%w: run 'roundtable coordinator rekey --key %s --new-passphrase-file FILE' to re-seal it with the default parameters (the new passphrase may be the same)", err, path)
	}
	return priv, err
}

// ResealKeyFile re-seals the coordinator key file at path under
// newPassphrase and p, whatever parameters it was sealed with: how a
// coordinator changes a passphrase or strengthens a file below the floor.
func ResealKeyFile(path string, oldPassphrase, newPassphrase []byte, p KDFParams) error {
	return keyseal.Reseal(path, keyPurpose, oldPassphrase, newPassphrase, p)
}
