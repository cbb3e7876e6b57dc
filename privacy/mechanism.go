package privacy

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// Confidence is the coverage of every interval this package publishes.
const Confidence = 0.95

// GaussianDelta is the δ handed to the DP library for Gaussian noise under
// ρ-zCDP. The guarantee the consortium accounts is ρ; δ only selects which
// point of the library's (ε, δ) curve reproduces the σ that ρ calls for, so
// its value changes no published number beyond the library's rounding of σ.
const GaussianDelta = 1e-10

// The constants intervals are computed from are written out, not computed
// at start-up: math.Log and math.Erfinv may round differently on different
// architectures (assembly on some, fused multiply-adds on others), and
// every node of the ledger must reach the same verdict on a release's
// intervals (Validator). TestIntervalConstants checks them against the
// formulas.
const (
	// z975 is the standard normal 97.5% quantile, √2·erfinv(Confidence).
	z975 = 1.9599639845400534
	// ln20 is ln(1/(1−Confidence)), the Laplace interval's factor.
	ln20 = 2.995732273553991
)

// cellNoise is the calibrated noise for the cells of one table: the
// sensitivities of the table and the privacy parameters the library needs
// to reach the budget share the table was given. It holds no data.
type cellNoise struct {
	mechanism string  // Laplace or Gaussian
	l0        int64   // cells one person can touch
	lInf      int64   // how much one person can change one cell
	epsilon   float64 // the library's ε
	delta     float64 // the library's δ (Gaussian only)
	rho       float64 // ρ this table is charged under zCDP
	scale     float64 // Laplace b or Gaussian σ, as the library applies it
}

// newLaplaceNoise calibrates pure ε-DP Laplace noise: b = l0·lInf/ε.
func newLaplaceNoise(l0, lInf int64, epsilon float64) (cellNoise, error) {
	if err := checkSensitivity(l0, lInf); err != nil {
		return cellNoise{}, err
	}
	if !(epsilon > 0) || math.IsInf(epsilon, 0) {
		return cellNoise{}, fmt.Errorf("laplace noise: ε must be positive and finite, got %v", epsilon)
	}
	// Probe the library once so its own parameter checks run here, not
	// half-way through a release.
	if _, err := noise.Laplace().AddNoiseInt64(0, l0, lInf, epsilon, 0); err != nil {
		return cellNoise{}, fmt.Errorf("laplace noise: %w", err)
	}
	return cellNoise{mechanism: Laplace, l0: l0, lInf: lInf, epsilon: epsilon,
		scale: laplaceScale(l0, lInf, epsilon)}, nil
}

// laplaceScale is b = l0·lInf/ε: one IEEE division of exact operands, so
// every architecture computes the same bits (the Validator compares them).
func laplaceScale(l0, lInf int64, epsilon float64) float64 {
	return float64(l0*lInf) / epsilon
}

// gaussianTarget is the σ = √l0·lInf/√(2ρ) that gives exactly ρ-zCDP.
// Square roots are correctly rounded everywhere and there is no addition a
// compiler could fuse, so every architecture computes the same bits.
func gaussianTarget(l0, lInf int64, rho float64) float64 {
	return math.Sqrt(float64(l0)) * float64(lInf) / math.Sqrt(2*rho)
}

// newGaussianNoise calibrates ρ-zCDP Gaussian noise. The L2 sensitivity is
// Δ2 = √l0·lInf and σ = Δ2/√(2ρ) gives exactly ρ-zCDP (Bun & Steinke 2016,
// Prop. 1.6). The library takes (ε, δ), not σ, so we search for the ε whose
// library σ at δ = GaussianDelta is the smallest one not below the target:
// the noise applied is never less than ρ requires.
func newGaussianNoise(l0, lInf int64, rho float64) (cellNoise, error) {
	if err := checkSensitivity(l0, lInf); err != nil {
		return cellNoise{}, err
	}
	if !(rho > 0) || math.IsInf(rho, 0) {
		return cellNoise{}, fmt.Errorf("gaussian noise: ρ must be positive and finite, got %v", rho)
	}
	target := gaussianTarget(l0, lInf, rho)
	eps, err := epsilonForSigma(l0, float64(lInf), target, GaussianDelta)
	if err != nil {
		return cellNoise{}, err
	}
	if _, err := noise.Gaussian().AddNoiseInt64(0, l0, lInf, eps, GaussianDelta); err != nil {
		return cellNoise{}, fmt.Errorf("gaussian noise: %w", err)
	}
	return cellNoise{mechanism: Gaussian, l0: l0, lInf: lInf, epsilon: eps, delta: GaussianDelta, rho: rho,
		scale: noise.SigmaForGaussian(l0, float64(lInf), eps, GaussianDelta)}, nil
}

