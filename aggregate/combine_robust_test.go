package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestEstimatesAtTinyBudgets: a release at ε = 10⁻⁶ (weights near 10⁻¹³)
// used to fail the whole solve ("singular normal matrix") because the
// pivot test was absolute. Alone, beside ordinary releases of the same
// year, and as a year release tying quarters published at ε = 1, every
// point must come out determined, finite and — at such noise — marked too
// uncertain to read.
func TestEstimatesAtTinyBudgets(t *testing.T) {
	ind := victimsIndicator(t)
	r := rand.New(rand.NewPCG(1, 1))
	truth := randomTruth(ind, r)
	cases := map[string][]Measurement{
		"alone 1e-6": publish(ind, truth, "RS", Period{2024, 1}, "a", 1, 1e-6, r),
		"alone 1e-4": publish(ind, truth, "RS", Period{2024, 1}, "a", 1, 1e-4, r),
		"beside quarters at 1": slices.Concat(
			publish(ind, truth, "RS", Period{2024, 1}, "q1", 1, 1, r),
			publish(ind, truth, "RS", Period{2024, 2}, "q2", 2, 1e-6, r)),
		"year at 1e-6 over quarters at 1": slices.Concat(
			publish(ind, truth, "RS", Period{2024, 1}, "q1", 1, 1, r),
			publish(ind, truth, "RS", Period{2024, 3}, "q3", 2, 1, r),
			publish(ind, truth, "RS", Period{2024, 0}, "y", 3, 1e-6, r)),
	}
	for name, ms := range cases {
		e, err := NewEstimates(ms)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, by := range [][]string{nil, {"sex"}, {"status", "sex", "age_group"}} {
			for _, year := range []bool{false, true} {
				pts, err := e.Series(SeriesQuery{Indicator: "victims", By: by, RollUpYears: year})
				if err != nil {
					t.Fatalf("%s by %v: %v", name, by, err)
				}
				for _, p := range pts {
					if !p.Determined || !finite(p.CILow, p.CIHigh, p.RawCILow, p.RawCIHigh) || p.Estimate < 0 {
						t.Fatalf("%s by %v: point %+v", name, by, p)
					}
					tiny := slices.ContainsFunc(p.ReleaseIDs, func(id string) bool { return id != "q1" && id != "q3" })
					if name != "year at 1e-6 over quarters at 1" && tiny && !p.TooUncertain {
						t.Errorf("%s by %v: %s %v estimate %d [%.0f, %.0f] not marked too uncertain", name, by, p.Period, p.Key, p.Estimate, p.CILow, p.CIHigh)
					}
				}
			}
		}
	}
	// The tiny year release must not disturb the quarters it ties: Q1 at
	// ε = 1 alone and Q1 beside the year at 1e-6 differ by < 0.01 of Q1's
	// interval.
	r1, r2 := rand.New(rand.NewPCG(9, 9)), rand.New(rand.NewPCG(9, 9))
	alone := publish(ind, truth, "RS", Period{2024, 1}, "q1", 1, 1, r1)
	tied := slices.Concat(publish(ind, truth, "RS", Period{2024, 1}, "q1", 1, 1, r2), publish(ind, truth, "RS", Period{2024, 0}, "y", 2, 1e-6, r2))
	a := mustSeries(t, mustEstimates(t, alone), SeriesQuery{Indicator: "victims"})[0]
	b := mustSeries(t, mustEstimates(t, tied), SeriesQuery{Indicator: "victims", To: Period{2024, 1}})[0]
	if d := math.Abs((a.CILow + a.CIHigh) - (b.CILow + b.CIHigh)); d/2 > 0.01*(a.CIHigh-a.CILow) {
		t.Errorf("Q1 centre moved by %.3f when a 1e-6 year release was added: %+v vs %+v", d/2, a, b)
	}
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func mustEstimates(t testing.TB, ms []Measurement) *Estimates {
	t.Helper()
	e, err := NewEstimates(ms)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cellsOf is a hand-made release: one measurement per key with the given
// value and Gaussian variance (Gaussian, so the interval is exactly
// ±1.96σ).
func cellsOf(partner string, p Period, release string, leaf int64, variance float64, dims []string, cells map[string]int64) []Measurement {
	var ms []Measurement
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range cells {
			if !yield(k) {
				return
			}
		}
	}) {
		ms = append(ms, Measurement{Partner: partner, Period: p, Indicator: "x", Dimensions: dims, Key: strings.Split(k, "|"),
			Value: cells[k], Variance: variance, Mechanism: MechanismGaussian, ReleaseID: release, Leaf: leaf})
	}
	return ms
}

