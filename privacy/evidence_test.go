package privacy

// Evidence that the mechanisms do what the release claims. The noise comes
// from the DP library's crypto/rand source, which cannot be seeded, so
// these tests are random; every tolerance is derived from sampling theory
// (standard errors, Clopper–Pearson bounds) at a level where a correct
// mechanism fails far less than once in a million runs, not tuned to pass.
// Synthetic data and the choice of cells use fixed seeds.

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"roundtable/aggregate"
)

// roundedMoments returns the variance and fourth moment of the integer the
// library publishes: continuous noise of the given scale, rounded. Summing
// the exact distribution keeps the ~1/12 rounding term, which at 20,000
// draws is the same size as the standard error and must not be ignored.
func roundedMoments(mech string, scale float64) (m2, m4 float64) {
	cdf := func(x float64) float64 {
		if mech == Gaussian {
			return 0.5 * math.Erfc(-x/(scale*math.Sqrt2))
		}
		if x < 0 {
			return 0.5 * math.Exp(x/scale)
		}
		return 1 - 0.5*math.Exp(-x/scale)
	}
	for k := 1; k < int(60*scale)+10; k++ {
		p := 2 * (cdf(float64(k)+0.5) - cdf(float64(k)-0.5)) // ±k
		kk := float64(k * k)
		m2 += kk * p
		m4 += kk * kk * p
	}
	return m2, m4
}

// The empirical variance of 20,000 releases of one fixed cell matches the
// published scale. The standard error of a sample variance is
// √((μ4 − σ⁴)/n); we allow 5 of them (two-sided p ≈ 6e-7). A scale 15%
// off is rejected by the same test, so it can fail.
func TestEvidenceNoiseScale(t *testing.T) {
	skipUnderRace(t)
	n := 20000.0
	if testing.Short() {
		n = 5000 // 5 SE is still under half the 15% scale error
	}
	cases := []struct {
		name string
		mk   func() (cellNoise, error)
	}{
		{"laplace b=2", func() (cellNoise, error) { return newLaplaceNoise(1, 1, 0.5) }},
		{"laplace k=3 b=6", func() (cellNoise, error) { return newLaplaceNoise(3, 1, 0.5) }},
		{"gaussian ρ=0.05", func() (cellNoise, error) { return newGaussianNoise(1, 1, 0.05) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nz, err := tc.mk()
			if err != nil {
				t.Fatal(err)
			}
			const truth = 40
			var sum, sumSq float64
			for range int(n) {
				v, err := nz.noisy(truth)
				if err != nil {
					t.Fatal(err)
				}
				d := float64(v - truth)
				sum += d
				sumSq += d * d
			}
			mean := sum / n
			variance := (sumSq - n*mean*mean) / (n - 1)
			m2, m4 := roundedMoments(nz.mechanism, nz.scale)
			se := math.Sqrt((m4 - m2*m2) / n)
			t.Logf("%s scale %.4f: empirical variance %.4f, stated %.4f (SE %.4f, %+.2f SE); mean %.4f",
				nz.mechanism, nz.scale, variance, m2, se, (variance-m2)/se, mean)
			if math.Abs(variance-m2) > 5*se {
				t.Errorf("variance %.4f differs from the stated %.4f by more than 5 SE (%.4f)", variance, m2, 5*se)
			}
			if meanSE := math.Sqrt(m2 / n); math.Abs(mean) > 5*meanSE {
				t.Errorf("noise mean %.4f is not 0 (SE %.4f)", mean, meanSE)
			}
			wrong, _ := roundedMoments(nz.mechanism, nz.scale*1.15)
			if math.Abs(variance-wrong) <= 5*se {
				t.Errorf("test has no power: a 15%% larger scale (variance %.4f) would pass too", wrong)
			}
		})
	}
}

