package privacy

import (
	"fmt"
	"math"
	"slices"

	"roundtable/aggregate"
)

// Validator checks releases against one catalog version: that a release
// is, in every field a reader relies on, one BuildRelease could have made
// under that catalog. Indicators are the catalog's, in its order, each
// with its dimension names, every cell of every measurement with the
// catalog's keys in the tabulator's order, the mechanism the accounting
// implies, a noise scale equal to what the indicator's budget and the
// catalog's sensitivities (k, measurement shares) give, and the interval
// that scale gives; the indicators' budgets add up to the release's spend.
// No string in a valid release is free text: every name and key is the
// catalog's, and the partner, period, reservation and catalog hash are
// checked against the ledger by its caller.
//
// What it cannot check is the noisy values themselves (nobody but the
// partner holds the exact counts) and the quantiles, whose intervals
// depend on the data: those are checked for rank, order and bounds only.
//
// The ledger's state machine runs Validate on every node for every
// release, so it is deterministic: integers compared exactly, and floats
// recomputed by the functions the builder uses (laplaceScale,
// intHalfWidth, tableBudget) with operations every
// architecture rounds the same way, then compared bit for bit. Two values
// are not recomputed exactly, because the library's Gaussian calibration
// need not round alike everywhere: a Gaussian σ must lie in
// [target, target·(1+gaussianSlack)] of the deterministic gaussianTarget,
// and the indicators' budgets must add up to the spend within budgetSlack.
// Both comparisons are of values every node computes identically.
type Validator struct {
	hash       string
	indicators []indicatorShape // catalog order
}

type indicatorShape struct {
	name         string
	kind         string
	dims         []string
	measurements []measurementShape // count indicators
	ranks        []float64          // quantile indicators
	lower, upper float64
}

type measurementShape struct {
	keys       [][]string
	l0, lInf   int64
	share      float64
	totalCells int // cells of this and earlier measurements
}

// The tolerances of the two comparisons Validate cannot make exactly.
const (
	// gaussianSlack bounds how far above the ρ-zCDP target a published σ
	// may be. The library finds σ by its own binary search, accurate to
	// 1e-3 of the exact value (noise.gaussianSigmaAccuracy), so the
	// smallest σ it returns above the target can be up to about 1e-3 above
	// it (0.0995% was the worst of 20,000 random calibrations); twice that
	// leaves a margin. A larger σ only overstates the noise.
	gaussianSlack = 2e-3
	// budgetSlack is the relative error allowed in the sum of the
	// indicators' budgets, which the builder computes as products and
	// quotients of floats.
	budgetSlack = 1e-9
	// MaxSpendMicro is the most one release may spend (ε or ρ, in Micro):
	// the builder refuses budgets above it.
	MaxSpendMicro = maxBudget * Micro
	// maxCellValue bounds a noisy count so that it and its interval are
	// exact float64 integers; noise at the largest scale a budget allows
	// stays many orders of magnitude below it.
	maxCellValue = 1 << 53
)

// NewValidator prepares the checks for one catalog version. The catalog
// must be valid (the ledger admits no other).
func NewValidator(cat *aggregate.Catalog) (*Validator, error) {
	if cat == nil {
		return nil, fmt.Errorf("validator: no catalog")
	}
	if err := cat.Validate(); err != nil {
		return nil, fmt.Errorf("validator: %w", err)
	}
	v := &Validator{hash: cat.Hash(), indicators: make([]indicatorShape, len(cat.Indicators))}
	for i := range cat.Indicators {
		ind := &cat.Indicators[i]
		s := indicatorShape{name: ind.Name, kind: ind.Kind, dims: dimensionNames(ind)}
		if ind.Kind == aggregate.KindQuantiles {
			s.ranks, s.lower, s.upper = ind.Ranks, ind.Lower, ind.Upper
			if len(s.ranks) == 0 {
				s.ranks = defaultRanks
			}
			// A quantile indicator is one measurement, its count cell.
			t := aggregate.EmptyTable(ind, 0)
			s.measurements = []measurementShape{{keys: [][]string{{}}, l0: 1, lInf: 1, share: t.Share(), totalCells: 1}}
		}
		for m := 0; ind.Kind == aggregate.KindCount && m < ind.NumMeasurements(); m++ {
			t := aggregate.EmptyTable(ind, m)
			ms := measurementShape{keys: make([][]string, t.NumCells()), l0: int64(t.L0()), lInf: t.LInf(), share: t.Share()}
			for c := range ms.keys {
				ms.keys[c] = t.Key(c)
			}
			ms.totalCells = len(ms.keys)
			if m > 0 {
				ms.totalCells += s.measurements[m-1].totalCells
			}
			s.measurements = append(s.measurements, ms)
		}
		v.indicators[i] = s
	}
	return v, nil
}

