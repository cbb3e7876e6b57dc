package cluster

import (
	"bytes"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// benchLedger returns a ledger with n reservations admitted and the n
// encoded publish commands that consume them, ready to apply. Releases
// carry two indicators of the fixture catalog (69 cells), or with
// wholeV1 every indicator of catalog v1 (a whole-catalog release, 321
// cells and 3 quantiles).
func benchLedger(b *testing.B, n int, wholeV1 bool) (*FSM, *fsmLog, [][]byte) {
	b.Helper()
	f := newTestFSM(b)
	l := &fsmLog{}
	cat := fsmCatalogHash(b)
	g := fsmGenesis(b, "AL", "BA", "RS", "ME", "MK", "XK")
	g.Genesis.Policy.CapMicro = 1 << 50 // the benchmark measures throughput, not the cap
	g.Genesis.MaxCapMicro = 1 << 50
	var all []string
	if wholeV1 {
		v1 := aggregate.CatalogV1()
		raw, err := v1.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		g.Genesis.Catalog, cat = raw, v1.Hash()
		for _, ind := range v1.Indicators {
			all = append(all, ind.Name)
		}
	}
	mustApply(b, f, l, g)
	partners := []string{"AL", "BA", "RS", "ME", "MK", "XK"}
	var reserves []Command
	pubs := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		p := partners[i%len(partners)]
		r := fsmReservation(b, cat, fmt.Sprintf("bench-%d", i), p, p, fmt.Sprintf("%d-Q%d", 2000+i%25, 1+i%4), 1)
		if wholeV1 {
			r.Reservation.Indicators = all
			sr, err := privacy.SignReservation(r.Reservation, fsmKey(p))
			if err != nil {
				b.Fatal(err)
			}
			r = sr
		}
		reserves = append(reserves, NewReserve(r))
		data, err := NewPublish(fsmRelease(b, r.Reservation, p, int64(i))).Encode()
		if err != nil {
			b.Fatal(err)
		}
		pubs = append(pubs, data)
		if len(reserves) == 1024 || i == n-1 {
			mustApply(b, f, l, reserves...)
			reserves = reserves[:0]
		}
	}
	return f, l, pubs
}

// BenchmarkFSMApplyBatch applies publish commands in batches of 64 (what
// raft hands a busy FSM) and, as the baseline in the same run, one per
// batch (one bbolt commit, one fsync, per release); then whole-catalog
// releases (every indicator of catalog v1) in batches of 64, the figure
// for what validating a release's content costs.
func BenchmarkFSMApplyBatch(b *testing.B) {
	for _, c := range []struct {
		name    string
		size    int
		wholeV1 bool
	}{{"batch=64", 64, false}, {"batch=1", 1, false}, {"catalog=v1/batch=64", 64, true}} {
		size := c.size
		b.Run(c.name, func(b *testing.B) {
			f, l, pubs := benchLedger(b, b.N*size, c.wholeV1)
			logs := make([]*raft.Log, len(pubs))
			for i, p := range pubs {
				logs[i] = l.raw(p)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				for j, r := range f.ApplyBatch(logs[i*size : (i+1)*size]) {
					if res, ok := r.(ApplyResult); !ok || !res.OK || res.Existing {
						b.Fatalf("entry %d: %+v", i*size+j, r)
					}
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "releases/s")
			// CPU time per release: the figure that still means something
			// when other work shares the machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*size), "cpu-µs/release")
		})
	}
}

// BenchmarkFSMRestart measures how long a node holding many releases takes
// to serve again: reopen the ledger file and take raft's start-up Restore
// of a snapshot that is not newer than the file. Filling the ledger takes
// a while; run it with -benchtime=3x.
func BenchmarkFSMRestart(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	f, err := OpenFSM(dir, fsmQuietLogger())
	if err != nil {
		b.Fatal(err)
	}
	fillLedger(b, f, n)
	snap := snapshotBytes(b, f)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var worst time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		f, err := OpenFSM(dir, fsmQuietLogger())
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			b.Fatal(err)
		}
		if _, _, err := f.Release(fmt.Sprint("missing-", i)); err == nil {
			b.Fatal("found a release that does not exist")
		}
		worst = max(worst, time.Since(start))
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(worst.Seconds(), "worst-s")
	b.ReportMetric(float64(n), "releases")
}

// fillLedger publishes n releases into f in batches of 512, the fast way.
func fillLedger(b *testing.B, f *FSM, n int) {
	b.Helper()
	l := &fsmLog{}
	cat := fsmCatalogHash(b)
	g := fsmGenesis(b, "AL", "BA", "RS", "ME", "MK", "XK")
	g.Genesis.Policy.CapMicro = 1 << 50
	mustApply(b, f, l, g)
	partners := []string{"AL", "BA", "RS", "ME", "MK", "XK"}
	var batch []Command
	for i := 0; i < n; i++ {
		p := partners[i%len(partners)]
		r := fsmReservation(b, cat, fmt.Sprintf("fill-%d", i), p, p, fmt.Sprintf("%d-Q%d", 2000+i%25, 1+i%4), 1)
		batch = append(batch, NewReserve(r), NewPublish(fsmRelease(b, r.Reservation, p, int64(i))))
		if len(batch) == 1024 || i == n-1 {
			mustApply(b, f, l, batch...)
			batch = batch[:0]
		}
	}
}

// BenchmarkFSMReleasesScan reads every release in leaf order.
func BenchmarkFSMReleasesScan(b *testing.B) {
	const n = 10_000
	f := newTestFSM(b)
	fillLedger(b, f, n)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		count := 0
		if err := f.Releases(func(int64, privacy.Signed) error { count++; return nil }); err != nil || count != n {
			b.Fatalf("scanned %d, %v", count, err)
		}
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "releases/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/release")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