// Over 2,000 releases of a 50-cell table with known truth, the published
// 95% intervals cover the true counts at the rate the integer interval
// promises. The expected coverage is computed here from the mechanism's
// definition, not by the code under test: the noise scale from the
// budget (Laplace b = 1/ε for one person in one cell; Gaussian σ ≥
// 1/√(2ρ)), the published integer half-width m, and the distribution of
// the rounded noise summed from its CDF over −m…m. The half-width must be
// the shortest with at least 95% coverage under that distribution. Cells
// are independent, so the 100,000 pooled trials give a binomial SE of
// about 0.0007; we allow 4 SE around the expected coverage (-short: 500
// releases, SE about 0.0014).
func TestEvidenceCoverage(t *testing.T) {
	skipUnderRace(t)
	reps := 2000
	if testing.Short() {
		reps = 500
	}
	const cells = 50
	cat := aggregate.CatalogV1()
	ind, _ := cat.Indicator("referral_source")
	r := rand.New(rand.NewPCG(11, 12))
	counts := make([]int64, cells)
	for i := range counts {
		counts[i] = int64(r.IntN(200))
	}
	cases := []struct {
		name   string
		p      ReleaseParams
		mech   string
		scale  float64 // b, or the least σ the budget allows
		trials int
	}{
		{"laplace b=20", ReleaseParams{Accounting: PureDP, Budget: 0.05 * Micro}, Laplace, 20, reps},
		{"gaussian σ≈20", ReleaseParams{Accounting: ZCDP, Budget: Micro / (2 * 400)}, Gaussian, 20, reps},
		{"laplace b=2 (integer step)", ReleaseParams{Accounting: PureDP, Budget: 0.5 * Micro}, Laplace, 2, reps / 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Period, p.Partner = testPeriod, "XK"
			tables := []measurement{&fixedTable{ind: ind, counts: counts, l0: 1, share: 1}}
			res := Reservation{ID: "cov", Consortium: testConsortium, Partner: "XK", CatalogHash: cat.Hash(), Period: testPeriod,
				Accounting: p.Accounting, SpendMicro: p.Budget.Micro(), Indicators: []string{ind.Name}}
			covered, total := 0, 0
			var half int64 = -1
			var scale float64
			for range tc.trials {
				s, err := buildRelease(context.Background(), cat, tables, p, res, testKey(t))
				if err != nil {
					t.Fatal(err)
				}
				ir := s.Release.Indicators[0]
				if ir.Mechanism != tc.mech {
					t.Fatalf("mechanism %s, want %s", ir.Mechanism, tc.mech)
				}
				for i, c := range ir.Cells {
					m := (c.CIHigh - c.CILow) / 2
					if m != math.Trunc(m) || c.CILow != float64(c.Value)-m {
						t.Fatalf("cell %d: interval [%v, %v] around %d is not value ± an integer", i, c.CILow, c.CIHigh, c.Value)
					}
					if half < 0 {
						half, scale = int64(m), c.Scale
					} else if int64(m) != half || c.Scale != scale {
						t.Fatalf("cell %d: half-width %v scale %v, earlier cells %d %v", i, m, c.Scale, half, scale)
					}
					total++
					if c.CILow <= float64(counts[i]) && float64(counts[i]) <= c.CIHigh {
						covered++
					}
				}
			}
			// The stated scale is what the budget implies: exactly b for
			// Laplace; for Gaussian the library's σ, at least the target
			// and close to it.
			switch {
			case tc.mech == Laplace && math.Abs(scale-tc.scale) > 1e-9*tc.scale:
				t.Fatalf("stated Laplace scale %v, the budget implies %v", scale, tc.scale)
			case tc.mech == Gaussian && (scale < tc.scale || scale > 1.01*tc.scale):
				t.Fatalf("stated Gaussian σ %v, the budget implies at least %v (and not 1%% more)", scale, tc.scale)
			}
			expected := roundedCoverage(tc.mech, scale, half)
			if expected < Confidence {
				t.Errorf("half-width %d covers %.4f < 95%% under %s noise of scale %v", half, expected, tc.mech, scale)
			}
			if half > 0 && roundedCoverage(tc.mech, scale, half-1) >= Confidence {
				t.Errorf("half-width %d is not the shortest: %d already covers %.4f", half, half-1, roundedCoverage(tc.mech, scale, half-1))
			}
			got := float64(covered) / float64(total)
			se := math.Sqrt(expected * (1 - expected) / float64(total))
			t.Logf("coverage %.4f over %d intervals of ±%d; expected %.4f; binomial SE %.4f (%+.2f SE)", got, total, half, expected, se, (got-expected)/se)
			if math.Abs(got-expected) > 4*se {
				t.Errorf("coverage %.4f is more than 4 SE from the expected %.4f", got, expected)
			}
		})
	}
}

