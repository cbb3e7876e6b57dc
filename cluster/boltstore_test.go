package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

func openTestStore(t testing.TB) (*BoltStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := NewBoltStore(path)
	if err != nil {
		t.Fatalf("NewBoltStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopenBoltStore(t *testing.T, s *BoltStore, path string) *BoltStore {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := NewBoltStore(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

// testLog builds a deterministic entry whose every field depends on idx, so
// a swapped or damaged entry is caught by comparing with testLog(idx).
func testLog(idx uint64) *raft.Log {
	data := bytes.Repeat([]byte{byte(idx), byte(idx >> 8)}, int(idx%50)+1)
	var ext []byte
	if idx%3 == 0 {
		ext = []byte("ext-" + strconv.FormatUint(idx, 10))
	}
	return &raft.Log{
		Index:      idx,
		Term:       idx/10 + 1,
		Type:       raft.LogType(idx % 6),
		Data:       data,
		Extensions: ext,
		AppendedAt: time.Unix(1_700_000_000, int64(idx)*1000),
	}
}

func testLogs(from, to uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i))
	}
	return logs
}

func assertLogEqual(t testing.TB, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("log mismatch:\n got  %+v\n want %+v", got, want)
	}
}

func assertIndexes(t *testing.T, s *BoltStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

func TestBoltStoreEmpty(t *testing.T) {
	s, path := openTestStore(t)
	assertIndexes(t, s, 0, 0)
	var l raft.Log
	if err := s.GetLog(1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog on empty store = %v, want raft.ErrLogNotFound", err)
	}
	s = reopenBoltStore(t, s, path)
	assertIndexes(t, s, 0, 0)
}

func TestBoltStoreLogRoundTripAndRestart(t *testing.T) {
	s, path := openTestStore(t)
	if err := s.StoreLog(testLog(1)); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	if err := s.StoreLogs(testLogs(2, 100)); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	// Edge values of every field must survive the encoding.
	edge := &raft.Log{Index: 101, Term: ^uint64(0), Type: raft.LogType(255)}
	if err := s.StoreLog(edge); err != nil {
		t.Fatalf("StoreLog edge: %v", err)
	}
	s = reopenBoltStore(t, s, path)
	assertIndexes(t, s, 1, 101)
	for i := uint64(1); i <= 100; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		assertLogEqual(t, &got, testLog(i))
	}
	var got raft.Log
	if err := s.GetLog(101, &got); err != nil {
		t.Fatalf("GetLog(101): %v", err)
	}
	if !got.AppendedAt.IsZero() || got.Data != nil || got.Extensions != nil {
		t.Errorf("zero fields did not round-trip: %+v", got)
	}
	assertLogEqual(t, &got, edge)
	if err := s.GetLog(102, &got); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(102) = %v, want raft.ErrLogNotFound", err)
	}
}

func TestBoltStoreDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64
		gone        []uint64
		kept        []uint64
	}{
		{"prefix, as raft compaction does", 1, 5, 6, 10, []uint64{1, 5}, []uint64{6, 10}},
		{"suffix, as raft conflict truncation does", 7, 10, 1, 6, []uint64{7, 10}, []uint64{1, 6}},
		{"middle, bounds inclusive", 4, 6, 1, 10, []uint64{4, 5, 6}, []uint64{3, 7}},
		{"single entry", 3, 3, 1, 10, []uint64{3}, []uint64{2, 4}},
		{"everything", 1, 10, 0, 0, []uint64{1, 10}, nil},
		{"beyond the ends", 0, 1000, 0, 0, []uint64{1, 10}, nil},
		{"empty range min > max", 6, 5, 1, 10, nil, []uint64{5, 6}},
		{"range past the end", 20, 30, 1, 10, nil, []uint64{1, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTestStore(t)
			if err := s.StoreLogs(testLogs(1, 10)); err != nil {
				t.Fatalf("StoreLogs: %v", err)
			}
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
			}
			assertIndexes(t, s, tt.first, tt.last)
			var l raft.Log
			for _, i := range tt.gone {
				if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
					t.Errorf("GetLog(%d) after delete = %v, want raft.ErrLogNotFound", i, err)
				}
			}
			for _, i := range tt.kept {
				if err := s.GetLog(i, &l); err != nil {
					t.Errorf("GetLog(%d) after delete: %v", i, err)
				}
			}
		})
	}
}

