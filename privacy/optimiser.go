package privacy

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/mat"

	"roundtable/aggregate"
)

// The workload optimiser: the matrix-mechanism view of a release (Li,
// Miklau, Hay, McGregor, Rastogi, "The matrix mechanism", VLDB J. 2015).
// An indicator's exact table is a vector x of leaf counts (its full cross
// table); a release measures y_m = A_m·x + noise for the full table
// (A_0 = I) and each margin, and the published estimates are the weighted
// least squares x̂ = P⁻¹·Σ_m w_m·A_mᵀy_m, P = Σ_m w_m·A_mᵀA_m, w_m the
// inverse noise variance of measurement m (aggregate/consistency.go
// computes exactly this). A reader's query q (a country-year total, the
// cells of a margin, a regional sum, a change between years) has variance
// qᵀP⁻¹q. Given the weighted queries the dashboard and the roundtables
// read, Design chooses how a release's budget is split between indicators
// and between each indicator's measurements, which margins are measured at
// all, and the k of a multi-valued breakdown, to minimise the weighted sum
// of those variances (plus, for k, the squared bias of dropping keys).
//
// This is the problem HDMM (McKenna, Miklau, Hay, Machanavajjhala, "Optimizing
// error of high-dimensional statistical queries under differential privacy",
// VLDB 2018) and ResidualPlanner (Xiao, He, Zhang, Kifer, "An optimal and
// scalable matrix mechanism for noisy marginals under convex loss
// functions", NeurIPS 2023) solve for general marginal workloads. Ours is
// small — tens of leaves per indicator, a handful of candidate margins —
// so we optimise the budget shares of a fixed candidate set directly: for
// pure ε-DP, measurement m with share s_m of an indicator's ε has Laplace
// variance 2(k/(s_m·ε))², so P is Σ_m s_m²ε²/(2k²)·A_mᵀA_m and the loss
// tr(C·P⁻¹) (C the weighted workload Gram matrix) is a convex function of
// the shares (a convex non-increasing function of s² composed with the
// convex s ↦ s²), minimised on the simplex by exponentiated gradient. The
// loss scales as 1/ε², so the optimum shares do not depend on the total,
// and between indicators the split minimising Σ_i F_i/ε_i² under Σ ε_i = ε
// is ε_i ∝ F_i^{1/3} in closed form.
//
// Everything is deterministic (fixed iteration counts, no maps iterated,
// no randomness) and the result is rounded to thousandths, so the catalog
// that records it can be checked against it exactly (TestCatalogV2IsDesigned).

// Workload is what the dashboard and the roundtables read, with weights.
type Workload struct {
	Indicators []IndicatorWorkload
}

// IndicatorWorkload is the queries read from one indicator and what the
// optimiser may choose for it.
type IndicatorWorkload struct {
	Name string
	// Candidates are the margins that may be measured beside the full
	// table (each lists the dimensions it keeps; empty is the total).
	Candidates [][]string
	Queries    []Query
	// KeyPrevalence, for a multi-valued dimension, is the share of people
	// having each key (the dimension's key order). With People it lets the
	// optimiser choose k: a person keeps only the first k of their keys,
	// so k below the number of keys people have biases later keys down.
	// Empty: k is not a choice and stays the catalog's.
	KeyPrevalence []float64
	// People is the typical number of people in the indicator per
	// partner-year (for the bias of k).
	People float64
}

// Query is one quantity read, over the cells of a margin.
type Query struct {
	Name string
	// Keep lists the dimensions kept; empty is the indicator's total.
	Keep []string
	// Weight multiplies the mean variance of the margin's cells.
	Weight float64
	// Multiple is how many independent partner-year estimates the quantity
	// sums or subtracts (a regional total over N partners: N; a change
	// between two years: 2); 0 means 1. Its variance is Multiple times
	// one partner-year's.
	Multiple float64
}

// DesignRow reports what Design chose for one indicator.
type DesignRow struct {
	Indicator string
	K         int
	Budget    float64    // fraction of a release's ε (the catalog's Weight)
	Margins   [][]string // measured beside the full table
	Shares    []float64  // full table first, then Margins
	Loss      float64    // weighted variance at ε = 1 for the whole release
	Bias      float64    // weighted squared bias from k
}

