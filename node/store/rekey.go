package store

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"

	"roundtable/aggregate"
	"roundtable/keyseal"
)

// rekeyTemp is the file Rekey builds beside the store before renaming it
// over the store; Open removes one a crash left.
const rekeyTemp = FileName + ".rekey"

// rekeyBatch is the number of records re-sealed per write transaction.
const rekeyBatch = 64 * 1024

// Rekey replaces the store in dir with a copy re-sealed under a new random
// data key, wrapped under a key derived from newPassphrase with params and a
// fresh salt. Every sealed value — case records (under new case keys, since
// those derive from the data key), the signing key, the key/value area and
// the quarter book — is opened with the old data key and sealed with the
// new one into a new file (DIR/node.db.rekey), which is synced and renamed
// over node.db, and the directory synced. So the store file keeps neither
// the old wrapped key nor anything sealed under the old data key: an old
// passphrase, or the old data key itself, opens nothing in it.
//
// A crash at any point leaves node.db either the old store (old
// passphrase) or the new one (new passphrase); Open removes a half-built
// copy. The old store is held open, and so locked, throughout: Rekey fails
// with ErrInUse while a node serves from it, and nothing can write to the
// old file while it is copied. It accepts a store sealed below keyseal's
// floor, which is how such a store is strengthened.
//
// The quarter book's person-year key is carried over (sealed under the new
// data key), not rotated: its entries hold no person, so their bucket keys
// cannot be recomputed. DESIGN.md says what that leaves.
func Rekey(ctx context.Context, dir string, oldPassphrase, newPassphrase []byte, params KDFParams) error {
	return rekey(ctx, dir, oldPassphrase, newPassphrase, params, rekeyHooks{})
}

// rekeyHooks let a test stop a rekey at a named stage (to SIGKILL it there)
// and use small batches.
type rekeyHooks struct {
	batch int
	pause func(stage string)
}

func (h rekeyHooks) at(stage string) {
	if h.pause != nil {
		h.pause(stage)
	}
}

func rekey(ctx context.Context, dir string, oldPass, newPass []byte, params KDFParams, h rekeyHooks) error {
	if len(newPass) == 0 {
		return errors.New("rekey: the new passphrase is empty")
	}
	k, err := newKDF(params)
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	old, err := openStore(dir, oldPass, true)
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	defer old.Close()
	tmp := filepath.Join(dir, rekeyTemp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rekey: %w", err)
	}
	if err := old.copyResealed(ctx, tmp, k, newPass, h); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rekey: %w", err)
	}
	h.at("copied")
	// Prove the copy opens, and with the new passphrase, before it
	// replaces anything.
	check, err := unlock(tmp, newPass)
	if err != nil || !check.pub.Equal(old.pub) {
		os.Remove(tmp)
		return fmt.Errorf("rekey: the re-sealed copy does not open with the new passphrase: %v", err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rekey: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rekey: replace %s: %w", FileName, err)
	}
	h.at("renamed")
	if err := keyseal.SyncDir(dir); err != nil {
		return fmt.Errorf("rekey: the new store is in place, but: %w", err)
	}
	return nil
}

// resealer opens values under the store's data key and seals them under a
// new one.
type resealer struct {
	from, to cipher.AEAD
	plain    []byte
}

func (r *resealer) reseal(sealed, oldAD, newAD []byte) ([]byte, error) {
	var err error
	if r.plain, err = open(r.from, r.plain[:0], sealed, oldAD); err != nil {
		return nil, err
	}
	return seal(r.to, nil, r.plain, newAD)
}

// copyResealed writes the store's content, re-sealed under a new data key
// wrapped with k and passphrase, to a new bbolt file at path, synced.
func (s *Store) copyResealed(ctx context.Context, path string, k kdf, passphrase []byte, h rekeyHooks) error {
	dataKey := make([]byte, keyLen)
	if _, err := rand.Read(dataKey); err != nil {
		return fmt.Errorf("data key: %w", err)
	}
	wrapped, err := wrapKey(k, passphrase, dataKey)
	if err != nil {
		return err
	}
	aead, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return err
	}
	r := &resealer{from: s.aead, to: aead}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := openBolt(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := s.copyMeta(db, r, k, wrapped); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if err := s.copyCases(ctx, db, r, newCaseKeyer(deriveMACKey(dataKey)), h); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	if err := s.copySealed(db, r, bucketKV, kvAD); err != nil {
		return fmt.Errorf("key/value area: %w", err)
	}
	if err := s.copySealed(db, r, bucketQuarters, func(k string) []byte { return quarterAD([]byte(k)) }); err != nil {
		return fmt.Errorf("quarter book: %w", err)
	}
	if err := db.Sync(); err != nil {
		return err
	}
	return db.Close()
}

