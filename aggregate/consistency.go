package aggregate

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Consistency post-processing: published measurements of one partner,
// indicator and year (cells, margins, quarters and the year) are noisy
// observations y = A·x + e of the unknown leaf counts x (full-table cells
// per time unit), with independent noise of known variance. The weighted
// least squares estimate x̂ = (AᵀWA)⁻¹AᵀWy, W = diag(1/variance), is the
// best linear unbiased estimate (Gauss–Markov; Hay et al., "Boosting the
// accuracy of differentially private histograms through consistency",
// VLDB 2010), and every sum of its leaves agrees with every other. Its
// covariance is (AᵀWA)⁻¹, from which the intervals come. All of this is
// post-processing of published values, so it costs no privacy budget.

// row is one published measurement: the unknowns it sums, its weight.
type row struct {
	cols     []int   // unknown ids summed by the measurement
	value    float64 // the raw noisy value
	variance float64
	// lap2 and lap3 describe the Laplace part of the row's noise, which
	// sets the interval's shape: Σv²/variance² and Σv³/variance³ over its
	// Laplace terms. One Laplace cell: 1 and 1; a Gaussian one: 0 and 0; a
	// merge of repeated cells: see MeasurementSet.
	lap2, lap3 float64
}

// component is a set of unknowns tied together by rows; components are
// solved independently, which keeps each dense system small.
type component struct {
	vars []int     // unknown ids, in increasing order
	rows []int     // row ids touching them
	inv  []float64 // a generalised inverse G of AᵀWA over vars, row-major len(vars)²; see solve
	// null spans, over vars, the directions the rows do not determine
	// (unit vectors; nil when every unknown is determined). A sum of
	// unknowns is determined iff it is orthogonal to every one of them.
	null [][]float64
}

// solveWLS computes the WLS estimate of n unknowns from rows, component by
// component. pos[j] is unknown j's position within its component. It
// never fails: unknowns the rows do not determine get the minimum-norm
// solution and are reported by determined (see component.solve).
func solveWLS(n int, rows []row) (x []float64, comps []*component, compOf, pos []int) {
	// Union-find over unknowns joined by a row.
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, r := range rows {
		for _, c := range r.cols[1:] {
			a, b := find(r.cols[0]), find(c)
			if a != b {
				parent[b] = a
			}
		}
	}
	compOf = make([]int, n)
	pos = make([]int, n)
	byRoot := make(map[int]int)
	for j := range n {
		root := find(j)
		ci, ok := byRoot[root]
		if !ok {
			ci = len(comps)
			byRoot[root] = ci
			comps = append(comps, &component{})
		}
		c := comps[ci]
		compOf[j], pos[j] = ci, len(c.vars)
		c.vars = append(c.vars, j)
	}
	for ri, r := range rows {
		if len(r.cols) > 0 {
			c := comps[compOf[r.cols[0]]]
			c.rows = append(c.rows, ri)
		}
	}
	x = make([]float64, n)
	for _, c := range comps {
		c.solve(rows, pos, x)
	}
	return x, comps, compOf, pos
}

// solve fills x over the component's unknowns and keeps a generalised
// inverse of the normal matrix N = AᵀWA.
//
// N is first equilibrated, Nₛ = D·N·D with D = diag(1/√N_ii), so that its
// diagonal is 1 whatever the noise scale: a release at ε = 10⁻⁶ has
// weights near 10⁻¹³, and a pivot test in absolute terms would call its
// perfectly determined system singular. A Cholesky factorisation of Nₛ
// (pivots > 10⁻¹⁰) is the fast path. If it fails, the system is
// rank-deficient or nearly so, and the eigendecomposition of Nₛ (cyclic
// Jacobi: deterministic, accurate for small symmetric matrices) gives
// the pseudo-inverse Nₛ⁺, eigenvalues ≤ 10⁻¹⁰·λ_max counting as zero, and
// those eigenvectors span what the rows do not determine. In both cases
// G = D·Nₛ⁺·D is a symmetric reflexive generalised inverse of N (NGN = N,
// GNG = G), so x̂ = G·AᵀWy solves the normal equations and, for every
// determined sum cᵀx, cᵀx̂ is the unique BLUE with variance cᵀGc.
func (c *component) solve(rows []row, pos []int, x []float64) {
	m := len(c.vars)
	normal := make([]float64, m*m)
	rhs := make([]float64, m)
	for _, ri := range c.rows {
		r := &rows[ri]
		w := 1 / r.variance
		for _, a := range r.cols {
			pa := pos[a]
			rhs[pa] += w * r.value
			for _, b := range r.cols {
				normal[pa*m+pos[b]] += w
			}
		}
	}
	c.inv, c.null = generalisedInverse(normal, m)
	for i, j := range c.vars {
		s := 0.0
		for k := range m {
			s += c.inv[i*m+k] * rhs[k]
		}
		x[j] = s
	}
}