// The optimiser's fixed settings.
const (
	designIterations = 400   // exponentiated-gradient steps per solve
	designDropBelow  = 0.03  // a margin below this share is not measured
	designGrid       = 1000  // shares and budgets are thousandths
	designMinShare   = 0.001 // no measurement is published at less
)

// Design sets, on a copy of base, every indicator's Weight (its fraction
// of a release's budget), Margins, Shares and, where the workload gives
// key prevalences, K, minimising the workload's weighted expected
// variance under pure ε-DP. Indicators the workload does not name keep
// their settings and get no budget choice: the workload must name every
// indicator of base.
func Design(base *aggregate.Catalog, w Workload) (*aggregate.Catalog, []DesignRow, error) {
	if base == nil {
		return nil, nil, fmt.Errorf("design: no catalog")
	}
	cat := cloneCatalog(base)
	if len(w.Indicators) != len(cat.Indicators) {
		return nil, nil, fmt.Errorf("design: the workload names %d indicators, the catalog has %d", len(w.Indicators), len(cat.Indicators))
	}
	problems := make([]*designProblem, len(cat.Indicators))
	for i := range cat.Indicators {
		ind := &cat.Indicators[i]
		iw := &w.Indicators[i]
		if iw.Name != ind.Name {
			return nil, nil, fmt.Errorf("design: workload indicator %d is %q, the catalog's is %q", i, iw.Name, ind.Name)
		}
		if ind.Kind != aggregate.KindCount {
			return nil, nil, fmt.Errorf("design: %s is not a count indicator", ind.Name)
		}
		p, err := newDesignProblem(ind, iw)
		if err != nil {
			return nil, nil, fmt.Errorf("design: %s: %w", ind.Name, err)
		}
		p.solve()
		problems[i] = p
	}
	// Choose each k by coordinate descent on the total loss, which for
	// given per-indicator losses F_i and biases B_i is (Σ F_i^⅓)³ + Σ B_i.
	for round := 0; round < 10; round++ {
		changed := false
		for _, p := range problems {
			if p.chooseK(problems) {
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	budgets := designSplit(problems)
	rows := make([]DesignRow, len(problems))
	for i, p := range problems {
		ind := &cat.Indicators[i]
		ind.K, ind.Weight = p.k, budgets[i]
		ind.Margins, ind.Shares = p.chosenMargins(), p.shares
		if len(ind.Margins) == 0 {
			ind.Margins, ind.Shares = nil, nil
		}
		rows[i] = DesignRow{Indicator: ind.Name, K: p.k, Budget: budgets[i], Margins: ind.Margins,
			Shares: slices.Clone(p.shares), Loss: p.loss / (budgets[i] * budgets[i]), Bias: p.bias}
		if rows[i].Shares == nil {
			rows[i].Shares = []float64{1}
		}
	}
	if err := cat.Validate(); err != nil {
		return nil, nil, fmt.Errorf("design: %w", err)
	}
	return cat, rows, nil
}

// designProblem is one indicator's part: its leaves, candidate
// measurements and workload as dense matrices over the leaves.
type designProblem struct {
	ind        *aggregate.Indicator
	leaves     int
	candidates [][]string   // margins that may be measured
	gram       []*mat.Dense // A_mᵀA_m: the full table, then each candidate
	work       *mat.Dense   // C = Σ_q weight·multiple/cells · Q_qᵀQ_q
	prevalence []float64
	people     float64
	biasWeight float64 // Σ weight·multiple² of the queries of single cells
	// The current solution.
	k       int
	active  []int     // measurement ids measured (0 = full table first)
	shares  []float64 // per active measurement, thousandths
	loss    float64   // tr(C·P⁻¹) at the indicator's ε = 1
	bias    float64
	lossByK map[int]float64
}

func newDesignProblem(ind *aggregate.Indicator, iw *IndicatorWorkload) (*designProblem, error) {
	p := &designProblem{ind: ind, leaves: 1, candidates: iw.Candidates, prevalence: iw.KeyPrevalence, people: iw.People, k: ind.K}
	for _, d := range ind.Dimensions {
		p.leaves *= len(d.Keys)
	}
	p.gram = append(p.gram, gramOf(ind, nil, true))
	for _, c := range iw.Candidates {
		if err := checkKeep(ind, c); err != nil {
			return nil, fmt.Errorf("candidate margin %v: %w", c, err)
		}
		p.gram = append(p.gram, gramOf(ind, c, false))
	}
	p.work = mat.NewDense(p.leaves, p.leaves, nil)
	if len(iw.Queries) == 0 {
		return nil, fmt.Errorf("no queries: nothing would justify a budget")
	}
	for _, q := range iw.Queries {
		if err := checkKeep(ind, q.Keep); err != nil {
			return nil, fmt.Errorf("query %s: %w", q.Name, err)
		}
		if !(q.Weight > 0) || q.Multiple < 0 {
			return nil, fmt.Errorf("query %s: weight must be positive and multiple ≥ 0", q.Name)
		}
		mult := max(q.Multiple, 1)
		g := gramOf(ind, q.Keep, len(q.Keep) == len(ind.Dimensions))
		cells := float64(marginCells(ind, q.Keep))
		var scaled mat.Dense
		scaled.Scale(q.Weight*mult/cells, g)
		p.work.Add(p.work, &scaled)
		if len(q.Keep) == len(ind.Dimensions) {
			p.biasWeight += q.Weight * mult * mult
		}
	}
	if len(p.prevalence) > 0 {
		multi := slices.IndexFunc(ind.Dimensions, func(d aggregate.Dimension) bool { return d.Multi })
		if multi < 0 || len(ind.Dimensions) != 1 || len(p.prevalence) != len(ind.Dimensions[0].Keys) {
			return nil, fmt.Errorf("key prevalences are for a one-dimensional multi-valued indicator, one per key")
		}
		if !(p.people > 0) {
			return nil, fmt.Errorf("key prevalences need the typical number of people")
		}
	}
	p.lossByK = map[int]float64{}
	return p, nil
}

func checkKeep(ind *aggregate.Indicator, keep []string) error {
	pos := -1
	for _, name := range keep {
		j := slices.IndexFunc(ind.Dimensions, func(d aggregate.Dimension) bool { return d.Name == name })
		if j <= pos {
			return fmt.Errorf("dimension %q is unknown, repeated or out of order", name)
		}
		pos = j
	}
	return nil
}

func marginCells(ind *aggregate.Indicator, keep []string) int {
	n := 1
	for _, d := range ind.Dimensions {
		if slices.Contains(keep, d.Name) {
			n *= len(d.Keys)
		}
	}
	return n
}

// gramOf is AᵀA for the margin keeping keep (all dimensions when full):
// entry (i, j) is 1 when leaves i and j fall in the same margin cell.
func gramOf(ind *aggregate.Indicator, keep []string, full bool) *mat.Dense {
	cell, _ := marginOf(ind, keep, full)
	n := len(cell)
	g := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			if cell[i] == cell[j] {
				g.Set(i, j, 1)
			}
		}
	}
	return g
}

// marginOf maps every leaf of ind's full table to its cell of the margin
// keeping keep (all dimensions when full), and counts the margin's cells.
func marginOf(ind *aggregate.Indicator, keep []string, full bool) ([]int, int) {
	n := 1
	for _, d := range ind.Dimensions {
		n *= len(d.Keys)
	}
	cell := make([]int, n)
	for leaf := range n {
		rest, c := leaf, 0
		for i := len(ind.Dimensions) - 1; i >= 0; i-- { // last dimension varies fastest, as in tables
			d := ind.Dimensions[i]
			key := rest % len(d.Keys)
			rest /= len(d.Keys)
			if full || slices.Contains(keep, d.Name) {
				c = c*len(d.Keys) + key
			}
		}
		cell[leaf] = c
	}
	cells := 1
	for _, d := range ind.Dimensions {
		if full || slices.Contains(keep, d.Name) {
			cells *= len(d.Keys)
		}
	}
	return cell, cells
}

// precision is P = Σ_m s_m²/(2k²)·A_mᵀA_m at the indicator's ε = 1.
func (p *designProblem) precision(ids []int, shares []float64, k int) *mat.SymDense {
	n := p.leaves
	data := make([]float64, n*n)
	for a, id := range ids {
		f := shares[a] * shares[a] / (2 * float64(k*k))
		g := p.gram[id].RawMatrix().Data
		for i := range data {
			data[i] += f * g[i]
		}
	}
	return mat.NewSymDense(n, data)
}

// lossAt is tr(C·P⁻¹) and, for the gradient, tr(P⁻¹CP⁻¹·A_mᵀA_m) per
// measurement; +Inf if P is singular.
func (p *designProblem) lossAt(ids []int, shares []float64, k int) (float64, []float64) {
	var ch mat.Cholesky
	if !ch.Factorize(p.precision(ids, shares, k)) {
		return math.Inf(1), nil
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return math.Inf(1), nil
	}
	var ci, pcp mat.Dense
	ci.Mul(p.work, &inv)
	loss := mat.Trace(&ci)
	pcp.Mul(&inv, &ci)
	grads := make([]float64, len(ids))
	for a, id := range ids {
		// tr(X·G) for symmetric G is the sum of the elementwise product.
		x, g := pcp.RawMatrix().Data, p.gram[id].RawMatrix().Data
		s := 0.0
		for i := range x {
			s += x[i] * g[i]
		}
		grads[a] = s
	}
	return loss, grads
}

// optimise minimises the loss over shares of the measurements ids by
// exponentiated gradient with a backtracking step: deterministic and
// staying inside the simplex.
func (p *designProblem) optimise(ids []int, k int) ([]float64, float64) {
	shares := make([]float64, len(ids))
	for i := range shares {
		shares[i] = 1 / float64(len(ids))
	}
	loss, tr := p.lossAt(ids, shares, k)
	if len(ids) == 1 {
		return shares, loss
	}
	step := 1.0
	for it := 0; it < designIterations; it++ {
		// ∂loss/∂s_m = −(s_m/k²)·tr(P⁻¹CP⁻¹·A_mᵀA_m); steps are scaled
		// by the loss so the step size is free of the loss's units.
		grad := make([]float64, len(ids))
		for a := range ids {
			grad[a] = -shares[a] / float64(k*k) * tr[a] / loss
		}
		improved := false
		for try := 0; try < 30; try++ {
			next := make([]float64, len(ids))
			sum := 0.0
			for a := range ids {
				next[a] = shares[a] * math.Exp(-step*grad[a])
				sum += next[a]
			}
			for a := range next {
				next[a] /= sum
			}
			l, t := p.lossAt(ids, next, k)
			if l < loss {
				shares, loss, tr, improved = next, l, t, true
				step *= 1.5
				break
			}
			step /= 2
		}
		if !improved {
			break
		}
	}
	return shares, loss
}

// solve optimises the shares at the current k, drops margins whose share
// is too small to be worth a table, and rounds to thousandths.
func (p *designProblem) solve() {
	ids := make([]int, len(p.gram))
	for i := range ids {
		ids[i] = i
	}
	for {
		shares, _ := p.optimise(ids, p.k)
		drop := -1
		for a := 1; a < len(ids); a++ { // never the full table
			if shares[a] < designDropBelow && (drop < 0 || shares[a] < shares[drop]) {
				drop = a
			}
		}
		if drop < 0 {
			p.active, p.shares = ids, roundShares(shares)
			break
		}
		ids = slices.Delete(ids, drop, drop+1)
	}
	p.loss, _ = p.lossAt(p.active, p.shares, p.k)
	p.bias = p.biasAt(p.k)
	p.lossByK[p.k] = p.loss
}

// roundShares rounds to thousandths that sum to exactly 1 (largest
// remainder, ties to the earlier measurement), none below designMinShare.
func roundShares(x []float64) []float64 {
	units := roundToGrid(x, designGrid)
	out := make([]float64, len(units))
	for i, u := range units {
		out[i] = float64(max(u, 1)) / designGrid
	}
	return out
}

func roundToGrid(x []float64, grid int) []int {
	units := make([]int, len(x))
	rest := grid
	for i, v := range x {
		units[i] = int(math.Floor(v * float64(grid)))
		rest -= units[i]
	}
	order := make([]int, len(x))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		fa := x[a]*float64(grid) - math.Floor(x[a]*float64(grid))
		fb := x[b]*float64(grid) - math.Floor(x[b]*float64(grid))
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return 0
	})
	for i := 0; rest > 0; i = (i + 1) % len(order) {
		units[order[i]]++
		rest--
	}
	return units
}

