package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The tests here check the interval table against what does not depend on
// it: closed forms, Gil–Pelaez inversion of the characteristic function
// (a different numerical method from the table's gamma-mixture
// quadrature), and Monte Carlo draws of the sum it models.

// laplaceTerm is a group of k equal independent Laplace terms of total
// variance v (k need not be an integer: a variance-gamma variable).
type laplaceTerm struct{ v, k float64 }

// charFn is the characteristic function at t of N(0, s2) plus the terms.
func charFn(t, s2 float64, terms []laplaceTerm) float64 {
	lg := -s2 * t * t / 2
	for _, term := range terms {
		lg -= term.k * math.Log1p(term.v/(2*term.k)*t*t)
	}
	return math.Exp(lg)
}

// gilPelaezCover is P(|X| ≤ h) = (2/π)∫₀^∞ sin(th)φ(t)/t dt, integrated
// with 10-point Gauss–Legendre between consecutive zeros of sin(th); the
// alternating panel integrals are summed to 400 panels and the rest
// accelerated by repeated averaging of the last partial sums
// (Euler–van Wijngaarden).
func gilPelaezCover(h, s2 float64, terms []laplaceTerm) float64 {
	x := [5]float64{0.1488743389816312, 0.4333953941292472, 0.6794095682990244, 0.8650633666889845, 0.9739065285171717}
	w := [5]float64{0.2955242247147529, 0.2692667193099963, 0.2190863625159820, 0.1494513491505806, 0.0666713443086881}
	const panels, avg = 400, 24
	step := math.Pi / h
	sum := 0.0
	partial := make([]float64, 0, avg)
	for n := range panels {
		a, b := float64(n)*step, float64(n+1)*step
		mid, half := (a+b)/2, (b-a)/2
		for i := range x {
			for _, t := range []float64{mid - half*x[i], mid + half*x[i]} {
				sum += half * w[i] * math.Sin(t*h) / t * charFn(t, s2, terms)
			}
		}
		if n >= panels-avg {
			partial = append(partial, sum)
		}
	}
	for len(partial) > 1 {
		for i := range len(partial) - 1 {
			partial[i] = (partial[i] + partial[i+1]) / 2
		}
		partial = partial[:len(partial)-1]
	}
	return 2 / math.Pi * partial[0]
}

