package privacy

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"

	"roundtable/aggregate"
)

// ReleaseParams are a partner's choices for one release. Budget is the
// release's total, ε under PureDP or ρ under ZCDP, charged to every
// quarter of Period; the release's SpendMicro is exactly Budget.
type ReleaseParams struct {
	Accounting string
	Budget     Budget
	// Weights overrides the catalog's weights for this release (indicator
	// name → weight > 0). Indicators not named keep the catalog's weight,
	// or 1 if the catalog sets none.
	Weights map[string]float64
	Period  aggregate.Period
	Partner string
}

// Params are the release parameters a reservation pays for: a release
// built from them spends exactly the reservation's SpendMicro.
func (r Reservation) Params() ReleaseParams {
	return ReleaseParams{Accounting: r.Accounting, Budget: Budget(r.SpendMicro), Period: r.Period, Partner: r.Partner}
}

// Validate refuses parameters no release could honour.
func (p ReleaseParams) Validate() error {
	if p.Accounting != PureDP && p.Accounting != ZCDP {
		return fmt.Errorf("release params: accounting %q is not one of %s, %s", p.Accounting, PureDP, ZCDP)
	}
	if err := p.Budget.Check(); err != nil {
		return fmt.Errorf("release params: %s %w", unitName(p.Accounting), err)
	}
	if p.Partner == "" {
		return fmt.Errorf("release params: partner is empty")
	}
	if p.Period.Year == 0 || p.Period.Quarter < 0 || p.Period.Quarter > 4 {
		return fmt.Errorf("release params: period %v is not a quarter or a year", p.Period)
	}
	for _, name := range slices.Sorted(maps.Keys(p.Weights)) {
		if w := p.Weights[name]; !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("release params: weight of %s must be positive and finite, got %v", name, w)
		}
	}
	return nil
}

// unitName is the budget's symbol under an accounting: ε or ρ.
func unitName(accounting string) string {
	if accounting == ZCDP {
		return "ρ"
	}
	return "ε"
}

// maxBudget bounds ε and ρ: far beyond any sane policy, and small enough
// that Micro arithmetic cannot overflow.
const maxBudget = 1000

// measurement is what the engine needs of one exact table;
// *aggregate.Table provides it. Keeping it an interface lets the evidence
// tests feed fixed tables without tabulating cases.
type measurement interface {
	Indicator() *aggregate.Indicator
	Dimensions() []string
	NumCells() int
	Key(i int) []string
	Count(i int) int64
	L0() int
	LInf() int64
	Share() float64
	Values() []float64
}

// BuildRelease noises a partner's exact tables and signs the result. The
// reservation must already be admitted by the ledger for exactly these
// parameters: budget is claimed before any noise is drawn, and a
// mismatch is refused before a single draw. The output holds only noisy
// values, in catalog order and then table and cell order, and passes
// ValidateRelease, the check the ledger applies.
func BuildRelease(ctx context.Context, cat *aggregate.Catalog, tables []*aggregate.Table, p ReleaseParams, res Reservation, key ed25519.PrivateKey) (Signed, error) {
	ms := make([]measurement, len(tables))
	for i, t := range tables {
		if t == nil {
			return Signed{}, fmt.Errorf("build release: table %d is nil", i)
		}
		if t.Period() != p.Period {
			return Signed{}, fmt.Errorf("build release: table %d covers %v but the release is for %v", i, t.Period(), p.Period)
		}
		ms[i] = t
	}
	s, err := buildRelease(ctx, cat, ms, p, res, key)
	if err != nil {
		return Signed{}, err
	}
	// The ledger validates every release on apply; a release it would
	// refuse is a bug here, better reported before it leaves the node.
	if err := ValidateRelease(cat, &s.Release); err != nil {
		return Signed{}, fmt.Errorf("build release: the ledger would refuse the result: %w", err)
	}
	return s, nil
}

// plannedIndicator is one indicator's share of the release and its tables.
type plannedIndicator struct {
	ind    *aggregate.Indicator
	budget float64 // ε or ρ for the indicator
	tables []measurement
}

