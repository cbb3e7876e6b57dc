package verify

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkRun measures a whole online verification of 600 releases over
// loopback HTTP (the list read page by page, the leaves checked against the
// checkpoint's root), the figure a researcher waits for. Run:
// go test -run '^$' -bench . ./node/verify
func BenchmarkRun(b *testing.B) {
	const n = 600
	l := newLedger(b)
	l.publishN(b, n, 100)
	_, url := startNode(b, l, l.checkpoint(b, majority...))
	state := filepath.Join(b.TempDir(), "state.json")
	for b.Loop() {
		if _, err := Run(context.Background(), Options{Server: url, StateFile: state}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "releases/s")
}
