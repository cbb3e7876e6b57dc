package privacy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"roundtable/aggregate"
)

// The tests in this file kill Validator mutants that `make mutate` (or a
// hand-applied mutant of a switch case, which gremlins reports as not
// covered) found alive (docs/testing.md).

// builtRelease returns a copy of a release the builder made under
// accounting, decoded from JSON as the ledger receives it.
func builtRelease(t *testing.T, accounting string) (*aggregate.Catalog, Release) {
	t.Helper()
	cat, tables := testTables(t, 500)
	p := ReleaseParams{Accounting: accounting, Budget: 0.7 * Micro, Period: testPeriod, Partner: "RS"}
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s.Release)
	if err != nil {
		t.Fatal(err)
	}
	var r Release
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRelease(cat, &r); err != nil {
		t.Fatalf("builder's %s release: %v", accounting, err)
	}
	return cat, r
}

// TestValidatePeriodBounds: a release's period is a quarter (1–4) or a
// year (0) of a year from 1900 to 9999, the same bounds the ledger puts on
// a reservation: each bound is accepted, one past it refused, and each
// clause refuses on its own (a release with a good year and a bad quarter,
// and the reverse).
func TestValidatePeriodBounds(t *testing.T) {
	cat, built := builtRelease(t, PureDP)
	for _, tc := range []struct {
		year, quarter int
		ok            bool
	}{
		{1900, 1, true}, {9999, 4, true}, {2024, 0, true}, {2024, 4, true},
		{1899, 1, false}, {10000, 1, false}, {2024, -1, false}, {2024, 5, false},
	} {
		t.Run(fmt.Sprintf("%d-Q%d", tc.year, tc.quarter), func(t *testing.T) {
			r := built
			r.Period = aggregate.Period{Year: tc.year, Quarter: tc.quarter}
			err := ValidateRelease(cat, &r)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "is not a quarter or a year")):
				t.Fatalf("got %v, want a refusal of the period", err)
			}
		})
	}
}

// TestValidateBudgetFieldsExact: an indicator's budget must be positive
// (a zero ε or ρ is refused as such, not by a later check), and under
// pure DP δ and ρ must each be zero on their own.
func TestValidateBudgetFieldsExact(t *testing.T) {
	for _, tc := range []struct {
		name, accounting string
		edit             func(ir *IndicatorRelease)
		want             string
	}{
		{"zero ε", PureDP, func(ir *IndicatorRelease) { ir.Epsilon = 0 }, "ε 0 must be positive and finite"},
		{"zero ρ", ZCDP, func(ir *IndicatorRelease) { ir.Rho = 0 }, "ρ 0 must be positive and finite"},
		{"δ alone under pure DP", PureDP, func(ir *IndicatorRelease) { ir.Delta = GaussianDelta }, "must be 0 under pure"},
		{"ρ alone under pure DP", PureDP, func(ir *IndicatorRelease) { ir.Rho = 0.1 }, "must be 0 under pure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat, r := builtRelease(t, tc.accounting)
			tc.edit(&r.Indicators[0])
			err := ValidateRelease(cat, &r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestValidateCatalogRanks: a quantile indicator's ranks are the
// catalog's own, not the default quartiles: a release of a catalog with
// other ranks validates.
func TestValidateCatalogRanks(t *testing.T) {
	cat := aggregate.CatalogV1()
	age, ok := cat.Indicator("age")
	if !ok {
		t.Fatal("v1 catalog has no age indicator")
	}
	age.Ranks = []float64{0.1, 0.5, 0.9}
	tables, err := aggregate.Tabulate(context.Background(), cat, testPeriod, []string{"age"}, synthCases(2, 400, testPeriod.Year, testPeriod.Quarter))
	if err != nil {
		t.Fatal(err)
	}
	p := ReleaseParams{Accounting: PureDP, Budget: 0.5 * Micro, Period: testPeriod, Partner: "RS"}
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateRelease(cat, &s.Release); err != nil {
		t.Fatalf("a release of the catalog's own ranks: %v", err)
	}
}

// TestValidateIndicatorRepeatedInPlace: an indicator listed twice in a
// row is refused as a repeat (the next position a later indicator may
// take is one past the last, not one before it).
func TestValidateIndicatorRepeatedInPlace(t *testing.T) {
	cat, r := builtRelease(t, PureDP)
	last := r.Indicators[len(r.Indicators)-1]
	r.Indicators = append(r.Indicators, last)
	err := ValidateRelease(cat, &r)
	if err == nil || !strings.Contains(err.Error(), "out of catalog order or repeated") {
		t.Fatalf("got %v, want the repeat refused", err)
	}
}

// TestCheckSpendBounds: the indicators' budgets must add up to more than
// (spend − 1 micro)·(1 − budgetSlack) and at most spend·(1 + budgetSlack):
// each bound itself and the next float beyond it, for the smallest, a
// typical and the largest spend.
func TestCheckSpendBounds(t *testing.T) {
	for _, spend := range []int64{1, 700_000, MaxSpendMicro} {
		lo := float64(float64(spend-1)/Micro) * (1 - budgetSlack)
		hi := float64(float64(spend)/Micro) * (1 + budgetSlack)
		for _, tc := range []struct {
			name string
			sum  float64
			ok   bool
		}{
			{"lower bound", lo, false},
			{"just above the lower bound", math.Nextafter(lo, math.Inf(1)), true},
			{"the spend", float64(spend) / Micro, true},
			{"upper bound", hi, true},
			{"just above the upper bound", math.Nextafter(hi, math.Inf(1)), false},
		} {
			if err := checkSpend(spend, tc.sum); (err == nil) != tc.ok {
				t.Errorf("spend %d micro, indicators %v (%s): %v, want ok=%v", spend, tc.sum, tc.name, err, tc.ok)
			}
		}
	}
}

// setScale gives the first measurement of r's first count indicator the
// scale sigma, with every interval the builder would draw for it, and
// returns the σ its budget calls for (gaussianTarget). The release stays
// valid in every other field.
func setScale(t *testing.T, cat *aggregate.Catalog, r *Release, sigma func(target float64) float64) float64 {
	t.Helper()
	v, err := NewValidator(cat)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Indicators {
		ir := &r.Indicators[i]
		pos := slices.IndexFunc(v.indicators, func(s indicatorShape) bool { return s.name == ir.Name })
		if v.indicators[pos].kind != aggregate.KindCount {
			continue
		}
		ms := v.indicators[pos].measurements[0]
		target := gaussianTarget(ms.l0, ms.lInf, tableBudget(ir.Rho, ms.share))
		s := sigma(target)
		m := intHalfWidth(Gaussian, s)
		for c := range ir.Cells[:ms.totalCells] {
			cell := &ir.Cells[c]
			cell.Scale = s
			cell.CILow, cell.CIHigh = interval(cell.Value, m)
		}
		return target
	}
	t.Fatal("the release has no count indicator")
	return 0
}

// TestValidateGaussianSigmaBounds: under zCDP a measurement's σ must lie
// in [target, target·(1+gaussianSlack)] of the σ its ρ calls for. A σ
// below the target would publish more than the ρ charged; each bound is
// accepted and the next float beyond it refused.
func TestValidateGaussianSigmaBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sigma func(target float64) float64
		ok    bool
	}{
		{"the target", func(x float64) float64 { return x }, true},
		{"just below the target", func(x float64) float64 { return math.Nextafter(x, 0) }, false},
		{"half the target", func(x float64) float64 { return x / 2 }, false},
		{"the upper bound", func(x float64) float64 { return float64(x * (1 + gaussianSlack)) }, true},
		{"just above the upper bound", func(x float64) float64 { return math.Nextafter(float64(x*(1+gaussianSlack)), math.Inf(1)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat, r := builtRelease(t, ZCDP)
			setScale(t, cat, &r, tc.sigma)
			err := ValidateRelease(cat, &r)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "is not the σ")):
				t.Fatalf("got %v, want the σ refused", err)
			}
		})
	}
}

