package aggregate

import (
	"math"
	"sync"
)

// Intervals of linear estimates. A consistent estimate, a sum of them, or a
// change between two years is Σ h_r·y_r over independent published cells,
// so its noise is a normal part (the Gaussian cells) plus a sum of
// independent Laplace terms, one per Laplace cell, of variances v_r. The
// 95% interval is that distribution's exact 97.5% quantile, computed as
// follows.
//
// The Laplace sum is summarised by Σv_r² and Σv_r³, which set its fourth
// and sixth cumulants (a Laplace term of variance v has κ₄ = 3v², κ₆ =
// 30v³), and modelled as k equal Laplace terms of total variance λ, with
// the rest of the variance normal: a symmetric variance-gamma variable
// with characteristic function (1 + b²t²)^(−k), 2kb² = λ, defined for any
// real k ≥ 1. Matching κ₄ and κ₆ gives λ = (Σv²)²/Σv³ and k = (Σv²)³/(Σv³)²
// (λ ≤ Σv and k ≥ 1 by the power-mean inequalities), so the model matches
// the noise's variance and its fourth and sixth cumulants. It is exact when
// the terms are equal (a change between two comparable years, a year of
// four quarterly releases, a region of equal partners) and, when one term
// dominates, close to that term alone plus a normal. Otherwise it is an
// approximation; against exact inversion it is within 0.15% of the
// half-width (TestHalfWidthUnequalTerms; aggregate/DESIGN.md compares the
// alternatives).
//
// A variance-gamma variable is a normal whose variance is Gamma(k, 2b²)
// distributed: E[exp(−t²G/2)] = (1 + b²t²)^(−k). So with the normal part,
// of variance s², the noise is √(G + s²)·Z and
//
//	P(|X| > h) = E_G[erfc(h / √(2(G + s²)))],
//
// a smooth, non-oscillating one-dimensional integral against the gamma
// density, which Gauss–Legendre quadrature evaluates to ~1e-13. (Gil–
// Pelaez inversion of the characteristic function, which the tests use as
// an independent check, oscillates and needs ~100× the evaluations.)
//
// By scale invariance the unit-variance half-width depends only on the
// model's Laplace share ρ = λ/V and on k; it is tabulated once per process
// on a grid of ρ × 1/k and interpolated (see halfWidths).

// Noise describes the noise of a linear estimate: its variance, and the
// sums of the squares and cubes of the variances v_r of its independent
// Laplace terms (0 for all-Gaussian noise). Noises of independent
// estimates add.
type Noise struct {
	Variance float64 // of the whole noise
	Laplace2 float64 // Σ v_r² over the Laplace terms
	Laplace3 float64 // Σ v_r³
}

// LaplaceNoise is one Laplace term of the given variance (2b²).
func LaplaceNoise(variance float64) Noise {
	return Noise{variance, variance * variance, variance * variance * variance}
}

// GaussianNoise is normal noise of the given variance.
func GaussianNoise(variance float64) Noise { return Noise{Variance: variance} }

// Plus is the noise of the sum of two independent estimates (or of their
// difference: the noise is symmetric).
func (n Noise) Plus(m Noise) Noise {
	return Noise{n.Variance + m.Variance, n.Laplace2 + m.Laplace2, n.Laplace3 + m.Laplace3}
}

// Times is the noise of the sum of c independent estimates with noise n.
func (n Noise) Times(c float64) Noise { return Noise{c * n.Variance, c * n.Laplace2, c * n.Laplace3} }

// shape returns the model's Laplace share ρ = λ/Variance ∈ [0, 1] and
// x = 1/k ∈ [0, 1] (0: normal), from λ = (Σv²)²/Σv³ and
// 1/k = (Σv³)²/(Σv²)³.
func (n Noise) shape() (rho, x float64) {
	a, b := n.Laplace2, n.Laplace3
	if !(a > 0) || !(b > 0) || !(n.Variance > 0) {
		return 0, 0
	}
	a2 := a * a
	rho = math.Min(a2/(b*n.Variance), 1)
	x = math.Min(b*b/(a2*a), 1)
	return rho, x
}

// HalfWidth95 is the half-width of the 95% interval that series points
// use (see ci95) for a linear estimate with the given noise. The planner
// calls it so that the accuracy it promises is the accuracy the combined
// series show.
func HalfWidth95(n Noise) float64 {
	if !(n.Variance > 0) {
		return 0
	}
	return sharedHalfWidths().halfWidth(n)
}

// z95 is the standard normal 97.5% quantile.
const z95 = 1.959963984540054

