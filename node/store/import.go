package store

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// DefaultBatchSize is how many sealed records an import sorts in memory
// before spilling them as a sorted run (≈ 150 bytes each; at most three
// batches are held at once).
const DefaultBatchSize = 65536

// insertBatch is how many records one write transaction inserts: large
// enough that fsyncs are few, small enough that a transaction's dirty pages
// stay a few tens of MB.
const insertBatch = 65536

// ImportStats says what a committed import changed.
type ImportStats struct {
	Added    int // case_ids new to the store
	Updated  int // case_ids that replaced a stored version
	Repeated int // rows whose case_id already came earlier in this import (the last one wins)
	Removed  int // records of the replaced source that the import no longer holds
}

// MaxSourceLen bounds a source name.
const MaxSourceLen = 64

// ImportOptions say where an import's records come from.
type ImportOptions struct {
	// Source is stored with every record of the import ("" for none), so a
	// later import can replace the whole source.
	Source string
	// Replace makes the import the whole of Source: at Commit, records whose
	// current version came from Source and that the import does not hold
	// are removed, in the same all-or-nothing generation. Needs a Source.
	Replace bool
}

// ErrImportBusy is BeginImport's answer while another import runs: one
// import at a time, so the caller may try again once it has finished.
var ErrImportBusy = errors.New("another import is in progress on this store")

// Check says what is wrong with the options, naming the flag.
func (o ImportOptions) Check() error {
	if len(o.Source) > MaxSourceLen {
		return fmt.Errorf("source name %q is longer than %d bytes", o.Source, MaxSourceLen)
	}
	for _, r := range o.Source {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("source name %q has a control character", o.Source)
		}
	}
	if o.Replace && o.Source == "" {
		return errors.New("replace needs a source name (--source NAME): the records it may remove are that source's")
	}
	return nil
}

// Import is one all-or-nothing import: records added to it become visible
// together at Commit, or never. It is not safe for concurrent use.
//
// Records are sealed as they are added, sorted by bucket key in batches,
// and spilled as sorted runs to a temporary file beside the store (it holds
// only sealed records under hidden keys). Commit merges the runs and
// inserts them in key order, so the B+tree is written left to right once
// instead of every batch touching every page. DESIGN.md has the reasons.
type Import struct {
	st    *Store
	ctx   context.Context
	gen   uint64
	opts  ImportOptions
	keyer *caseKeyer
	batch []aggregate.Case
	size  int

	sorted chan []aggregate.Case
	done   chan struct{}

	// Owned by the sorter goroutine until done is closed.
	spill   *os.File
	spillW  *bufio.Writer
	runs    []run
	last    []entry // newest sorted batch, kept in memory
	sortErr error

	stats      ImportStats
	superseded [][]byte
	tombstones [][]byte // removals (Replace); deleted after superseded versions
	fresh      bool     // the store held no records when the inserts began

	mu      sync.Mutex
	flushed int

	finished bool
}

type entry struct {
	key recordKey
	seq int // position in the batch: on equal keys the later row wins
	val []byte
}

// run is one sorted batch in the spill file.
type run struct{ off, len int64 }

// BeginImport starts an import as a new generation, with no source. Only
// one import may be open at a time per store.
func (s *Store) BeginImport(ctx context.Context) (*Import, error) {
	return s.BeginImportWith(ctx, ImportOptions{})
}

// BeginImportWith starts an import from a named source, which may replace
// that source's records (see ImportOptions).
func (s *Store) BeginImportWith(ctx context.Context, opts ImportOptions) (*Import, error) {
	return s.beginImport(ctx, DefaultBatchSize, opts)
}

func (s *Store) beginImport(ctx context.Context, batchSize int, opts ImportOptions) (*Import, error) {
	if err := opts.Check(); err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.importing {
		return nil, fmt.Errorf("begin import: %w", ErrImportBusy)
	}
	var gen uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		gen = getU64(m, keyCommitted) + 1
		return m.Put(keyPending, u64(gen))
	})
	if err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	s.importing = true
	imp := &Import{
		st: s, ctx: ctx, gen: gen, opts: opts, keyer: newCaseKeyer(s.macKey), size: batchSize,
		batch:  make([]aggregate.Case, 0, batchSize),
		sorted: make(chan []aggregate.Case, 1), done: make(chan struct{}),
	}
	go imp.sorter()
	return imp, nil
}

