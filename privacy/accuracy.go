package privacy

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"roundtable/aggregate"
)

// indicatorModel is the linear model of one indicator's release that the
// combine path (aggregate.NewEstimates) solves: its measurements as margin
// maps over the full table's leaves, their budget shares and k. From it
// come the exact variances of the consistent estimates of any sum of
// leaves — what the optimiser minimises and the planner reports.
type indicatorModel struct {
	ind    *aggregate.Indicator
	leaves int
	cellOf [][]int // per measurement: each leaf's cell
	cells  []int
	gram   []*mat.Dense
	shares []float64
	k      int
}

func newIndicatorModel(ind *aggregate.Indicator) *indicatorModel {
	m := &indicatorModel{ind: ind, k: ind.K}
	for j := 0; j < ind.NumMeasurements(); j++ {
		cell, n := marginOf(ind, ind.Kept(j), j == 0)
		m.cellOf, m.cells = append(m.cellOf, cell), append(m.cells, n)
		m.gram = append(m.gram, gramOf(ind, ind.Kept(j), j == 0))
		m.shares = append(m.shares, ind.Share(j))
		m.leaves = len(cell)
	}
	return m
}

// fit is the model at one indicator budget: each measurement's noise
// variance and the covariance of the WLS estimate of the leaves.
type fit struct {
	m        *indicatorModel
	variance []float64 // per measurement, of one cell
	laplace  bool
	cov      *mat.SymDense // (AᵀWA)⁻¹
}

// at fits the model at the indicator's ε (PureDP) or ρ (ZCDP), calibrated
// as the builder calibrates it.
func (m *indicatorModel) at(accounting string, budget float64) (*fit, error) {
	f := &fit{m: m, laplace: accounting != ZCDP, variance: make([]float64, len(m.shares))}
	data := make([]float64, m.leaves*m.leaves)
	for j, s := range m.shares {
		b := tableBudget(budget, s)
		if accounting == ZCDP {
			sigma := gaussianTarget(int64(m.k), 1, b)
			f.variance[j] = sigma * sigma
		} else {
			scale := laplaceScale(int64(m.k), 1, b)
			f.variance[j] = 2 * scale * scale
		}
		g := m.gram[j].RawMatrix().Data
		for i := range data {
			data[i] += g[i] / f.variance[j]
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(m.leaves, data)) {
		return nil, fmt.Errorf("%s: the measurements do not determine every cell", m.ind.Name)
	}
	f.cov = mat.NewSymDense(m.leaves, nil)
	if err := ch.InverseTo(f.cov); err != nil {
		return nil, fmt.Errorf("%s: %w", m.ind.Name, err)
	}
	return f, nil
}

// moments returns the noise of the WLS estimate of Σ q_leaf·x_leaf: its
// variance and, under Laplace noise, the sums of the squares and cubes of
// its Laplace terms' variances (see aggregate.Noise). The estimate is
// Σ_r h_r·y_r over the published cells r with h = W·A·cov·q, so term r
// contributes h_r²·variance_r.
func (f *fit) moments(q []float64) aggregate.Noise {
	v := mat.NewVecDense(len(q), nil)
	v.MulVec(f.cov, mat.NewVecDense(len(q), q))
	var n aggregate.Noise
	for i, x := range q {
		n.Variance += x * v.AtVec(i)
	}
	if !f.laplace {
		return n
	}
	for j, cell := range f.m.cellOf {
		sums := make([]float64, f.m.cells[j])
		for leaf, c := range cell {
			sums[c] += v.AtVec(leaf)
		}
		for _, s := range sums {
			term := s * s / f.variance[j]
			n.Laplace2 += term * term
			n.Laplace3 += term * term * term
		}
	}
	return n
}

// total is the query vector of the indicator's grand total.
func (f *fit) total() []float64 {
	q := make([]float64, f.m.leaves)
	for i := range q {
		q[i] = 1
	}
	return q
}

// WorkloadLoss is the workload's weighted expected variance (plus the
// squared bias of k) for a release of cat's indicators at a total ε of 1
// under pure ε-DP, split by cat's weights and shares: the objective
// Design minimises, evaluated for any catalog with the workload's
// indicators.
func WorkloadLoss(cat *aggregate.Catalog, w Workload) (float64, error) {
	if len(w.Indicators) != len(cat.Indicators) {
		return 0, fmt.Errorf("workload loss: the workload names %d indicators, the catalog has %d", len(w.Indicators), len(cat.Indicators))
	}
	sumW := 0.0
	for i := range cat.Indicators {
		sumW += weight(&cat.Indicators[i], nil)
	}
	loss := 0.0
	for i := range cat.Indicators {
		ind := &cat.Indicators[i]
		p, err := newDesignProblem(ind, &w.Indicators[i])
		if err != nil {
			return 0, fmt.Errorf("workload loss: %s: %w", ind.Name, err)
		}
		f, err := newIndicatorModel(ind).at(PureDP, weight(ind, nil)/sumW)
		if err != nil {
			return 0, fmt.Errorf("workload loss: %w", err)
		}
		var cw mat.Dense
		cw.Mul(p.work, f.cov)
		p.k = ind.K
		loss += mat.Trace(&cw) + p.biasAt(ind.K)
	}
	return loss, nil
}

// Cadences of publication a planner compares.
const (
	Yearly    = "yearly"    // one release per closed year, charged to each quarter
	Quarterly = "quarterly" // one release per quarter
)

// z80 is the standard normal 80% quantile: a change of hw + z80·sd is
// outside its ±hw interval 80% of the time (the far tail is negligible).
const z80 = 0.8416212335729143

// readable is what readers see of the indicator at the fitted budget and
// a cadence. A year is one release under Yearly and four independent
// quarterly releases under Quarterly, a region N independent partners, and
// a change two independent years, so their noises are that many copies of
// a release's (aggregate.Noise.Times), Laplace terms included.
func (f *fit) readable(cadence string, partners int) *Readable {
	units := 1.0
	if cadence == Quarterly {
		units = 4
	}
	year := f.moments(f.total()).Times(units)
	hw := func(n float64) float64 { return aggregate.HalfWidth95(year.Times(n)) }
	change := hw(2)
	// A typical cell: the mean over the full table's cells.
	var cell aggregate.Noise
	q := make([]float64, f.m.leaves)
	for i := range q {
		q[i] = 1
		cell = cell.Plus(f.moments(q))
		q[i] = 0
	}
	n := float64(f.m.leaves)
	return &Readable{
		CountryYear: hw(1), Region: hw(float64(partners)), Partners: partners, Change: change,
		Detectable: change + z80*math.Sqrt(2*year.Variance),
		Cell:       aggregate.HalfWidth95(cell.Times(units / n)),
	}
}
