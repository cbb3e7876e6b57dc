package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"roundtable/keyseal"
	"roundtable/privacy"
)

// The ledger's state machine. It keeps the consortium, catalogs, budget
// spend, reservations, releases and the Merkle log in one bbolt file
// (LedgerFile), separate from raft's own log store. Every batch of committed
// raft entries is applied in ONE bbolt transaction that also records the
// last applied raft index, so the file is always a consistent state "as of
// index N" and a restarted node skips the entries at or below N instead of
// replaying its whole history. See DESIGN.md, "The ledger state machine".
//
// Layout (top-level buckets; keys sort the way the read API iterates):
//
//	meta/          applied (8-byte BE raft index), name, catalog (current
//	               hash), policy (JSON privacy.Policy), consortium_id (hex
//	               genesis hash), coordinators (JSON governance.Set),
//	               max_cap_micro and governance_seq (8-byte BE), genesis
//	               (its canonical JSON, whose SHA-256 is consortium_id)
//	partners/      id -> JSON Partner
//	replicas/      id -> JSON replicaRecord
//	governance/    8-byte BE seq -> JSON governance.Signed, every admitted
//	               statement (the history a verifier replays)
//	denied/        "id/" id or "serial/" hex serial -> JSON denial
//	catalogs/      hash -> canonical catalog JSON
//	reservations/  id -> JSON reservationRecord
//	releases/      id -> 8-byte BE leaf index
//	leaves/        8-byte BE leaf index -> LeafData of the release
//	spend/         partner "/" quarter (e.g. "RS/2024-Q1") -> 8-byte BE micro
//	checkpoints/   8-byte BE tree size -> { text -> checkpoint text,
//	               sigs/ partner id -> "name base64" note signature line }
//	merkle/        owned by merkle.go
//
// Nothing in Apply reads a clock, a random source or iterates a map: bbolt
// cursors and sorted slices only (DESIGN invariant 5).

// LedgerFile is the name of the FSM's bbolt file inside its directory.
const LedgerFile = "ledger.db"

// Bucket and key names.
const (
	bucketMeta         = "meta"
	bucketPartners     = "partners"
	bucketReplicas     = "replicas"
	bucketCatalogs     = "catalogs"
	bucketReservations = "reservations"
	bucketReleases     = "releases"
	bucketLeaves       = "leaves"
	bucketSpend        = "spend"
	bucketCheckpoints  = "checkpoints"
	bucketGovernance   = "governance"
	bucketDenied       = "denied"

	keyApplied = "applied"
	keyName    = "name"
	keyCatalog = "catalog"
	keyPolicy  = "policy"
	keyText    = "text"
	keySigs    = "sigs"

	keyConsortiumID = "consortium_id"
	keyCoordinators = "coordinators"
	keyMaxCap       = "max_cap_micro"
	keyGovSeq       = "governance_seq"
	keyGenesis      = "genesis"
)

// fsmBuckets lists the buckets the FSM creates when it opens a file.
func fsmBuckets() []string {
	return []string{bucketMeta, bucketPartners, bucketReplicas, bucketCatalogs, bucketReservations,
		bucketReleases, bucketLeaves, bucketSpend, bucketCheckpoints, bucketGovernance, bucketDenied}
}

// bucket returns one of the top-level buckets, which openLedger creates.
func bucket(tx *bbolt.Tx, name string) *bbolt.Bucket { return tx.Bucket([]byte(name)) }

// snapshotMagic starts every FSM snapshot. The stream is
//
//	"RTLEDGR1" | applied index (8 bytes BE) | body length (8 bytes BE) |
//	body: the bbolt file | SHA-256 of the body (32 bytes)
//
// The index up front lets Restore decide without reading further whether
// the snapshot is older than what this node already has. The length and
// hash are checked before the body is opened: bbolt trusts its file, and a
// truncated or damaged one can crash the process on first read.
const snapshotMagic = "RTLEDGR1"

// ErrNotFound is returned by the read API for a release, catalog,
// reservation or checkpoint the ledger does not hold.
var ErrNotFound = errors.New("not in the ledger")