// epsilonForSigma finds by bisection the largest ε for which the library's
// σ(l0, lInf, ε, δ) is still at least target. The invariant σ(lo) ≥ target
// holds at every step, so the answer is safe even where the library's own
// binary search makes σ(ε) not perfectly monotone.
func epsilonForSigma(l0 int64, lInf, target, delta float64) (float64, error) {
	lo, hi := math.Exp2(-40), 1.0
	if noise.SigmaForGaussian(l0, lInf, lo, delta) < target {
		return 0, fmt.Errorf("gaussian noise: σ %.4g needs an ε below the library's minimum", target)
	}
	for noise.SigmaForGaussian(l0, lInf, hi, delta) >= target {
		lo, hi = hi, hi*2
		if hi > 1e6 {
			return 0, fmt.Errorf("gaussian noise: σ %.4g is too small to calibrate", target)
		}
	}
	for i := 0; i < 64 && hi-lo > 1e-12*hi; i++ {
		mid := lo + (hi-lo)/2
		if noise.SigmaForGaussian(l0, lInf, mid, delta) >= target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func checkSensitivity(l0, lInf int64) error {
	if l0 < 1 || lInf < 1 {
		return fmt.Errorf("sensitivity must be at least 1, got l0=%d lInf=%d", l0, lInf)
	}
	if l0 > math.MaxInt32 || lInf > math.MaxInt32 {
		return fmt.Errorf("sensitivity l0=%d lInf=%d is too large", l0, lInf)
	}
	return nil
}

// noisy returns the exact count x with the table's noise added. It is the
// only path by which an exact count reaches anything published.
func (n cellNoise) noisy(x int64) (int64, error) {
	var v int64
	var err error
	switch n.mechanism {
	case Laplace:
		v, err = noise.Laplace().AddNoiseInt64(x, n.l0, n.lInf, n.epsilon, 0)
	case Gaussian:
		v, err = noise.Gaussian().AddNoiseInt64(x, n.l0, n.lInf, n.epsilon, n.delta)
	default:
		err = fmt.Errorf("unknown mechanism %q", n.mechanism)
	}
	if err != nil {
		return 0, fmt.Errorf("add %s noise: %w", n.mechanism, err)
	}
	return v, nil
}

// halfWidth is the half-width of the 95% interval for a true integer count
// given a noisy integer value. The library adds continuous-shaped noise and
// rounds it, so the true count x lies within m of the published value v
// exactly when |noise| < m + ½. The smallest integer m with
// P(|noise| < m + ½) ≥ 95% is
//
//	Laplace:  m = ⌈b·ln(1/0.05) − ½⌉   since P(|L| < t) = 1 − e^(−t/b)
//	Gaussian: m = ⌈σ·z(0.975) − ½⌉
//
// so coverage is at least 95% and, because m is an integer, at most the
// next step up (e.g. 96.1% at b = 2, 95.1% at b = 20).
func (n cellNoise) halfWidth() int64 {
	return intHalfWidth(n.mechanism, n.scale)
}

// intHalfWidth is m for a scale. The explicit conversions keep a compiler
// from fusing the product and the subtraction into one rounding (the Go
// spec allows it), so every architecture finds the same m.
func intHalfWidth(mechanism string, scale float64) int64 {
	t := float64(scale * ln20)
	if mechanism == Gaussian {
		t = float64(scale * z975)
	}
	m := math.Ceil(t - 0.5)
	if m < 0 {
		m = 0
	}
	return int64(m)
}

// coverage is the exact probability that the interval of halfWidth covers
// the true count; tests and docs state it.
func (n cellNoise) coverage() float64 {
	t := float64(n.halfWidth()) + 0.5
	if n.mechanism == Gaussian {
		return math.Erf(t / (n.scale * math.Sqrt2))
	}
	return -math.Expm1(-t / n.scale)
}

// cell draws the noisy value of one cell and its interval.
func (n cellNoise) cell(key []string, x int64) (Cell, error) {
	v, err := n.noisy(x)
	if err != nil {
		return Cell{}, err
	}
	lo, hi := interval(v, n.halfWidth())
	return Cell{Key: key, Value: v, Scale: n.scale, CILow: lo, CIHigh: hi}, nil
}

// interval is the published interval of a noisy value v with half-width m.
func interval(v, m int64) (lo, hi float64) {
	return float64(v - m), float64(v + m)
}

// zcdpToEpsilon is the general bound from ρ-zCDP to (ε, δ)-DP (Bun &
// Steinke 2016, Prop. 1.3): ε = ρ + 2√(ρ·ln(1/δ)). It holds for any
// ρ-zCDP mechanism and is loose for the Gaussian; GaussianEpsilon is exact.
func zcdpToEpsilon(rho, delta float64) float64 {
	return rho + 2*math.Sqrt(rho*math.Log(1/delta))
}

// GaussianDeltaFor is the exact δ(ε) of the Gaussian mechanism whose
// privacy loss is that of ρ-zCDP, i.e. noise σ on L2 sensitivity Δ with
// ρ = Δ²/(2σ²) (Balle & Wang 2018, Thm. 8):
//
//	δ(ε) = Φ(μ/2 − ε/μ) − e^ε·Φ(−μ/2 − ε/μ),   μ = Δ/σ = √(2ρ).
//
// Compositions of Gaussian mechanisms add their ρ and have exactly the
// profile of one Gaussian with the sum (μ² adds: Dong, Roth & Su 2022,
// Cor. 3.3), so this is the exact (ε, δ) of a partner's whole year of zCDP
// releases — up to the library's sampler, which is not the ideal Gaussian
// (docs/privacy.md, "zCDP caveats").
func GaussianDeltaFor(rho, epsilon float64) float64 {
	mu := math.Sqrt(2 * rho)
	a := stdNormalCDF(mu/2 - epsilon/mu)
	// e^ε·Φ(z) in log space: Φ(z) underflows long before e^ε overflows.
	b := math.Exp(epsilon + logStdNormalCDF(-mu/2-epsilon/mu))
	return max(a-b, 0)
}

// GaussianEpsilon is the smallest ε at which ρ (as the Gaussian mechanism
// above) is (ε, δ)-DP: the exact conversion, found by bisection on the
// decreasing δ(ε), to 1e-9. For ρ = 0.1 and δ = 1e-10 it is 2.7530; the
// general zCDP bound (zcdpToEpsilon) gives 3.1349.
func GaussianEpsilon(rho, delta float64) (float64, error) {
	if !(rho > 0) || math.IsInf(rho, 0) || !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("gaussian conversion: need ρ > 0 and 0 < δ < 1, got ρ %v δ %v", rho, delta)
	}
	lo, hi := 0.0, zcdpToEpsilon(rho, delta) // the general bound is never below the exact ε
	if GaussianDeltaFor(rho, lo) <= delta {
		return 0, nil
	}
	for hi-lo > 1e-9 {
		mid := (lo + hi) / 2
		if GaussianDeltaFor(rho, mid) > delta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

func stdNormalCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// logStdNormalCDF is log Φ(z), accurate far into the lower tail.
func logStdNormalCDF(z float64) float64 {
	if z > -30 {
		return math.Log(stdNormalCDF(z))
	}
	z2 := z * z
	return -z2/2 - math.Log(-z*math.Sqrt(2*math.Pi)) + math.Log1p(-1/z2+3/(z2*z2))
}