// rankTolerance is the relative size below which a pivot or an eigenvalue
// of the equilibrated normal matrix counts as zero. Measurement weights
// within one release differ by at most the ratio of its shares (< 10³),
// and releases of one block by what their budgets allow (ε from 10⁻⁶ to
// the cap: ~10¹² in weight, but on separate rows of the same cells, which
// equilibration absorbs); only true dependence comes near 10⁻¹⁰.
const rankTolerance = 1e-10

// generalisedInverse returns G = D·Nₛ⁺·D for symmetric positive
// semi-definite a (m×m, row-major), and the null directions of a (unit
// vectors), nil when a is invertible. See component.solve.
func generalisedInverse(a []float64, m int) (inv []float64, null [][]float64) {
	d := make([]float64, m)
	for i := range m {
		d[i] = 1 // an unknown no row touches: its row and column are 0
		if v := a[i*m+i]; v > 0 {
			d[i] = 1 / math.Sqrt(v)
		}
	}
	s := make([]float64, m*m)
	for i := range m {
		for j := range m {
			s[i*m+j] = d[i] * a[i*m+j] * d[j]
		}
	}
	inv, err := invertSPD(s, m)
	if err != nil {
		inv, null = pseudoInverse(s, m)
		for k, v := range null {
			for i := range m {
				v[i] *= d[i]
			}
			null[k] = normalise(v)
		}
	}
	for i := range m {
		for j := range m {
			inv[i*m+j] *= d[i] * d[j]
		}
	}
	return inv, null
}

// pseudoInverse returns the Moore–Penrose inverse of symmetric positive
// semi-definite s (m×m) and the eigenvectors whose eigenvalues count as
// zero.
func pseudoInverse(s []float64, m int) (inv []float64, null [][]float64) {
	vals, vecs := symmetricEigen(s, m)
	top := 0.0
	for _, v := range vals {
		top = math.Max(top, v)
	}
	inv = make([]float64, m*m)
	for k, l := range vals {
		if !(l > rankTolerance*top) {
			v := make([]float64, m)
			for i := range m {
				v[i] = vecs[i*m+k]
			}
			null = append(null, v)
			continue
		}
		for i := range m {
			vi := vecs[i*m+k] / l
			for j := range m {
				inv[i*m+j] += vi * vecs[j*m+k]
			}
		}
	}
	return inv, null
}