// copyMeta writes the new file's buckets and meta: the same partner, public
// key and counters, the new KDF record and wrapped key, the signing key and
// the quarter book key sealed under the new data key.
func (s *Store) copyMeta(db *bolt.DB, r *resealer, k kdf, wrapped []byte) error {
	sealedPriv, err := seal(r.to, nil, s.priv.Seed(), adSigningKey)
	if err != nil {
		return err
	}
	sealedQuarter, err := seal(r.to, nil, s.quarterKey, adQuarterKey)
	if err != nil {
		return err
	}
	var committed, count uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if getU64(m, keyPending) != 0 || getU64(m, keyCompact) != 0 {
			return errors.New("an import is unfinished (open the store once to finish it)")
		}
		committed, count = getU64(m, keyCommitted), getU64(m, keyCount)
		return nil
	}); err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketCases, bucketKV, bucketQuarters} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for _, kv := range [][2][]byte{
			{keyVersion, u64(formatVersion)}, {keyPartner, []byte(s.partner)}, {keyKDF, k.marshal()},
			{keyWrapped, wrapped}, {keyPublic, []byte(ed25519.PublicKey(s.pub))}, {keySigning, sealedPriv},
			{keyQuarterKey, sealedQuarter}, {keyCommitted, u64(committed)}, {keyCount, u64(count)},
		} {
			if err := m.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyCases re-seals the current version of every case (Cases' view: the
// newest committed version, tombstoned cases left out) under its new case
// key, in its own generation, batch by batch.
func (s *Store) copyCases(ctx context.Context, db *bolt.DB, r *resealer, keyer *caseKeyer, h rekeyHooks) error {
	batch := h.batch
	if batch <= 0 {
		batch = rekeyBatch
	}
	type kv struct {
		k recordKey
		v []byte
	}
	var pending []kv
	written := 0
	flush := func() error {
		slices.SortFunc(pending, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketCases)
			b.FillPercent = 0.9
			for _, e := range pending {
				if err := b.Put(e.k[:], e.v); err != nil {
					return err
				}
			}
			return nil
		})
		written += len(pending)
		pending = pending[:0]
		if err == nil && written > 0 {
			h.at("copying")
		}
		return err
	}
	err := s.current(func(k, v []byte) error {
		plain, err := open(s.aead, r.plain[:0], v, k)
		if err != nil {
			return fmt.Errorf("record %x does not decrypt (file damaged or tampered): %w", k[:4], err)
		}
		r.plain = plain
		c := aggregate.NewCase()
		if err := decodeCase(plain, &c); err != nil {
			return fmt.Errorf("record %x: %w", k[:4], err)
		}
		nk := keyer.key(c.CaseID, generationOf(k))
		sealed, err := seal(r.to, nil, plain, nk[:])
		if err != nil {
			return err
		}
		pending = append(pending, kv{nk, sealed})
		if len(pending) >= batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// current calls fn with the bucket key and sealed value of the current
// version of every case that is not removed. fn must not write to s.
func (s *Store) current(fn func(k, v []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		cur := tx.Bucket(bucketCases).Cursor()
		var bestKey, bestVal []byte
		emit := func() error {
			k, v := bestKey, bestVal
			bestKey, bestVal = nil, nil
			if k == nil || isTombstone(v) {
				return nil
			}
			return fn(k, v)
		}
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if len(k) != recordKeyLen || generationOf(k) > committed {
				continue
			}
			if bestKey != nil && !bytes.Equal(bestKey[:caseKeyLen], k[:caseKeyLen]) {
				if err := emit(); err != nil {
					return err
				}
			}
			bestKey, bestVal = k, v
		}
		return emit()
	})
}

// copySealed re-seals every value of a bucket whose associated data is
// ad(key), keeping the keys.
func (s *Store) copySealed(db *bolt.DB, r *resealer, bucket []byte, ad func(string) []byte) error {
	type kv struct{ k, v []byte }
	var out []kv
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			sealed, err := r.reseal(v, ad(string(k)), ad(string(k)))
			if err != nil {
				return fmt.Errorf("entry %x does not decrypt (file damaged or tampered)", k[:min(len(k), 4)])
			}
			out = append(out, kv{clone(k), sealed})
			return nil
		})
	}); err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, e := range out {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
}