func (p *designProblem) chosenMargins() [][]string {
	var out [][]string
	for _, id := range p.active[1:] {
		out = append(out, slices.Clone(p.candidates[id-1]))
	}
	return out
}

// biasAt is the weighted squared bias of keeping k keys per person: a
// person drops key c when it has k of the keys before it (assumed
// independent, with the workload's prevalences), so cell c loses
// people·prev_c·P(#earlier keys ≥ k) on average.
func (p *designProblem) biasAt(k int) float64 {
	if len(p.prevalence) == 0 {
		return 0
	}
	// dist[j] = P(j of the keys seen so far are present), j < k; the rest
	// is P(≥ k).
	dist := make([]float64, k)
	dist[0] = 1
	sum := 0.0
	for _, pc := range p.prevalence {
		atLeast := 1.0
		for _, d := range dist {
			atLeast -= d
		}
		b := p.people * pc * max(atLeast, 0)
		sum += b * b
		for j := k - 1; j >= 0; j-- {
			dist[j] *= 1 - pc
			if j > 0 {
				dist[j] += dist[j-1] * pc
			}
		}
	}
	return p.biasWeight * sum / float64(len(p.prevalence))
}

// chooseK tries every k for a multi-valued indicator and keeps the one
// with the least total loss, the other indicators fixed. It reports
// whether k changed.
func (p *designProblem) chooseK(all []*designProblem) bool {
	if len(p.prevalence) == 0 {
		return false
	}
	best, bestK := math.Inf(1), p.k
	old := p.k
	for k := 1; k <= len(p.prevalence); k++ {
		p.k = k
		if _, ok := p.lossByK[k]; !ok {
			p.solve()
		}
		p.loss, p.bias = p.lossByK[k], p.biasAt(k)
		if t := totalLoss(all); t < best {
			best, bestK = t, k
		}
	}
	p.k = bestK
	p.solve()
	return bestK != old
}

