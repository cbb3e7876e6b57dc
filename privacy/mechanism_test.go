package privacy

import (
	"math"
	"strings"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
)

func TestIntHalfWidthKnownValues(t *testing.T) {
	cases := []struct {
		mech  string
		scale float64
		want  int64
	}{
		// Laplace: m = ⌈b·ln 20 − ½⌉, ln 20 = 2.995732.
		{Laplace, 1, 3},   // 2.4957 → 3
		{Laplace, 2, 6},   // 5.4915 → 6
		{Laplace, 10, 30}, // 29.457 → 30
		{Laplace, 20, 60}, // 59.415 → 60
		{Laplace, 0.1, 0}, // noise almost never moves the count
		// Gaussian: m = ⌈σ·1.959964 − ½⌉.
		{Gaussian, 1, 2},   // 1.46 → 2
		{Gaussian, 10, 20}, // 19.0996 → 20
		{Gaussian, 5, 10},  // 9.3 → 10
	}
	for _, c := range cases {
		if got := intHalfWidth(c.mech, c.scale); got != c.want {
			t.Errorf("%s scale %v: half-width %d, want %d", c.mech, c.scale, got, c.want)
		}
	}
}

// The integer interval must cover with probability ≥ 95%, and one step
// narrower must not: it is the shortest symmetric one that does.
func TestHalfWidthIsShortestCovering(t *testing.T) {
	cover := func(mech string, scale float64, m int64) float64 {
		t := float64(m) + 0.5
		if mech == Gaussian {
			return math.Erf(t / (scale * math.Sqrt2))
		}
		return -math.Expm1(-t / scale)
	}
	for _, mech := range []string{Laplace, Gaussian} {
		for scale := 0.3; scale < 500; scale *= 1.07 {
			m := intHalfWidth(mech, scale)
			if c := cover(mech, scale, m); c < Confidence {
				t.Errorf("%s %v: coverage %v < 95%% at m=%d", mech, scale, c, m)
			}
			if m > 0 && cover(mech, scale, m-1) >= Confidence {
				t.Errorf("%s %v: m=%d is not the shortest", mech, scale, m)
			}
			n := cellNoise{mechanism: mech, scale: scale}
			if math.Abs(n.coverage()-cover(mech, scale, m)) > 1e-12 {
				t.Errorf("%s %v: coverage() disagrees", mech, scale)
			}
		}
	}
}

func TestGaussianCalibration(t *testing.T) {
	for _, l0 := range []int64{1, 3, 8} {
		for _, rho := range []float64{0.001, 0.01, 0.1, 0.5, 2} {
			n, err := newGaussianNoise(l0, 1, rho)
			if err != nil {
				t.Fatal(err)
			}
			target := math.Sqrt(float64(l0)) / math.Sqrt(2*rho)
			// Never less noise than ρ requires; at most the library's
			// 0.1% search accuracy (plus its step) more.
			if n.scale < target || n.scale > target*1.002 {
				t.Errorf("l0=%d ρ=%v: σ=%v, want [%v, %v]", l0, rho, n.scale, target, target*1.002)
			}
			if achieved := float64(l0) / (2 * n.scale * n.scale); achieved > rho*(1+1e-12) { // float rounding of σ² only
				t.Errorf("l0=%d ρ=%v: achieved ρ %v exceeds budget", l0, rho, achieved)
			}
		}
	}
}

func TestZCDPConversion(t *testing.T) {
	// ρ = 0.5, δ = 1e-10: 0.5 + 2·√(0.5·ln 1e10) = 0.5 + 2·3.393070 = 7.286140.
	if got := zcdpToEpsilon(0.5, 1e-10); math.Abs(got-7.286140) > 1e-5 {
		t.Errorf("ε = %v, want 7.286140", got)
	}
	if got := zcdpToEpsilon(0.01, 1e-5); math.Abs(got-(0.01+2*math.Sqrt(0.01*math.Log(1e5)))) > 1e-12 {
		t.Errorf("ε = %v", got)
	}
}