// symmetricEigen diagonalises symmetric a (m×m, row-major) by cyclic
// Jacobi rotations (Golub & Van Loan, §8.5; Numerical Recipes §11.1) and
// returns the eigenvalues and the eigenvectors as the columns of vecs.
// The sweep order is fixed, so the result is deterministic.
func symmetricEigen(a []float64, m int) (vals, vecs []float64) {
	a = slices.Clone(a)
	vecs = make([]float64, m*m)
	frob := 0.0
	for i := range m {
		vecs[i*m+i] = 1
		for j := range m {
			frob += a[i*m+j] * a[i*m+j]
		}
	}
	for sweep := 0; sweep < 60; sweep++ {
		off := 0.0
		for p := range m {
			for q := p + 1; q < m; q++ {
				off += a[p*m+q] * a[p*m+q]
			}
		}
		if off <= 1e-30*frob {
			break
		}
		for p := range m {
			for q := p + 1; q < m; q++ {
				apq := a[p*m+q]
				if apq == 0 {
					continue
				}
				theta := (a[q*m+q] - a[p*m+p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range m { // columns p and q
					akp, akq := a[k*m+p], a[k*m+q]
					a[k*m+p], a[k*m+q] = c*akp-s*akq, s*akp+c*akq
				}
				for k := range m { // rows p and q
					apk, aqk := a[p*m+k], a[q*m+k]
					a[p*m+k], a[q*m+k] = c*apk-s*aqk, s*apk+c*aqk
				}
				for k := range m {
					vkp, vkq := vecs[k*m+p], vecs[k*m+q]
					vecs[k*m+p], vecs[k*m+q] = c*vkp-s*vkq, s*vkp+c*vkq
				}
			}
		}
	}
	vals = make([]float64, m)
	for i := range m {
		vals[i] = a[i*m+i]
	}
	return vals, vecs
}

func normalise(v []float64) []float64 {
	n := 0.0
	for _, x := range v {
		n += x * x
	}
	if n = math.Sqrt(n); n > 0 {
		for i := range v {
			v[i] /= n
		}
	}
	return v
}

// determined reports whether the rows determine Σ_{j∈set} x_j (set lies
// in this component): whether the sum is orthogonal to every direction
// the rows leave free, up to rounding.
func (c *component) determined(pos []int, set []int) bool {
	for _, z := range c.null {
		s := 0.0
		for _, j := range set {
			s += z[pos[j]]
		}
		if math.Abs(s) > 1e-6*math.Sqrt(float64(len(set))) {
			return false
		}
	}
	return true
}

// errSingular reports a matrix invertSPD cannot factor.
var errSingular = errors.New("matrix is singular or not positive definite")

// invertSPD inverts a symmetric positive definite m×m matrix (row-major)
// by Cholesky factorisation. Tables are small (≤ a few hundred unknowns),
// so a dense O(m³) solve is simplest and exact enough. A pivot at or
// below rankTolerance times its diagonal entry fails with errSingular.
func invertSPD(a []float64, m int) ([]float64, error) {
	l := make([]float64, m*m)
	for i := range m {
		for j := 0; j <= i; j++ {
			s := a[i*m+j]
			for k := range j {
				s -= l[i*m+k] * l[j*m+k]
			}
			if i == j {
				if !(s > rankTolerance*a[i*m+i]) || a[i*m+i] <= 0 {
					return nil, errSingular
				}
				l[i*m+i] = math.Sqrt(s)
			} else {
				l[i*m+j] = s / l[j*m+j]
			}
		}
	}
	// u = (L⁻¹)ᵀ, built row by row (row j of u is column j of L⁻¹, by
	// forward substitution) so every inner loop reads memory in order;
	// then A⁻¹ = L⁻ᵀL⁻¹, i.e. A⁻¹[i][j] = Σ_k u[i][k]·u[j][k].
	u := make([]float64, m*m)
	for j := range m {
		uj := u[j*m : (j+1)*m]
		uj[j] = 1 / l[j*m+j]
		for i := j + 1; i < m; i++ {
			li := l[i*m : i*m+i]
			s := 0.0
			for k := j; k < i; k++ {
				s -= li[k] * uj[k]
			}
			uj[i] = s / l[i*m+i]
		}
	}
	inv := make([]float64, m*m)
	for i := range m {
		ui := u[i*m : (i+1)*m]
		for j := 0; j <= i; j++ {
			uj := u[j*m : (j+1)*m]
			s := 0.0
			for k := i; k < m; k++ {
				s += ui[k] * uj[k]
			}
			inv[i*m+j], inv[j*m+i] = s, s
		}
	}
	return inv, nil
}

// linearMoments returns the noise of Σ_{j∈set} x̂_j, where set lies in one
// component: its variance, and the sums of the squares and cubes of the
// variances its Laplace measurements contribute. x̂ = (AᵀWA)⁻¹AᵀWy is
// linear in the independent measurements, so with v = (AᵀWA)⁻¹c and
// h = WAv the sum is Σ_r h_r·y_r, and term r contributes h_r²σ_r².
// scratch must have room for the component's size.
func (c *component) linearMoments(rows []row, pos []int, set []int, scratch []float64) Noise {
	m := len(c.vars)
	v := scratch[:m]
	clear(v)
	for _, j := range set {
		col := pos[j]
		for i := range m {
			v[i] += c.inv[i*m+col]
		}
	}
	var n Noise
	for _, ri := range c.rows {
		r := &rows[ri]
		s := 0.0
		for _, a := range r.cols {
			s += v[pos[a]]
		}
		h := s / r.variance
		term := h * h * r.variance
		n.Variance += term
		if r.lap2 > 0 {
			n.Laplace2 += term * term * r.lap2
			n.Laplace3 += term * term * term * r.lap3
		}
	}
	return n
}

// projectSimplex returns the Euclidean projection of x onto
// {y ≥ 0, Σy = total} (total ≥ 0): y_i = max(x_i − θ, 0) for the θ that
// makes the sum right (Held, Wolfe & Crowder 1974; Duchi et al. 2008).
func projectSimplex(x []float64, total float64) []float64 {
	y := make([]float64, len(x))
	if len(x) == 0 || total <= 0 {
		return y
	}
	s := slices.Clone(x)
	slices.Sort(s)
	slices.Reverse(s)
	cum, theta := 0.0, 0.0
	for i, v := range s {
		cum += v
		t := (cum - total) / float64(i+1)
		if v-t > 0 {
			theta = t
		}
	}
	for i, v := range x {
		y[i] = math.Max(v-theta, 0)
	}
	return y
}

// roundToTotal rounds non-negative y to integers summing to total by the
// largest remainder method (Hamilton): floor everything, then give the
// remaining units to the largest fractional parts, ties to the lower index
// so the result is deterministic.
func roundToTotal(y []float64, total int64) []int64 {
	out := make([]int64, len(y))
	var sum int64
	for i, v := range y {
		out[i] = int64(math.Floor(v))
		sum += out[i]
	}
	order := make([]int, len(y))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		fa, fb := y[a]-math.Floor(y[a]), y[b]-math.Floor(y[b])
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return 0
	})
	for i := 0; sum < total && len(order) > 0; i = (i + 1) % len(order) {
		out[order[i]]++
		sum++
	}
	for i := len(order) - 1; sum > total; i-- { // only from float error: take back from the smallest remainders
		if i < 0 {
			i = len(order) - 1
		}
		if out[order[i]] > 0 {
			out[order[i]]--
			sum--
		}
	}
	return out
}

// integerLeaves turns one time unit's WLS leaves into non-negative
// integers whose sum is the rounded, non-negative WLS total, so every
// margin, year and regional sum of them agrees.
func integerLeaves(x []float64) []int64 {
	t := 0.0
	for _, v := range x {
		t += v
	}
	total := int64(math.Max(math.Round(t), 0))
	return roundToTotal(projectSimplex(x, float64(total)), total)
}

// checkVariance refuses what would break the solver.
func checkVariance(v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("variance %v must be positive and finite", v)
	}
	return nil
}
