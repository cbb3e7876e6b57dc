// Package store is a partner node's encrypted case store: one bbolt file per
// data directory (DIR/node.db) holding the case records, each sealed with
// XChaCha20-Poly1305 under a random data key that is itself wrapped under an
// Argon2id (RFC 9106) key derived from the operator's passphrase, plus the
// partner's ed25519 signing key and a small sealed key/value area.
//
// Imports are all-or-nothing and crash-safe through generations; DESIGN.md
// beside this file explains the layout and why it is shaped that way.
package store

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"

	"roundtable/aggregate"
	"roundtable/keyseal"
)

// FileName is the store's file inside the data directory.
const FileName = "node.db"

// formatVersion is written at Init; Open refuses other versions.
const formatVersion = 1

// ErrWrongPassphrase is returned by Open when the passphrase does not unwrap
// the data key. Nothing in the file has been changed when it is returned.
var ErrWrongPassphrase = errors.New("wrong passphrase: it does not unlock this store " +
	"(check ROUNDTABLE_PASSPHRASE or the file given with --passphrase-file)")

// ErrInUse is returned when another process holds the store open.
var ErrInUse = errors.New("store is in use by another roundtable process (stop it, or wait for it to finish)")

// ErrNotFound is returned by Get for a name that was never Put.
var ErrNotFound = errors.New("not found")

var (
	bucketMeta  = []byte("meta")
	bucketCases = []byte("cases")
	bucketKV    = []byte("kv")

	keyVersion    = []byte("version")
	keyPartner    = []byte("partner")
	keyKDF        = []byte("kdf")
	keyWrapped    = []byte("wrapped_data_key")
	keyPublic     = []byte("public_key")
	keySigning    = []byte("sealed_signing_key")
	keyCommitted  = []byte("committed_generation")
	keyPending    = []byte("pending_generation")
	keyCompact    = []byte("compact_generation")
	keyCount      = []byte("case_count")
	keyQuarterKey = []byte("sealed_quarter_key")
	lockTimeout   = time.Second
	initialMmap   = 1 << 30 // address space only; avoids remaps that wait on readers
	recoveryBatch = 50_000
)

// Store is an open case store. Its methods are safe for concurrent use;
// only one Import can be open at a time.
type Store struct {
	db      *bolt.DB
	dir     string
	partner string
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
	dataKey []byte
	aead    cipher.AEAD
	macKey  []byte
	// quarterKey keys the quarter book's person-year HMAC.
	quarterKey []byte
	kdf        kdf
	log        *slog.Logger

	mu        sync.Mutex // guards importing
	importing bool
}

func boltOptions(readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:         lockTimeout,
		ReadOnly:        readOnly,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmap,
	}
}

// openBolt opens the bbolt file at path. bbolt locks the file it opened;
// if Rekey replaced path while this process waited for that lock, the lock
// is on the old, unlinked file, so openBolt checks that path still names
// the file it holds and otherwise opens again.
func openBolt(path string, readOnly bool) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		var f *os.File
		opts := boltOptions(readOnly)
		opts.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(name, flag, mode)
			return f, err
		}
		db, err := bolt.Open(path, 0o600, opts)
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrInUse)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return db, nil
		}
		db.Close()
		if attempt == 2 {
			return nil, fmt.Errorf("open %s: the file keeps being replaced: %w", path, ErrInUse)
		}
	}
}

// Init creates a new store in dir for partner (an ISO 3166-1 alpha-2 code,
// XK for Kosovo): a random data key wrapped under passphrase and the
// partner's ed25519 key pair. It refuses to overwrite an existing store.
func Init(dir string, partner string, passphrase []byte, params KDFParams) error {
	p, err := aggregate.ParseCountry("partner", partner)
	if err != nil || p == aggregate.CountryUnknown {
		return fmt.Errorf("init store: partner %q is not an ISO 3166-1 alpha-2 code (XK for Kosovo)", partner)
	}
	if len(passphrase) == 0 {
		return errors.New("init store: the passphrase is empty")
	}
	k, err := newKDF(params)
	if err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// O_EXCL makes "refuse to overwrite" race-free against a second init.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("init store: %s already exists; refusing to overwrite an existing store", path)
	}
	if err != nil {
		return fmt.Errorf("init store: %w", err)
	}
	f.Close()
	if err := initFile(path, string(p), passphrase, k); err != nil {
		os.Remove(path)
		return fmt.Errorf("init store: %w", err)
	}
	return nil
}