// roundedCoverage is P(|N| ≤ m) for the integer noise N the library adds:
// continuous Laplace(b) or Normal(0, σ²) noise, rounded to an integer. It
// sums P(N = k) = F(k + ½) − F(k − ½) over k = −m…m from the CDF F.
func roundedCoverage(mech string, scale float64, m int64) float64 {
	cdf := func(x float64) float64 {
		if mech == Gaussian {
			return 0.5 * math.Erfc(-x/(scale*math.Sqrt2))
		}
		if x < 0 {
			return 0.5 * math.Exp(x/scale)
		}
		return 1 - 0.5*math.Exp(-x/scale)
	}
	var p float64
	for k := -m; k <= m; k++ {
		p += cdf(float64(k)+0.5) - cdf(float64(k)-0.5)
	}
	return p
}

// Empirical privacy loss. Neighbouring datasets D and D' differ by one
// person in one cell (count 10 vs 11). We run the count mechanism 100,000
// times on each and, for every tail set S = {v ≥ k} or {v ≤ k} and every
// single value with at least 200 hits on both sides, bound
// ln(P[M(D')∈S]/P[M(D)∈S]) from below with Clopper–Pearson limits at a
// Bonferroni-corrected 1e-6 overall. The largest lower bound must not exceed
// the claimed ε; a mechanism with half the noise it claims must be caught.
func TestEvidencePrivacyAudit(t *testing.T) {
	skipUnderRace(t)
	n := 100_000
	if testing.Short() {
		n = 20_000 // the leaky mechanism is still caught (lower bound ≈ 1.5)
	}
	const eps = 1.0
	sample := func(nz cellNoise, x int64, n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			v, err := nz.noisy(x)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = v
		}
		return out
	}
	honest, err := newLaplaceNoise(1, 1, eps)
	if err != nil {
		t.Fatal(err)
	}
	lb, point := auditLoss(sample(honest, 10, n), sample(honest, 11, n))
	t.Logf("claimed ε = %.3f; empirical loss: point estimate %.3f, 1e-6 lower bound %.3f", eps, point, lb)
	if lb > eps {
		t.Errorf("lower bound on the privacy loss %.3f exceeds the claimed ε %.3f", lb, eps)
	}
	// Power: noise calibrated for ε = 2 while claiming ε = 1.
	leaky, err := newLaplaceNoise(1, 1, 2*eps)
	if err != nil {
		t.Fatal(err)
	}
	lb2, point2 := auditLoss(sample(leaky, 10, n/2), sample(leaky, 11, n/2))
	t.Logf("leaky mechanism: point %.3f, lower bound %.3f", point2, lb2)
	if lb2 <= eps {
		t.Errorf("the audit did not catch a mechanism with loss 2ε (lower bound %.3f)", lb2)
	}
}