// totalLoss is the workload's loss at a release ε of 1 with the optimal
// split between indicators: (Σ F_i^⅓)³ + Σ B_i.
func totalLoss(all []*designProblem) float64 {
	s, b := 0.0, 0.0
	for _, p := range all {
		s += math.Cbrt(p.loss)
		b += p.bias
	}
	return s*s*s + b
}

// designSplit is ε_i ∝ F_i^⅓, in thousandths summing to 1.
func designSplit(all []*designProblem) []float64 {
	x := make([]float64, len(all))
	s := 0.0
	for i, p := range all {
		x[i] = math.Cbrt(p.loss)
		s += x[i]
	}
	for i := range x {
		x[i] /= s
	}
	units := roundToGrid(x, designGrid)
	out := make([]float64, len(units))
	for i, u := range units {
		out[i] = float64(max(u, 1)) / designGrid
	}
	return out
}

func cloneCatalog(c *aggregate.Catalog) *aggregate.Catalog {
	out := &aggregate.Catalog{Version: c.Version, Indicators: make([]aggregate.Indicator, len(c.Indicators))}
	for i, ind := range c.Indicators {
		ind.Dimensions = slices.Clone(ind.Dimensions)
		for j := range ind.Dimensions {
			ind.Dimensions[j].Keys = slices.Clone(ind.Dimensions[j].Keys)
		}
		ind.Margins = slices.Clone(ind.Margins)
		ind.Shares = slices.Clone(ind.Shares)
		ind.Ranks = slices.Clone(ind.Ranks)
		out.Indicators[i] = ind
	}
	return out
}

// String renders a design row for logs and the docs.
func (r DesignRow) String() string {
	ms := make([]string, len(r.Margins))
	for i, m := range r.Margins {
		ms[i] = "{" + strings.Join(m, ",") + "}"
	}
	return fmt.Sprintf("%s k=%d budget=%.3f margins=%s shares=%v", r.Indicator, r.K, r.Budget, strings.Join(ms, " "), r.Shares)
}
