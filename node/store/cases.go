package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"runtime"
	"sync"

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
//
// fn is called on the caller's goroutine, one case at a time, in key
// order, exactly as a sequential scan would; the decryption and decoding
// behind it run on every core (scanWorkers), a batch of records at a time
// (decrypting alone was 0.78 s of a 1.75 s release over a million records,
// issue 12). A case handed to fn is its own: fn may keep the pointer.
func (s *Store) Cases(ctx context.Context, fn func(*aggregate.Case) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		return s.scanCases(ctx, tx.Bucket(bucketCases).Cursor(), committed, fn)
	})
	if err != nil {
		return fmt.Errorf("read cases: %w", err)
	}
	return nil
}

// scanBatch is how many records one worker opens at a time.
const scanBatch = 512

// sealedBatch is a run of visible records in key order, as stored (the
// slices point into the read transaction's pages), and, once a worker has
// been at it, the cases they hold. cases[:n] decoded; err, if set, is the
// failure of record n.
type sealedBatch struct {
	keys, vals [][]byte
	cases      []aggregate.Case
	n          int
	err        error
	done       chan struct{}
}

// scanWorkers is how many goroutines open records for one scan.
func scanWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }

// scanCases is Cases inside its transaction: the cursor is walked on this
// goroutine (picking each case's newest committed version), batches are
// opened by workers, and fn gets the cases in order. Batches are handed
// to fn in the order they were cut, so the result is the sequential
// scan's; at most 2 × workers batches are in flight.
func (s *Store) scanCases(ctx context.Context, cur *bolt.Cursor, committed uint64, fn func(*aggregate.Case) error) error {
	workers := scanWorkers()
	work := make(chan *sealedBatch, workers)
	order := make(chan *sealedBatch, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var plain []byte
			for b := range work {
				plain = s.openBatch(b, plain)
				close(b.done)
			}
		})
	}
	// The cutter walks the cursor on its own goroutine: a bbolt cursor
	// belongs to its transaction, not to a goroutine, and the transaction
	// stays open until everything below has stopped.
	var cutErr error
	cutDone := make(chan struct{})
	go func() {
		defer close(cutDone)
		defer close(order)
		defer close(work)
		cutErr = cutBatches(ctx, cur, committed, func(b *sealedBatch) bool {
			// To a worker first: every batch fn's loop (or the drain
			// below) waits on is one a worker will finish.
			select {
			case work <- b:
			case <-stop:
				return false
			}
			select {
			case order <- b:
				return true
			case <-stop:
				return false
			}
		})
	}()
	err := func() error {
		for b := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			<-b.done
			for i := range b.n {
				if err := fn(&b.cases[i]); err != nil {
					return err
				}
			}
			if b.err != nil {
				return b.err
			}
		}
		return nil
	}()
	close(stop)
	for b := range order { // unblock the cutter and let workers finish
		<-b.done
	}
	<-cutDone
	wg.Wait()
	if err != nil {
		return err
	}
	return cutErr
}

// cutBatches walks the cases bucket and hands each case's newest committed
// version, in key order, to send in batches of scanBatch. Tombstones (a
// case removed by a replacing import) and uncommitted versions are left
// out. send returns false when the scan is abandoned.
func cutBatches(ctx context.Context, cur *bolt.Cursor, committed uint64, send func(*sealedBatch) bool) error {
	b := newSealedBatch()
	var bestKey, bestVal []byte
	keep := func() bool {
		if bestKey != nil && !isTombstone(bestVal) {
			b.keys, b.vals = append(b.keys, bestKey), append(b.vals, bestVal)
		}
		bestKey, bestVal = nil, nil
		if len(b.keys) < scanBatch {
			return true
		}
		ok := send(b)
		b = newSealedBatch()
		return ok
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
			if !keep() {
				return nil
			}
		}
		bestKey, bestVal = k, v // later keys of a case are newer
	}
	if !keep() || len(b.keys) == 0 {
		return nil
	}
	send(b)
	return nil
}

func newSealedBatch() *sealedBatch {
	return &sealedBatch{keys: make([][]byte, 0, scanBatch), vals: make([][]byte, 0, scanBatch), done: make(chan struct{})}
}

// openBatch decrypts and decodes b's records into b.cases, stopping at the
// first that fails; plain is a reusable buffer, returned for the next.
func (s *Store) openBatch(b *sealedBatch, plain []byte) []byte {
	b.cases = make([]aggregate.Case, len(b.keys))
	for i, k := range b.keys {
		var err error
		plain, err = open(s.aead, plain[:0], b.vals[i], k)
		if err != nil {
			b.err = fmt.Errorf("record %x does not decrypt (file damaged or tampered): %w", k[:4], err)
			return plain
		}
		b.cases[i] = aggregate.NewCase()
		if err := decodeCase(plain, &b.cases[i]); err != nil {
			b.err = fmt.Errorf("record %x: %w", k[:4], err)
			return plain
		}
		b.n = i + 1
	}
	return plain
}