// TestUndeterminedIsReported: a unit whose releases publish only the total
// and the by-sex margin (hand-made: admitted releases always carry their
// full table) determines the total and the sex split but not the split by
// age. Those must come out undetermined — infinite interval, too uncertain
// — never as a precise number, while the determined sums keep their exact
// WLS values: the total combines the total cell (variance 4) with the sum
// of the sex cells (variance 2·1): (100/4 + 96/2)/(1/4 + 1/2) = 97⅓,
// variance 1/(1/4 + 1/2) = 4/3.
func TestUndeterminedIsReported(t *testing.T) {
	dims := []string{"sex", "age"}
	ms := slices.Concat(
		cellsOf("RS", Period{2024, 1}, "t", 1, 4, dims, map[string]int64{"*|*": 100}),
		cellsOf("RS", Period{2024, 1}, "s", 2, 1, dims, map[string]int64{"f|*": 60, "m|*": 36}),
		// Another unit of the same block with its full table, determined.
		cellsOf("RS", Period{2024, 2}, "c", 3, 1, dims, map[string]int64{"f|young": 10, "f|old": 20, "m|young": 5, "m|old": 7}),
	)
	e := mustEstimates(t, ms)
	total := mustSeries(t, e, SeriesQuery{Indicator: "x", To: Period{2024, 1}})
	if len(total) != 1 || !total[0].Determined {
		t.Fatalf("total %+v", total)
	}
	hw := z95 * math.Sqrt(4.0/3)
	if p := total[0]; math.Abs(p.CILow-(97+1.0/3-hw)) > 1e-9 || math.Abs(p.CIHigh-(97+1.0/3+hw)) > 1e-9 || p.Estimate != 97 {
		t.Errorf("total %d [%v, %v], want 97 [%v, %v]", p.Estimate, p.CILow, p.CIHigh, 97+1.0/3-hw, 97+1.0/3+hw)
	}
	for _, p := range mustSeries(t, e, SeriesQuery{Indicator: "x", By: []string{"sex"}, To: Period{2024, 1}}) {
		if !p.Determined || p.TooUncertain {
			t.Errorf("by sex %v: %+v", p.Key, p)
		}
	}
	for _, by := range [][]string{{"age"}, {"sex", "age"}} {
		for _, p := range mustSeries(t, e, SeriesQuery{Indicator: "x", By: by}) {
			q2 := p.Period == Period{2024, 2}
			if p.Determined != q2 || p.TooUncertain == q2 || !q2 && (!math.IsInf(p.CILow, -1) || !math.IsInf(p.CIHigh, 1)) {
				t.Errorf("by %v %s %v: determined %v, too uncertain %v, [%v, %v]", by, p.Period, p.Key, p.Determined, p.TooUncertain, p.CILow, p.CIHigh)
			}
		}
	}
	// The year (Q1 + Q2 only: not a full year) — use the region instead:
	// a sum with an undetermined part is undetermined.
	for _, p := range mustSeries(t, e, SeriesQuery{Indicator: "x", By: []string{"age"}, RollUpRegion: true, To: Period{2024, 1}}) {
		if p.Determined {
			t.Errorf("region by age %v is reported determined", p.Key)
		}
	}
}

// TestCellsAUnitDoesNotPublishAreZero: a second catalog version adds a key
// ("old" → "old", "unknown"); a quarter published under the first version
// has no "unknown" cell. That cell is exactly 0 there (not undetermined,
// which would make the quarter's total undetermined too), and the quarter
// published under the second version has it.
func TestCellsAUnitDoesNotPublishAreZero(t *testing.T) {
	dims := []string{"age"}
	ms := slices.Concat(
		cellsOf("RS", Period{2024, 1}, "v1", 1, 1, dims, map[string]int64{"young": 10, "old": 20}),
		cellsOf("RS", Period{2024, 2}, "v2", 2, 1, dims, map[string]int64{"young": 11, "old": 21, "unknown": 3, "*": 35}),
		cellsOf("RS", Period{2024, 0}, "y1", 3, 1e12, dims, map[string]int64{"young": 0, "old": 0}), // a year under v1 at a tiny budget
	)
	e := mustEstimates(t, ms)
	got := map[string]SeriesPoint{}
	for _, p := range mustSeries(t, e, SeriesQuery{Indicator: "x", By: dims}) {
		got[p.Period.String()+" "+p.Key[0]] = p
	}
	if p := got["2024-Q1 unknown"]; p.Estimate != 0 || !p.Determined || p.CILow != 0 || p.CIHigh != 0 || p.TooUncertain {
		t.Errorf("Q1 unknown: %+v, want exactly 0", p)
	}
	if p := got["2024-Q2 unknown"]; p.Estimate != 3 || !p.Determined {
		t.Errorf("Q2 unknown: %+v", p)
	}
	for _, p := range mustSeries(t, e, SeriesQuery{Indicator: "x"}) {
		if !p.Determined || p.TooUncertain {
			t.Errorf("total %s: %+v", p.Period, p)
		}
	}
}

