package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api/apitest"
)

// BenchmarkSeriesRegion measures GET /v1/series for the whole region: six
// partners × 24 quarters × every indicator of the catalog, through the
// server's handler (no network), and reports server-side p50 and p99.
// Target: p99 < 5 ms.
//
//   - cached: the same query again (the answer cache of the applied index);
//   - distinct: a different query string every time (partner order,
//     range and roll-up vary), so every answer is computed from the
//     per-index estimates.
func BenchmarkSeriesRegion(b *testing.B) {
	e := newEnv(b, true, apitest.Options{})
	perms := permutations(apitest.Partners())
	rollups := []string{"region", "year,region", "region", "year,region"}
	queries := func(i int) string {
		p := perms[i%len(perms)]
		return fmt.Sprintf("/v1/series?rollup=%s&from=2019-Q%d&to=2024-Q%d&partner=%s,%s,%s,%s,%s,%s",
			rollups[(i/len(perms))%4], 1+(i/(4*len(perms)))%4, 4-(i/(16*len(perms)))%4, p[0], p[1], p[2], p[3], p[4], p[5])
	}
	// Build the per-index view once, outside the timings.
	serve(b, e, "/v1/series?rollup=region")
	b.Run("cached", func(b *testing.B) {
		measure(b, func(int) string { return "/v1/series?rollup=region" }, e)
	})
	b.Run("distinct", func(b *testing.B) {
		measure(b, queries, e)
	})
}

// BenchmarkSeriesAfterPublish measures the first whole-region query after
// the ledger changed: it rebuilds the per-index view (every release to
// measurements, then aggregate.NewEstimates for the region) and answers.
// It is paid once per applied index, not per request.
func BenchmarkSeriesAfterPublish(b *testing.B) {
	e := newEnv(b, true, apitest.Options{})
	serve(b, e, "/v1/series?rollup=region")
	d := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := aggregate.Period{Year: 2025 + i/4, Quarter: 1 + i%4}
		if _, err := e.fake.Publish(context.Background(), p, []string{"victims"}, 10_000, ""); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		serve(b, e, "/v1/series?rollup=region")
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
}

func measure(b *testing.B, query func(int) string, e *env) {
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		serve(b, e, query(i))
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	if os.Getenv("SERIES_P99_STRICT") != "" && len(d) >= 100 && q(0.99) > 5000 { // a p99 of a handful of samples is noise
		b.Errorf("p99 %.0f µs is over the 5 ms target", q(0.99))
	}
}

func serve(b testing.TB, e *env, path string) {
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
	}
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{slices.Clone(s)}
	}
	var out [][]string
	for i := range s {
		rest := append(slices.Clone(s[:i]), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}