// CatalogHash is the hash of the catalog version v checks against.
func (v *Validator) CatalogHash() string { return v.hash }

// Validate returns nil if r is a release of v's catalog as described on
// Validator, or an error naming the first field that is not.
func (v *Validator) Validate(r *Release) error {
	if err := v.checkHeader(r); err != nil {
		return err
	}
	next := 0 // catalog position the next indicator may take
	var sum float64
	for i := range r.Indicators {
		ir := &r.Indicators[i]
		pos := slices.IndexFunc(v.indicators, func(s indicatorShape) bool { return s.name == ir.Name })
		switch {
		case pos < 0:
			return fmt.Errorf("indicator %q is not in catalog %s", ir.Name, v.hash)
		case pos < next:
			return fmt.Errorf("indicator %q is out of catalog order or repeated", ir.Name)
		}
		next = pos + 1
		budget, err := checkBudgetFields(ir, r.Accounting)
		if err != nil {
			return fmt.Errorf("indicator %s: %w", ir.Name, err)
		}
		sum += budget
		if err := v.indicators[pos].check(ir, r.Accounting, budget); err != nil {
			return fmt.Errorf("indicator %s: %w", ir.Name, err)
		}
	}
	return checkSpend(r.SpendMicro, sum)
}

func (v *Validator) checkHeader(r *Release) error {
	switch {
	case r.Version != FormatVersion:
		return fmt.Errorf("format version %d, want %d", r.Version, FormatVersion)
	case r.CatalogHash != v.hash:
		return fmt.Errorf("catalog %s, want %s", r.CatalogHash, v.hash)
	case r.Accounting != PureDP && r.Accounting != ZCDP:
		return fmt.Errorf("accounting %q is not one of %s, %s", r.Accounting, PureDP, ZCDP)
	case r.SpendMicro < 1 || r.SpendMicro > MaxSpendMicro:
		return fmt.Errorf("spend %d micro is not in [1, %d]", r.SpendMicro, int64(MaxSpendMicro))
	case r.Period.Year < 1900 || r.Period.Year > 9999 || r.Period.Quarter < 0 || r.Period.Quarter > 4:
		return fmt.Errorf("period %v is not a quarter or a year", r.Period)
	case len(r.Indicators) == 0:
		return fmt.Errorf("no indicators")
	}
	return nil
}

// checkBudgetFields checks the mechanism and budget an indicator states
// and returns its budget in the accounting's unit (ε or ρ).
func checkBudgetFields(ir *IndicatorRelease, accounting string) (float64, error) {
	finite := func(x float64) bool { return x > 0 && !math.IsInf(x, 0) }
	if accounting == ZCDP {
		switch {
		case ir.Mechanism != Gaussian:
			return 0, fmt.Errorf("mechanism %q, but %s accounting uses %s", ir.Mechanism, ZCDP, Gaussian)
		case !finite(ir.Rho):
			return 0, fmt.Errorf("ρ %v must be positive and finite", ir.Rho)
		case ir.Delta != GaussianDelta:
			return 0, fmt.Errorf("δ %v, want %v", ir.Delta, GaussianDelta)
		case ir.Epsilon != 0:
			return 0, fmt.Errorf("ε %v given under %s accounting; an indicator states its ρ", ir.Epsilon, ZCDP)
		}
		return ir.Rho, nil
	}
	switch {
	case ir.Mechanism != Laplace:
		return 0, fmt.Errorf("mechanism %q, but %s accounting uses %s", ir.Mechanism, PureDP, Laplace)
	case !finite(ir.Epsilon):
		return 0, fmt.Errorf("ε %v must be positive and finite", ir.Epsilon)
	case ir.Delta != 0 || ir.Rho != 0:
		return 0, fmt.Errorf("δ %v and ρ %v must be 0 under %s accounting", ir.Delta, ir.Rho, PureDP)
	}
	return ir.Epsilon, nil
}