// ci95 returns a 95% interval for a linear estimate with the given mean
// and noise: mean ± the exact 97.5% quantile of the noise (to the table's
// interpolation error, < 1e-6 relative). For one Laplace(b) cell this is
// the exact ±b·ln 20 (the plain normal ±1.96σ would cover only 93.7%);
// for a sum of many comparable terms it tends to ±1.96σ.
//
// The interval is not clipped at 0, although counts cannot be negative:
// clipping would turn an interval wholly below 0 into [0, 0], which always
// "covers" a true zero and so overstates coverage (by ~1 point at the
// region's sizes). Displays may show max(0, lo).
func (t *halfWidths) ci95(mean float64, n Noise) (lo, hi float64) {
	if !(n.Variance > 0) {
		return mean, mean
	}
	h := t.halfWidth(n)
	return mean - h, mean + h
}

// The table is built in two steps. The quadrature gives the exact
// unit-variance half-width f(ρ, x) at nodes: ρ = i/rhoNodes and x = 1/k
// for k in kGrid (and x = 0, the normal, where f = z95); each 2k − 1 is an
// integer, so the quadrature's integrand is smooth (see gammaRule). f runs
// from 1.96 (the normal) to ln 20/√2 ≈ 2.118 (one Laplace term) and is
// smooth in both, so four-point (cubic) Lagrange interpolation between
// the nodes is within ~1e-5 of the exact value. That cubic is then
// sampled on a fine uniform grid, which a series point reads by bilinear
// interpolation: a lookup, not a root find or a cubic.
func kGrid() [kNodes - 1]float64 { return [...]float64{1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32} }

const (
	rhoNodes = 64 // intervals of ρ ∈ [0, 1] between exact nodes
	kNodes   = 11 // columns of x, with x = 0
	fineRho  = 256
	fineX    = 64
)

// halfWidths is the fine grid: f[a][i] = f(i/fineRho, a/fineX).
type halfWidths struct {
	f [fineX + 1][fineRho + 1]float64
}

// sharedHalfWidths computes the table once per process; it is never
// written after, so sharing it is safe.
var sharedHalfWidths = sync.OnceValue(newHalfWidths)

func newHalfWidths() *halfWidths {
	nodes := newHalfWidthNodes()
	t := new(halfWidths)
	for a := range fineX + 1 {
		for i := range fineRho + 1 {
			t.f[a][i] = nodes.at(float64(i)/fineRho, float64(a)/fineX)
		}
	}
	return t
}

// halfWidth interpolates the table at n's shape and scales by its
// standard deviation.
func (t *halfWidths) halfWidth(n Noise) float64 {
	sd := math.Sqrt(n.Variance)
	rho, x := n.shape()
	if rho == 0 || x == 0 {
		return z95 * sd
	}
	r, c := rho*fineRho, x*fineX
	i, a := min(int(r), fineRho-1), min(int(c), fineX-1)
	u, v := r-float64(i), c-float64(a)
	lo, hi := &t.f[a], &t.f[a+1]
	f := (1-v)*(lo[i]+u*(lo[i+1]-lo[i])) + v*(hi[i]+u*(hi[i+1]-hi[i]))
	return f * sd
}

// halfWidthNodes holds the exact half-widths at the nodes.
type halfWidthNodes struct {
	x  [kNodes]float64               // 1/k per column, decreasing to 0
	xw [kNodes - 3][4]float64        // 1/Π_{d≠c}(x[j+c] − x[j+d]): Lagrange denominators from column j
	f  [kNodes][rhoNodes + 1]float64 // f[j][i] = f(i/rhoNodes, x[j])
}

func newHalfWidthNodes() *halfWidthNodes {
	t := new(halfWidthNodes)
	for j, k := range kGrid() {
		t.x[j] = 1 / k
		rule := newGammaRule(k)
		t.f[j][0] = z95
		for i := 1; i <= rhoNodes; i++ {
			start := t.f[j][i-1]
			if i > 1 { // extrapolate from the last two
				start = 2*t.f[j][i-1] - t.f[j][i-2]
			}
			t.f[j][i] = rule.halfWidth(float64(i)/rhoNodes, start)
		}
	}
	for i := range t.f[kNodes-1] {
		t.f[kNodes-1][i] = z95
	}
	for j := range t.xw {
		for c := range 4 {
			p := 1.0
			for d := range 4 {
				if d != c {
					p *= t.x[j+c] - t.x[j+d]
				}
			}
			t.xw[j][c] = 1 / p
		}
	}
	return t
}

// at interpolates the nodes at (ρ, x) by the bicubic through the four
// columns and four rows around it.
func (t *halfWidthNodes) at(rho, x float64) float64 {
	j := 0 // x decreases with j
	for j < kNodes-2 && t.x[j+1] >= x {
		j++
	}
	j0 := min(max(j-1, 0), kNodes-4)
	r := rho * rhoNodes
	i0 := min(max(int(r)-1, 0), rhoNodes-3)
	wr := uniformCubic(r - float64(i0+1))
	f := 0.0
	for c := range 4 {
		w := t.xw[j0][c]
		for d := range 4 {
			if d != c {
				w *= x - t.x[j0+d]
			}
		}
		row := t.f[j0+c][i0 : i0+4]
		f += w * (wr[0]*row[0] + wr[1]*row[1] + wr[2]*row[2] + wr[3]*row[3])
	}
	return f
}

