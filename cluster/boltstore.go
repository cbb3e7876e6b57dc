package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Bucket names inside a BoltStore file. The file belongs to the store alone:
// the FSM keeps its own bbolt file, so a log compaction never contends with
// state-machine writes for bbolt's single writer lock.
const (
	bucketLogs   = "logs"
	bucketStable = "stable"
)

// ErrKeyNotFound is returned by BoltStore.Get and BoltStore.GetUint64 for a
// key that was never set. Its text is exactly "not found" because
// hashicorp/raft v1.8.0 recognises a missing key by comparing err.Error()
// with that string (api.go HasExistingState, raft.go requestVote), as
// raft-boltdb does.
var ErrKeyNotFound = errors.New("not found")

// boltOpenTimeout bounds the wait for bbolt's file lock, so a second process
// opening the same data directory fails with an error instead of hanging.
const boltOpenTimeout = 2 * time.Second

// BoltStore is a raft.LogStore and raft.StableStore kept in one bbolt file.
//
// We keep our own instead of hashicorp/raft-boltdb/v2 because that module
// does not build against raft v1.8.0 (it imports go-metrics/compat, which
// go-metrics v0.7.0 removed). See DESIGN-store-merkle.md.
//
// Reads go to disk on every call; callers should wrap the store with
// raft.NewLogCache(n, store) so that the leader's recent entries are served
// from memory during replication. BoltStore is safe for concurrent use
// (bbolt serialises writers and gives readers consistent snapshots).
type BoltStore struct {
	db   *bbolt.DB
	path string
}

var (
	_ raft.LogStore    = (*BoltStore)(nil)
	_ raft.StableStore = (*BoltStore)(nil)
)

// NewBoltStore opens (creating if needed) the bbolt file at path and makes
// sure its buckets exist. Close releases the file.
func NewBoltStore(path string) (*BoltStore, error) {
	return openBoltStore(path, boltOpenTimeout)
}

func openBoltStore(path string, lockTimeout time.Duration) (*BoltStore, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: lockTimeout,
		// Compaction deletes whole ranges of old entries, so the freelist
		// can be long; writing it on every append is I/O that buys only a
		// faster open. Without it bbolt rebuilds the freelist by scanning
		// the file when it opens, which for a log bounded by TrailingLogs
		// is quick. Neither option affects what a crash can lose: data and
		// meta pages are still synced on every commit.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init raft store %s: %w", path, err)
	}
	return &BoltStore{db: db, path: path}, nil
}

// Close closes the underlying bbolt file.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close raft store %s: %w", s.path, err)
	}
	return nil
}

// FirstIndex returns the lowest stored log index, or 0 when the log is empty.
func (s *BoltStore) FirstIndex() (uint64, error) {
	return s.edgeIndex(func(c *bbolt.Cursor) ([]byte, []byte) { return c.First() })
}

// LastIndex returns the highest stored log index, or 0 when the log is empty.
func (s *BoltStore) LastIndex() (uint64, error) {
	return s.edgeIndex(func(c *bbolt.Cursor) ([]byte, []byte) { return c.Last() })
}

func (s *BoltStore) edgeIndex(seek func(*bbolt.Cursor) ([]byte, []byte)) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		k, _ := seek(tx.Bucket([]byte(bucketLogs)).Cursor())
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("log key of %d bytes, want 8", len(k))
		}
		idx = binary.BigEndian.Uint64(k)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raft store %s: %w", s.path, err)
	}
	return idx, nil
}

// GetLog reads the entry at index into log. A missing index yields
// raft.ErrLogNotFound (unwrapped, since raft compares it with ==).
func (s *BoltStore) GetLog(index uint64, log *raft.Log) error {
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketLogs)).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeLog(v, log)
	})
	if errors.Is(err, raft.ErrLogNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raft store %s: get log %d: %w", s.path, index, err)
	}
	return nil
}

// StoreLog stores a single entry.
func (s *BoltStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores all entries in one bbolt transaction, so after a crash
// either the whole batch is on disk or none of it is.
func (s *BoltStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode everything before opening the write transaction: it keeps the
	// writer lock short and means a bad entry changes nothing.
	vals := make([][]byte, len(logs))
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raft store %s: store logs: entry %d is nil", s.path, i)
		}
		vals[i] = encodeLog(l)
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketLogs))
		// Entries are appended in index order: full pages on a split keep
		// the file and the pages each commit rewrites fewer.
		b.FillPercent = appendFillPercent
		for i, l := range logs {
			if err := b.Put(indexKey(l.Index), vals[i]); err != nil {
				return fmt.Errorf("put log %d: %w", l.Index, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store %s: store %d logs: %w", s.path, len(logs), err)
	}
	return nil
}

// DeleteRange deletes entries with min <= index <= max (both inclusive).
func (s *BoltStore) DeleteRange(minIdx, maxIdx uint64) error {
	if minIdx > maxIdx {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketLogs))
		// Collect first and delete after: deleting under a moving cursor
		// has historically skipped keys in bolt.
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(indexKey(minIdx)); k != nil; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k) > maxIdx {
				break
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete log %d: %w", binary.BigEndian.Uint64(k), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store %s: delete range [%d, %d]: %w", s.path, minIdx, maxIdx, err)
	}
	return nil
}