func spillPath(dir string, gen uint64) string {
	return filepath.Join(dir, "import-"+strconv.FormatUint(gen, 10)+".spill")
}

// Add queues a copy of c (which must already be valid). A background
// goroutine seals, sorts and spills full batches while the caller parses
// on, so two cores share the work; its errors are returned by Commit.
func (imp *Import) Add(c *aggregate.Case) error {
	if imp.finished {
		return errors.New("import: Add after Commit or Abort")
	}
	imp.batch = append(imp.batch, *c)
	if len(imp.batch) >= imp.size {
		return imp.flush()
	}
	return nil
}

func (imp *Import) flush() error {
	if err := imp.ctx.Err(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if len(imp.batch) == 0 {
		return nil
	}
	imp.sorted <- imp.batch // the sorter drains even after an error, so this never blocks for good
	imp.batch = make([]aggregate.Case, 0, imp.size)
	return nil
}

// Flushed is the number of records written to the store file so far; they
// stay invisible to readers until Commit.
func (imp *Import) Flushed() int {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	return imp.flushed
}

// sorter seals and sorts each batch, keeps the last of repeated keys, and
// spills the previous batch as a run so only the newest stays in memory.
func (imp *Import) sorter() {
	defer close(imp.done)
	for cases := range imp.sorted {
		if imp.sortErr != nil {
			continue // drain so Add never blocks after a failure
		}
		b, err := imp.sealBatch(cases)
		if err != nil {
			imp.sortErr = err
			continue
		}
		b = imp.sortBatch(b)
		if imp.last != nil {
			if err := imp.spillRun(imp.last); err != nil {
				imp.sortErr = fmt.Errorf("spill: %w", err)
				continue
			}
		}
		imp.last = b
	}
}

// sealBatch encrypts each case under the data key with its bucket key as
// associated data, so a sealed record cannot be moved to another key.
func (imp *Import) sealBatch(cases []aggregate.Case) ([]entry, error) {
	out := make([]entry, len(cases))
	var plain []byte
	// One arena per batch instead of one allocation per record; a slice
	// into an outgrown arena keeps that arena alive, which is correct.
	arena := make([]byte, 0, len(cases)*160)
	ns := imp.st.aead.NonceSize()
	nonces := make([]byte, ns*len(cases))
	if _, err := rand.Read(nonces); err != nil {
		return nil, fmt.Errorf("nonces: %w", err)
	}
	for i := range cases {
		c := &cases[i]
		key := imp.keyer.key(c.CaseID, imp.gen)
		plain = encodeRecord(plain[:0], c, imp.opts.Source)
		start := len(arena)
		arena = sealWithNonce(imp.st.aead, arena, nonces[i*ns:(i+1)*ns], plain, key[:])
		out[i] = entry{key: key, seq: i, val: arena[start:len(arena):len(arena)]}
	}
	return out, nil
}

func (imp *Import) sortBatch(b []entry) []entry {
	slices.SortFunc(b, func(x, y entry) int {
		if c := bytes.Compare(x.key[:], y.key[:]); c != 0 {
			return c
		}
		return x.seq - y.seq
	})
	out := b[:0]
	for i := range b {
		if i+1 < len(b) && b[i].key == b[i+1].key {
			imp.stats.Repeated++ // the later row of the same case_id wins
			continue
		}
		out = append(out, b[i])
	}
	return out
}

func (imp *Import) spillRun(b []entry) error {
	if imp.spill == nil {
		f, err := os.OpenFile(spillPath(imp.st.dir, imp.gen), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		imp.spill, imp.spillW = f, bufio.NewWriterSize(f, 1<<20)
	}
	var off int64
	if n := len(imp.runs); n > 0 {
		off = imp.runs[n-1].off + imp.runs[n-1].len
	}
	var n int64
	var hdr [recordKeyLen + binary.MaxVarintLen64]byte
	for _, e := range b {
		copy(hdr[:], e.key[:])
		h := binary.PutUvarint(hdr[recordKeyLen:], uint64(len(e.val))) + recordKeyLen
		imp.spillW.Write(hdr[:h])
		imp.spillW.Write(e.val)
		n += int64(h + len(e.val))
	}
	if err := imp.spillW.Flush(); err != nil {
		return err
	}
	imp.runs = append(imp.runs, run{off: off, len: n})
	return nil
}

// Commit writes every record and then makes the whole import visible in
// one small transaction; afterwards it deletes the versions it superseded.
func (imp *Import) Commit() (ImportStats, error) {
	if imp.finished {
		return ImportStats{}, errors.New("import: Commit after Commit or Abort")
	}
	err := imp.flush()
	imp.stop()
	if err == nil {
		err = imp.sortErr
	}
	if err == nil {
		err = imp.insertAll()
	}
	if err == nil && imp.opts.Replace {
		err = imp.removeMissing()
	}
	if err != nil {
		if cerr := imp.cleanup(); cerr != nil {
			return ImportStats{}, fmt.Errorf("import: %w (and cleaning up: %v)", err, cerr)
		}
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	st := imp.st
	err = st.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyCommitted, u64(imp.gen)); err != nil {
			return err
		}
		if err := m.Put(keyCount, u64(getU64(m, keyCount)+uint64(imp.stats.Added)-uint64(imp.stats.Removed))); err != nil {
			return err
		}
		if len(imp.superseded)+len(imp.tombstones) > 0 {
			if err := m.Put(keyCompact, u64(imp.gen)); err != nil {
				return err
			}
		}
		return m.Delete(keyPending)
	})
	if err != nil {
		cerr := imp.cleanup()
		return ImportStats{}, fmt.Errorf("import: commit: %w", errors.Join(err, cerr))
	}
	imp.release()
	if len(imp.superseded)+len(imp.tombstones) > 0 {
		// Older versions first: a tombstone deleted before them would
		// bring them back.
		if err := st.deleteKeys(append(imp.superseded, imp.tombstones...)); err != nil {
			// Committed already; Open compacts what is left.
			st.log.Warn("compacting superseded versions failed; retried at next open", "err", err)
		} else if err := st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyCompact) }); err != nil {
			st.log.Warn("clearing compaction marker failed", "err", err)
		}
	}
	return imp.stats, nil
}

