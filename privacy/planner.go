package privacy

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"

	"roundtable/aggregate"
)

// PlanParams describe a release being planned. Set Budget (ε under PureDP,
// ρ under ZCDP) to see the accuracy that budget buys, or TargetHalfWidth
// to see the budget a given accuracy needs.
type PlanParams struct {
	Accounting string
	Budget     Budget
	// TargetHalfWidth, if positive, asks for the smallest release total
	// giving each indicator a 95% half-width of at most this many people
	// (for quantile indicators: a rank error of at most this many people).
	TargetHalfWidth int64
	Weights         map[string]float64 // as in ReleaseParams
	// Partners is the number of partners a regional total sums (default 6,
	// the region's).
	Partners int
}

// DefaultPartners is the region's size: AL, BA, XK, ME, MK and RS.
const DefaultPartners = 6

// PlanRow is the expected accuracy of one indicator. It is computed from
// the catalog and the budget alone; no data is read.
type PlanRow struct {
	Indicator string  `json:"indicator"`
	Mechanism string  `json:"mechanism"`
	Total     Budget  `json:"total"`      // the release's ε or ρ this row assumes
	Budget    float64 `json:"budget"`     // this indicator's ε or ρ
	Cell      float64 `json:"cell"`       // ε or ρ of one cell of the full table (quantiles: of the tree)
	Scale     float64 `json:"scale"`      // Laplace b or Gaussian σ of one cell (quantiles: of one tree node)
	HalfWidth int64   `json:"half_width"` // 95% half-width of one cell of the full table, people; 0 for quantiles
	Coverage  float64 `json:"coverage"`   // exact coverage of that interval
	RankError float64 `json:"rank_error"` // quantiles: 95% bound on the rank error, people
	// Yearly and Quarterly say what readers will see of a count indicator
	// (nil for quantiles): the expected 95% half-widths of the consistent
	// estimates, for one release a year at this budget, or one a quarter
	// each at this budget (the same cost per person).
	Yearly    *Readable `json:"yearly,omitempty"`
	Quarterly *Readable `json:"quarterly,omitempty"`
}

// Readable is the accuracy of the numbers people read, in people (95%
// half-widths of the consistent estimates the series show).
type Readable struct {
	CountryYear float64 `json:"country_year"` // a partner's total for a year
	Region      float64 `json:"region"`       // the total of Partners partners for a year
	Partners    int     `json:"partners"`
	Change      float64 `json:"change"`     // a partner's change from one year to the next
	Detectable  float64 `json:"detectable"` // smallest change seen (interval excludes 0) 80% of the time
	Cell        float64 `json:"cell"`       // a typical cell of the full table over a year
}

// Plan reports, per indicator in catalog order, the 95% interval of one
// cell of its full table: at the given budget, or, with TargetHalfWidth,
// at the smallest release total (in whole Micro units) that reaches it.
func Plan(cat *aggregate.Catalog, indicators []string, p PlanParams) ([]PlanRow, error) {
	if cat == nil {
		return nil, fmt.Errorf("plan: no catalog")
	}
	inds, fracs, err := planSplit(cat, indicators, p.Weights)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if p.Accounting != PureDP && p.Accounting != ZCDP {
		return nil, fmt.Errorf("plan: accounting %q is not one of %s, %s", p.Accounting, PureDP, ZCDP)
	}
	partners := p.Partners
	if partners == 0 {
		partners = DefaultPartners
	}
	if partners < 1 {
		return nil, fmt.Errorf("plan: partners must be at least 1, got %d", partners)
	}
	rows := make([]PlanRow, len(inds))
	for i, ind := range inds {
		if p.TargetHalfWidth > 0 {
			rows[i], err = planTarget(p.Accounting, ind, fracs[i], p.TargetHalfWidth)
		} else {
			if err := checkPlanBudget(p); err != nil {
				return nil, err
			}
			rows[i], err = planRow(p.Accounting, ind, fracs[i], p.Budget)
		}
		if err != nil {
			return nil, fmt.Errorf("plan: %s: %w", ind.Name, err)
		}
		if err := rows[i].addReadable(p.Accounting, ind, partners); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
	}
	return rows, nil
}

