package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// A record's bucket key is caseKey‖generation: caseKey hides the case_id
// (HMAC-SHA256 under a key derived from the data key, truncated), and the
// big-endian generation sorts a case's versions oldest first.
const (
	caseKeyLen   = 16
	recordKeyLen = caseKeyLen + 8
)

type recordKey [recordKeyLen]byte

// caseKeyer computes case keys, reusing one HMAC state; not safe for
// concurrent use.
type caseKeyer struct {
	mac hash.Hash
	sum []byte
}

func newCaseKeyer(macKey []byte) *caseKeyer {
	return &caseKeyer{mac: hmac.New(sha256.New, macKey), sum: make([]byte, 0, sha256.Size)}
}

func (k *caseKeyer) key(caseID string, gen uint64) recordKey {
	k.mac.Reset()
	k.mac.Write([]byte(caseID))
	k.sum = k.mac.Sum(k.sum[:0])
	var rk recordKey
	copy(rk[:caseKeyLen], k.sum)
	putGeneration(rk[:], gen)
	return rk
}

func putGeneration(k []byte, gen uint64) { binary.BigEndian.PutUint64(k[caseKeyLen:], gen) }

func generationOf(k []byte) uint64 { return binary.BigEndian.Uint64(k[caseKeyLen:]) }

// Cases calls fn with the current version of every case, in an order that
// reveals nothing (the order of the hidden keys). It stops at fn's first
// error. fn runs inside a read transaction: it must not call the store's
// writing methods (Put, imports, Rekey), which would wait on it.
func (s *Store) Cases(ctx context.Context, fn func(*aggregate.Case) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		cur := tx.Bucket(bucketCases).Cursor()
		var bestKey, bestVal []byte
		var plain []byte
		emit := func() error {
			if bestKey == nil || isTombstone(bestVal) {
				bestKey, bestVal = nil, nil
				return nil // absent, or removed by a replacing import
			}
			var err error
			plain, err = open(s.aead, plain[:0], bestVal, bestKey)
			if err != nil {
				return fmt.Errorf("record %x does not decrypt (file damaged or tampered): %w", bestKey[:4], err)
			}
			c := aggregate.NewCase()
			if err := decodeCase(plain, &c); err != nil {
				return fmt.Errorf("record %x: %w", bestKey[:4], err)
			}
			bestKey, bestVal = nil, nil
			return fn(&c)
		}
		n := 0
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != recordKeyLen || generationOf(k) > committed {
				continue // an uncommitted version is invisible
			}
			if bestKey != nil && !bytes.Equal(bestKey[:caseKeyLen], k[:caseKeyLen]) {
				if err := emit(); err != nil {
					return err
				}
			}
			bestKey, bestVal = k, v // later keys of a case are newer
		}
		return emit()
	})
	if err != nil {
		return fmt.Errorf("read cases: %w", err)
	}
	return nil
}