// TestRawIsTheDirectMeasurement: raw is the published cell that measures
// the quantity asked — never a sum of a finer table's cells. The total
// cell, each sex margin cell and one cross cell are set to values no sum
// of other cells gives, and raw must return exactly them; a breakdown the
// catalog does not publish as a margin (status × sex) has no raw; a year
// from quarters sums the four quarters' total cells; a year release's own
// total cell wins over its quarters; the region sums the partners'.
func TestRawIsTheDirectMeasurement(t *testing.T) {
	ind := victimsIndicator(t)
	r := rand.New(rand.NewPCG(4, 4))
	var ms []Measurement
	set := func(rel string, key []string, v int64) {
		for i := range ms {
			if ms[i].ReleaseID == rel && slices.Equal(ms[i].Key, key) {
				ms[i].Value = v
				return
			}
		}
		t.Fatalf("no cell %v in %s", key, rel)
	}
	leaf := int64(0)
	for _, partner := range []string{"AL", "RS"} {
		for q := 1; q <= 4; q++ {
			leaf++
			rel := fmt.Sprintf("%s-Q%d", partner, q)
			ms = append(ms, publish(ind, randomTruth(ind, r), partner, Period{2023, q}, rel, leaf, 1, r)...)
			set(rel, []string{KeyAll, KeyAll, KeyAll}, 1000*leaf+1)
		}
	}
	set("RS-Q1", []string{KeyAll, "female", KeyAll}, 777)
	set("RS-Q1", []string{"identified", "male", "0-11"}, 555)
	leaf++
	ms = append(ms, publish(ind, randomTruth(ind, r), "RS", Period{2024, 0}, "RS-2024", leaf, 1, r)...)
	set("RS-2024", []string{KeyAll, KeyAll, KeyAll}, 4242)
	ms = append(ms, publish(ind, randomTruth(ind, r), "RS", Period{2024, 1}, "RS-2024-Q1", leaf+1, 1, r)...)
	e := mustEstimates(t, ms)

	find := func(pts []SeriesPoint, partner string, p Period, key ...string) SeriesPoint {
		for _, x := range pts {
			if x.Partner == partner && x.Period == p && slices.Equal(x.Key, key) {
				return x
			}
		}
		t.Fatalf("no point %s %s %v", partner, p, key)
		return SeriesPoint{}
	}
	want := func(what string, p SeriesPoint, v int64) {
		t.Helper()
		if !p.HasRaw || p.Raw != v {
			t.Errorf("%s: raw %d (has %v), want %d", what, p.Raw, p.HasRaw, v)
		}
	}
	q := SeriesQuery{Indicator: "victims", To: Period{2023, 4}}
	want("RS 2023-Q1 total", find(mustSeries(t, e, q), "RS", Period{2023, 1}), 5001)
	q.By = []string{"sex"}
	want("RS 2023-Q1 female", find(mustSeries(t, e, q), "RS", Period{2023, 1}, "female"), 777)
	q.By = []string{"status", "sex", "age_group"}
	want("RS 2023-Q1 cross cell", find(mustSeries(t, e, q), "RS", Period{2023, 1}, "identified", "male", "0-11"), 555)
	q.By = []string{"status", "sex"}
	for _, p := range mustSeries(t, e, q) {
		if p.HasRaw {
			t.Fatalf("status × sex has no published margin, yet raw %d for %v", p.Raw, p.Key)
		}
	}
	year := SeriesQuery{Indicator: "victims", RollUpYears: true}
	pts := mustSeries(t, e, year)
	want("RS 2023 from quarters", find(pts, "RS", Period{2023, 0}), 5001+6001+7001+8001)
	want("RS 2024 year release", find(pts, "RS", Period{2024, 0}), 4242)
	year.RollUpRegion, year.To = true, Period{2023, 4}
	want("region 2023", find(mustSeries(t, e, year), RegionPartner, Period{2023, 0}), 1001+2001+3001+4001+5001+6001+7001+8001)
	// Raw's interval is the measurement's own: one Laplace cell gives the
	// exact ±b·ln 20.
	q = SeriesQuery{Indicator: "victims", To: Period{2023, 1}, Partners: []string{"RS"}}
	p := mustSeries(t, e, q)[0]
	b := math.Sqrt(p.RawVariance / 2)
	if hw := (p.RawCIHigh - p.RawCILow) / 2; math.Abs(hw-b*math.Log(20)) > 1e-3*hw {
		t.Errorf("raw half-width %v, want b·ln 20 = %v", hw, b*math.Log(20))
	}
}

