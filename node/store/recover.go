package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// recover finishes what a crash interrupted: it drops the versions of an
// import that never committed, then compacts superseded versions if a
// committed import did not get to.
func (s *Store) recover() error {
	var pending, compact uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		pending, compact = getU64(m, keyPending), getU64(m, keyCompact)
		return nil
	}); err != nil {
		return err
	}
	// Spill files hold only sealed records, but they are useless after a
	// crash and can be large.
	if left, err := filepath.Glob(filepath.Join(s.dir, "import-*.spill")); err == nil {
		for _, f := range left {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	// A copy that a crashed Rekey did not rename holds everything sealed
	// under a passphrase that was never put in use.
	if err := os.Remove(filepath.Join(s.dir, rekeyTemp)); err == nil {
		s.log.Info("removed the copy of an interrupted rekey; the store keeps its old passphrase")
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if pending != 0 {
		s.log.Info("discarding an import that did not commit", "generation", pending)
		if err := s.dropGeneration(pending); err != nil {
			return err
		}
	}
	if compact != 0 {
		if err := s.compact(); err != nil {
			return err
		}
		return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyCompact) })
	}
	return nil
}

// dropGeneration deletes every version written by generation gen (which
// must not be committed) and the pending marker, in bounded transactions.
func (s *Store) dropGeneration(gen uint64) error {
	err := s.sweep(func(k, _, _ []byte) bool { return generationOf(k) == gen })
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if getU64(m, keyPending) == gen {
			return m.Delete(keyPending)
		}
		return nil
	})
}

// compact deletes every version older than the newest committed version of
// its case, then the tombstones that are a case's newest version.
func (s *Store) compact() error {
	return s.sweep(func(k, v, next []byte) bool {
		// Versions of a case are adjacent and oldest first: a version is
		// superseded when the next key belongs to the same case. A
		// tombstone is the newest and so comes after the versions it
		// removes, in the same deletion order.
		if next != nil && bytes.Equal(k[:caseKeyLen], next[:caseKeyLen]) {
			return true
		}
		return isTombstone(v)
	})
}

// sweep deletes keys of the cases bucket for which drop(key, value, nextKey)
// holds, scanning in transactions of at most recoveryBatch deletions so a
// large store never needs one huge transaction.
func (s *Store) sweep(drop func(k, v, next []byte) bool) error {
	var from []byte
	for {
		var doomed [][]byte
		var resume []byte
		err := s.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bucketCases).Cursor()
			k, v := cur.First()
			if from != nil {
				k, v = cur.Seek(from)
			}
			for k != nil {
				next, nextV := cur.Next()
				if len(k) == recordKeyLen && (next == nil || len(next) == recordKeyLen) && drop(k, v, next) {
					doomed = append(doomed, clone(k))
					if len(doomed) >= recoveryBatch {
						resume = clone(next)
						return nil
					}
				}
				k, v = next, nextV
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(doomed) > 0 {
			if err := s.deleteKeys(doomed); err != nil {
				return err
			}
		}
		if resume == nil {
			return nil
		}
		from = resume
	}
}

// deleteKeys deletes keys from the cases bucket in bounded transactions.
func (s *Store) deleteKeys(keys [][]byte) error {
	for len(keys) > 0 {
		n := min(len(keys), recoveryBatch)
		if err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketCases)
			for _, k := range keys[:n] {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