func TestBoltStoreStable(t *testing.T) {
	s, path := openTestStore(t)
	if v, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, error \"not found\"", v, err)
	}
	if v, err := s.GetUint64([]byte("LastVoteTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, error \"not found\"", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-RS")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Set([]byte("empty"), []byte{}); err != nil {
		t.Fatalf("Set empty: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1<<40+7); err != nil {
		t.Fatalf("SetUint64: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatalf("SetUint64 overwrite: %v", err)
	}
	s = reopenBoltStore(t, s, path)
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-RS" {
		t.Fatalf("Get = %q, %v; want node-RS", v, err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty value) = %q, %v; want empty, nil", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("GetUint64 = %d, %v; want 42", v, err)
	}
	// A non-uint64 value under a uint64 key is an error, not a silent 0.
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 7-byte value: want error")
	}
	// raft's own check for a fresh node must accept our "not found".
	fresh, _ := openTestStore(t)
	has, err := raft.HasExistingState(fresh, fresh, raft.NewInmemSnapshotStore())
	if err != nil || has {
		t.Fatalf("HasExistingState(fresh) = %v, %v; want false, nil", has, err)
	}
}

// TestBoltStoreBatchIsOneTransaction has a reader poll the log while
// batches are written: with one bbolt transaction per batch no reader can
// ever see a batch half-written.
func TestBoltStoreBatchIsOneTransaction(t *testing.T) {
	s, _ := openTestStore(t)
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		torn  atomic.Int64
		reads atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = s.db.View(func(tx *bbolt.Tx) error {
				if n := tx.Bucket([]byte(bucketLogs)).Stats().KeyN; n%64 != 0 {
					torn.Store(int64(n))
				}
				reads.Add(1)
				return nil
			})
		}
	}()
	for b := range uint64(10) {
		if err := s.StoreLogs(testLogs(b*64+1, b*64+64)); err != nil {
			t.Fatalf("StoreLogs batch %d: %v", b, err)
		}
	}
	close(stop)
	wg.Wait()
	if n := torn.Load(); n != 0 {
		t.Fatalf("a reader saw %d entries: a batch was visible half-written", n)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never ran")
	}
	assertIndexes(t, s, 1, 640)
}

func TestBoltStoreStoreLogsRejectsNil(t *testing.T) {
	s, _ := openTestStore(t)
	logs := testLogs(1, 3)
	logs = append(logs, nil)
	if err := s.StoreLogs(logs); err == nil {
		t.Fatal("StoreLogs with a nil entry: want error")
	}
	assertIndexes(t, s, 0, 0)
}

func TestBoltStoreDetectsDamagedEntry(t *testing.T) {
	s, _ := openTestStore(t)
	if err := s.StoreLog(testLog(7)); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketLogs))
		v := append([]byte(nil), b.Get(indexKey(7))...)
		v[len(v)/2] ^= 0x40
		return b.Put(indexKey(7), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	err = s.GetLog(7, &l)
	if err == nil || errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog of damaged entry = %v, want checksum error", err)
	}
}

func TestDecodeLogRejectsMalformed(t *testing.T) {
	good := encodeLog(testLog(9))
	tests := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"too short": good[:10],
		"extended":  append(append([]byte(nil), good...), 0),
	}
	for name, b := range tests {
		var l raft.Log
		if err := decodeLog(b, &l); err == nil {
			t.Errorf("%s: decodeLog accepted %d bytes", name, len(b))
		}
	}
	var l raft.Log
	if err := decodeLog(good, &l); err != nil {
		t.Fatalf("decodeLog(good): %v", err)
	}
	assertLogEqual(t, &l, testLog(9))
}