// ApplyResult is what Apply returns for a command (the raft ApplyFuture's
// Response). A refused command has OK false and a Refusal that is the same
// on every node; it changed nothing. Existing means the command had already
// been applied (same release id, same reservation id, a repeated coordinator
// action): nothing changed and the fields describe the existing entry.
//
// When the ledger file itself fails (disk full, I/O error) Apply returns an
// error instead of an ApplyResult, and keeps returning it: the node must be
// restarted, and then replays the entries after the last committed batch.
type ApplyResult struct {
	Index     uint64 // raft index of the entry
	OK        bool
	Refusal   string
	ReleaseID string // publish: the release id
	Leaf      int64  // publish: its Merkle leaf index; cosign: the checkpoint's tree size
	Existing  bool
	// Seq is, for govern, the governance sequence number the statement
	// was admitted at.
	Seq uint64 `json:",omitempty"`
	// Spend is, for reserve, the partner's spend on each quarter of the
	// reservation's period after it was admitted.
	Spend []privacy.QuarterSpend
}

// FSM is the ledger's raft.BatchingFSM. Apply, ApplyBatch, Snapshot and
// Restore are called by raft from its FSM goroutine; the read API in
// state.go may be called concurrently from any goroutine.
type FSM struct {
	dir    string
	logger *slog.Logger

	// mu guards db against Restore, which swaps the file: readers and
	// applies hold it shared, Restore holds it exclusively.
	mu sync.RWMutex
	db *bbolt.DB

	applied atomic.Uint64         // mirror of meta/applied, updated after each commit
	failed  atomic.Pointer[error] // first storage failure; sticky until restart

	// validators holds a privacy.Validator per catalog hash, built on the
	// first release of that catalog. A catalog's hash names its content,
	// so an entry never goes stale, not even across Restore.
	validators sync.Map // string → *privacy.Validator; lookups only
	// deny mirrors the denied bucket for Denied, which runs on every TLS
	// handshake; it is rebuilt after each batch that admitted governance.
	deny atomic.Pointer[denyList]
	// governed receives a signal after a batch that admitted governance,
	// so the leader can bring raft's configuration in line with it.
	governed chan struct{}

	// pinned is the consortium id this node belongs to (fsm_pin.go).
	pinned atomic.Pointer[string]
	// refusals records snapshots Restore refused (fsm_restore.go).
	refusals snapshotRefusals
}

var _ raft.BatchingFSM = (*FSM)(nil)

// OpenFSM opens (creating if needed) the ledger in dir/LedgerFile.
func OpenFSM(dir string, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	f := &FSM{dir: dir, logger: logger.With("component", "fsm"), governed: make(chan struct{}, 1)}
	db, applied, err := openLedger(f.path())
	if err != nil {
		return nil, err
	}
	f.db = db
	f.applied.Store(applied)
	f.loadRefusals()
	if err := f.loadDenyList(); err != nil {
		_ = db.Close()
		return nil, err
	}
	f.logger.Info("ledger opened", "path", f.path(), "applied_index", applied)
	return f, nil
}

func (f *FSM) path() string { return filepath.Join(f.dir, LedgerFile) }

// openLedger opens a ledger file, creates missing buckets and returns the
// applied index recorded in it.
func openLedger(path string) (*bbolt.DB, uint64, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: time.Second, // another process holding the file fails fast instead of hanging
		// A large initial mmap means a long read (a snapshot being
		// persisted, a full Releases scan) rarely blocks the next commit:
		// bbolt can only remap once every reader has finished.
		InitialMmapSize: 1 << 30,
		FreelistType:    bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open ledger %s: %w", path, err)
	}
	var applied uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range fsmBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		applied, err = readApplied(tx)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, 0, fmt.Errorf("open ledger %s: %w", path, err)
	}
	return db, applied, nil
}

func readApplied(tx *bbolt.Tx) (uint64, error) {
	meta := bucket(tx, bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get([]byte(keyApplied))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("ledger corrupt: applied index of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the ledger file. The FSM must not be used afterwards.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	if err != nil {
		return fmt.Errorf("close ledger: %w", err)
	}
	return nil
}

// Err returns the storage failure that stopped the FSM, or nil.
func (f *FSM) Err() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *FSM) fail(err error) {
	if f.failed.CompareAndSwap(nil, &err) {
		f.logger.Error("ledger storage failed; this node must be restarted", "err", err)
	}
}

