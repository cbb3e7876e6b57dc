package privacy

import (
	"context"
	"math"
	"strings"
	"testing"

	"roundtable/aggregate"
)

func TestPlanLaplaceKnownValues(t *testing.T) {
	cat := aggregate.CatalogV1()
	rows, err := Plan(cat, nil, PlanParams{Accounting: PureDP, Budget: 1 * Micro})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(cat.Indicators) {
		t.Fatalf("%d rows", len(rows))
	}
	// ε = 1 over 10 indicators weighted 4 (victims) and 1 (the other
	// nine): 4/13 and 1/13. The victims row describes a cell of its cross
	// table, which has 0.2 of the indicator's budget.
	want := map[string]struct {
		b    float64
		half int64
	}{
		"victims":          {1 / (4.0 / 13 * 0.2), 49}, // b = 16.25: 16.25·2.9957 − .5 = 48.18 → 49
		"exploitation":     {3 * 13, 117},              // b = 39: 116.33 → 117
		"citizenship":      {13, 39},                   // b = 13: 38.44 → 39
		"services":         {8 * 13, 312},              // b = 104: 311.05 → 312
		"means_of_control": {3 * 13, 117},
	}
	for _, r := range rows {
		w, ok := want[r.Indicator]
		if !ok {
			continue
		}
		if math.Abs(r.Scale-w.b) > 1e-9 || r.HalfWidth != w.half || r.Mechanism != Laplace {
			t.Errorf("%s: b=%v half=%d, want b=%v half=%d", r.Indicator, r.Scale, r.HalfWidth, w.b, w.half)
		}
		if r.Coverage < 0.95 || r.Coverage > 0.96 {
			t.Errorf("%s: coverage %v", r.Indicator, r.Coverage)
		}
		wantBudget := 1.0 / 13
		if r.Indicator == "victims" {
			wantBudget = 4.0 / 13
		}
		if math.Abs(r.Budget-wantBudget) > 1e-12 {
			t.Errorf("%s: budget %v", r.Indicator, r.Budget)
		}
	}
	age := rows[len(rows)-1]
	if age.Indicator != "age" || age.HalfWidth != 0 || !(age.RankError > 0) {
		t.Errorf("age row %+v", age)
	}
}