// TestChangeAndReadability checks the year-over-year change and the
// too-uncertain flag against hand-computed values. Two cells per year with
// Gaussian variance V each: the year total has variance 2V and the change
// 4V, so its interval is Δ ± 1.959964·2√V. With 2021 = 100 and 2022 = 90:
// V = 4 gives −10 ± 7.84, which excludes 0 (a detectable decrease); V = 9
// gives −10 ± 11.76, which covers 0 (not distinguishable from no change).
// A year total of 100 has half-width 1.959964·√(2V): above 100 (too
// uncertain) from V = 1301.6; V = 1300 reads, V = 1303 does not.
func TestChangeAndReadability(t *testing.T) {
	dims := []string{"d"}
	year := func(v float64) []Measurement {
		return slices.Concat(
			cellsOf("RS", Period{2021, 0}, "y21", 1, v, dims, map[string]int64{"a": 60, "b": 40}),
			cellsOf("RS", Period{2022, 0}, "y22", 2, v, dims, map[string]int64{"a": 50, "b": 40}),
		)
	}
	for _, tc := range []struct {
		v          float64
		detectable bool
	}{{4, true}, {9, false}} {
		pts := mustSeries(t, mustEstimates(t, year(tc.v)), SeriesQuery{Indicator: "x", RollUpYears: true})
		if len(pts) != 2 || pts[0].Change != nil {
			t.Fatalf("V=%v: points %+v (the first year has nothing to change from)", tc.v, pts)
		}
		c := pts[1].Change
		hw := z95 * 2 * math.Sqrt(tc.v)
		if c == nil || c.Value != -10 || c.From != (Period{2021, 0}) || math.Abs(c.CILow-(-10-hw)) > 1e-9 || math.Abs(c.CIHigh-(-10+hw)) > 1e-9 || c.Detectable != tc.detectable {
			t.Errorf("V=%v: change %+v, want −10 [%v, %v] detectable %v", tc.v, c, -10-hw, -10+hw, tc.detectable)
		}
		// From 2022 on, the change still compares with 2021.
		only := mustSeries(t, mustEstimates(t, year(tc.v)), SeriesQuery{Indicator: "x", RollUpYears: true, From: Period{2022, 1}})
		if len(only) != 1 || only[0].Change == nil || only[0].Change.Value != -10 {
			t.Errorf("V=%v from 2022: %+v", tc.v, only)
		}
	}
	for _, tc := range []struct {
		v       float64
		too     bool
		partner []string
	}{{1300, false, nil}, {1303, true, nil}} {
		p := mustSeries(t, mustEstimates(t, year(tc.v)), SeriesQuery{Indicator: "x", RollUpYears: true, To: Period{2021, 4}})[0]
		if p.Estimate != 100 || p.TooUncertain != tc.too || p.Small != tc.too {
			t.Errorf("V=%v: estimate %d ± %.2f, too uncertain %v, want %v", tc.v, p.Estimate, (p.CIHigh-p.CILow)/2, p.TooUncertain, tc.too)
		}
	}
}

