package ingest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far: on a shared
// machine it shows the work done, which wall time alone hides.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parseOnly reads and validates files without a store: the baseline the
// full import is compared with.
func parseOnly(ctx context.Context, format string, files ...string) (int, error) {
	n := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return n, err
		}
		src, err := newSource(format, name, stripBOM(f))
		if err != nil {
			f.Close()
			return n, err
		}
		var rw row
		for {
			rw = row{}
			err := src.next(&rw)
			if err != nil {
				f.Close()
				if err.Error() == "EOF" {
					break
				}
				return n, err
			}
			if rw.err != nil {
				f.Close()
				return n, rw.err
			}
			n++
		}
	}
	return n, nil
}

// peakRSSMB is the process's peak resident set (VmHWM) in MB.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkImport1M generates a 1,000,000-row project CSV once, then times
// (a) parsing and validating it without a store and (b) a full import into
// a fresh store. Run: go test -run '^$' -bench Import1M -benchtime 1x ./node/ingest/
func BenchmarkImport1M(b *testing.B) {
	const rows = 1_000_000
	path := filepath.Join(b.TempDir(), "cases.csv")
	writeGenCSV(b, path, rows, 1)
	runtime.GC()
	ctx := context.Background()
	b.ResetTimer()
	var parse, full, parseCPU, fullCPU time.Duration
	for range b.N {
		c0 := cpuTime()
		t0 := time.Now()
		n, err := parseOnly(ctx, FormatCSV, path)
		if err != nil || n != rows {
			b.Fatalf("parse: %d rows, %v", n, err)
		}
		parse += time.Since(t0)
		parseCPU += cpuTime() - c0

		b.StopTimer()
		st, _ := newStore(b)
		b.StartTimer()
		c0 = cpuTime()
		t0 = time.Now()
		rep, err := Run(ctx, st, Options{}, path)
		if err != nil || rep.Stats.Added != rows {
			b.Fatalf("import: %+v, %v", rep.Stats, err)
		}
		full += time.Since(t0)
		fullCPU += cpuTime() - c0
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	parseRate := float64(rows*b.N) / parse.Seconds()
	importRate := float64(rows*b.N) / full.Seconds()
	b.ReportMetric(parseRate, "parse-records/s")
	b.ReportMetric(importRate, "import-records/s")
	b.ReportMetric(full.Seconds()/parse.Seconds(), "import/parse-time")
	b.ReportMetric(peakRSSMB(), "peak-MB")
	b.ReportMetric(parseCPU.Seconds()/float64(b.N), "parse-cpu-s")
	b.ReportMetric(fullCPU.Seconds()/float64(b.N), "import-cpu-s")
}
