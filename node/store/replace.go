package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A removal is written as a tombstone: a version (caseKey, generation) with
// an empty value. It belongs to its import's generation, so it becomes
// visible at Commit together with the import's records, and an import that
// never commits leaves none behind (dropGeneration removes it with the rest).
// Readers treat a case whose newest committed version is a tombstone as
// absent; compaction deletes the older versions first and the tombstone last.

func isTombstone(v []byte) bool { return len(v) == 0 }

// removeMissing writes a tombstone, in this import's generation, for every
// case whose current version came from the replaced source and that the
// import did not write. It runs after insertAll, so "the import wrote it"
// is "a version of this generation exists".
func (imp *Import) removeMissing() error {
	var doomed, older [][]byte
	err := imp.st.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCases).Cursor()
		var plain []byte
		k, v := cur.First()
		for k != nil {
			prefix := clone(k[:caseKeyLen])
			var curKey, curVal []byte
			var versions [][]byte
			written := false
			for ; k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
				if len(k) != recordKeyLen {
					continue
				}
				switch g := generationOf(k); {
				case g == imp.gen:
					written = true
				case g < imp.gen:
					curKey, curVal = k, v
					versions = append(versions, clone(k))
				}
			}
			if written || curKey == nil || isTombstone(curVal) {
				continue
			}
			var err error
			if plain, err = open(imp.st.aead, plain[:0], curVal, curKey); err != nil {
				return fmt.Errorf("record %x does not decrypt (file damaged or tampered): %w", curKey[:4], err)
			}
			src, err := sourceOf(plain)
			if err != nil {
				return fmt.Errorf("record %x: %w", curKey[:4], err)
			}
			if src != imp.opts.Source {
				continue
			}
			var tomb recordKey
			copy(tomb[:], prefix)
			putGeneration(tomb[:], imp.gen)
			doomed = append(doomed, tomb[:])
			older = append(older, versions...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find the records of source %q to remove: %w", imp.opts.Source, err)
	}
	for b := doomed; len(b) > 0; {
		n := min(len(b), insertBatch)
		if err := imp.ctx.Err(); err != nil {
			return err
		}
		if err := imp.st.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketCases)
			for _, k := range b[:n] {
				if err := bk.Put(k, []byte{}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("write removals: %w", err)
		}
		imp.mu.Lock()
		imp.flushed += n
		imp.mu.Unlock()
		b = b[n:]
	}
	imp.stats.Removed = len(doomed)
	imp.superseded = append(imp.superseded, older...)
	imp.tombstones = doomed
	return nil
}