// uniformCubic returns the Lagrange weights of the cubic through nodes
// −1, 0, 1, 2 at u.
func uniformCubic(u float64) [4]float64 {
	return [4]float64{
		-u * (u - 1) * (u - 2) / 6,
		(u + 1) * (u - 1) * (u - 2) / 2,
		-(u + 1) * u * (u - 2) / 2,
		(u + 1) * u * (u - 1) / 6,
	}
}

// gammaRule is a quadrature rule for E[g(U)], U ~ Gamma(k, 1): nodes u
// and weights w summing to 1. It integrates over v = √u, where the
// density is 2v^{2k−1}e^{−v²}/Γ(k) (smooth when 2k − 1 is an integer),
// with 10-point Gauss–Legendre panels of width 1 (graded towards 0 for
// other k).
type gammaRule struct {
	k    float64
	u, w []float64
}

func newGammaRule(k float64) *gammaRule {
	g := &gammaRule{k: k}
	vMax := math.Sqrt(k + 12*math.Sqrt(k) + 30) // the mass beyond is < 1e-13
	edges := []float64{0}
	if 2*k-1 != math.Trunc(2*k-1) { // v^{2k−1} is not smooth at 0
		for e := 1.0 / 1024; e < 0.5; e *= 2 {
			edges = append(edges, e)
		}
	}
	for e := 0.5; e < vMax+0.5; e += 0.5 {
		edges = append(edges, e)
	}
	// The 10-point Gauss–Legendre nodes and weights on [−1, 1]
	// (Abramowitz & Stegun, table 25.4).
	gl10x := [10]float64{-0.9739065285171717, -0.8650633666889845, -0.6794095682990244, -0.4333953941292472, -0.1488743389816312,
		0.1488743389816312, 0.4333953941292472, 0.6794095682990244, 0.8650633666889845, 0.9739065285171717}
	gl10w := [10]float64{0.0666713443086881, 0.1494513491505806, 0.2190863625159820, 0.2692667193099963, 0.2955242247147529,
		0.2955242247147529, 0.2692667193099963, 0.2190863625159820, 0.1494513491505806, 0.0666713443086881}
	lg, _ := math.Lgamma(k)
	sum := 0.0
	for p := 1; p < len(edges); p++ {
		a, b := edges[p-1], edges[p]
		for q, t := range gl10x {
			v := (a+b)/2 + (b-a)/2*t
			w := (b - a) / 2 * gl10w[q] * 2 * math.Exp((2*k-1)*math.Log(v)-v*v-lg)
			sum += w
			if w > 1e-17 { // far below the 1e-13 the rule aims at
				g.u, g.w = append(g.u, v*v), append(g.w, w)
			}
		}
	}
	for i := range g.w {
		g.w[i] /= sum
	}
	return g
}

// tail returns P(|X| > h) and its derivative in h for X = √(θU + s²)·Z,
// U ~ Gamma(k, 1): a unit-variance noise with Laplace share ρ = θk and
// normal part s² = 1 − ρ.
func (g *gammaRule) tail(h, theta, s2 float64) (p, dp float64) {
	for i, u := range g.u {
		v := theta*u + s2
		if v <= 0 {
			continue
		}
		inv := 1 / math.Sqrt(2*v)
		z := h * inv
		p += g.w[i] * math.Erfc(z)
		dp -= g.w[i] * inv * math.Exp(-z*z)
	}
	return p, 2 / math.SqrtPi * dp
}

// halfWidth solves P(|X| > h) = 0.05 for the unit-variance noise with
// Laplace share rho and k = g.k equal terms, by Newton's method from
// start, safeguarded by bisection within [1.5, 3] (TestHalfWidthTable checks
// that it lies between the normal's 1.96 and a Laplace's ln 20/√2).
func (g *gammaRule) halfWidth(rho, start float64) float64 {
	theta, s2 := rho/g.k, 1-rho
	lo, hi := 1.5, 3.0
	h := min(max(start, lo), hi)
	for range 100 {
		p, dp := g.tail(h, theta, s2)
		if p > 0.05 {
			lo = h
		} else {
			hi = h
		}
		next := h - (p-0.05)/dp
		if !(next > lo && next < hi) {
			next = (lo + hi) / 2
		}
		if math.Abs(next-h) < 1e-8 { // quadratic convergence: next is good to ~1e-15
			return next
		}
		h = next
	}
	return h
}
