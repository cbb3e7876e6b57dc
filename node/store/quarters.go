package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// The quarter book: for each person-year a release has counted, the
// quarter it was counted in (aggregate.QuarterBook). A person's quarter is
// fixed the first time a release includes them and never changes, so later
// edits of their cases cannot make a second release of the same year count
// them in another quarter. DESIGN.md ("Fixed quarters") has the reasoning
// about crashes and the release workflow.
//
// Bucket key: HMAC-SHA256(quarterKey, year ‖ person)[:16], so the file shows
// neither the person nor the year; value: sealed (version, year, quarter)
// with the bucket key as associated data.

var bucketQuarters = []byte("quarters")

const (
	personYearKeyLen = 16
	quarterRecordV1  = 1
)

var (
	quarterKeyLabel = []byte("roundtable/v1 person-year mac key")
	adQuarter       = []byte("roundtable/v1 quarter/")
)

type personYearKey [personYearKeyLen]byte

// personYearKeyer computes bucket keys, reusing one HMAC state; not safe
// for concurrent use.
type personYearKeyer struct {
	mac hash.Hash
	buf []byte
}

func newPersonYearKeyer(key []byte) *personYearKeyer {
	return &personYearKeyer{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, sha256.Size)}
}

func (k *personYearKeyer) key(person string, year int) personYearKey {
	var y [8]byte
	binary.BigEndian.PutUint64(y[:], uint64(year))
	k.mac.Reset()
	k.mac.Write(y[:])
	k.mac.Write([]byte(person))
	k.buf = k.mac.Sum(k.buf[:0])
	var out personYearKey
	copy(out[:], k.buf)
	return out
}

func quarterAD(k []byte) []byte { return append(append([]byte(nil), adQuarter...), k...) }

// Quarters is the quarter book as read at one moment, in memory. It is not
// safe for concurrent use.
type Quarters struct {
	keyer *personYearKeyer
	fixed map[personYearKey]uint8
}

var _ aggregate.QuarterBook = (*Quarters)(nil)

// Quarter is the quarter (1–4) person was fixed to in year, or 0.
func (q *Quarters) Quarter(person string, year int) int {
	return int(q.fixed[q.keyer.key(person, year)])
}

// Len is the number of person-years fixed, over all years.
func (q *Quarters) Len() int { return len(q.fixed) }

// QuarterBook reads every fixed quarter into memory.
func (s *Store) QuarterBook() (*Quarters, error) {
	q := &Quarters{keyer: newPersonYearKeyer(s.quarterKey), fixed: map[personYearKey]uint8{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQuarters).ForEach(func(k, v []byte) error {
			_, quarter, err := s.openQuarter(k, v)
			if err != nil {
				return err
			}
			q.fixed[personYearKey(k)] = uint8(quarter)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read quarter book: %w", err)
	}
	return q, nil
}

func (s *Store) openQuarter(k, v []byte) (year, quarter int, err error) {
	if len(k) != personYearKeyLen {
		return 0, 0, fmt.Errorf("quarter entry %x has a malformed key", k)
	}
	plain, err := open(s.aead, nil, v, quarterAD(k))
	if err != nil || len(plain) != 4 || plain[0] != quarterRecordV1 || plain[3] < 1 || plain[3] > 4 {
		return 0, 0, fmt.Errorf("quarter entry %x does not decrypt (file damaged or tampered)", k[:4])
	}
	return int(binary.BigEndian.Uint16(plain[1:3])), int(plain[3]), nil
}

// ErrQuarterConflict is returned by FixQuarters when a person-year is
// already fixed to another quarter: a second release would count the
// person twice in one year.
var ErrQuarterConflict = errors.New("a person is already fixed to another quarter of that year")

// FixQuarters records the assignments in one transaction, which is synced
// to disk before it returns. An assignment that is already recorded with
// the same quarter is kept; one recorded with another quarter fails the
// whole call with ErrQuarterConflict and records nothing, so whatever
// raced the caller's tabulation, a person can never be fixed to two
// quarters of one year.
func (s *Store) FixQuarters(as []aggregate.Assignment) error {
	if len(as) == 0 {
		return nil
	}
	keyer := newPersonYearKeyer(s.quarterKey)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuarters)
		for _, a := range as {
			if a.Quarter < 1 || a.Quarter > 4 || a.Year < aggregate.MinYear || a.Year > aggregate.MaxYear || a.Person == "" {
				return fmt.Errorf("assignment of year %d to quarter %d is malformed", a.Year, a.Quarter)
			}
			k := keyer.key(a.Person, a.Year)
			if old := b.Get(k[:]); old != nil {
				_, q, err := s.openQuarter(k[:], old)
				if err != nil {
					return err
				}
				if q != a.Quarter {
					return fmt.Errorf("%w (year %d: fixed to Q%d, now asked for Q%d)", ErrQuarterConflict, a.Year, q, a.Quarter)
				}
				continue
			}
			plain := []byte{quarterRecordV1, 0, 0, byte(a.Quarter)}
			binary.BigEndian.PutUint16(plain[1:3], uint16(a.Year))
			sealed, err := seal(s.aead, nil, plain, quarterAD(k[:]))
			if err != nil {
				return err
			}
			if err := b.Put(clone(k[:]), sealed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fix quarters: %w", err)
	}
	return nil
}

// ensureQuarters adds the quarter book's bucket to a store made before it
// existed.
func (s *Store) ensureQuarters() error {
	var have bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		have = tx.Bucket(bucketQuarters) != nil
		return nil
	}); err != nil || have {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketQuarters)
		return err
	})
}