// insertAll merges the spilled runs and the last batch in key order and
// inserts them in transactions of insertBatch records.
func (imp *Import) insertAll() error {
	srcs := make([]*runReader, 0, len(imp.runs)+1)
	for i, r := range imp.runs {
		srcs = append(srcs, &runReader{idx: i, r: bufio.NewReaderSize(io.NewSectionReader(imp.spill, r.off, r.len), 256*1024)})
	}
	srcs = append(srcs, &runReader{idx: len(imp.runs), mem: imp.last})
	m, err := newMerger(srcs)
	if err != nil {
		return err
	}
	// Into an empty store every record is new: skip the per-key lookups.
	if err := imp.st.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketCases).Cursor().First()
		imp.fresh = k == nil
		return nil
	}); err != nil {
		return err
	}
	// The merge runs on its own goroutine so reading and merging runs
	// overlaps with the (single-threaded) B+tree writes.
	batches := make(chan []entry, 1)
	quit := make(chan struct{})
	var mergeErr error
	var merged ImportStats
	go func() {
		defer close(batches)
		buf := make([]entry, 0, insertBatch)
		for {
			e, ok, err := m.next(&merged)
			if err != nil {
				mergeErr = err
				return
			}
			if ok {
				buf = append(buf, e)
			}
			if len(buf) == cap(buf) || (!ok && len(buf) > 0) {
				select {
				case batches <- buf:
				case <-quit:
					return
				}
				buf = make([]entry, 0, insertBatch)
			}
			if !ok {
				return
			}
		}
	}()
	var insertErr error
	for b := range batches {
		if insertErr != nil {
			continue
		}
		if insertErr = imp.ctx.Err(); insertErr == nil {
			insertErr = imp.insert(b)
		}
		if insertErr != nil {
			close(quit)
		}
	}
	imp.stats.Repeated += merged.Repeated
	if insertErr != nil {
		return insertErr
	}
	return mergeErr
}