// addReadable fills Yearly and Quarterly for a count indicator at the
// row's budget, from the same linear model the combine path solves.
func (row *PlanRow) addReadable(accounting string, ind *aggregate.Indicator, partners int) error {
	if ind.Kind != aggregate.KindCount {
		return nil
	}
	f, err := newIndicatorModel(ind).at(accounting, row.Budget)
	if err != nil {
		return err
	}
	row.Yearly, row.Quarterly = f.readable(Yearly, partners), f.readable(Quarterly, partners)
	return nil
}

func checkPlanBudget(p PlanParams) error {
	rp := ReleaseParams{Accounting: p.Accounting, Budget: p.Budget, Partner: "plan", Period: aggregate.Period{Year: 1}}
	if err := rp.Validate(); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return nil
}

// planSplit selects the indicators (all if none are named) in catalog
// order and returns each one's fraction of the release budget.
func planSplit(cat *aggregate.Catalog, names []string, weights map[string]float64) ([]*aggregate.Indicator, []float64, error) {
	selected, err := cat.Select(names)
	if err != nil {
		return nil, nil, err
	}
	var inds []*aggregate.Indicator
	var ws []float64
	var sum float64
	for _, n := range selected {
		ind, _ := cat.Indicator(n)
		w := weight(ind, weights)
		inds, ws, sum = append(inds, ind), append(ws, w), sum+w
	}
	for _, n := range slices.Sorted(maps.Keys(weights)) {
		if w := weights[n]; !(w > 0) || math.IsInf(w, 0) {
			return nil, nil, fmt.Errorf("weight of %s must be positive and finite, got %v", n, w)
		}
		if !slices.ContainsFunc(inds, func(ind *aggregate.Indicator) bool { return ind.Name == n }) {
			return nil, nil, fmt.Errorf("weight given for %q, which is not planned", n)
		}
	}
	for i := range ws {
		ws[i] /= sum
	}
	return inds, ws, nil
}

// planRow calibrates the indicator exactly as BuildRelease would.
func planRow(accounting string, ind *aggregate.Indicator, frac float64, total Budget) (PlanRow, error) {
	row := PlanRow{Indicator: ind.Name, Total: total, Budget: total.Value() * frac}
	if ind.Kind == aggregate.KindQuantiles {
		q, err := newQuantileNoise(accounting, row.Budget, ind.Lower, ind.Upper, ind.Ranks)
		if err != nil {
			return PlanRow{}, err
		}
		row.Mechanism, row.Scale, row.RankError = q.mechanism, q.nodeSD, q.rankError()
		row.Cell = row.Budget * (1 - countShare)
		if accounting == PureDP {
			row.Scale = q.nodeSD / math.Sqrt2 // report the Laplace b, as cells do
		}
		return row, nil
	}
	row.Cell = row.Budget * ind.Share(0)
	var n cellNoise
	var err error
	if accounting == ZCDP {
		n, err = newGaussianNoise(int64(ind.K), 1, row.Cell)
	} else {
		n, err = newLaplaceNoise(int64(ind.K), 1, row.Cell)
	}
	if err != nil {
		return PlanRow{}, err
	}
	row.Mechanism, row.Scale, row.HalfWidth, row.Coverage = n.mechanism, n.scale, n.halfWidth(), n.coverage()
	return row, nil
}