func buildRelease(ctx context.Context, cat *aggregate.Catalog, tables []measurement, p ReleaseParams, res Reservation, key ed25519.PrivateKey) (Signed, error) {
	if cat == nil {
		return Signed{}, fmt.Errorf("build release: no catalog")
	}
	if len(key) != ed25519.PrivateKeySize {
		return Signed{}, fmt.Errorf("build release: signing key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if err := p.Validate(); err != nil {
		return Signed{}, fmt.Errorf("build release: %w", err)
	}
	plan, err := planRelease(cat, tables, p)
	if err != nil {
		return Signed{}, fmt.Errorf("build release: %w", err)
	}
	r := Release{
		Version: FormatVersion, Consortium: res.Consortium, Partner: p.Partner, CatalogHash: cat.Hash(), Period: p.Period,
		Reservation: res.ID, Accounting: p.Accounting, SpendMicro: p.Budget.Micro(),
	}
	if err := checkReservation(res, r, plan); err != nil {
		return Signed{}, fmt.Errorf("build release: %w", err)
	}
	// Calibrate everything before drawing anything, so a bad parameter
	// never leaves a half-noised release behind.
	draws := make([]func() (IndicatorRelease, error), len(plan))
	for i, pi := range plan {
		if draws[i], err = calibrate(p.Accounting, pi); err != nil {
			return Signed{}, fmt.Errorf("build release: %s: %w", pi.ind.Name, err)
		}
	}
	for _, draw := range draws {
		if err := ctx.Err(); err != nil {
			return Signed{}, fmt.Errorf("build release: %w", err)
		}
		ir, err := draw()
		if err != nil {
			return Signed{}, fmt.Errorf("build release: %s: %w", ir.Name, err)
		}
		r.Indicators = append(r.Indicators, ir)
	}
	s, err := Sign(r, key)
	if err != nil {
		return Signed{}, fmt.Errorf("build release: %w", err)
	}
	return s, nil
}

// checkReservation refuses to noise anything the admitted reservation
// does not cover exactly.
func checkReservation(res Reservation, r Release, plan []plannedIndicator) error {
	if res.ID == "" {
		return fmt.Errorf("reservation has no id")
	}
	if res.Consortium == "" {
		return fmt.Errorf("reservation %s names no consortium: the ledger refuses a release that is not bound to its consortium", res.ID)
	}
	mismatch := func(field string, got, want any) error {
		return fmt.Errorf("reservation %s: %s is %v but the release needs %v", res.ID, field, got, want)
	}
	switch {
	case res.Partner != r.Partner:
		return mismatch("partner", res.Partner, r.Partner)
	case res.CatalogHash != r.CatalogHash:
		return mismatch("catalog hash", res.CatalogHash, r.CatalogHash)
	case res.Period != r.Period:
		return mismatch("period", res.Period, r.Period)
	case res.Accounting != r.Accounting:
		return mismatch("accounting", res.Accounting, r.Accounting)
	case res.SpendMicro != r.SpendMicro:
		return mismatch("spend", res.SpendMicro, r.SpendMicro)
	}
	names := make([]string, len(plan))
	for i, pi := range plan {
		names[i] = pi.ind.Name
	}
	if !slices.Equal(res.Indicators, names) {
		return mismatch("indicators", res.Indicators, names)
	}
	return nil
}

// planRelease groups tables by indicator in catalog order and splits the
// release's budget between indicators by weight.
func planRelease(cat *aggregate.Catalog, tables []measurement, p ReleaseParams) ([]plannedIndicator, error) {
	if len(tables) == 0 {
		return nil, fmt.Errorf("no tables to release")
	}
	byName := map[string][]measurement{}
	for i, t := range tables {
		ind := t.Indicator()
		if ind == nil {
			return nil, fmt.Errorf("table %d has no indicator", i)
		}
		def, ok := cat.Indicator(ind.Name)
		if !ok {
			return nil, fmt.Errorf("table %d: indicator %q is not in catalog version %d", i, ind.Name, cat.Version)
		}
		// A table tabulated under another catalog version could have other
		// bins or another k; its noise would not match the hash we sign.
		if def != ind && !reflect.DeepEqual(*def, *ind) {
			return nil, fmt.Errorf("table %d: indicator %q differs from its definition in catalog version %d", i, ind.Name, cat.Version)
		}
		byName[ind.Name] = append(byName[ind.Name], t)
	}
	for _, name := range slices.Sorted(maps.Keys(p.Weights)) {
		if _, ok := byName[name]; !ok {
			return nil, fmt.Errorf("weight given for %q, which is not in this release", name)
		}
	}
	var plan []plannedIndicator
	var ws []float64
	for i := range cat.Indicators {
		ind := &cat.Indicators[i]
		if ts, ok := byName[ind.Name]; ok {
			if err := checkShares(ind.Name, ts); err != nil {
				return nil, err
			}
			ws = append(ws, weight(ind, p.Weights))
			plan = append(plan, plannedIndicator{ind: ind, tables: ts})
		}
	}
	for i, b := range splitBudget(p.Budget, ws) {
		plan[i].budget = b
	}
	return plan, nil
}

// splitBudget divides a release's budget between indicators in proportion
// to their weights. The spend charged is the integer budget itself, never
// a sum of these floats; they add up to it within a few ulps, which the
// Validator's checkSpend allows.
func splitBudget(b Budget, weights []float64) []float64 {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	out := make([]float64, len(weights))
	for i, w := range weights {
		out[i] = b.Value() * w / sum
	}
	return out
}

func weight(ind *aggregate.Indicator, override map[string]float64) float64 {
	if w, ok := override[ind.Name]; ok {
		return w
	}
	if ind.Weight > 0 {
		return ind.Weight
	}
	return 1
}

// checkShares makes sure an indicator's measurements do not together
// spend more than the indicator's budget.
func checkShares(name string, ts []measurement) error {
	var sum float64
	for _, t := range ts {
		s := t.Share()
		if !(s > 0 && s <= 1) {
			return fmt.Errorf("indicator %s: a table's budget share is %v, want (0, 1]", name, s)
		}
		sum += s
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("indicator %s: table shares sum to %v, more than the indicator's budget", name, sum)
	}
	return nil
}

// tableBudget is a measurement's part of its indicator's budget (ε or ρ).
// The builder and the Validator both compute it here.
func tableBudget(indicatorBudget, share float64) float64 { return indicatorBudget * share }

// calibrate prepares one indicator's noise and returns the function that
// draws it. Under PureDP the indicator's ε is split by share (sequential
// composition); under ZCDP its ρ is.
func calibrate(accounting string, pi plannedIndicator) (func() (IndicatorRelease, error), error) {
	ir := IndicatorRelease{Name: pi.ind.Name, Dimensions: dimensionNames(pi.ind)}
	if pi.ind.Kind == aggregate.KindQuantiles {
		return calibrateQuantiles(accounting, pi, ir)
	}
	ns := make([]cellNoise, len(pi.tables))
	for i, t := range pi.tables {
		var err error
		budget := tableBudget(pi.budget, t.Share())
		if accounting == ZCDP {
			ns[i], err = newGaussianNoise(int64(t.L0()), t.LInf(), budget)
		} else {
			ns[i], err = newLaplaceNoise(int64(t.L0()), t.LInf(), budget)
		}
		if err != nil {
			return nil, err
		}
	}
	ir.Mechanism = ns[0].mechanism
	setBudget(&ir, accounting, pi.budget)
	return func() (IndicatorRelease, error) {
		for i, t := range pi.tables {
			for c := 0; c < t.NumCells(); c++ {
				cell, err := ns[i].cell(t.Key(c), t.Count(c))
				if err != nil {
					return ir, err
				}
				ir.Cells = append(ir.Cells, cell)
			}
		}
		return ir, nil
	}, nil
}

func calibrateQuantiles(accounting string, pi plannedIndicator, ir IndicatorRelease) (func() (IndicatorRelease, error), error) {
	if len(pi.tables) != 1 {
		return nil, fmt.Errorf("quantile indicator has %d tables, want 1", len(pi.tables))
	}
	t := pi.tables[0]
	q, err := newQuantileNoise(accounting, tableBudget(pi.budget, t.Share()), pi.ind.Lower, pi.ind.Upper, pi.ind.Ranks)
	if err != nil {
		return nil, err
	}
	ir.Mechanism = q.mechanism
	setBudget(&ir, accounting, pi.budget)
	return func() (IndicatorRelease, error) {
		count, qs, err := q.release(t.Values())
		if err != nil {
			return ir, err
		}
		ir.Cells, ir.Quantiles = []Cell{count}, qs
		return ir, nil
	}, nil
}

// setBudget records what the indicator spent, in the accounting's unit:
// ε under PureDP; ρ (with the library's calibration δ) under ZCDP.
func setBudget(ir *IndicatorRelease, accounting string, budget float64) {
	if accounting == ZCDP {
		ir.Rho, ir.Delta = budget, GaussianDelta
		return
	}
	ir.Epsilon = budget
}

func dimensionNames(ind *aggregate.Indicator) []string {
	out := make([]string, len(ind.Dimensions))
	for i, d := range ind.Dimensions {
		out[i] = d.Name
	}
	return out
}