// TestPoolYears: blocks of three years counted back from the latest, each
// the exact sum of its years, raw the sum of the years' total cells, with
// the change from the block before.
func TestPoolYears(t *testing.T) {
	dims := []string{"d"}
	var ms []Measurement
	for y := 2018; y <= 2024; y++ { // 2018 stays out: 2016–2018 is incomplete
		ms = append(ms, cellsOf("XK", Period{y, 0}, fmt.Sprint(y), int64(y), 1, dims, map[string]int64{"a": int64(y - 2000), "b": 1, "*": int64(y - 1999)})...)
	}
	e := mustEstimates(t, ms)
	pts := mustSeries(t, e, SeriesQuery{Indicator: "x", RollUpYears: true, PoolYears: 3})
	if len(pts) != 2 {
		t.Fatalf("%d pooled points, want 2", len(pts))
	}
	early, late := pts[0], pts[1]
	if early.FirstYear != 2019 || early.Period != (Period{2021, 0}) || early.Estimate != 19+20+21+3 ||
		late.FirstYear != 2022 || late.Period != (Period{2024, 0}) || late.Estimate != 22+23+24+3 {
		t.Fatalf("blocks %d–%d = %d, %d–%d = %d", early.FirstYear, early.Period.Year, early.Estimate, late.FirstYear, late.Period.Year, late.Estimate)
	}
	if !late.HasRaw || late.Raw != late.Estimate || len(late.ReleaseIDs) != 3 {
		t.Errorf("late block raw %d (has %v), releases %v", late.Raw, late.HasRaw, late.ReleaseIDs)
	}
	// Each year's total: two cells (variance 2 together) and the total
	// cell (variance 1) combine to variance 2/3; three years: ±1.96·√2.
	if hw := (late.CIHigh - late.CILow) / 2; math.Abs(hw-z95*math.Sqrt(2)) > 1e-9 {
		t.Errorf("pooled half-width %v, want %v", hw, z95*math.Sqrt(2))
	}
	c := late.Change
	if early.Change != nil || c == nil || c.Value != 9 || c.From != (Period{2021, 0}) || c.FromFirst != 2019 || !c.Detectable {
		t.Errorf("changes: early %+v, late %+v", early.Change, c)
	}
	if _, err := e.Series(SeriesQuery{Indicator: "x", PoolYears: 3}); err == nil {
		t.Errorf("pooling without the year roll-up accepted")
	}
}

// TestEstimatesPropertyRandomReleases publishes random mixes of releases
// — quarters and years, budgets from 10⁻⁶ to 1, two catalog versions of
// victims (the second with an extra age group), Laplace and Gaussian —
// and checks for every query: no error, no NaN, determined points with
// finite intervals, non-negative estimates, and consistency (the total
// equals the sum of the by-sex points, the region the sum of partners).
func TestEstimatesPropertyRandomReleases(t *testing.T) {
	v1 := victimsIndicator(t)
	v2 := *v1
	v2.Dimensions = slices.Clone(v1.Dimensions)
	v2.Dimensions[2].Keys = append(slices.Clone(v1.Dimensions[2].Keys), "90+")
	budgets := []float64{1e-6, 1e-4, 0.01, 1}
	for trial := range 30 {
		r := rand.New(rand.NewPCG(uint64(trial), 77))
		var ms []Measurement
		n := 1 + r.IntN(8)
		for i := range n {
			ind := v1
			if r.IntN(2) == 0 {
				ind = &v2
			}
			p := Period{2020 + r.IntN(3), r.IntN(5)}
			rel := fmt.Sprintf("r%d", i)
			m := publish(ind, randomTruth(ind, r), []string{"AL", "RS"}[r.IntN(2)], p, rel, int64(i), budgets[r.IntN(len(budgets))], r)
			if r.IntN(2) == 0 {
				for j := range m {
					m[j].Mechanism = MechanismGaussian
				}
			}
			ms = append(ms, m...)
		}
		e, err := NewEstimates(ms)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		for _, rollup := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			q := SeriesQuery{Indicator: "victims", RollUpYears: rollup[0], RollUpRegion: rollup[1]}
			total := map[string]int64{}
			for _, p := range mustSeriesOrEmpty(t, e, q) {
				checkPoint(t, trial, p)
				total[p.Partner+p.Period.String()] = p.Estimate
			}
			q.By = []string{"sex"}
			sum := map[string]int64{}
			for _, p := range mustSeriesOrEmpty(t, e, q) {
				checkPoint(t, trial, p)
				sum[p.Partner+p.Period.String()] += p.Estimate
			}
			if !mapsEqual(total, sum) {
				t.Errorf("trial %d rollup %v: totals %v, Σ sex %v", trial, rollup, total, sum)
			}
		}
	}
}

func mustSeriesOrEmpty(t *testing.T, e *Estimates, q SeriesQuery) []SeriesPoint {
	t.Helper()
	pts, err := e.Series(q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	return pts
}

func checkPoint(t *testing.T, trial int, p SeriesPoint) {
	t.Helper()
	ok := p.Determined && finite(p.CILow, p.CIHigh, p.RawCILow, p.RawCIHigh, p.RawVariance) && p.Estimate >= 0 && p.CILow <= p.CIHigh
	if c := p.Change; c != nil {
		ok = ok && finite(c.CILow, c.CIHigh) && c.Detectable == (c.CILow > 0 || c.CIHigh < 0)
	}
	if !ok {
		t.Errorf("trial %d: point %+v", trial, p)
	}
}
