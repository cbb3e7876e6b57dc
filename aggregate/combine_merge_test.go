package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMergedEqualsUnmerged: merging repeated measurements of a cell into
// one inverse-variance weighted row changes no estimate, interval, change
// or direct measurement. Random ledgers (two partners, two years, 1–4
// releases a quarter at budgets 10⁻³–1, some Gaussian, some year
// releases, a second catalog-like indicator) are solved both ways and
// every query's points compared: integers equal, intervals within 1e-9
// relative.
func TestMergedEqualsUnmerged(t *testing.T) {
	cat := CatalogV1()
	victims, _ := cat.Indicator("victims")
	exploitation, _ := cat.Indicator("exploitation")
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 77))
		ms := randomLedger(r, []*Indicator{victims, exploitation})
		merged, err := NewEstimates(ms)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := newEstimates(ms, &MeasurementSet{unmerged: true, indicators: map[string]*setIndicator{}, blocks: map[blockKey]*setBlock{}, strs: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		rows := func(e *Estimates) (n int) {
			for _, ind := range e.indicators {
				for _, b := range ind.blocks {
					n += len(b.rows)
				}
			}
			return n
		}
		if rm, ru := rows(merged), rows(ref); rm >= ru {
			t.Fatalf("seed %d: %d merged rows for %d measurements: nothing merged", seed, rm, ru)
		}
		compared := 0
		for _, ind := range []*Indicator{victims, exploitation} {
			for _, by := range [][]string{nil, {ind.Dimensions[0].Name}, dimNamesOf(ind)} {
				for _, q := range []SeriesQuery{
					{}, {RollUpYears: true}, {RollUpRegion: true}, {RollUpYears: true, RollUpRegion: true},
					{RollUpYears: true, PoolYears: 2}, {Partners: []string{"BA"}, From: Period{2024, 2}},
				} {
					q.Indicator, q.By = ind.Name, by
					a, errA := merged.Series(q)
					b, errB := ref.Series(q)
					if errA != nil || errB != nil {
						t.Fatalf("seed %d %+v: %v, %v", seed, q, errA, errB)
					}
					if len(a) != len(b) {
						t.Fatalf("seed %d %+v: %d points merged, %d unmerged", seed, q, len(a), len(b))
					}
					for i := range a {
						if d := pointDiff(&a[i], &b[i]); d != "" {
							t.Fatalf("seed %d %+v point %d (%s %s %v): %s", seed, q, i, a[i].Partner, a[i].Period, a[i].Key, d)
						}
					}
					compared += len(a)
				}
			}
		}
		if compared < 1000 {
			t.Fatalf("seed %d: only %d points compared", seed, compared)
		}
		if seed == 0 {
			t.Logf("%d measurements → %d merged rows; %d points compared", len(ms), rows(merged), compared)
		}
	}
}

// randomLedger publishes each indicator for two partners over 2023–2024:
// 1–4 releases a quarter (or a year release, or both) at random budgets,
// leaves in ledger order.
func randomLedger(r *rand.Rand, inds []*Indicator) []Measurement {
	var ms []Measurement
	leaf := int64(0)
	for _, partner := range []string{"BA", "RS"} {
		truths := map[string]truthTable{}
		for _, ind := range inds {
			truths[ind.Name] = randomTruth(ind, r)
		}
		for year := 2023; year <= 2024; year++ {
			for q := 0; q <= 4; q++ {
				if q == 0 && r.IntN(3) > 0 || q > 0 && r.IntN(6) == 0 {
					continue
				}
				for range 1 + r.IntN(4) {
					leaf++
					id := fmt.Sprintf("%s-%d-%d-%d", partner, year, q, leaf)
					eps := math.Pow(10, -3*r.Float64())
					gaussian := r.IntN(4) == 0
					for _, ind := range inds {
						for _, m := range publish(ind, truths[ind.Name], partner, Period{year, q}, id, leaf, eps, r) {
							if gaussian {
								m.Mechanism = MechanismGaussian
							}
							ms = append(ms, m)
						}
					}
				}
			}
		}
	}
	return ms
}

func dimNamesOf(ind *Indicator) []string {
	var out []string
	for _, d := range ind.Dimensions {
		out = append(out, d.Name)
	}
	return out
}