func initFile(path, partner string, passphrase []byte, k kdf) error {
	dataKey := make([]byte, keyLen)
	if _, err := rand.Read(dataKey); err != nil {
		return fmt.Errorf("data key: %w", err)
	}
	wrapped, err := wrapKey(k, passphrase, dataKey)
	if err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return err
	}
	sealedPriv, err := seal(aead, nil, priv.Seed(), adSigningKey)
	if err != nil {
		return err
	}
	db, err := openBolt(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketCases); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketKV); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketQuarters); err != nil {
			return err
		}
		for _, kv := range [][2][]byte{
			{keyVersion, u64(formatVersion)}, {keyPartner, []byte(partner)}, {keyKDF, k.marshal()},
			{keyWrapped, wrapped}, {keyPublic, pub}, {keySigning, sealedPriv},
			{keyCommitted, u64(0)}, {keyCount, u64(0)},
		} {
			if err := m.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
}

func wrapKey(k kdf, passphrase, dataKey []byte) ([]byte, error) {
	kek, err := chacha20poly1305.NewX(k.key(passphrase))
	if err != nil {
		return nil, err
	}
	return seal(kek, nil, dataKey, adDataKey)
}

// Open opens the store in dir. It checks the passphrase on a read-only
// handle first, so a wrong passphrase (ErrWrongPassphrase) changes nothing;
// then it reopens for writing and removes what a crashed import or rekey
// left. It refuses a store file that other users can read, and one sealed
// with Argon2id parameters below keyseal's floor (Rekey strengthens it).
func Open(dir string, passphrase []byte) (*Store, error) {
	return openStore(dir, passphrase, false)
}

func openStore(dir string, passphrase []byte, allowWeak bool) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store: no store at %s (run roundtable init first): %w", path, err)
	}
	if err := keyseal.CheckPrivate(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	st, err := unlock(path, passphrase)
	if err != nil {
		return nil, err
	}
	if err := st.kdf.CheckFloor(); err != nil && !allowWeak {
		return nil, fmt.Errorf("open store %s: %w: run 'roundtable rekey --data-dir %s --new-passphrase-file FILE' "+
			"to re-seal it with the default parameters (the new passphrase may be the same)", path, err, dir)
	}
	st.dir = dir
	db, err := openBolt(path, false)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	st.db = db
	if err := st.ensureQuarters(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := st.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: recover: %w", err)
	}
	return st, nil
}

// unlock reads the meta bucket through a read-only handle and unwraps the
// keys; it returns a Store without a db.
func unlock(path string, passphrase []byte) (*Store, error) {
	db, err := openBolt(path, true)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	st := &Store{log: slog.Default().With("component", "store")}
	var k kdf
	var wrapped, sealedPriv, sealedQuarter []byte
	err = db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return errors.New("not a roundtable store (no meta bucket)")
		}
		if v := m.Get(keyVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
			return errors.New("store format version is not supported by this roundtable")
		}
		if k, err = unmarshalKDF(m.Get(keyKDF)); err != nil {
			return err
		}
		st.partner = string(m.Get(keyPartner))
		st.pub = ed25519.PublicKey(clone(m.Get(keyPublic)))
		wrapped, sealedPriv = clone(m.Get(keyWrapped)), clone(m.Get(keySigning))
		sealedQuarter = clone(m.Get(keyQuarterKey))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	kek, err := chacha20poly1305.NewX(k.key(passphrase))
	if err != nil {
		return nil, err
	}
	dataKey, err := open(kek, nil, wrapped, adDataKey)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	st.kdf = k
	if err := st.setDataKey(dataKey); err != nil {
		return nil, err
	}
	if sealedQuarter != nil {
		// Carried over by a rekey (see Rekey); before one, it is derived.
		if st.quarterKey, err = open(st.aead, nil, sealedQuarter, adQuarterKey); err != nil || len(st.quarterKey) != keyLen {
			return nil, fmt.Errorf("open store %s: the quarter book key does not decrypt (file damaged?)", path)
		}
	}
	seed, err := open(st.aead, nil, sealedPriv, adSigningKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("open store %s: the signing key does not decrypt (file damaged?)", path)
	}
	st.priv = ed25519.NewKeyFromSeed(seed)
	if len(st.pub) != ed25519.PublicKeySize || !st.priv.Public().(ed25519.PublicKey).Equal(st.pub) {
		return nil, fmt.Errorf("open store %s: the public key does not match the signing key", path)
	}
	return st, nil
}

func (s *Store) setDataKey(k []byte) error {
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return fmt.Errorf("data key: %w", err)
	}
	s.dataKey, s.aead, s.macKey = k, aead, deriveMACKey(k)
	s.quarterKey = deriveKey(k, quarterKeyLabel)
	return nil
}

// Close releases the file lock. It is safe to call once.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Partner is the partner's country code.
func (s *Store) Partner() string { return s.partner }

// PublicKey is the partner's ed25519 public key.
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// SigningKey is the partner's ed25519 private key, for signing releases.
func (s *Store) SigningKey() ed25519.PrivateKey { return s.priv }

// Count is the number of cases in the store (current versions only).
func (s *Store) Count() (int, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = getU64(tx.Bucket(bucketMeta), keyCount)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count cases: %w", err)
	}
	return int(n), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