// TestValidateCellValueRange: a noisy count must lie within ±2⁵³ (so it
// and its interval are exact floats): each end is accepted, and one
// beyond either end is refused as such even with the interval its scale
// gives.
func TestValidateCellValueRange(t *testing.T) {
	for _, tc := range []struct {
		v  int64
		ok bool
	}{{maxCellValue, true}, {-maxCellValue, true}, {maxCellValue + 1, false}, {-maxCellValue - 1, false}} {
		cat, r := builtRelease(t, PureDP)
		c := &r.Indicators[0].Cells[0]
		c.Value = tc.v
		c.CILow, c.CIHigh = interval(tc.v, intHalfWidth(Laplace, c.Scale))
		err := ValidateRelease(cat, &r)
		switch {
		case tc.ok && err != nil:
			t.Errorf("value %d: refused: %v", tc.v, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "is out of range")):
			t.Errorf("value %d: got %v, want it refused as out of range", tc.v, err)
		}
	}
}

// TestValidateQuantileOrder: a quantile needs lower ≤ CILow ≤ value ≤
// CIHigh ≤ upper. Equality everywhere is accepted; each inequality broken
// on its own (the others holding) is refused.
func TestValidateQuantileOrder(t *testing.T) {
	cat, built := builtRelease(t, PureDP)
	i := slices.IndexFunc(built.Indicators, func(ir IndicatorRelease) bool { return len(ir.Quantiles) > 0 })
	if i < 0 {
		t.Fatal("the release has no quantile indicator")
	}
	ind, _ := cat.Indicator(built.Indicators[i].Name)
	lo, hi, mid := ind.Lower, ind.Upper, (ind.Lower+ind.Upper)/2
	for _, tc := range []struct {
		name                 string
		ciLow, value, ciHigh float64
		ok                   bool
	}{
		{"all equal", mid, mid, mid, true},
		{"the whole range", lo, mid, hi, true},
		{"interval below the lower bound", lo - 1, mid, hi, false},
		{"interval low above the value", mid + 1, mid, hi, false},
		{"value above the interval", lo, mid + 1, mid, false},
		{"interval above the upper bound", lo, mid, hi + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(built)
			var r Release
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			q := &r.Indicators[i].Quantiles[0]
			q.CILow, q.Value, q.CIHigh = tc.ciLow, tc.value, tc.ciHigh
			err := ValidateRelease(cat, &r)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "must be ordered")):
				t.Fatalf("got %v, want the quantile refused", err)
			}
		})
	}
}
