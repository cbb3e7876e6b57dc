package privacy

import (
	"math"
	"testing"
)

// The exact Gaussian conversion: ρ = 0.1 at δ = 1e-10 is ε ≈ 2.753 (the
// general zCDP bound says 3.135); at the ε found, δ(ε) is δ; and it is
// checked against the closed form computed independently here by
// integrating the privacy-loss distribution (the loss of a Gaussian with
// μ = √(2ρ) is Normal(μ²/2, μ²), and δ(ε) = E[(1 − e^{ε−L})⁺]).
func TestGaussianEpsilonExact(t *testing.T) {
	eps, err := GaussianEpsilon(0.1, 1e-10)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(eps-2.75297) > 1e-4 {
		t.Errorf("ρ 0.1, δ 1e-10: ε = %.5f, want 2.75297", eps)
	}
	if b := zcdpToEpsilon(0.1, 1e-10); math.Abs(b-3.13485) > 1e-4 || b <= eps {
		t.Errorf("the general bound %.5f should be 3.13485 and above the exact %.5f", b, eps)
	}
	for _, c := range []struct{ rho, eps float64 }{{0.1, 2.75297}, {0.5, 3}, {0.01, 0.5}, {1, 6}} {
		mu := math.Sqrt(2 * c.rho)
		// δ(ε) = ∫ (1 − e^{ε−l}) φ_L(l) dl over l > ε, by the midpoint rule.
		lo, hi, n := c.eps, mu*mu/2+12*mu, 200000
		h := (hi - lo) / float64(n)
		var d float64
		for i := range n {
			l := lo + (float64(i)+0.5)*h
			z := (l - mu*mu/2) / mu
			d += (1 - math.Exp(c.eps-l)) * math.Exp(-z*z/2) / (mu * math.Sqrt(2*math.Pi)) * h
		}
		if got := GaussianDeltaFor(c.rho, c.eps); math.Abs(got-d) > 1e-6*d+1e-15 {
			t.Errorf("ρ %v ε %v: δ %.6g, integral %.6g", c.rho, c.eps, got, d)
		}
	}
	if _, err := GaussianEpsilon(0, 1e-10); err == nil {
		t.Error("ρ = 0 accepted")
	}
}