func TestBoltStoreSecondOpenFailsFast(t *testing.T) {
	_, path := openTestStore(t)
	const timeout = 100 * time.Millisecond
	start := time.Now()
	if s2, err := openBoltStore(path, timeout); err == nil {
		_ = s2.Close()
		t.Fatal("second open of a locked file: want error")
	}
	if d := time.Since(start); d > 10*timeout {
		t.Fatalf("second open took %v", d)
	}
}

// TestBoltStoreWithRaft runs a real single-node raft over the store (behind
// raft.NewLogCache, as production does), restarts it, and checks the
// term, log and configuration came back from disk. raft v1.8.0 exports no
// LogStore conformance suite, so this is the closest contract test.
func TestBoltStoreWithRaft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	var applied [][]byte
	start := func() (*raft.Raft, *BoltStore, *recordingFSM) {
		store, err := NewBoltStore(path)
		if err != nil {
			t.Fatalf("NewBoltStore: %v", err)
		}
		logs, err := raft.NewLogCache(64, store)
		if err != nil {
			t.Fatalf("NewLogCache: %v", err)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = "RS"
		conf.HeartbeatTimeout = 50 * time.Millisecond
		conf.ElectionTimeout = 50 * time.Millisecond
		conf.LeaderLeaseTimeout = 50 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.LogOutput = io.Discard
		addr, trans := raft.NewInmemTransport("")
		fsm := &recordingFSM{}
		r, err := raft.NewRaft(conf, fsm, logs, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatalf("NewRaft: %v", err)
		}
		has, err := raft.HasExistingState(logs, store, raft.NewInmemSnapshotStore())
		if err != nil {
			t.Fatalf("HasExistingState: %v", err)
		}
		if !has {
			cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
			if err := r.BootstrapCluster(cfg).Error(); err != nil {
				t.Fatalf("BootstrapCluster: %v", err)
			}
		}
		return r, store, fsm
	}
	waitLeader := func(r *raft.Raft) {
		deadline := time.Now().Add(5 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	r, store, fsm := start()
	waitLeader(r)
	for i := range 20 {
		cmd := []byte(fmt.Sprintf("release-%02d", i))
		applied = append(applied, cmd)
		if err := r.Apply(cmd, 2*time.Second).Error(); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if got := len(fsm.all()); got != 20 {
		t.Fatalf("FSM applied %d commands, want 20", got)
	}
	last := r.LastIndex()
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	term, err := store.GetUint64([]byte("CurrentTerm"))
	if err != nil || term == 0 {
		t.Fatalf("CurrentTerm after run = %d, %v; want > 0", term, err)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// No snapshot was taken, so the restarted node replays the whole log
	// from our store into a fresh FSM.
	r2, store2, fsm2 := start()
	t.Cleanup(func() {
		_ = r2.Shutdown().Error()
		_ = store2.Close()
	})
	waitLeader(r2)
	if got := r2.LastIndex(); got < last {
		t.Fatalf("LastIndex after restart = %d, want >= %d", got, last)
	}
	if err := r2.Barrier(2 * time.Second).Error(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	got := fsm2.all()
	if len(got) != len(applied) {
		t.Fatalf("replayed %d commands, want %d", len(got), len(applied))
	}
	for i := range got {
		if !bytes.Equal(got[i], applied[i]) {
			t.Fatalf("replayed command %d = %q, want %q", i, got[i], applied[i])
		}
	}
}

type recordingFSM struct {
	mu   sync.Mutex
	cmds [][]byte
}

func (f *recordingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, append([]byte(nil), l.Data...))
	return nil
}

func (f *recordingFSM) all() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.cmds...)
}

func (f *recordingFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("recordingFSM does not snapshot")
}

func (f *recordingFSM) Restore(io.ReadCloser) error {
	return errors.New("recordingFSM does not restore")
}

// Crash test: a child process (this test binary, re-executed) appends
// crashBatch-entry batches until the parent SIGKILLs it at a random moment.

const (
	crashEnvPath = "ROUNDTABLE_BOLTSTORE_CRASH_CHILD"
	crashBatch   = 64
	crashRounds  = 3
)

func TestBoltStoreCrashMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range crashRounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBoltStoreCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvPath+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		// Wait until the child has committed at least one batch, then let it
		// run for a random while so the kill lands at an arbitrary point.
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: child never reported a batch: %v", round, err)
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill child: %v", err)
		}
		_ = cmd.Wait()

		s, err := NewBoltStore(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		first, err1 := s.FirstIndex()
		last, err2 := s.LastIndex()
		if err1 != nil || err2 != nil {
			t.Fatalf("round %d: indexes: %v, %v", round, err1, err2)
		}
		if first != 1 || last == 0 || last%crashBatch != 0 {
			t.Fatalf("round %d: FirstIndex %d, LastIndex %d; want 1 and a positive multiple of %d", round, first, last, crashBatch)
		}
		for i := uint64(1); i <= last; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil {
				t.Fatalf("round %d: GetLog(%d) of %d: %v", round, i, last, err)
			}
			assertLogEqual(t, &l, crashLog(i))
		}
		t.Logf("round %d: %d whole batches survived the kill", round, last/crashBatch)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBoltStoreCrashChild is the child half of TestBoltStoreCrashMidBatch;
// it does nothing unless started by it.
func TestBoltStoreCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("only runs as the child of TestBoltStoreCrashMidBatch")
	}
	s, err := NewBoltStore(path)
	if err != nil {
		t.Fatalf("child open: %v", err)
	}
	next, err := s.LastIndex()
	if err != nil {
		t.Fatalf("child LastIndex: %v", err)
	}
	for n := 0; ; n++ {
		batch := make([]*raft.Log, crashBatch)
		for i := range batch {
			batch[i] = crashLog(next + 1 + uint64(i))
		}
		if err := s.StoreLogs(batch); err != nil {
			t.Fatalf("child StoreLogs: %v", err)
		}
		next += crashBatch
		if n == 0 {
			fmt.Println("committed")
		}
	}
}