// Apply applies one committed log entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one bbolt transaction, together
// with the new applied index. Entries at or below the index already in the
// file were applied before a restart and are skipped.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	if err := f.Err(); err != nil {
		fillErr(out, err)
		return out
	}
	applied := f.applied.Load()
	pending := false
	for i, l := range logs {
		if l.Index <= applied {
			if l.Type == raft.LogCommand {
				out[i] = ApplyResult{Index: l.Index, Existing: true,
					Refusal: fmt.Sprintf("entry %d was applied before this node restarted (ledger is at %d); its result is not kept", l.Index, applied)}
			}
			continue
		}
		pending = true
	}
	if !pending {
		return out
	}

	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		fillErr(out, errors.New("apply: ledger is closed"))
		return out
	}
	last := applied
	governed := false
	err := f.db.Update(func(tx *bbolt.Tx) error {
		preps, err := prepareBatch(tx, logs, applied, &f.validators)
		if err != nil {
			return err
		}
		for i, l := range logs {
			if l.Index <= applied {
				continue
			}
			last = l.Index
			if l.Type != raft.LogCommand {
				continue // configuration changes live in raft's own store
			}
			if p := preps[i]; p.err == nil && p.cmd.Type == CmdGenesis {
				if err := f.checkGenesisPinned(l.Index, p.cmd.Genesis); err != nil {
					return err
				}
			}
			res, err := applyEntry(tx, l.Index, preps[i])
			if err != nil {
				return fmt.Errorf("apply entry %d: %w", l.Index, err)
			}
			governed = governed || res.OK && preps[i].cmd.Type == CmdGovern
			out[i] = res
		}
		return bucket(tx, bucketMeta).Put([]byte(keyApplied), binary.BigEndian.AppendUint64(nil, last))
	})
	if err != nil {
		// Nothing of the batch is in the file; the sticky failure stops
		// later batches from applying on top of a gap. A restart replays
		// from the applied index the file still holds.
		f.fail(err)
		fillErr(out, err)
		return out
	}
	f.applied.Store(last)
	if governed {
		f.governanceChanged()
	}
	return out
}

func fillErr(out []interface{}, err error) {
	for i := range out {
		out[i] = err
	}
}

// applyEntry decodes and applies one command. Refusals come back as an
// ApplyResult; only storage failures are errors.
func applyEntry(tx *bbolt.Tx, index uint64, p *prepared) (ApplyResult, error) {
	if p.err != nil {
		return ApplyResult{Index: index, Refusal: p.err.Error()}, nil
	}
	res, err := applyCommand(tx, p)
	var ref *privacy.Refusal
	if errors.As(err, &ref) {
		return ApplyResult{Index: index, Refusal: ref.Reason}, nil
	}
	if err != nil {
		return ApplyResult{}, err
	}
	res.Index = index
	res.OK = true
	return res, nil
}

// Snapshot captures the state as of the last applied entry: a bbolt read
// transaction, which sees exactly the last committed batch however many
// batches commit while the snapshot is persisted.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errors.New("snapshot: ledger is closed")
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("snapshot: begin: %w", err)
	}
	applied, err := readApplied(tx)
	if err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx, applied: applied}, nil
}

type fsmSnapshot struct {
	tx      *bbolt.Tx
	applied uint64
}

// Persist writes the header and a copy of the bbolt file to sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	header := binary.BigEndian.AppendUint64([]byte(snapshotMagic), s.applied)
	header = binary.BigEndian.AppendUint64(header, uint64(s.tx.Size()))
	if _, err := sink.Write(header); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist ledger snapshot: %w", err)
	}
	h := sha256.New()
	if _, err := s.tx.WriteTo(io.MultiWriter(sink, h)); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist ledger snapshot at %d: %w", s.applied, err)
	}
	if _, err := sink.Write(h.Sum(nil)); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist ledger snapshot at %d: %w", s.applied, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist ledger snapshot at %d: close: %w", s.applied, err)
	}
	return nil
}

// Release ends the snapshot's read transaction.
func (s *fsmSnapshot) Release() { _ = s.tx.Rollback() }

