package privacy

import (
	"context"
	"testing"
	"time"

	"roundtable/aggregate"
)

// BenchmarkBuildRelease1M builds the whole catalog's release for one
// quarter over 1,000,000 case records held in memory and compares it with
// exact tabulation alone, measured in the same run: what noise and signing
// add. The node's whole publish path, which reads the records from the
// encrypted store, is BenchmarkRelease1M in node/store.
func BenchmarkBuildRelease1M(b *testing.B) {
	const n = 1_000_000
	cases := make([]aggregate.Case, 0, n)
	if err := synthCases(99, n, testPeriod.Year, testPeriod.Quarter)(func(c *aggregate.Case) error {
		cases = append(cases, *c)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	each := func(fn func(*aggregate.Case) error) error {
		for i := range cases {
			if err := fn(&cases[i]); err != nil {
				return err
			}
		}
		return nil
	}
	cat := aggregate.CatalogV1()
	key := testKey(b)
	ctx := context.Background()
	p := ReleaseParams{Accounting: PureDP, Budget: 1 * Micro, Period: testPeriod, Partner: "RS"}
	var tab, build time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		tables, err := aggregate.Tabulate(ctx, cat, testPeriod, nil, each)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := BuildRelease(ctx, cat, tables, p, reservationFor(cat, tables, p), key); err != nil {
			b.Fatal(err)
		}
		tab, build = tab+t1.Sub(t0), build+time.Since(t1)
	}
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(tab), "tabulate-ms/op")
	b.ReportMetric(per(build), "noise+sign-ms/op")
	b.ReportMetric(per(tab+build), "release-ms/op")
	b.ReportMetric(float64(tab+build)/float64(tab), "release/tabulate")
	b.ReportMetric(n*float64(b.N)/(tab+build).Seconds(), "records/s")
}

// BenchmarkValidateRelease is what the ledger adds to applying a
// whole-catalog release (every indicator of v1, 321 cells and 3
// quantiles): Validate, and building the catalog's Validator, which the
// state machine does once per catalog per batch.
func BenchmarkValidateRelease(b *testing.B) {
	cat, tables := testTables(b, 2000)
	for _, accounting := range []string{PureDP, ZCDP} {
		p := ReleaseParams{Accounting: accounting, Budget: 1 * Micro, Period: testPeriod, Partner: "RS"}
		if accounting == ZCDP {
			p.Budget = 0.1 * Micro
		}
		s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(b))
		if err != nil {
			b.Fatal(err)
		}
		v, err := NewValidator(cat)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("validate/"+accounting, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Validate(&s.Release); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("new-validator", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewValidator(cat); err != nil {
				b.Fatal(err)
			}
		}
	})
}