// checkSpend requires the indicators' budgets to add up to the spend
// charged: no more than spend, and more than (spend − 1 micro), each
// within budgetSlack. The builder splits the integer spend itself, so its
// sum is the spend to within rounding; the micro below is kept for
// releases already in ledgers, whose builders rounded a float budget up to
// the spend, so that replaying them gives the same verdict.
func checkSpend(spendMicro int64, sum float64) error {
	lo := float64(float64(spendMicro-1)/Micro) * (1 - budgetSlack)
	hi := float64(float64(spendMicro)/Micro) * (1 + budgetSlack)
	if !(sum > lo && sum <= hi) {
		return fmt.Errorf("indicators spend %.6f in total, but the release charges %s", sum, formatMicro(spendMicro))
	}
	return nil
}

// check compares one indicator with its shape: dimensions, cells and
// their scales and intervals, and quantiles.
func (s *indicatorShape) check(ir *IndicatorRelease, accounting string, budget float64) error {
	if !slices.Equal(ir.Dimensions, s.dims) {
		return fmt.Errorf("dimensions %q, want %q", ir.Dimensions, s.dims)
	}
	want := s.measurements[len(s.measurements)-1].totalCells
	if len(ir.Cells) != want {
		return fmt.Errorf("%d cells, the catalog gives %d", len(ir.Cells), want)
	}
	start := 0
	for m := range s.measurements {
		ms := &s.measurements[m]
		tb := tableBudget(budget, ms.share)
		if s.kind == aggregate.KindQuantiles {
			tb = quantileCountBudget(tb)
		}
		if err := ms.check(ir.Cells[start:ms.totalCells], accounting, tb); err != nil {
			return fmt.Errorf("measurement %d: %w", m, err)
		}
		start = ms.totalCells
	}
	if s.kind == aggregate.KindCount {
		if len(ir.Quantiles) != 0 {
			return fmt.Errorf("a count indicator has no quantiles, got %d", len(ir.Quantiles))
		}
		return nil
	}
	return s.checkQuantiles(ir.Quantiles)
}

// check compares one measurement's cells with its keys, its scale with
// the one its budget gives, and each interval with the one the scale gives.
func (ms *measurementShape) check(cells []Cell, accounting string, budget float64) error {
	mechanism, scale := Laplace, laplaceScale(ms.l0, ms.lInf, budget)
	if accounting == ZCDP {
		mechanism, scale = Gaussian, cells[0].Scale
		target := gaussianTarget(ms.l0, ms.lInf, budget)
		if !(scale >= target && scale <= float64(target*(1+gaussianSlack))) {
			return fmt.Errorf("σ %v is not the σ %v that ρ %v gives", scale, target, budget)
		}
	}
	m := intHalfWidth(mechanism, scale)
	for i := range cells {
		c := &cells[i]
		if !slices.Equal(c.Key, ms.keys[i]) {
			return fmt.Errorf("cell %d: key %q, the catalog gives %q", i, c.Key, ms.keys[i])
		}
		if c.Scale != scale {
			return fmt.Errorf("cell %d: scale %v, want %v", i, c.Scale, scale)
		}
		if c.Value < -maxCellValue || c.Value > maxCellValue {
			return fmt.Errorf("cell %d: value %d is out of range", i, c.Value)
		}
		if lo, hi := interval(c.Value, m); c.CILow != lo || c.CIHigh != hi {
			return fmt.Errorf("cell %d: interval [%v, %v], scale %v gives [%v, %v]", i, c.CILow, c.CIHigh, scale, lo, hi)
		}
	}
	return nil
}

// checkQuantiles checks what can be checked of quantiles without the
// data: the catalog's ranks in order, and lower ≤ CILow ≤ value ≤ CIHigh
// ≤ upper.
func (s *indicatorShape) checkQuantiles(qs []Quantile) error {
	if len(qs) != len(s.ranks) {
		return fmt.Errorf("%d quantiles, the catalog gives %d", len(qs), len(s.ranks))
	}
	for i, q := range qs {
		if q.Rank != s.ranks[i] {
			return fmt.Errorf("quantile %d: rank %v, want %v", i, q.Rank, s.ranks[i])
		}
		if !(s.lower <= q.CILow && q.CILow <= q.Value && q.Value <= q.CIHigh && q.CIHigh <= s.upper) {
			return fmt.Errorf("quantile %v: value %v and interval [%v, %v] must be ordered within [%v, %v]",
				q.Rank, q.Value, q.CILow, q.CIHigh, s.lower, s.upper)
		}
	}
	return nil
}

// ValidateRelease checks r against cat (see Validator). A caller checking
// many releases of one catalog keeps a Validator instead.
func ValidateRelease(cat *aggregate.Catalog, r *Release) error {
	v, err := NewValidator(cat)
	if err != nil {
		return err
	}
	return v.Validate(r)
}
