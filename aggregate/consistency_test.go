package aggregate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestInvertSPD(t *testing.T) {
	a := []float64{4, 2, 0, 2, 5, 1, 0, 1, 3}
	inv, err := invertSPD(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for j := range 3 {
			s := 0.0
			for k := range 3 {
				s += a[i*3+k] * inv[k*3+j]
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(s-want) > 1e-12 {
				t.Errorf("(A·A⁻¹)[%d][%d] = %v, want %v", i, j, s, want)
			}
		}
	}
	if _, err := invertSPD([]float64{1, 1, 1, 1}, 2); err == nil {
		t.Errorf("singular matrix inverted")
	}
}

func TestSolveWLSClosedForm(t *testing.T) {
	// Two cells a, b and their total, all with variance 1: the BLUE is
	// â = y_a + (y_t − y_a − y_b)/3 = (2y_a − y_b + y_t)/3, and likewise b̂;
	// â + b̂ = (y_a + y_b + 2y_t)/3. Var(â) = Var(â + b̂) = 2/3. The cells
	// are Laplace and the total Gaussian, so the Laplace terms of â are
	// 4/9 and 1/9 (Σv² = 17/81, Σv³ = 65/729) and those of â + b̂ are 1/9
	// and 1/9.
	rows := []row{
		{cols: []int{0}, value: 10, variance: 1, lap2: 1, lap3: 1},
		{cols: []int{1}, value: 4, variance: 1, lap2: 1, lap3: 1},
		{cols: []int{0, 1}, value: 17, variance: 1},
	}
	x, comps, _, pos := solveWLS(2, rows)
	if math.Abs(x[0]-11) > 1e-12 || math.Abs(x[1]-5) > 1e-12 {
		t.Fatalf("x = %v, want [11 5]", x)
	}
	scratch := make([]float64, 2)
	for _, tc := range []struct {
		set  []int
		want Noise
	}{{[]int{0}, Noise{2.0 / 3, 17.0 / 81, 65.0 / 729}}, {[]int{1}, Noise{2.0 / 3, 17.0 / 81, 65.0 / 729}}, {[]int{0, 1}, Noise{2.0 / 3, 2.0 / 81, 2.0 / 729}}} {
		n := comps[0].linearMoments(rows, pos, tc.set, scratch)
		if math.Abs(n.Variance-tc.want.Variance) > 1e-12 || math.Abs(n.Laplace2-tc.want.Laplace2) > 1e-12 || math.Abs(n.Laplace3-tc.want.Laplace3) > 1e-12 {
			t.Errorf("noise of Σ%v = %+v, want %+v", tc.set, n, tc.want)
		}
	}
	// Unknowns not tied by any row are separate components.
	_, comps, compOf, _ := solveWLS(3, []row{{cols: []int{0}, value: 1, variance: 1}, {cols: []int{1, 2}, value: 1, variance: 1}, {cols: []int{2}, value: 1, variance: 1}})
	if len(comps) != 2 || compOf[1] != compOf[2] || compOf[0] == compOf[1] {
		t.Errorf("components %v", compOf)
	}
}

func TestProjectAndRound(t *testing.T) {
	cases := []struct {
		x     []float64
		total int64
		want  []int64
	}{
		{[]float64{3.4, 2.6, -1}, 5, []int64{3, 2, 0}},
		{[]float64{1.5, 1.5, 1.5}, 4, []int64{2, 1, 1}}, // ties go to the lower index
		{[]float64{-2, -3}, 0, []int64{0, 0}},
		{[]float64{0.2, 0.2, 0.2, 0.2, 0.2}, 1, []int64{1, 0, 0, 0, 0}},
		{[]float64{10, 0, 0}, 10, []int64{10, 0, 0}},
	}
	for _, tc := range cases {
		got := roundToTotal(projectSimplex(tc.x, float64(tc.total)), tc.total)
		if !slices.Equal(got, tc.want) {
			t.Errorf("project+round %v to %d = %v, want %v", tc.x, tc.total, got, tc.want)
		}
	}
	// Property: for any input, integerLeaves is non-negative and sums to
	// the rounded non-negative total.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		x := make([]float64, 1+r.IntN(20))
		sum := 0.0
		for i := range x {
			x[i] = r.NormFloat64()*5 + float64(r.IntN(6))
			sum += x[i]
		}
		got := integerLeaves(x)
		var s int64
		for _, v := range got {
			if v < 0 {
				t.Fatalf("negative leaf in %v from %v", got, x)
			}
			s += v
		}
		if want := int64(math.Max(math.Round(sum), 0)); s != want {
			t.Fatalf("leaves %v sum to %d, want %d (from %v)", got, s, want, x)
		}
	}
}

// TestGeneralisedInverse: for a rank-deficient normal matrix (three
// unknowns, rows a, b + c, and one untouched) G must satisfy NGN = N and
// GNG = G, and the null directions must be exactly b − c and the untouched
// unknown; for weights 10¹² apart the fast path must still succeed.
func TestGeneralisedInverse(t *testing.T) {
	n := []float64{
		2, 0, 0, 0,
		0, 1, 1, 0,
		0, 1, 1, 0,
		0, 0, 0, 0,
	}
	g, null := generalisedInverse(n, 4)
	mul := func(a, b []float64) []float64 {
		out := make([]float64, 16)
		for i := range 4 {
			for j := range 4 {
				for k := range 4 {
					out[i*4+j] += a[i*4+k] * b[k*4+j]
				}
			}
		}
		return out
	}
	for i, v := range mul(mul(n, g), n) {
		if math.Abs(v-n[i]) > 1e-9 {
			t.Fatalf("NGN ≠ N at %d: %v", i, v)
		}
	}
	for i, v := range mul(mul(g, n), g) {
		if math.Abs(v-g[i]) > 1e-9 {
			t.Fatalf("GNG ≠ G at %d: %v vs %v", i, v, g[i])
		}
	}
	if len(null) != 2 {
		t.Fatalf("%d null directions, want 2", len(null))
	}
	c := &component{null: null}
	pos := []int{0, 1, 2, 3}
	for _, tc := range []struct {
		set  []int
		want bool
	}{{[]int{0}, true}, {[]int{1, 2}, true}, {[]int{1}, false}, {[]int{3}, false}, {[]int{0, 1, 2}, true}, {[]int{0, 3}, false}} {
		if got := c.determined(pos, tc.set); got != tc.want {
			t.Errorf("determined(%v) = %v, want %v", tc.set, got, tc.want)
		}
	}
	tiny := []float64{1e-13, 0, 0, 1e-1}
	if _, null := generalisedInverse(tiny, 2); null != nil {
		t.Errorf("a diagonal matrix with weights 1e-13 and 0.1 was called singular")
	}
}
