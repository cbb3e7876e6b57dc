package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// evidenceCases is a fixed synthetic quarter of cases for the victims
// indicator (status × sex × age group).
func evidenceCases(n int, p aggregate.Period) func(fn func(*aggregate.Case) error) error {
	return func(fn func(*aggregate.Case) error) error {
		r := rand.New(rand.NewPCG(17, 4))
		start := aggregate.DateOf(p.Year, time.Month(3*p.Quarter-2), 1)
		for i := range n {
			c := aggregate.NewCase()
			c.CaseID = fmt.Sprintf("e%06d", i)
			c.RegisteredOn = start + aggregate.Date(r.IntN(89))
			c.Status = aggregate.Status(r.IntN(2))
			c.Sex = aggregate.Sex(r.IntN(4))
			if r.IntN(10) > 0 {
				c.Age = min(90, 6+r.IntN(40)+r.IntN(20))
			}
			if err := fn(&c); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestEvidenceSeriesCoverageEndToEnd follows a count from the records to
// the series interval a reader sees, through the real pieces: the exact
// tables from aggregate.Tabulate, the privacy engine's noise (the DP
// library's, unseeded) and signed release, this package's conversion of
// published cells to measurements (the variance it derives from each
// cell's stated scale), and the consistent estimates. The 95% intervals
// must cover the true counts 95% of the time, within 4.5 standard errors
// (the larger of the binomial SE and the spread between releases), for
// cells, margins and the total, under Laplace and Gaussian noise. A
// variance mapping off by a factor of 2 (b² for Laplace, 2σ² for
// Gaussian) moves the coverage by several points either way and fails.
func TestEvidenceSeriesCoverageEndToEnd(t *testing.T) {
	reps := 600
	if testing.Short() {
		reps = 200
	}
	ctx := context.Background()
	cat := aggregate.CatalogV1()
	period := aggregate.Period{Year: 2024, Quarter: 2}
	tables, err := aggregate.Tabulate(ctx, cat, period, []string{"victims"}, evidenceCases(400, period))
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string]int64{} // full-table key → exact count
	for _, tb := range tables {
		if tb.Measurement() != 0 {
			continue
		}
		for i := 0; i < tb.NumCells(); i++ {
			truth[strings.Join(tb.Key(i), "|")] = tb.Count(i)
		}
	}
	if len(truth) < 20 {
		t.Fatalf("the full victims table has %d cells", len(truth))
	}
	dims := tables[0].Dimensions()
	seed := sha256.Sum256([]byte("evidence end to end"))
	key := ed25519.NewKeyFromSeed(seed[:])

	// want sums the true cells a series point covers: By dimensions fixed
	// to the point's key, the others summed.
	want := func(by, key []string) int64 {
		var sum int64
		for k, v := range truth {
			parts := strings.Split(k, "|")
			match := true
			for i, d := range by {
				for j, name := range dims {
					if name == d && parts[j] != key[i] {
						match = false
					}
				}
			}
			if match {
				sum += v
			}
		}
		return sum
	}
	queries := []struct {
		kind string
		by   []string
	}{
		{"cell", []string{"status", "sex", "age_group"}},
		{"sex margin", []string{"sex"}},
		{"total", nil},
	}
	for _, acc := range []struct {
		accounting string
		budget     privacy.Budget // victims' part of a quarter's cap of 1
	}{{privacy.PureDP, 300_000}, {privacy.ZCDP, 50_000}} {
		t.Run(acc.accounting, func(t *testing.T) {
			params := privacy.ReleaseParams{Accounting: acc.accounting, Budget: acc.budget, Period: period, Partner: "RS"}
			res := privacy.Reservation{ID: "e2e", Consortium: "e2e-consortium", Partner: "RS", CatalogHash: cat.Hash(), Period: period,
				Accounting: acc.accounting, SpendMicro: acc.budget.Micro(), Indicators: []string{"victims"}}
			tallies := make([]coverage, len(queries))
			for rep := range reps {
				s, err := privacy.BuildRelease(ctx, cat, tables, params, res, key)
				if err != nil {
					t.Fatal(err)
				}
				v := buildView(uint64(rep+1), cat, []ReleaseEntry{{Signed: s, Leaf: 0, Verified: true}})
				est, err := v.estimates()
				if err != nil {
					t.Fatal(err)
				}
				for i, q := range queries {
					pts, err := est.Series(aggregate.SeriesQuery{Indicator: "victims", By: q.by})
					if err != nil || len(pts) == 0 {
						t.Fatalf("%s series: %d points, %v", q.kind, len(pts), err)
					}
					for _, p := range pts {
						w := float64(want(q.by, p.Key))
						tallies[i].add(p.CILow <= w && w <= p.CIHigh)
					}
					tallies[i].endBatch()
				}
			}
			for i, q := range queries {
				got, se := tallies[i].rate(0.95)
				t.Logf("%-10s n=%6d coverage %.4f (SE %.4f, %+.1f SE from 95%%)", q.kind, tallies[i].n, got, se, (got-0.95)/se)
				if math.Abs(got-0.95) > 4.5*se {
					t.Errorf("%s: coverage %.4f is more than 4.5 SE (%.4f) from 95%%", q.kind, got, 4.5*se)
				}
			}
		})
	}
}

// coverage counts covered intervals overall and per batch (one release).
type coverage struct {
	covered, n   int
	bCovered, bN int
	batches      []float64
}

func (c *coverage) add(covered bool) {
	c.n++
	c.bN++
	if covered {
		c.covered++
		c.bCovered++
	}
}

func (c *coverage) endBatch() {
	if c.bN > 0 {
		c.batches = append(c.batches, float64(c.bCovered)/float64(c.bN))
	}
	c.bCovered, c.bN = 0, 0
}

// rate is the pooled coverage and its standard error: the larger of the
// binomial SE at the nominal level and the batch-means SE.
func (c *coverage) rate(nominal float64) (float64, float64) {
	got := float64(c.covered) / float64(c.n)
	se := math.Sqrt(nominal * (1 - nominal) / float64(c.n))
	if k := float64(len(c.batches)); k > 1 {
		var mean, ss float64
		for _, b := range c.batches {
			mean += b
		}
		mean /= k
		for _, b := range c.batches {
			ss += (b - mean) * (b - mean)
		}
		se = math.Max(se, math.Sqrt(ss/(k-1)/k))
	}
	return got, se
}