func TestPlanTarget(t *testing.T) {
	cat := aggregate.CatalogV1()
	for _, acc := range []string{PureDP, ZCDP} {
		rows, err := Plan(cat, []string{"citizenship", "services", "age"}, PlanParams{Accounting: acc, TargetHalfWidth: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got := float64(r.HalfWidth)
			if r.Indicator == "age" {
				got = r.RankError
			}
			if got > 10 {
				t.Errorf("%s %s: half-width %v at the planned total %v exceeds 10", acc, r.Indicator, got, r.Total)
			}
			// One micro less must miss the target: the total is the smallest.
			p := PlanParams{Accounting: acc, Budget: r.Total - 1}
			less, err := Plan(cat, []string{"citizenship", "services", "age"}, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range less {
				if l.Indicator != r.Indicator {
					continue
				}
				got := float64(l.HalfWidth)
				if l.Indicator == "age" {
					got = l.RankError
				}
				if got <= 10 {
					t.Errorf("%s %s: total %v is not the smallest (%v still meets 10)", acc, r.Indicator, r.Total, l.Total)
				}
			}
		}
		// Laplace closed form for citizenship (k = 1, one of three
		// indicators): m ≤ 10 ⟺ b ≤ 10.5/ln 20 ⟺ ε_total ≥ 3·ln 20/10.5.
		if acc == PureDP {
			want := 3 * math.Log(20) / 10.5
			if got := rows[0].Total.Value(); got < want || got > want+1.1e-6 {
				t.Errorf("citizenship total %v, want ⌈%v⌉ in micro", got, want)
			}
		}
	}
}

// The planner must describe exactly the noise BuildRelease applies.
func TestPlanMatchesRelease(t *testing.T) {
	cat, tables := testTables(t, 200)
	for _, acc := range []string{PureDP, ZCDP} {
		p := ReleaseParams{Accounting: acc, Period: testPeriod, Partner: "BA"}
		pp := PlanParams{Accounting: acc}
		if acc == PureDP {
			p.Budget, pp.Budget = 2*Micro, 2*Micro
		} else {
			p.Budget, pp.Budget = 0.2*Micro, 0.2*Micro
		}
		s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := Plan(cat, nil, pp)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			ir := s.Release.Indicators[i]
			if len(ir.Quantiles) > 0 {
				continue
			}
			c := ir.Cells[0] // the first cell belongs to the full table
			if c.Scale != r.Scale || int64(c.CIHigh)-c.Value != r.HalfWidth {
				t.Errorf("%s %s: release scale %v half %v, plan %v %d", acc, r.Indicator, c.Scale, int64(c.CIHigh)-c.Value, r.Scale, r.HalfWidth)
			}
		}
	}
}

func TestPlanRefuses(t *testing.T) {
	cat := aggregate.CatalogV1()
	cases := []struct {
		inds []string
		p    PlanParams
		want string
	}{
		{[]string{"nope"}, PlanParams{Accounting: PureDP, Budget: Micro}, `"nope" is not in catalog`},
		{[]string{"age", "age"}, PlanParams{Accounting: PureDP, Budget: Micro}, "named twice"},
		{nil, PlanParams{Accounting: PureDP}, "ε budget 0 is not positive"},
		{nil, PlanParams{Accounting: "x", Budget: Micro}, "not one of"},
		{[]string{"age"}, PlanParams{Accounting: PureDP, Budget: Micro, Weights: map[string]float64{"victims": 2}}, "not planned"},
		{nil, PlanParams{Accounting: PureDP, Budget: Micro, Weights: map[string]float64{"victims": -2}}, "positive"},
	}
	for _, c := range cases {
		if _, err := Plan(cat, c.inds, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %+v: err = %v, want %q", c.inds, c.p, err, c.want)
		}
	}
}

// The planner's readable figures: yearly releases halve the interval of
// quarterly ones at the same cost per person; a region of N partners is
// about √N times a country; a change about √2 times a year; quantile rows
// carry a rank error and no readable (never a ±0).
func TestPlanReadable(t *testing.T) {
	rows, err := Plan(aggregate.CatalogV1(), nil, PlanParams{Accounting: PureDP, Budget: Micro, Partners: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Indicator == "age" {
			if r.Yearly != nil || r.Quarterly != nil || !(r.RankError > 0) {
				t.Errorf("age row: readable %v %v, rank error %v", r.Yearly, r.Quarterly, r.RankError)
			}
			continue
		}
		y, q := r.Yearly, r.Quarterly
		if y == nil || q == nil {
			t.Fatalf("%s: no readable figures", r.Indicator)
		}
		if ratio := q.CountryYear / y.CountryYear; ratio < 1.8 || ratio > 2.1 {
			t.Errorf("%s: quarterly/yearly country-year = %.3f, want ≈ 2", r.Indicator, ratio)
		}
		if ratio := y.Region / y.CountryYear; ratio < 1.8 || ratio > 2.1 {
			t.Errorf("%s: region of 4 / country = %.3f, want ≈ √4", r.Indicator, ratio)
		}
		if ratio := y.Change / y.CountryYear; ratio < 1.3 || ratio > 1.45 {
			t.Errorf("%s: change / country-year = %.3f, want ≈ √2", r.Indicator, ratio)
		}
		if !(y.Detectable > y.Change) || y.Partners != 4 {
			t.Errorf("%s: detectable %.1f, change %.1f, partners %d", r.Indicator, y.Detectable, y.Change, y.Partners)
		}
	}
	// The v1 figures at ε = 1 with quarterly releases were ±43,
	// ±86 and ±61, from a model that kept only the largest Laplace term;
	// the exact quantile of the sum of all of them (four quarters, four
	// partners, two years) is about 1% wider.
	v := rows[0].Quarterly
	if math.Abs(v.CountryYear-43.98) > 0.01 || math.Abs(v.Region-86.56) > 0.01 || math.Abs(v.Change-61.55) > 0.01 {
		t.Errorf("v1 victims quarterly: country ±%.4f region(4) ±%.4f change ±%.4f, want ±43.98, ±86.56, ±61.55", v.CountryYear, v.Region, v.Change)
	}
	var buf strings.Builder
	if err := WriteReadable(&buf, rows); err != nil || !strings.Contains(buf.String(), "year-over-year change") {
		t.Errorf("WriteReadable: %v\n%s", err, buf.String())
	}
}