func TestMechanismRefusesBadParameters(t *testing.T) {
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"laplace zero ε", func() error { _, err := newLaplaceNoise(1, 1, 0); return err }, "ε must be positive"},
		{"laplace inf ε", func() error { _, err := newLaplaceNoise(1, 1, math.Inf(1)); return err }, "ε must be positive"},
		{"laplace NaN ε", func() error { _, err := newLaplaceNoise(1, 1, math.NaN()); return err }, "ε must be positive"},
		{"laplace l0 0", func() error { _, err := newLaplaceNoise(0, 1, 1); return err }, "sensitivity"},
		{"gaussian zero ρ", func() error { _, err := newGaussianNoise(1, 1, 0); return err }, "ρ must be positive"},
		{"gaussian lInf 0", func() error { _, err := newGaussianNoise(1, 0, 1); return err }, "sensitivity"},
		{"quantile bounds", func() error { _, err := newQuantileNoise(PureDP, 1, 5, 5, nil); return err }, "bounds"},
		{"quantile rank", func() error { _, err := newQuantileNoise(PureDP, 1, 0, 90, []float64{1}); return err }, "rank"},
		{"quantile accounting", func() error { _, err := newQuantileNoise("x", 1, 0, 90, nil); return err }, "accounting"},
	}
	for _, c := range cases {
		if err := c.err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestQuantilesOrderedAndBounded(t *testing.T) {
	values := make([]float64, 5000)
	for i := range values {
		values[i] = float64(i % 91)
	}
	for _, acc := range []string{PureDP, ZCDP} {
		q, err := newQuantileNoise(acc, 1, 0, 90, nil)
		if err != nil {
			t.Fatal(err)
		}
		count, qs, err := q.release(values)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(count.Value)-5000) > 200 {
			t.Errorf("%s: noisy count %d far from 5000", acc, count.Value)
		}
		for i, x := range qs {
			if x.CILow > x.Value || x.Value > x.CIHigh || x.CILow < 0 || x.CIHigh > 90 {
				t.Errorf("%s: %+v out of order", acc, x)
			}
			if i > 0 && x.Value < qs[i-1].Value {
				t.Errorf("%s: quantiles decrease: %+v", acc, qs)
			}
			// Uniform 0–90: quartiles near 22.5, 45, 67.5; with N = 5000 and
			// ε = 1 the interval is a few years wide.
			if want := 90 * x.Rank; x.CILow > want+1 || x.CIHigh < want-1 {
				t.Errorf("%s: rank %v interval [%v, %v] misses %v", acc, x.Rank, x.CILow, x.CIHigh, want)
			}
		}
	}
}

// With no ages at all the quantiles are still published, with intervals
// spanning the whole range: nothing is learnt, nothing is hidden.
func TestQuantilesEmpty(t *testing.T) {
	q, err := newQuantileNoise(PureDP, 1, 0, 90, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, qs, err := q.release(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range qs {
		if x.CILow != 0 || x.CIHigh != 90 || x.Value < 0 || x.Value > 90 {
			t.Errorf("empty data: %+v, want interval [0, 90]", x)
		}
	}
}

// Our integer interval agrees with the library's ComputeConfidenceIntervalInt64
// (which rounds the continuous quantile) away from exact ties; the library
// nudges its bounds outward by one float step, hence the ceil/floor.
func TestHalfWidthMatchesLibrary(t *testing.T) {
	for _, eps := range []float64{0.013, 0.05, 0.1, 0.37, 0.5, 1, 2.9} {
		for _, l0 := range []int64{1, 3, 8} {
			lap, err := newLaplaceNoise(l0, 1, eps)
			if err != nil {
				t.Fatal(err)
			}
			gau, err := newGaussianNoise(l0, 1, eps/10)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []cellNoise{lap, gau} {
				var ci noise.ConfidenceInterval
				if n.mechanism == Laplace {
					ci, err = noise.Laplace().ComputeConfidenceIntervalInt64(100, n.l0, n.lInf, n.epsilon, 0, 1-Confidence)
				} else {
					ci, err = noise.Gaussian().ComputeConfidenceIntervalInt64(100, n.l0, n.lInf, n.epsilon, n.delta, 1-Confidence)
				}
				if err != nil {
					t.Fatal(err)
				}
				m := n.halfWidth()
				if math.Ceil(ci.LowerBound) != float64(100-m) || math.Floor(ci.UpperBound) != float64(100+m) {
					t.Errorf("%s ε=%v l0=%d: library [%v, %v], ours ±%d", n.mechanism, eps, l0, ci.LowerBound, ci.UpperBound, m)
				}
			}
		}
	}
}