// pointDiff says how two points differ beyond 1e-9 relative, or "". An
// interval's ends are compared relative to the larger end: an end near 0
// of a wide interval has no relative precision of its own.
func pointDiff(a, b *SeriesPoint) string {
	near := func(x, y float64) bool {
		return x == y || math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
	}
	nearCI := func(lo1, hi1, lo2, hi2 float64) bool {
		scale := math.Max(math.Max(math.Abs(lo1), math.Abs(hi1)), math.Max(math.Abs(lo2), math.Abs(hi2)))
		return lo1 == lo2 && hi1 == hi2 || math.Abs(lo1-lo2) <= 1e-9*scale && math.Abs(hi1-hi2) <= 1e-9*scale
	}
	switch {
	case a.Partner != b.Partner || a.Period != b.Period || !slices.Equal(a.Key, b.Key) || a.FirstYear != b.FirstYear:
		return "different points"
	case a.Estimate != b.Estimate || a.Determined != b.Determined || a.TooUncertain != b.TooUncertain || a.Small != b.Small:
		return fmt.Sprintf("estimate %d %v vs %d %v", a.Estimate, a.Determined, b.Estimate, b.Determined)
	case !nearCI(a.CILow, a.CIHigh, b.CILow, b.CIHigh):
		return fmt.Sprintf("interval [%v, %v] vs [%v, %v]", a.CILow, a.CIHigh, b.CILow, b.CIHigh)
	case a.HasRaw != b.HasRaw || a.Raw != b.Raw || !near(a.RawVariance, b.RawVariance) || !nearCI(a.RawCILow, a.RawCIHigh, b.RawCILow, b.RawCIHigh):
		return fmt.Sprintf("raw %d ± %v vs %d ± %v", a.Raw, a.RawVariance, b.Raw, b.RawVariance)
	case !slices.Equal(a.ReleaseIDs, b.ReleaseIDs):
		return fmt.Sprintf("releases %v vs %v", a.ReleaseIDs, b.ReleaseIDs)
	case (a.Change == nil) != (b.Change == nil):
		return "change on one side only"
	case a.Change != nil && (a.Change.Value != b.Change.Value || a.Change.Detectable != b.Change.Detectable ||
		!nearCI(a.Change.CILow, a.Change.CIHigh, b.Change.CILow, b.Change.CIHigh)):
		return fmt.Sprintf("change %+v vs %+v", *a.Change, *b.Change)
	}
	return ""
}

// TestMeasurementSetGrows: a set extended release by release answers as
// NewEstimates over everything added, re-solving only what changed, and
// an earlier Estimates is unaffected by later Adds.
func TestMeasurementSetGrows(t *testing.T) {
	ind := victimsIndicator(t)
	r := rand.New(rand.NewPCG(5, 5))
	ms := randomLedger(r, []*Indicator{ind})
	s := NewMeasurementSet()
	half := len(ms) / 2
	for i := range ms[:half] {
		if err := s.Add(&ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	early, err := s.Estimates()
	if err != nil {
		t.Fatal(err)
	}
	q := SeriesQuery{Indicator: "victims", By: []string{"sex"}, RollUpRegion: true}
	before := mustSeries(t, early, q)
	for i := range ms[half:] {
		if err := s.Add(&ms[half+i]); err != nil {
			t.Fatal(err)
		}
	}
	late, err := s.Estimates()
	if err != nil {
		t.Fatal(err)
	}
	whole := mustEstimates(t, ms)
	for _, q := range []SeriesQuery{q, {Indicator: "victims", RollUpYears: true}} {
		a, b := mustSeries(t, late, q), mustSeries(t, whole, q)
		if len(a) != len(b) {
			t.Fatalf("%+v: %d points grown, %d at once", q, len(a), len(b))
		}
		for i := range a {
			if d := pointDiff(&a[i], &b[i]); d != "" {
				t.Fatalf("%+v point %d: %s", q, i, d)
			}
		}
	}
	again := mustSeries(t, early, q)
	for i := range before {
		if d := pointDiff(&before[i], &again[i]); d != "" {
			t.Fatalf("the earlier estimates changed after Add: point %d: %s", i, d)
		}
	}
	if err := s.Add(&ms[len(ms)-1]); err == nil {
		t.Fatal("a release publishing a cell twice was accepted")
	}
	if _, err := s.Estimates(); err == nil {
		t.Fatal("Estimates after a refused measurement did not refuse the set")
	}
}
