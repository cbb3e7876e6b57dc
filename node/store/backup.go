package store

import (
	"fmt"
	"io"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backups. The store file is sealed record by record, so a copy of it is a
// backup that opens only with the passphrase. A consistent copy of a file
// that a node keeps writing is bbolt's online copy: one read transaction
// written out with Tx.WriteTo, while imports and releases go on.

// CopyInfo describes a copy of the store file.
type CopyInfo struct {
	Bytes   int64  // the length of the copy
	Partner string // the store's partner
	Cases   int    // cases in the copy (current versions)
	// State lists the names in the copy's key/value area, such as a
	// release in flight; their values stay sealed.
	State []string
}

// Copy calls fn inside one read transaction with a description of the
// store as that transaction sees it and a function that writes exactly
// info.Bytes bytes of it to w: a consistent copy of the file as the last
// committed transaction left it, still sealed, while imports and releases
// go on. The write function is valid only until fn returns.
func (s *Store) Copy(fn func(info CopyInfo, write func(w io.Writer) (int64, error)) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		info := CopyInfo{Partner: s.partner, Bytes: tx.Size(), Cases: int(getU64(tx.Bucket(bucketMeta), keyCount))}
		if err := tx.Bucket(bucketKV).ForEach(func(k, _ []byte) error {
			info.State = append(info.State, string(k))
			return nil
		}); err != nil {
			return err
		}
		return fn(info, tx.WriteTo)
	})
	if err != nil {
		return fmt.Errorf("copy store %s: %w", s.dir, err)
	}
	return nil
}

// OpenReadOnly opens the store in dir without taking it for writing, for a
// backup of a node that is not running: nothing in the file changes, and
// what a crashed import left is copied as it is (the restored store's Open
// removes it). The passphrase is checked as Open checks it. Writing
// methods fail.
func OpenReadOnly(dir string, passphrase []byte) (*Store, error) {
	path := filepath.Join(dir, FileName)
	st, err := unlock(path, passphrase)
	if err != nil {
		return nil, err
	}
	st.dir = dir
	if st.db, err = openBolt(path, true); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// adAside binds a value sealed with SealAside to its name.
func adAside(name string) []byte { return append([]byte("roundtable/v1 aside/"), name...) }

// SealAside seals v under the store's data key, for a secret that is kept
// outside the store but must open only with it (a backup's copy of the
// node's TLS key). name is bound as associated data.
func (s *Store) SealAside(name string, v []byte) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return seal(s.aead, nil, v, adAside(name))
}

// OpenAside opens what SealAside sealed under the same name.
func (s *Store) OpenAside(name string, sealed []byte) ([]byte, error) {
	v, err := open(s.aead, nil, sealed, adAside(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: it was not sealed by this store under this name: %w", name, err)
	}
	return v, nil
}