// planTarget finds the smallest release total, in whole Micro units, at
// which the indicator meets the target. Accuracy only improves with
// budget, so bisection on the Micro grid finds it.
func planTarget(accounting string, ind *aggregate.Indicator, frac float64, target int64) (PlanRow, error) {
	meets := func(micro int64) (PlanRow, bool, error) {
		row, err := planRow(accounting, ind, frac, Budget(micro))
		if err != nil {
			return PlanRow{}, false, err
		}
		if ind.Kind == aggregate.KindQuantiles {
			return row, row.RankError <= float64(target), nil
		}
		return row, row.HalfWidth <= target, nil
	}
	lo, hi := int64(0), int64(Micro) // lo never meets (no budget), hi is grown until it does
	for {
		_, ok, err := meets(hi)
		if err != nil {
			return PlanRow{}, err
		}
		if ok {
			break
		}
		if hi >= maxBudget*Micro {
			return PlanRow{}, fmt.Errorf("no budget up to %d reaches a half-width of %d", maxBudget, target)
		}
		lo, hi = hi, min(hi*2, maxBudget*Micro)
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		_, ok, err := meets(mid)
		if err != nil {
			return PlanRow{}, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	row, _, err := meets(hi)
	return row, err
}

// CadenceRow compares, for one indicator at the same budget per quarter,
// the 95% half-width of a year's cell under the two release cadences: one
// yearly release (which spends the budget on each of the year's four
// quarters), or four quarterly releases (each spending it on its quarter)
// whose cells are summed. Both cost a person the same: a person counts in
// one quarter per year, so either way their loss is the budget.
type CadenceRow struct {
	Indicator     string `json:"indicator"`
	Yearly        int64  `json:"yearly"`         // a year's cell from one yearly release
	Quarter       int64  `json:"quarter"`        // a quarter's cell from a quarterly release
	QuarterlyYear int64  `json:"quarterly_year"` // a year's cell summed from four quarterly releases
}

// CompareCadences turns plan rows into cadence rows, for the count
// indicators (a quantile of a year cannot be summed from quarters). The
// half-widths are those of one full-table cell, from the interval series
// points use (aggregate.HalfWidth95): the consistent estimates, which also
// use the margins, are narrower under either cadence.
func CompareCadences(rows []PlanRow) []CadenceRow {
	var out []CadenceRow
	for _, r := range rows {
		if r.Scale <= 0 || r.Mechanism == "" || r.HalfWidth == 0 && r.RankError > 0 {
			continue
		}
		cell := aggregate.GaussianNoise(r.Scale * r.Scale)
		if r.Mechanism == Laplace {
			cell = aggregate.LaplaceNoise(2 * r.Scale * r.Scale)
		}
		out = append(out, CadenceRow{
			Indicator:     r.Indicator,
			Yearly:        int64(math.Ceil(aggregate.HalfWidth95(cell))),
			Quarter:       r.HalfWidth,
			QuarterlyYear: int64(math.Ceil(aggregate.HalfWidth95(cell.Times(4)))), // four independent quarters
		})
	}
	return out
}

// PlanWarnings says which budgets of a plan the ledger would refuse: the
// given budget, or (for a target) each row's proposed total, when it is
// above the consortium's cap per quarter (cap; 0 if unknown) or above
// what is left on the period's most-spent quarter (left; < 0 if unknown).
func PlanWarnings(accounting string, given Budget, rows []PlanRow, cap, left Budget) []string {
	u := unitName(accounting)
	var out []string
	check := func(what string, b Budget) {
		switch {
		case cap > 0 && b > cap:
			out = append(out, fmt.Sprintf("%s %s %s is above the consortium's cap of %s per quarter: the ledger would refuse it", what, u, b, cap))
		case left >= 0 && b > left:
			out = append(out, fmt.Sprintf("%s %s %s is more than the %s left in this period: the ledger would refuse it", what, u, b, left))
		}
	}
	if given > 0 {
		check("the budget", given)
		return out
	}
	for _, r := range rows {
		check(r.Indicator+" needs", r.Total)
	}
	return out
}

// WriteReadable prints what readers will see of each count indicator in
// rows: the 95% half-widths of a country-year total, a regional-year total,
// a change between years, the smallest change detected 80% of the time,
// and a typical cell, for yearly and for quarterly releases at the rows'
// budget. `roundtable plan` prints it under the per-cell table.
func WriteReadable(w io.Writer, rows []PlanRow) error {
	partners := 0
	for _, r := range rows {
		if r.Yearly != nil {
			partners = r.Yearly.Partners
		}
	}
	if partners == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nWhat readers will see (95%% interval ±, people; consistent estimates; region = %d partners).\n", partners)
	fmt.Fprintf(w, "Yearly: one release per closed year at this budget. Quarterly: one per quarter, each at this budget.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "indicator\tcadence\tcountry-year total\tregion-year total\tyear-over-year change\tsmallest change seen\ttypical cell\t")
	for _, r := range rows {
		for _, c := range []struct {
			name string
			x    *Readable
		}{{Yearly, r.Yearly}, {Quarterly, r.Quarterly}} {
			if c.x == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.Indicator, c.name, c.x.CountryYear, c.x.Region, c.x.Change, c.x.Detectable, c.x.Cell)
		}
	}
	return tw.Flush()
}