// auditLoss returns the largest Clopper–Pearson lower bound on the
// privacy loss over the tested sets, and the largest point estimate.
func auditLoss(d, dPrime []int64) (lower, point float64) {
	const minHits, alpha = 200, 1e-6
	type set func(v int64) bool
	var sets []set
	lo := min(slices.Min(d), slices.Min(dPrime))
	hi := max(slices.Max(d), slices.Max(dPrime))
	for k := lo; k <= hi; k++ {
		sets = append(sets, func(v int64) bool { return v >= k }, func(v int64) bool { return v <= k },
			func(v int64) bool { return v == k })
	}
	countIn := func(xs []int64, s set) int {
		c := 0
		for _, v := range xs {
			if s(v) {
				c++
			}
		}
		return c
	}
	type pair struct{ a, b int }
	var usable []pair
	for _, s := range sets {
		a, b := countIn(d, s), countIn(dPrime, s)
		if a >= minHits && b >= minHits && a < len(d) && b < len(dPrime) {
			usable = append(usable, pair{a, b})
		}
	}
	// Each usable set is tested in both directions, with both binomial
	// limits: Bonferroni over 4 limits per set.
	per := alpha / float64(4*len(usable))
	lower, point = math.Inf(-1), math.Inf(-1)
	na, nb := float64(len(d)), float64(len(dPrime))
	for _, u := range usable {
		a, b := float64(u.a), float64(u.b)
		// ln(P[M(D)∈S]/P[M(D')∈S]) and its reverse.
		for _, r := range []struct{ num, nNum, den, nDen float64 }{{a, na, b, nb}, {b, nb, a, na}} {
			lbNum := distuv.Beta{Alpha: r.num, Beta: r.nNum - r.num + 1}.Quantile(per)
			ubDen := distuv.Beta{Alpha: r.den + 1, Beta: r.nDen - r.den}.Quantile(1 - per)
			lower = max(lower, math.Log(lbNum/ubDen))
			point = max(point, math.Log((r.num/r.nNum)/(r.den/r.nDen)))
		}
	}
	return lower, point
}

// Quantile intervals are conservative yet informative. Over repeated
// releases of a fixed synthetic age sample:
//   - each interval covers the sample's true quantile at least 95% of the
//     time (allowing 3 binomial SE below);
//   - it excludes clearly wrong values: the sample's quantiles 0.2 away in
//     rank (hundreds of people, several years of age) are covered at most
//     5% of the time (allowing 3 SE above). A check on the first side
//     alone passes intervals widened to the whole age range.
func TestEvidenceQuantileCoverage(t *testing.T) {
	skipUnderRace(t)
	reps := 300
	if testing.Short() {
		reps = 100
	}
	const n, shift = 2000, 0.2
	r := rand.New(rand.NewPCG(5, 6))
	values := make([]float64, n)
	for i := range values {
		values[i] = float64(min(90, 10+r.IntN(25)+r.IntN(25)))
	}
	slices.Sort(values)
	quantile := func(rank float64) float64 { return values[int(math.Ceil(rank*n))-1] }
	for _, acc := range []string{PureDP, ZCDP} {
		budget := 1.0
		if acc == ZCDP {
			budget = 0.1
		}
		q, err := newQuantileNoise(acc, budget, 0, 90, nil)
		if err != nil {
			t.Fatal(err)
		}
		covered, total, wrongCovered, wrongTotal := 0, 0, 0, 0
		var width float64
		for range reps {
			_, qs, err := q.release(values)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range qs {
				truth := quantile(x.Rank)
				total++
				width += x.CIHigh - x.CILow
				if x.CILow <= truth && truth <= x.CIHigh {
					covered++
				}
				for _, wrong := range []float64{quantile(x.Rank - shift), quantile(x.Rank + shift)} {
					if wrong == truth {
						t.Fatalf("rank %v: the quantiles %v apart in rank are equal; pick a wider shift", x.Rank, shift)
					}
					wrongTotal++
					if x.CILow <= wrong && wrong <= x.CIHigh {
						wrongCovered++
					}
				}
			}
		}
		if total == 0 {
			t.Fatalf("%s: no quantiles released", acc)
		}
		got := float64(covered) / float64(total)
		se := math.Sqrt(Confidence * (1 - Confidence) / float64(total))
		wrongRate := float64(wrongCovered) / float64(wrongTotal)
		wrongSE := math.Sqrt((1 - Confidence) * Confidence / float64(wrongTotal))
		t.Logf("%s: quantile coverage %.4f over %d intervals (SE %.4f), mean width %.2f years; values %v away in rank covered %.4f",
			acc, got, total, se, width/float64(total), shift, wrongRate)
		if got < Confidence-3*se {
			t.Errorf("%s: quantile coverage %.4f below 95%% − 3 SE", acc, got)
		}
		if wrongRate > (1-Confidence)+3*wrongSE {
			t.Errorf("%s: intervals cover values %v away in rank %.4f of the time, more than 5%% + 3 SE: they say little", acc, shift, wrongRate)
		}
	}
}

func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("statistical evidence: run without -race")
	}
}
