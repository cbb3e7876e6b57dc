package keyseal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// A key file holds one ed25519 private key sealed under a passphrase, as
// JSON: the format version, the Argon2id parameters and salt, the public key
// in the clear and nonce ‖ XChaCha20-Poly1305(seed). The associated data is
// "roundtable/v1 " + purpose + NUL + public key, so a file whose public key
// was swapped, or a key file of another purpose (a coordinator key offered
// as the CA key), does not open.

// KeyFileVersion is the format version written and read.
const KeyFileVersion = 1

// ErrWrongPassphrase is returned when a key file does not open with the
// passphrase given.
var ErrWrongPassphrase = errors.New("wrong passphrase (or the file was altered, or it is not this kind of key)")

type keyFile struct {
	Version   int               `json:"version"`
	KDF       Params            `json:"kdf"`
	Salt      []byte            `json:"salt"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	Sealed    []byte            `json:"sealed"`
}

func keyFileAD(purpose string, pub ed25519.PublicKey) []byte {
	return append([]byte("roundtable/v1 "+purpose+"\x00"), pub...)
}

// MarshalKeyFile seals priv under passphrase and returns the file's bytes.
// purpose names the kind of key ("coordinator key", "CA key").
func MarshalKeyFile(purpose string, priv ed25519.PrivateKey, passphrase []byte, p Params) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%s: the passphrase is empty", purpose)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", purpose, err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	kf := keyFile{Version: KeyFileVersion, KDF: p, Salt: make([]byte, SaltLen), PublicKey: pub}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, fmt.Errorf("%s: salt: %w", purpose, err)
	}
	aead, err := chacha20poly1305.NewX(p.Key(passphrase, kf.Salt))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("%s: nonce: %w", purpose, err)
	}
	kf.Sealed = aead.Seal(nonce, nonce, priv.Seed(), keyFileAD(purpose, pub))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(kf); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteKeyFile seals priv and creates path with it (mode 0600); an existing
// file is never overwritten.
func WriteKeyFile(path, purpose string, priv ed25519.PrivateKey, passphrase []byte, p Params) error {
	data, err := MarshalKeyFile(purpose, priv, passphrase, p)
	if err != nil {
		return err
	}
	if err := WriteNew(path, data); err != nil {
		return fmt.Errorf("%s: %w", purpose, err)
	}
	return nil
}

// ReplaceKeyFile seals priv and atomically replaces path with it (see
// Replace).
func ReplaceKeyFile(path, purpose string, priv ed25519.PrivateKey, passphrase []byte, p Params) error {
	data, err := MarshalKeyFile(purpose, priv, passphrase, p)
	if err != nil {
		return err
	}
	if err := Replace(path, data); err != nil {
		return fmt.Errorf("%s: %w", purpose, err)
	}
	return nil
}

// IsKeyFile reports whether data looks like a key file (a JSON object), as
// opposed to, say, an unencrypted PEM key.
func IsKeyFile(data []byte) bool {
	return len(bytes.TrimSpace(data)) > 0 && bytes.TrimSpace(data)[0] == '{'
}

// ReadKeyFile reads and unseals the key file at path. It refuses a file
// that other users can read (CheckPrivate) and one sealed with parameters
// below the floor (an error wrapping ErrBelowFloor: re-seal it with
// Reseal).
func ReadKeyFile(path, purpose string, passphrase []byte) (ed25519.PrivateKey, error) {
	priv, p, err := readKeyFile(path, purpose, passphrase)
	if err != nil {
		return nil, err
	}
	if err := p.CheckFloor(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", purpose, path, err)
	}
	return priv, nil
}

// Reseal opens the key file at path with oldPassphrase, whatever its
// parameters, and replaces it with the same key sealed under newPassphrase
// and p. It is how a file below the floor is strengthened.
func Reseal(path, purpose string, oldPassphrase, newPassphrase []byte, p Params) error {
	priv, _, err := readKeyFile(path, purpose, oldPassphrase)
	if err != nil {
		return err
	}
	return ReplaceKeyFile(path, purpose, priv, newPassphrase, p)
}

func readKeyFile(path, purpose string, passphrase []byte) (ed25519.PrivateKey, Params, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, Params{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Params{}, fmt.Errorf("%s: %w", purpose, err)
	}
	var kf keyFile
	if err := decodeStrict(data, &kf); err != nil {
		return nil, Params{}, fmt.Errorf("%s file %s: %w", purpose, path, err)
	}
	switch {
	case kf.Version != KeyFileVersion:
		return nil, Params{}, fmt.Errorf("%s file %s: version %d is not supported (want %d)", purpose, path, kf.Version, KeyFileVersion)
	case len(kf.Salt) != SaltLen:
		return nil, Params{}, fmt.Errorf("%s file %s: salt has %d bytes, want %d", purpose, path, len(kf.Salt), SaltLen)
	case len(kf.PublicKey) != ed25519.PublicKeySize:
		return nil, Params{}, fmt.Errorf("%s file %s: public key has %d bytes, want %d", purpose, path, len(kf.PublicKey), ed25519.PublicKeySize)
	}
	if err := kf.KDF.CheckBounds(); err != nil {
		return nil, Params{}, fmt.Errorf("%s file %s: %w", purpose, path, err)
	}
	aead, err := chacha20poly1305.NewX(kf.KDF.Key(passphrase, kf.Salt))
	if err != nil {
		return nil, Params{}, err
	}
	ns := aead.NonceSize()
	wrong := fmt.Errorf("%s file %s: %w", purpose, path, ErrWrongPassphrase)
	if len(kf.Sealed) < ns+aead.Overhead() {
		return nil, Params{}, wrong
	}
	seed, err := aead.Open(nil, kf.Sealed[:ns], kf.Sealed[ns:], keyFileAD(purpose, kf.PublicKey))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, Params{}, wrong
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(kf.PublicKey) {
		return nil, Params{}, fmt.Errorf("%s file %s: the public key does not match the private key", purpose, path)
	}
	return priv, kf.KDF, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// WriteNew creates path exclusively with mode 0600, writes data and syncs
// it, so an existing file is never clobbered and a returned nil means the
// bytes are on disk.
func WriteNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Replace atomically replaces path with data (mode 0600): it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory, so a crash leaves the old file or the new one.
func Replace(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, making a rename or create in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