// Set stores val under key in the stable bucket.
func (s *BoltStore) Set(key, val []byte) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketStable)).Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("raft store %s: set %q: %w", s.path, key, err)
	}
	return nil
}

// Get returns a copy of the value under key, or ErrKeyNotFound.
func (s *BoltStore) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketStable)).Get(key)
		if v == nil {
			return ErrKeyNotFound
		}
		// bbolt values are only valid inside the transaction.
		val = append([]byte{}, v...)
		return nil
	})
	if errors.Is(err, ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raft store %s: get %q: %w", s.path, key, err)
	}
	return val, nil
}

// SetUint64 stores val big-endian under key.
func (s *BoltStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored by SetUint64, or 0 and ErrKeyNotFound.
func (s *BoltStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft store %s: key %q holds %d bytes, want 8 for a uint64", s.path, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// indexKey is the big-endian encoding of a log index, so bbolt's byte order
// is index order and First/Last/Seek work directly.
func indexKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, index)
}

// Log entry encoding, version 1:
//
//	version  1 byte (=1)
//	index    8 bytes big-endian
//	term     8 bytes big-endian
//	type     1 byte
//	appended 8 bytes big-endian int64 unix nanoseconds (0 = zero time)
//	data     uvarint length, bytes
//	ext      uvarint length, bytes
//	crc      4 bytes big-endian CRC-32C of everything above
//
// The checksum lets GetLog refuse a damaged entry instead of handing raft
// wrong bytes; the version byte leaves room for a later format.
const (
	logFormatV1    = 1
	logFixedHeader = 1 + 8 + 8 + 1 + 8
	logCRCSize     = 4
)

func encodeLog(l *raft.Log) []byte {
	n := logFixedHeader + binary.MaxVarintLen64*2 + len(l.Data) + len(l.Extensions) + logCRCSize
	buf := make([]byte, 0, n)
	buf = append(buf, logFormatV1)
	buf = binary.BigEndian.AppendUint64(buf, l.Index)
	buf = binary.BigEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var nanos int64
	if !l.AppendedAt.IsZero() {
		nanos = l.AppendedAt.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(nanos))
	buf = binary.AppendUvarint(buf, uint64(len(l.Data)))
	buf = append(buf, l.Data...)
	buf = binary.AppendUvarint(buf, uint64(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crc32.MakeTable(crc32.Castagnoli)))
}

// decodeLog fills l from b, copying byte slices out of b (which bbolt owns).
// It validates the whole encoding before touching l.
func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < logFixedHeader+2+logCRCSize {
		return fmt.Errorf("log entry of %d bytes is too short", len(b))
	}
	body, sum := b[:len(b)-logCRCSize], binary.BigEndian.Uint32(b[len(b)-logCRCSize:])
	if got := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)); got != sum {
		return fmt.Errorf("log entry checksum %08x, want %08x", got, sum)
	}
	if body[0] != logFormatV1 {
		return fmt.Errorf("log entry format version %d, want %d", body[0], logFormatV1)
	}
	index := binary.BigEndian.Uint64(body[1:9])
	term := binary.BigEndian.Uint64(body[9:17])
	typ := raft.LogType(body[17])
	nanos := int64(binary.BigEndian.Uint64(body[18:26]))
	rest := body[logFixedHeader:]
	data, rest, err := readChunk(rest, "data")
	if err != nil {
		return err
	}
	ext, rest, err := readChunk(rest, "extensions")
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("log entry has %d trailing bytes", len(rest))
	}
	*l = raft.Log{Index: index, Term: term, Type: typ, Data: data, Extensions: ext}
	if nanos != 0 {
		l.AppendedAt = time.Unix(0, nanos)
	}
	return nil
}

func readChunk(b []byte, field string) (chunk, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, fmt.Errorf("log entry %s length is malformed", field)
	}
	b = b[w:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("log entry %s length %d exceeds the %d bytes left", field, n, len(b))
	}
	if n == 0 {
		return nil, b, nil
	}
	return append([]byte(nil), b[:n]...), b[n:], nil
}

// appendFillPercent is the bbolt FillPercent of buckets whose keys only
// ever grow (raft log indexes, Merkle hashes, leaf indexes). bbolt splits
// a page at half by default, which suits random inserts; for appends it
// leaves every page half empty for good. Only the page layout changes:
// keys and values, and so StateHash and the snapshots' content, do not.
const appendFillPercent = 1.0
