package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkSnapshotCheck measures the content check Restore runs on a
// snapshot newer than the node (fsm_restore_check.go) over a ledger of
// 10,000 whole-catalog v1 releases (321 cells and 3 quantiles each) and
// their reservations. Run with -benchtime=3x -cpu 1,2 to see what the
// parallel signature and content checks buy.
func BenchmarkSnapshotCheck(b *testing.B) {
	const n = 10_000
	f, l, pubs := benchLedger(b, n, true)
	for i := 0; i < len(pubs); i += 64 {
		logs := make([]*raft.Log, 0, 64)
		for _, p := range pubs[i:min(i+64, len(pubs))] {
			logs = append(logs, l.raw(p))
		}
		for _, r := range f.ApplyBatch(logs) {
			if res, ok := r.(ApplyResult); !ok || !res.OK {
				b.Fatalf("publish: %+v", r)
			}
		}
	}
	snap := snapshotBytes(b, f)
	path := filepath.Join(b.TempDir(), "snapshot.db")
	if err := os.WriteFile(path, snap[24:len(snap)-32], 0o600); err != nil {
		b.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	id, err := f.ConsortiumID()
	if err != nil {
		b.Fatal(err)
	}
	empty, _ := tlog.TreeHash(0, memHashes(nil))
	basis := restoreBasis{consortium: id, head: tlog.Tree{Hash: empty}, scratchDir: b.TempDir()}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if err := db.View(func(tx *bbolt.Tx) error { return checkSnapshot(tx, f.AppliedIndex(), basis) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/check")
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "releases/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/release")
	b.ReportMetric(float64(len(snap))/(1<<20), "snapshot-MiB")
}
