package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

const maxNameLen = 256

func kvAD(name string) []byte { return append([]byte("roundtable/v1 kv/"), name...) }

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name %q must be 1–%d bytes", name, maxNameLen)
	}
	return nil
}

// Put stores v under name in the node's local key/value area, sealed under
// the data key (the name is bound as associated data). Names are not secret.
func (s *Store) Put(name string, v []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	sealed, err := seal(s.aead, nil, v, kvAD(name))
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Put([]byte(name), sealed)
	}); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

// Get returns the value stored under name, or an error wrapping ErrNotFound.
func (s *Store) Get(name string) ([]byte, error) {
	var sealed []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		sealed = clone(tx.Bucket(bucketKV).Get([]byte(name)))
		if sealed == nil {
			return ErrNotFound
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	v, err := open(s.aead, nil, sealed, kvAD(name))
	if err != nil {
		return nil, fmt.Errorf("get %s: value does not decrypt (file damaged?): %w", name, err)
	}
	return v, nil
}

// Delete removes name from the key/value area; deleting a missing name is
// not an error.
func (s *Store) Delete(name string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Delete([]byte(name))
	}); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