// gilPelaezHalfWidth solves gilPelaezCover = 0.95 by bisection.
func gilPelaezHalfWidth(s2 float64, terms []laplaceTerm) float64 {
	v := s2
	for _, term := range terms {
		v += term.v
	}
	sd := math.Sqrt(v)
	lo, hi := 1.5*sd, 3*sd
	for hi-lo > 1e-11*sd {
		mid := (lo + hi) / 2
		if gilPelaezCover(mid, s2, terms) < 0.95 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// noiseOf is the Noise the combine path tracks for the same sum.
func noiseOf(s2 float64, terms []laplaceTerm) Noise {
	n := GaussianNoise(s2)
	for _, term := range terms {
		n = n.Plus(Noise{term.v, term.v * term.v / term.k, term.v * term.v * term.v / (term.k * term.k)})
	}
	return n
}

// TestHalfWidthClosedForms: one Laplace(b) term is ±b·ln 20; two equal
// ones (density (1 + |x|/b)e^{−|x|/b}/4b, so P(|X| > h) = e^{−u}(2 + u)/2
// at u = h/b) solve that equation; a normal is ±1.96σ, as is a Laplace
// term with a vanishing share; a Laplace term plus a normal meets the
// normal–Laplace tail in closed form (Reed & Jorgensen 2004).
func TestHalfWidthClosedForms(t *testing.T) {
	const tol = 1e-6 // relative: the table's interpolation error
	check := func(name string, n Noise, want float64) {
		t.Helper()
		if got := HalfWidth95(n); math.Abs(got-want) > tol*want {
			t.Errorf("%s: half-width %.9g, want %.9g", name, got, want)
		}
	}
	for _, b := range []float64{0.3, 4, 250} {
		check(fmt.Sprint("Laplace b=", b), LaplaceNoise(2*b*b), b*math.Log(20))
		u := bisect(func(u float64) bool { return math.Exp(-u)*(2+u)/2 > 0.05 }, 1, 10)
		check(fmt.Sprint("two Laplace b=", b), LaplaceNoise(2*b*b).Times(2), b*u)
		check(fmt.Sprint("normal σ=", b), GaussianNoise(b*b), z95*b)
		check(fmt.Sprint("tiny Laplace share σ=", b), GaussianNoise(b*b).Plus(LaplaceNoise(1e-12*b*b)), z95*b)
	}
	for _, s := range []float64{0.5, 2, 6} {
		b := 4.0
		want := s + b // P(|L + N| > h) = 0.05 by the closed-form tail
		want = bisect(func(h float64) bool { return 2*normalLaplaceTail(h, b, s) > 0.05 }, 0, 10*want)
		check(fmt.Sprint("Laplace b=4 + normal s=", s), LaplaceNoise(2*b*b).Plus(GaussianNoise(s*s)), want)
	}
	if got := HalfWidth95(Noise{}); got != 0 {
		t.Errorf("no noise: half-width %v", got)
	}
}

// bisect returns the point in [lo, hi] where above turns false.
func bisect(above func(float64) bool, lo, hi float64) float64 {
	for range 200 {
		mid := (lo + hi) / 2
		if above(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// normalLaplaceTail is P(L + N > x) for L ~ Laplace(b), N ~ Normal(0, s²),
// x ≥ 0: Φ(−x/s) − ½e^{x/b+s²/2b²}Φ(−(x+s²/b)/s) + ½e^{−x/b+s²/2b²}Φ((x−s²/b)/s).
func normalLaplaceTail(x, b, s float64) float64 {
	phi := func(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
	r := s * s / (2 * b * b)
	up := math.Exp(x/b+r) * phi(-(x+s*s/b)/s) / 2
	down := math.Exp(-x/b+r) * phi((x-s*s/b)/s) / 2
	return phi(-x/s) - up + down
}

// TestHalfWidthTable: at the table's nodes and at random points between
// them (k not on the grid, any Laplace share), the interpolated
// half-width agrees with Gil–Pelaez inversion; and the table is ordered
// as it must be: from the normal's 1.96 up to one Laplace term's
// ln 20/√2, wider for a larger Laplace share and for fewer terms.
func TestHalfWidthTable(t *testing.T) {
	nodes := newHalfWidthNodes()
	for j := range kNodes {
		for i := range rhoNodes + 1 {
			f := nodes.f[j][i]
			if f < z95-1e-12 || f > math.Log(20)/math.Sqrt2+1e-12 {
				t.Fatalf("f[%d][%d] = %v outside [1.96, 2.118]", j, i, f)
			}
			if i > 0 && f < nodes.f[j][i-1]-1e-12 || j > 0 && f > nodes.f[j-1][i]+1e-12 {
				t.Fatalf("f[%d][%d] = %v out of order", j, i, f)
			}
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	worst := 0.0
	for i := range 40 {
		rho, k := float64(i%rhoNodes)/rhoNodes, 1/nodes.x[i%(kNodes-1)] // nodes first
		if i >= 20 {
			rho, k = r.Float64(), 1/(0.02+0.98*r.Float64())
		}
		terms := []laplaceTerm{{rho, k}}
		want := gilPelaezHalfWidth(1-rho, terms)
		got := HalfWidth95(noiseOf(1-rho, terms))
		d := math.Abs(got-want) / want
		worst = max(worst, d)
		if d > 1.5e-5 {
			t.Errorf("ρ=%.4f k=%.4f: table %.9f, Gil–Pelaez %.9f (relative %.2g)", rho, k, got, want, d)
		}
	}
	t.Logf("largest relative difference from Gil–Pelaez: %.2g", worst)
}

// TestHalfWidthMonteCarlo: the 95% quantile of |X| over 2,000,000 draws
// (fixed seed) of a normal plus k equal Laplace terms is within 0.3% of
// the table's half-width (≈ 4.5 standard errors of the sample quantile;
// -short: 500,000 draws, 0.6%).
func TestHalfWidthMonteCarlo(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 95))
	draws, tol := 2_000_000, 0.003
	if testing.Short() {
		draws, tol = 500_000, 0.006
	}
	xs := make([]float64, draws)
	for _, tc := range []struct{ k, s2 float64 }{{1, 0}, {2, 0.2}, {4, 0}, {6, 0.5}, {1, 0.3}} {
		b := math.Sqrt(1 / 2.0) // unit-variance Laplace terms
		for i := range xs {
			x := r.NormFloat64() * math.Sqrt(tc.s2)
			for range int(tc.k) {
				x += b * r.ExpFloat64() * float64(1-2*r.IntN(2))
			}
			xs[i] = math.Abs(x)
		}
		slices.Sort(xs)
		q := xs[draws*95/100]
		h := HalfWidth95(LaplaceNoise(1).Times(tc.k).Plus(GaussianNoise(tc.s2)))
		t.Logf("k=%v s²=%v: Monte Carlo %.4f, table %.4f (%+.2f%%)", tc.k, tc.s2, q, h, 100*(h/q-1))
		if math.Abs(h/q-1) > tol {
			t.Errorf("k=%v s²=%v: Monte Carlo quantile %.4f, table %.4f", tc.k, tc.s2, q, h)
		}
	}
}

// TestHalfWidthUnequalTerms measures the one approximation: Laplace terms
// of unequal variance are modelled as k equal ones plus a normal, matched
// on the variance and the fourth and sixth cumulants. Against Gil–Pelaez
// inversion of the exact characteristic function (the product over the
// terms) it is within 0.15% of the half-width (a coverage error below 0.03
// points), for the shapes the combine path produces (a dominant cell with
// small corrections from margins, partners of unequal size, a change
// between years of unequal noise) and for random sets of terms. The two
// simpler models are logged beside it: the largest term as the only
// Laplace, the rest normal (up to ~3% narrow), and k = (Σv)²/Σv² equal
// terms for all the Laplace variance (up to ~1% wide).
func TestHalfWidthUnequalTerms(t *testing.T) {
	type config struct {
		name  string
		s2    float64
		terms []float64
	}
	configs := []config{
		{"one dominant, two small", 0, []float64{1, 0.1, 0.1}},
		{"one dominant, ten small", 0.2, []float64{1, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05}},
		{"two years, 1:2", 0, []float64{1, 2}},
		{"two years, 1:4", 0.1, []float64{1, 4}},
		{"partners 1:2:4:8", 0, []float64{1, 2, 4, 8}},
		{"six partners 1..6", 0.3, []float64{1, 2, 3, 4, 5, 6}},
		{"four quarters and a year", 0, []float64{1, 1, 1, 1, 4}},
	}
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 24 { // 2–8 terms over up to two decades, half with a normal part
		c := config{name: fmt.Sprint("random ", i)}
		sum := 0.0
		for range 2 + r.IntN(7) {
			v := math.Exp(r.Float64() * math.Log(100) * float64(i%3) / 2)
			c.terms = append(c.terms, v)
			sum += v
		}
		if i%2 == 0 {
			c.s2 = r.Float64() * sum
		}
		configs = append(configs, c)
	}
	worst := 0.0
	for _, c := range configs {
		var terms []laplaceTerm
		var largest, total, sq float64
		for _, v := range c.terms {
			terms = append(terms, laplaceTerm{v, 1})
			largest, total, sq = max(largest, v), total+v, sq+v*v
		}
		exact := gilPelaezHalfWidth(c.s2, terms)
		got := HalfWidth95(noiseOf(c.s2, terms))
		old := HalfWidth95(LaplaceNoise(largest).Plus(GaussianNoise(c.s2 + total - largest)))
		keff := HalfWidth95(noiseOf(c.s2, []laplaceTerm{{total, total * total / sq}}))
		t.Logf("%-26s exact %.4f: model %+.3f%%; largest term alone %+.2f%%, k=(Σv)²/Σv² %+.2f%%",
			c.name, exact, 100*(got/exact-1), 100*(old/exact-1), 100*(keff/exact-1))
		worst = max(worst, math.Abs(got/exact-1))
		if math.Abs(got/exact-1) > 0.0015 {
			t.Errorf("%s: half-width %.5f, exact %.5f", c.name, got, exact)
		}
	}
	t.Logf("largest relative error of the model: %.3f%%", 100*worst)
}

// BenchmarkHalfWidthTable measures building the table, which the first
// NewEstimates of a process pays.
func BenchmarkHalfWidthTable(b *testing.B) {
	for range b.N {
		newHalfWidths()
	}
}

func BenchmarkHalfWidth(b *testing.B) {
	tb := sharedHalfWidths()
	n := Noise{10, 20, 50}
	s := 0.0
	for range b.N {
		s += tb.halfWidth(n)
	}
	_ = s
}