// crashLog pads testLog so that a batch spans many pages and a kill is
// likely to land inside a commit.
func crashLog(idx uint64) *raft.Log {
	l := testLog(idx)
	l.Data = append(l.Data, bytes.Repeat([]byte{byte(idx >> 3)}, 2048)...)
	return l
}

func BenchmarkBoltStoreStoreLogs64(b *testing.B) {
	s, _ := openTestStore(b)
	payload := bytes.Repeat([]byte("x"), 512)
	next := uint64(1)
	b.ResetTimer()
	for b.Loop() {
		batch := make([]*raft.Log, crashBatch)
		for i := range batch {
			batch[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: payload, AppendedAt: time.Unix(0, int64(next))}
			next++
		}
		if err := s.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*crashBatch)/b.Elapsed().Seconds(), "entries/s")
}

// TestBoltStoreReopenAfterCompaction: the store does not write bbolt's
// freelist, so an open must rebuild it from the file. Pages freed by a
// compaction before a restart must be found free again (not leaked, not
// handed out while still in use), and every kept entry must read back.
func TestBoltStoreReopenAfterCompaction(t *testing.T) {
	s, path := openTestStore(t)
	for from := uint64(1); from <= 4000; from += 200 {
		if err := s.StoreLogs(testLogs(from, from+199)); err != nil {
			t.Fatalf("StoreLogs: %v", err)
		}
	}
	if err := s.DeleteRange(1, 3000); err != nil {
		t.Fatalf("DeleteRange: %v", err)
	}
	s = reopenBoltStore(t, s, path)
	if free := s.db.Stats().FreePageN; free == 0 {
		t.Fatalf("after reopening, bbolt knows no free pages; the compacted ones were lost")
	}
	if err := s.StoreLogs(testLogs(4001, 6000)); err != nil {
		t.Fatalf("StoreLogs after reopen: %v", err)
	}
	s = reopenBoltStore(t, s, path)
	assertIndexes(t, s, 3001, 6000)
	var l raft.Log
	for _, i := range []uint64{3001, 3500, 4000, 4001, 5999, 6000} {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		assertLogEqual(t, &l, testLog(i))
	}
	if err := s.GetLog(3000, &l); err != raft.ErrLogNotFound {
		t.Errorf("GetLog(3000) = %v, want raft.ErrLogNotFound", err)
	}
}