// Restore replaces the ledger with a snapshot. Raft calls it on every
// start with its latest snapshot; since the ledger file already holds a
// state at least that new (it commits every batch), Restore then only reads
// the header and keeps the file: a restart costs an mmap, not a replay.
// Only a snapshot newer than the file (a follower that fell behind, or a
// fresh node) is written out: to a temporary file in the same directory,
// fsynced, checked for integrity and then for content (its state is
// re-derived from the pinned genesis and compared, fsm_restore_check.go),
// then renamed over the ledger and reopened, so a crash at any point leaves
// either the old or the new state. A snapshot whose content fails is
// refused (fsm_restore.go): the ledger file is not touched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp, err := f.receiveSnapshot(rc)
	if err != nil || tmp == "" {
		return err
	}
	defer os.Remove(tmp) // no-op after a successful rename

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("restore ledger: close old file: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmp, f.path()); err != nil {
		return fmt.Errorf("restore ledger: %w", err)
	}
	if err := keyseal.SyncDir(f.dir); err != nil {
		return fmt.Errorf("restore ledger: %w", err)
	}
	db, applied, err := openLedger(f.path())
	if err != nil {
		err = fmt.Errorf("restore ledger: reopen: %w", err)
		f.fail(err)
		return err
	}
	f.db = db
	f.applied.Store(applied)
	f.failed.Store(nil) // a good snapshot replaces whatever state had failed
	if err := f.loadDenyListLocked(); err != nil {
		f.fail(err)
		return fmt.Errorf("restore ledger: %w", err)
	}
	f.signalGoverned()
	f.logger.Info("ledger restored from snapshot", "applied_index", applied)
	return nil
}

// CheckSnapshot runs Restore's checks on a snapshot without installing
// it: nil if Restore would install it or keep the ledger (not newer); a
// refusal is recorded, with its evidence, as Restore records it. The node
// runs it on the snapshots raft will restore at start.
func (f *FSM) CheckSnapshot(rc io.ReadCloser) error {
	defer rc.Close()
	tmp, err := f.receiveSnapshot(rc)
	if tmp != "" {
		_ = os.Remove(tmp)
	}
	return err
}

// receiveSnapshot reads a snapshot stream. It returns "" if the snapshot
// is not newer than the ledger (which is kept); otherwise the path of a
// temporary file holding the snapshot's ledger, checked for integrity and
// content. A snapshot whose content fails is refused (refuseSnapshot).
func (f *FSM) receiveSnapshot(rc io.Reader) (string, error) {
	var header [24]byte
	if _, err := io.ReadFull(rc, header[:]); err != nil {
		return "", fmt.Errorf("restore ledger: read snapshot header: %w", err)
	}
	if string(header[:8]) != snapshotMagic {
		return "", fmt.Errorf("restore ledger: not a ledger snapshot (header %q)", header[:8])
	}
	snapIndex := binary.BigEndian.Uint64(header[8:16])
	size := binary.BigEndian.Uint64(header[16:24])
	if have := f.applied.Load(); snapIndex <= have && f.Err() == nil {
		f.logger.Info("snapshot is not newer than the ledger; keeping the ledger", "snapshot_index", snapIndex, "applied_index", have)
		return "", nil
	}
	tmp, err := f.writeRestoreFile(rc, snapIndex, size)
	if err != nil {
		return "", err
	}
	// The snapshot is the leader's word about the whole state: check it
	// before it replaces anything (fsm_restore_check.go).
	if err := f.checkRestoreFile(tmp, snapIndex); err != nil {
		err = f.refuseSnapshot(tmp, snapIndex, err)
		_ = os.Remove(tmp) // still there only if it could not be kept as evidence
		return "", err
	}
	return tmp, nil
}

// writeRestoreFile copies the snapshot body into a synced temporary file
// and checks its length, its hash and that it is a ledger at snapIndex.
func (f *FSM) writeRestoreFile(r io.Reader, snapIndex, size uint64) (string, error) {
	tmp, err := os.CreateTemp(f.dir, LedgerFile+".restore-*")
	if err != nil {
		return "", fmt.Errorf("restore ledger: %w", err)
	}
	name := tmp.Name()
	h := sha256.New()
	var n int64
	n, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, int64(size)))
	if err == nil && uint64(n) != size {
		err = fmt.Errorf("snapshot body is %d bytes, header says %d", n, size)
	}
	if err == nil {
		var sum [sha256.Size]byte
		if _, rerr := io.ReadFull(r, sum[:]); rerr != nil {
			err = fmt.Errorf("read snapshot checksum: %w", rerr)
		} else if !bytes.Equal(sum[:], h.Sum(nil)) {
			err = errors.New("snapshot checksum does not match its body")
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkLedgerFile(name, snapIndex)
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("restore ledger from snapshot at %d: %w", snapIndex, err)
	}
	return name, nil
}

func checkLedgerFile(path string, want uint64) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("snapshot is not a bbolt file: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		got, err := readApplied(tx)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("snapshot header says index %d, its ledger says %d", want, got)
		}
		return nil
	})
}