// insert writes sorted, unique entries in one transaction, classifying
// each as added or updated by the versions already stored.
func (imp *Import) insert(b []entry) error {
	var added, updated int
	var superseded [][]byte
	err := imp.st.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCases)
		bk.FillPercent = 0.9 // keys arrive in order: pack pages fuller than the default half
		cur := bk.Cursor()
		for i := range b {
			k := b[i].key[:]
			var old []byte
			removed := false // the newest old version is a removal
			if !imp.fresh {
				for ck, cv := cur.Seek(k[:caseKeyLen]); ck != nil && bytes.HasPrefix(ck, k[:caseKeyLen]); ck, cv = cur.Next() {
					if generationOf(ck) < imp.gen {
						old, removed = clone(ck), len(cv) == 0
					}
				}
			}
			if old != nil {
				superseded = append(superseded, old)
			}
			if old != nil && !removed {
				updated++
			} else {
				added++
			}
			if err := bk.Put(k, b[i].val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	imp.stats.Added += added
	imp.stats.Updated += updated
	imp.superseded = append(imp.superseded, superseded...)
	imp.mu.Lock()
	imp.flushed += len(b)
	imp.mu.Unlock()
	return nil
}

// Abort discards everything added; the store is as it was before
// BeginImport. Calling Abort after Commit or Abort does nothing.
func (imp *Import) Abort() error {
	if imp.finished {
		return nil
	}
	imp.stop()
	return imp.cleanup()
}

func (imp *Import) stop() {
	imp.finished = true
	close(imp.sorted)
	<-imp.done
}

func (imp *Import) cleanup() error {
	defer imp.release()
	if imp.Flushed() == 0 {
		return imp.st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyPending) })
	}
	if err := imp.st.dropGeneration(imp.gen); err != nil {
		return fmt.Errorf("import: discard generation %d: %w", imp.gen, err)
	}
	return nil
}

// release removes the spill file and lets the next import begin.
func (imp *Import) release() {
	if imp.spill != nil {
		imp.spill.Close()
		os.Remove(imp.spill.Name())
		imp.spill = nil
	}
	imp.last, imp.runs = nil, nil
	imp.st.mu.Lock()
	imp.st.importing = false
	imp.st.mu.Unlock()
}

// runReader yields the entries of one sorted run, from the spill file or
// from memory.
type runReader struct {
	idx int
	r   *bufio.Reader
	mem []entry
	cur entry
}

func (rr *runReader) advance() (bool, error) {
	if rr.r == nil {
		if len(rr.mem) == 0 {
			return false, nil
		}
		rr.cur, rr.mem = rr.mem[0], rr.mem[1:]
		return true, nil
	}
	if _, err := io.ReadFull(rr.r, rr.cur.key[:]); err == io.EOF {
		return false, nil
	} else if err != nil {
		return false, err
	}
	n, err := binary.ReadUvarint(rr.r)
	if err != nil || n > 1<<20 {
		return false, fmt.Errorf("spill file is damaged: %v", err)
	}
	rr.cur.val = make([]byte, n)
	_, err = io.ReadFull(rr.r, rr.cur.val)
	return err == nil, err
}

// merger is a k-way merge of runs; on equal keys the newer run wins.
type merger []*runReader

func newMerger(srcs []*runReader) (*merger, error) {
	m := merger{}
	for _, s := range srcs {
		ok, err := s.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			m = append(m, s)
		}
	}
	heap.Init(&m)
	return &m, nil
}

func (m *merger) next(stats *ImportStats) (entry, bool, error) {
	if m.Len() == 0 {
		return entry{}, false, nil
	}
	var e entry
	for {
		top := (*m)[0]
		e = top.cur
		ok, err := top.advance()
		if err != nil {
			return entry{}, false, err
		}
		if ok {
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
		if m.Len() == 0 || (*m)[0].cur.key != e.key {
			return e, true, nil
		}
		stats.Repeated++ // an older run's version; the newer one comes next
	}
}

func (m merger) Len() int { return len(m) }
func (m merger) Less(i, j int) bool {
	if c := bytes.Compare(m[i].cur.key[:], m[j].cur.key[:]); c != 0 {
		return c < 0
	}
	return m[i].idx < m[j].idx
}
func (m merger) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *merger) Push(x any)   { *m = append(*m, x.(*runReader)) }
func (m *merger) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}
