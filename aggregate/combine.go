package aggregate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Mechanism names a Measurement may carry (the privacy package's names).
const (
	MechanismLaplace  = "laplace"
	MechanismGaussian = "gaussian"
)

// RegionPartner is the Partner of a series point rolled up over partners.
const RegionPartner = "region"

// Measurement is one published noisy cell, as combination needs it: the
// API layer converts verified releases from the ledger into these. A cell
// of a margin has KeyAll for each summed-out dimension.
type Measurement struct {
	Partner   string
	Period    Period
	Indicator string
	// Dimensions are the indicator's dimensions, in Key order (the
	// release's IndicatorRelease.Dimensions; one slice may be shared).
	Dimensions []string
	Key        []string
	Value      int64   // the noisy count as published (may be negative)
	Variance   float64 // of the noise: 2b² for Laplace(b), σ² for Gaussian
	// Mechanism is MechanismLaplace (also when empty, the project's
	// default) or MechanismGaussian; it sets the interval's shape.
	Mechanism string
	ReleaseID string
	Leaf      int64 // the release's index in the ledger's Merkle log; later releases have larger leaves
}

// SeriesQuery selects a series from the published measurements.
type SeriesQuery struct {
	Indicator    string
	By           []string // dimensions kept; the others are summed. Empty: the total.
	Partners     []string // empty: all
	From, To     Period   // inclusive; the zero Period leaves that end open
	RollUpYears  bool     // one point per year (only years fully published)
	RollUpRegion bool     // one point per period summed over partners
	// PoolYears > 1 (with RollUpYears) sums blocks of that many calendar
	// years, counted back from the latest year in the answer: with data
	// to 2024 and PoolYears 3, 2022–2024, 2019–2021, … A block appears
	// only when every one of its years is fully published. Blocks do not
	// overlap, so each has an independent interval and so does the change
	// from one block to the one before.
	PoolYears int
}

// MaxPoolYears bounds SeriesQuery.PoolYears.
const MaxPoolYears = 5

// SeriesPoint is one consistent estimate with the direct measurement of
// the same quantity. Points of one Series answer share their Key and
// ReleaseIDs slices (a query can return tens of thousands of points):
// treat them as read-only.
type SeriesPoint struct {
	Partner string // or RegionPartner
	Period  Period // for a pooled point, the last year of the block
	// FirstYear is a pooled point's first year (0 unless PoolYears > 1).
	FirstYear int
	Key       []string // one per SeriesQuery.By dimension, in By order
	// Raw is the direct measurement of this very quantity: the published
	// cell that measures it (the total cell for a total, the margin cell
	// for a breakdown the catalog publishes as a margin, the full-table
	// cell for the full breakdown), the latest if several releases publish
	// it. For a year without a year release, or a region or a pool, it is
	// the sum of those direct measurements over quarters, partners and
	// years; never a sum of cells of a finer table. HasRaw is false when
	// no release measures the quantity directly.
	HasRaw      bool
	Raw         int64
	RawVariance float64
	RawCILow    float64 // 95% interval of the direct measurement alone
	RawCIHigh   float64
	Estimate    int64 // consistent: integer, ≥ 0, sums agree across margins, years and partners
	// CILow, CIHigh: 95% interval for the true count, centred on the WLS
	// (unrounded) estimate, from its covariance; see ci95. CILow may be
	// negative (it is not clipped, so coverage is as stated). They are
	// −∞ and +∞ when the measurements do not determine the quantity.
	CILow      float64
	CIHigh     float64
	Determined bool // the measurements determine this quantity; if not, Estimate is an arbitrary fill and means nothing
	// TooUncertain: the interval's half-width exceeds the estimate (or the
	// quantity is undetermined), so the value is too uncertain to read.
	TooUncertain bool
	Small        bool     // Estimate < 5 or TooUncertain
	Change       *Change  // from the same period one year (or one pool) earlier; nil when that is not published
	ReleaseIDs   []string // the releases the point draws on, sorted
}

// Change is the difference between a point and the same quantity one
// period earlier (a year earlier for quarters and years, one block
// earlier for pooled years). The two draw on different years' releases,
// whose noise is independent, so the noise of the difference is the sum
// of theirs (variance and Laplace terms: see Noise); the interval is ci95
// of that, centred on the difference of the WLS estimates.
type Change struct {
	From      Period // the earlier period (the last year of the earlier block when pooled)
	FromFirst int    // the earlier block's first year when pooled, else 0
	Value     int64  // Estimate − the earlier Estimate
	CILow     float64
	CIHigh    float64
	// Detectable: the interval excludes 0. When it does not, the change
	// is not distinguishable from no change.
	Detectable bool
}

// Estimates holds the consistent estimates of a set of measurements,
// computed once so each Series query only sums. It is read-only after
// NewEstimates and safe for concurrent use.
type Estimates struct {
	indicators map[string]*indicatorEstimates
	widths     *halfWidths
}

type indicatorEstimates struct {
	dims   []string
	leaves [][]string     // every full key seen, in first-seen order
	index  map[string]int // joined full key → leaf id
	blocks []*block       // sorted by partner, then year
}

// block is one partner's measurements of one indicator in one year: the
// unit within which quarters, the year and margins must agree.
type block struct {
	partner   string
	year      int
	units     []unit
	leaves    []int                      // global leaf ids in this block
	rows      []row                      // every measurement that covers an unknown
	absent    []bool                     // per unknown: a cell the unit's releases do not have (exactly 0); see newBlock
	x         []float64                  // WLS estimate per unknown (unit·len(leaves) + local leaf)
	est       []int64                    // consistent integer estimate per unknown
	direct    map[int]map[string]rawCell // quarter (0: a year release) → joined key → latest published cell
	comps     []*component
	compOf    []int
	pos       []int
	releases  []releaseRef
	maxComp   int
	cellNoise []Noise // the noise of x̂_j, precomputed: most points are one cell per component
	cellDet   []bool  // whether the rows determine x_j
}

// unit is a span of time the block solves for: one published quarter, the
// whole year (only a year release), or the rest of a year whose other
// quarters were published on their own.
type unit struct {
	quarter  int   // 1–4; 0 for the whole year; -1 for the rest
	quarters uint8 // bit q-1 per covered quarter
}

// rawCell is one published cell as a direct measurement of its quantity.
type rawCell struct {
	value    int64
	variance float64
	laplace  bool
	leaf     int64 // ledger leaf of the release, to keep the latest
}

type releaseRef struct {
	id      string
	quarter int
}

// NewEstimates checks the measurements and computes consistent estimates
// for every (partner, indicator, year). It refuses the whole set if any
// measurement is malformed, so a query never mixes good and bad input.
// Repeated measurements of one cell are merged first (see
// MeasurementSet), which changes no estimate or interval.
func NewEstimates(ms []Measurement) (*Estimates, error) {
	return newEstimates(ms, NewMeasurementSet())
}

func newEstimates(ms []Measurement, s *MeasurementSet) (*Estimates, error) {
	seen := make(map[string]bool, len(ms))
	for i := range ms {
		m := &ms[i]
		if err := checkMeasurement(m); err != nil {
			return nil, fmt.Errorf("measurement %d (%s %s %s %v): %w", i, m.Partner, m.Period, m.Indicator, m.Key, err)
		}
		id := m.ReleaseID + "\x00" + m.Indicator + "\x00" + m.Period.String() + "\x00" + strings.Join(m.Key, "\x00")
		if seen[id] {
			return nil, fmt.Errorf("measurement %d: release %s publishes %s %v twice", i, m.ReleaseID, m.Indicator, m.Key)
		}
		seen[id] = true
		if err := s.Add(m); err != nil {
			return nil, err
		}
	}
	return s.Estimates()
}

func checkMeasurement(m *Measurement) error {
	switch {
	case m.Partner == "" || m.Partner == RegionPartner:
		return fmt.Errorf("partner %q is not a partner", m.Partner)
	case m.Indicator == "":
		return errors.New("no indicator")
	case m.Period.Quarter < 0 || m.Period.Quarter > 4:
		return fmt.Errorf("period quarter %d is not 0–4", m.Period.Quarter)
	case len(m.Key) != len(m.Dimensions):
		return fmt.Errorf("key has %d parts for %d dimensions", len(m.Key), len(m.Dimensions))
	case m.Mechanism != "" && m.Mechanism != MechanismLaplace && m.Mechanism != MechanismGaussian:
		return fmt.Errorf("mechanism %q is not %s or %s", m.Mechanism, MechanismLaplace, MechanismGaussian)
	}
	return checkVariance(m.Variance)
}

// newBlock sets up and solves one block from its (merged) cells.
//
// Each release publishes its full cross table over its catalog's key set,
// zeros included, so the cells a time unit has are the full-table cells
// its releases publish. A cell of the block that none of them publishes
// (another catalog version's extra key, say) does not exist in that unit:
// it is fixed at exactly 0 rather than left for the solver to guess. A
// unit with no full-table cell at all (hand-made input) keeps every cell
// as an unknown, and what its margins leave open is reported undetermined.
func newBlock(ind *indicatorEstimates, partner string, year int, cells []*mergedCell, releases []releaseRef) (*block, error) {
	b := &block{partner: partner, year: year, direct: make(map[int]map[string]rawCell)}
	var quarters uint8
	hasYear := false
	local := make(map[int]int)
	for _, c := range cells {
		if c.quarter == 0 {
			hasYear = true
		} else {
			quarters |= 1 << (c.quarter - 1)
		}
		if !c.margin {
			if _, ok := local[c.leaf]; !ok {
				local[c.leaf] = len(b.leaves)
				b.leaves = append(b.leaves, c.leaf)
			}
		}
	}
	b.releases = slices.Clone(releases)
	slices.SortFunc(b.releases, func(x, y releaseRef) int {
		return cmp.Or(strings.Compare(x.id, y.id), x.quarter-y.quarter)
	})
	b.releases = slices.Compact(b.releases)
	for q := 1; q <= 4; q++ {
		if quarters&(1<<(q-1)) != 0 {
			b.units = append(b.units, unit{quarter: q, quarters: 1 << (q - 1)})
		}
	}
	if rest := 0xf &^ quarters; hasYear && rest != 0 {
		q := 0 // the whole year
		if quarters != 0 {
			q = -1
		}
		b.units = append(b.units, unit{quarter: q, quarters: rest})
	}
	b.markAbsent(cells, local)
	if err := b.addRows(ind, cells, local); err != nil {
		return nil, err
	}
	b.solve()
	return b, nil
}

// markAbsent fixes the cells no full-table measurement of their unit
// publishes (see newBlock).
func (b *block) markAbsent(cells []*mergedCell, local map[int]int) {
	L := len(b.leaves)
	present := make([]bool, L*len(b.units))
	hasCross := make([]bool, len(b.units))
	for _, c := range cells {
		if c.margin {
			continue
		}
		l := local[c.leaf]
		for u, un := range b.units {
			if c.quarter == 0 || un.quarter == c.quarter {
				present[u*L+l], hasCross[u] = true, true
			}
		}
	}
	b.absent = make([]bool, L*len(b.units))
	for j := range b.absent {
		b.absent[j] = hasCross[j/max(L, 1)] && !present[j]
	}
}

// addRows turns each cell into a row over the block's unknowns and keeps
// the latest published cell of each period and key as the direct
// measurement of that quantity.
func (b *block) addRows(ind *indicatorEstimates, cells []*mergedCell, local map[int]int) error {
	L := len(b.leaves)
	for _, c := range cells {
		var cols []int
		for u, un := range b.units {
			if c.quarter != 0 && un.quarter != c.quarter {
				continue
			}
			if !c.margin { // a cross cell covers exactly its own leaf
				cols = append(cols, u*L+local[c.leaf])
				continue
			}
			for l, g := range b.leaves {
				if j := u*L + l; !b.absent[j] && keyMatches(c.key, ind.leaves[g]) {
					cols = append(cols, j)
				}
			}
		}
		switch {
		case len(cols) > 0:
			b.rows = append(b.rows, c.row(cols))
		case L == 0:
			return fmt.Errorf("release %s: %v sums no published cell", c.release, c.key)
		}
		// else: a margin over cells its unit does not have; it measures 0.
		direct := b.direct[c.quarter]
		if direct == nil {
			direct = make(map[string]rawCell)
			b.direct[c.quarter] = direct
		}
		if r, ok := direct[c.joined]; !ok || c.raw.leaf > r.leaf {
			direct[c.joined] = c.raw
		}
	}
	return nil
}

// solve computes the WLS estimates, each cell's variance, and the
// consistent integer leaves of every time unit.
func (b *block) solve() {
	L := len(b.leaves)
	n := L * len(b.units)
	b.x, b.comps, b.compOf, b.pos = solveWLS(n, b.rows)
	for _, c := range b.comps {
		b.maxComp = max(b.maxComp, len(c.vars))
	}
	scratch := make([]float64, b.maxComp)
	b.cellNoise, b.cellDet = make([]Noise, n), make([]bool, n)
	for j := range n {
		if b.absent[j] {
			b.x[j], b.cellDet[j] = 0, true
			continue
		}
		c := b.comps[b.compOf[j]]
		b.cellNoise[j] = c.linearMoments(b.rows, b.pos, []int{j}, scratch)
		b.cellDet[j] = c.determined(b.pos, []int{j})
	}
	b.est = make([]int64, n)
	var xs []float64
	var at []int
	for u := range b.units {
		xs, at = xs[:0], at[:0]
		for j := u * L; j < (u+1)*L; j++ {
			if !b.absent[j] {
				xs, at = append(xs, b.x[j]), append(at, j)
			}
		}
		for i, v := range integerLeaves(xs) {
			b.est[at[i]] = v
		}
	}
}

// keyMatches reports whether a (possibly margin) key covers a full key.
func keyMatches(key, full []string) bool {
	for i, k := range key {
		if k != KeyAll && k != full[i] {
			return false
		}
	}
	return true
}

// Series answers a query from precomputed estimates. Points come sorted by
// partner, period, then key (the order the keys were first published in).
// Without RollUpYears, periods are the finest published: quarters, or the
// year where a partner published only a year. With it, a year appears only
// when it is fully published (a year release, or all four quarters).
// From and To compare quarter by quarter; year points need From.Year ≤
// year ≤ To.Year, pooled points every year of their block in that range.
// A point's Change is computed even when the earlier period lies before
// From.
func (e *Estimates) Series(q SeriesQuery) ([]SeriesPoint, error) {
	ind, ok := e.indicators[q.Indicator]
	switch {
	case q.Indicator == "":
		return nil, errors.New("series: no indicator")
	case q.PoolYears < 0 || q.PoolYears > MaxPoolYears:
		return nil, fmt.Errorf("series %s: pool of %d years is not 0–%d", q.Indicator, q.PoolYears, MaxPoolYears)
	case q.PoolYears > 1 && !q.RollUpYears:
		return nil, fmt.Errorf("series %s: pooling years needs the year roll-up", q.Indicator)
	case !ok:
		return nil, nil // nothing published yet
	}
	proj, keys, err := ind.projection(q.By)
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", q.Indicator, err)
	}
	pool := max(q.PoolYears, 1)
	lines := e.collect(ind, q, proj, keys, pool)
	if pool > 1 {
		poolLines(lines, q, pool)
	}
	out := make([]SeriesPoint, 0, len(lines)*4*len(keys))
	for _, ln := range lines {
		out = ln.finish(out, e.widths, q, keys, pool)
	}
	return out, nil
}

// line is one partner's (or the region's) sums per output period.
type line struct {
	partner string
	periods map[Period]*periodSum
}

// periodSum is one output period of a line: one accumulator per key.
type periodSum struct {
	first    int // a pooled block's first year
	accs     []pointAcc
	ids      []string
	partners []string // that contributed, in block order (sorted)
}

// collect sums the spans of every wanted block into lines, reaching one
// period (a year, or a pool) before From so the first point has a change.
func (e *Estimates) collect(ind *indicatorEstimates, q SeriesQuery, proj []int, keys [][]string, pool int) []*line {
	direct := ind.directKeys(q.By, keys)
	ext := q
	if ext.From != (Period{}) {
		ext.From.Year -= pool
	}
	var buf pointBuf
	var lines []*line
	for _, b := range ind.blocks {
		if !q.wantsPartner(b.partner) {
			continue
		}
		name := b.partner
		if q.RollUpRegion {
			name = RegionPartner
		}
		if len(lines) == 0 || lines[len(lines)-1].partner != name {
			lines = append(lines, &line{partner: name, periods: make(map[Period]*periodSum)})
		}
		ln := lines[len(lines)-1]
		for _, sp := range b.spans(ext) {
			ps := ln.periods[sp.period]
			if ps == nil {
				ps = &periodSum{accs: make([]pointAcc, len(keys))}
				ln.periods[sp.period] = ps
			}
			acc := b.point(sp, proj, len(keys), direct, &buf)
			for k := range acc {
				ps.accs[k].add(&acc[k])
			}
			ps.ids = append(ps.ids, b.releaseIDs(sp.period)...)
			ps.partners = append(ps.partners, b.partner)
		}
	}
	for _, ln := range lines {
		for _, ps := range ln.periods {
			if len(ps.partners) > 1 { // a region: several blocks' ids
				slices.Sort(ps.ids)
				ps.ids = slices.Compact(ps.ids)
				slices.Sort(ps.partners)
			}
		}
	}
	return lines
}

// poolLines replaces each line's years by blocks of pool years, counted
// back from the latest year any line has (capped at q.To), so that every
// line's blocks align.
func poolLines(lines []*line, q SeriesQuery, pool int) {
	last, first := math.MinInt, math.MaxInt
	for _, ln := range lines {
		for p := range ln.periods {
			if q.To == (Period{}) || p.Year <= q.To.Year {
				last = max(last, p.Year)
			}
			first = min(first, p.Year)
		}
	}
	for _, ln := range lines {
		pooled := make(map[Period]*periodSum)
	blocks:
		for end := last; end-pool+1 >= first; end -= pool {
			ps := &periodSum{first: end - pool + 1}
			for y := ps.first; y <= end; y++ {
				yp := ln.periods[Period{Year: y}]
				if yp == nil {
					continue blocks
				}
				if ps.accs == nil {
					ps.accs = make([]pointAcc, len(yp.accs))
				}
				for k := range yp.accs {
					ps.accs[k].add(&yp.accs[k])
				}
				ps.ids = append(ps.ids, yp.ids...)
				ps.partners = append(ps.partners, yp.partners...)
			}
			slices.Sort(ps.ids)
			ps.ids = slices.Compact(ps.ids)
			slices.Sort(ps.partners)
			ps.partners = slices.Compact(ps.partners)
			pooled[Period{Year: end}] = ps
		}
		ln.periods = pooled
	}
}

// finish appends the line's points within q's range, with their changes.
func (ln *line) finish(out []SeriesPoint, w *halfWidths, q SeriesQuery, keys [][]string, pool int) []SeriesPoint {
	periods := make([]Period, 0, len(ln.periods))
	for p, ps := range ln.periods {
		if q.inRange(p, ps.first) {
			periods = append(periods, p)
		}
	}
	slices.SortFunc(periods, comparePeriods)
	for _, p := range periods {
		ps := ln.periods[p]
		from := Period{Year: p.Year - pool, Quarter: p.Quarter}
		prev := ln.periods[from]
		if prev != nil && !slices.Equal(prev.partners, ps.partners) {
			prev = nil // a region sum over other partners is not comparable
		}
		var changes []Change
		if prev != nil {
			changes = make([]Change, len(keys))
		}
		for k := range keys {
			pt := ps.accs[k].finish(w, ln.partner, p, keys[k], ps.ids)
			if pool > 1 {
				pt.FirstYear = ps.first
			}
			if prev != nil {
				if c, ok := ps.accs[k].change(w, &prev.accs[k]); ok {
					c.From = from
					if pool > 1 {
						c.FromFirst = prev.first
					}
					changes[k] = c
					pt.Change = &changes[k]
				}
			}
			out = append(out, pt)
		}
	}
	return out
}

// inRange reports whether a collected period lies within the query's
// range (collect reaches one period further back).
func (q *SeriesQuery) inRange(p Period, first int) bool {
	if p.Quarter > 0 {
		lo, hi := q.quarterRange()
		i := p.Year*4 + p.Quarter - 1
		return lo <= i && i <= hi
	}
	if first == 0 {
		first = p.Year
	}
	return (q.From == Period{} || q.From.Year <= first) && (q.To == Period{} || p.Year <= q.To.Year)
}

// quarterRange is From and To as quarter indexes (year·4 + quarter − 1).
func (q *SeriesQuery) quarterRange() (lo, hi int) {
	lo, hi = math.MinInt, math.MaxInt
	if q.From != (Period{}) {
		lo = q.From.Year*4 + max(q.From.Quarter, 1) - 1
	}
	if q.To != (Period{}) {
		hi = q.To.Year*4 + 3
		if q.To.Quarter > 0 {
			hi = q.To.Year*4 + q.To.Quarter - 1
		}
	}
	return lo, hi
}

func (q *SeriesQuery) wantsPartner(p string) bool {
	return len(q.Partners) == 0 || slices.Contains(q.Partners, p)
}

// comparePeriods orders a year just before its first quarter.
func comparePeriods(a, b Period) int {
	if a.Year != b.Year {
		return a.Year - b.Year
	}
	return a.Quarter - b.Quarter
}

// Series computes estimates from ms and answers one query. Callers that
// answer many queries should keep NewEstimates' result instead.
func Series(ms []Measurement, q SeriesQuery) ([]SeriesPoint, error) {
	e, err := NewEstimates(ms)
	if err != nil {
		return nil, err
	}
	return e.Series(q)
}

// projection maps every leaf to its key under By, and lists those keys.
func (ind *indicatorEstimates) projection(by []string) ([]int, [][]string, error) {
	at, err := ind.positions(by)
	if err != nil {
		return nil, nil, err
	}
	proj := make([]int, len(ind.leaves))
	index := make(map[string]int)
	var keys [][]string
	for l, full := range ind.leaves {
		key := make([]string, len(by))
		for i, a := range at {
			key[i] = full[a]
		}
		j := strings.Join(key, "\x00")
		k, ok := index[j]
		if !ok {
			k = len(keys)
			index[j] = k
			keys = append(keys, key)
		}
		proj[l] = k
	}
	if len(keys) == 0 {
		keys = [][]string{make([]string, len(by))}
	}
	return proj, keys, nil
}

// positions returns each By dimension's index among the indicator's.
func (ind *indicatorEstimates) positions(by []string) ([]int, error) {
	at := make([]int, len(by))
	for i, name := range by {
		at[i] = slices.Index(ind.dims, name)
		if at[i] < 0 {
			return nil, fmt.Errorf("dimension %q is not one of %s", name, strings.Join(ind.dims, ", "))
		}
		if slices.Contains(at[:i], at[i]) {
			return nil, fmt.Errorf("dimension %q asked for twice", name)
		}
	}
	return at, nil
}

// directKeys returns, per output key, the joined key of the published cell
// that measures it directly: the By values in place, KeyAll elsewhere.
func (ind *indicatorEstimates) directKeys(by []string, keys [][]string) []string {
	at, _ := ind.positions(by) // checked by projection
	out := make([]string, len(keys))
	full := make([]string, len(ind.dims))
	for k, key := range keys {
		for d := range full {
			full[d] = KeyAll
		}
		for i, a := range at {
			full[a] = key[i]
		}
		out[k] = strings.Join(full, "\x00")
	}
	return out
}

// span is one output period of a block: the units it sums.
type span struct {
	period Period
	units  []int
}

func (b *block) spans(q SeriesQuery) []span {
	lo, hi := q.quarterRange()
	yearIn := (q.From == Period{} || q.From.Year <= b.year) && (q.To == Period{} || b.year <= q.To.Year)
	var out []span
	if q.RollUpYears {
		var all []int
		var covered uint8
		for u, un := range b.units {
			all = append(all, u)
			covered |= un.quarters
		}
		if covered == 0xf && yearIn {
			out = append(out, span{Period{b.year, 0}, all})
		}
		return out
	}
	for u, un := range b.units {
		switch {
		case un.quarter == 0 && yearIn:
			out = append(out, span{Period{b.year, 0}, []int{u}})
		case un.quarter > 0:
			if i := b.year*4 + un.quarter - 1; i >= lo && i <= hi {
				out = append(out, span{Period{b.year, un.quarter}, []int{u}})
			}
		}
	}
	return out
}

// pointAcc accumulates one series point.
type pointAcc struct {
	est          int64
	mean         float64 // the WLS (unrounded) estimate the interval is centred on
	noise        Noise   // of mean: independent parts (components, blocks) add
	undetermined bool    // some part is not determined by the measurements
	raw          int64   // the direct measurement
	rawNoise     Noise
	rawMissing   bool // some part has no direct measurement
}

func (a *pointAcc) add(b *pointAcc) {
	a.est += b.est
	a.mean += b.mean
	a.noise = a.noise.Plus(b.noise)
	a.undetermined = a.undetermined || b.undetermined
	a.raw += b.raw
	a.rawNoise = a.rawNoise.Plus(b.rawNoise)
	a.rawMissing = a.rawMissing || b.rawMissing
}

func (a *pointAcc) addRaw(c rawCell) {
	a.raw += c.value
	if c.laplace {
		a.rawNoise = a.rawNoise.Plus(LaplaceNoise(c.variance))
	} else {
		a.rawNoise = a.rawNoise.Plus(GaussianNoise(c.variance))
	}
}

// pointBuf is scratch space reused across the points of one query.
type pointBuf struct {
	acc     []pointAcc
	offsets []int
	flat    []int
	moments []float64
}

// point sums a span's unknowns per output key, and looks up each key's
// direct measurement.
func (b *block) point(s span, proj []int, nkeys int, direct []string, buf *pointBuf) []pointAcc {
	L := len(b.leaves)
	buf.acc = slices.Grow(buf.acc[:0], nkeys)[:nkeys]
	clear(buf.acc)
	acc := buf.acc
	// Group the span's unknowns by output key (a counting sort into flat).
	buf.offsets = slices.Grow(buf.offsets[:0], nkeys+1)[:nkeys+1]
	clear(buf.offsets)
	for _, u := range s.units {
		for l, g := range b.leaves {
			if !b.absent[u*L+l] {
				buf.offsets[proj[g]+1]++
			}
		}
	}
	for k := range nkeys {
		buf.offsets[k+1] += buf.offsets[k]
	}
	n := buf.offsets[nkeys]
	buf.flat = slices.Grow(buf.flat[:0], n)[:n]
	fill := slices.Clone(buf.offsets[:nkeys])
	for _, u := range s.units {
		for l, g := range b.leaves {
			j := u*L + l
			if b.absent[j] {
				continue
			}
			k := proj[g]
			acc[k].est += b.est[j]
			acc[k].mean += b.x[j]
			buf.flat[fill[k]] = j
			fill[k]++
		}
	}
	buf.moments = slices.Grow(buf.moments[:0], b.maxComp)[:b.maxComp]
	for k := range nkeys {
		set := buf.flat[buf.offsets[k]:buf.offsets[k+1]]
		b.addMoments(&acc[k], set, buf.moments)
	}
	b.addDirect(acc, s.period.Quarter, direct)
	return acc
}

// addDirect adds each key's direct measurement for a quarter, or for a
// year: the year release's cell, else the sum of the four quarters'.
func (b *block) addDirect(acc []pointAcc, quarter int, direct []string) {
	quarters := []int{quarter}
	if _, ok := b.direct[0]; quarter == 0 && !ok {
		quarters = []int{1, 2, 3, 4}
	}
	for k := range acc {
		for _, q := range quarters {
			c, ok := b.direct[q][direct[k]]
			if !ok {
				acc[k].rawMissing = true
				break
			}
			acc[k].addRaw(c)
		}
	}
}

// addMoments adds the noise of Σ_{j∈set} x̂_j to a, and whether the
// measurements determine that sum. Unknowns of different components are
// uncorrelated: their moments add component by component, in a fixed
// order so the floating-point sum is reproducible.
func (b *block) addMoments(a *pointAcc, set []int, scratch []float64) {
	byComp := func(x, y int) int {
		if c := b.compOf[x] - b.compOf[y]; c != 0 {
			return c
		}
		return x - y
	}
	if !slices.IsSortedFunc(set, byComp) {
		slices.SortFunc(set, byComp)
	}
	for start := 0; start < len(set); {
		end := start + 1
		for end < len(set) && b.compOf[set[end]] == b.compOf[set[start]] {
			end++
		}
		var n Noise
		if end-start == 1 {
			j := set[start]
			n = b.cellNoise[j]
			a.undetermined = a.undetermined || !b.cellDet[j]
		} else {
			c := b.comps[b.compOf[set[start]]]
			n = c.linearMoments(b.rows, b.pos, set[start:end], scratch)
			a.undetermined = a.undetermined || !c.determined(b.pos, set[start:end])
		}
		a.noise = a.noise.Plus(n)
		start = end
	}
}

func (b *block) releaseIDs(p Period) []string {
	var ids []string
	for _, r := range b.releases {
		if p.Quarter == 0 || r.quarter == 0 || r.quarter == p.Quarter {
			ids = append(ids, r.id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (a *pointAcc) finish(w *halfWidths, partner string, p Period, key, ids []string) SeriesPoint {
	sp := SeriesPoint{Partner: partner, Period: p, Key: key, Estimate: a.est, Determined: !a.undetermined, ReleaseIDs: ids}
	if a.undetermined {
		sp.CILow, sp.CIHigh = math.Inf(-1), math.Inf(1)
	} else {
		sp.CILow, sp.CIHigh = w.ci95(a.mean, a.noise)
	}
	if !a.rawMissing {
		sp.HasRaw, sp.Raw, sp.RawVariance = true, a.raw, a.rawNoise.Variance
		sp.RawCILow, sp.RawCIHigh = w.ci95(float64(a.raw), a.rawNoise)
	}
	sp.TooUncertain = a.undetermined || (sp.CIHigh-sp.CILow)/2 > float64(a.est)
	sp.Small = a.est < 5 || sp.TooUncertain
	return sp
}

// change is a − prev with its interval; false when either is undetermined.
// The two are independent (different years' releases), so their noises
// add, Laplace terms included: a change of two comparable years has twice
// the terms of either, and a wider 95% quantile per σ than max(a, b) would
// give.
func (a *pointAcc) change(w *halfWidths, prev *pointAcc) (Change, bool) {
	if a.undetermined || prev.undetermined {
		return Change{}, false
	}
	lo, hi := w.ci95(a.mean-prev.mean, a.noise.Plus(prev.noise))
	return Change{Value: a.est - prev.est, CILow: lo, CIHigh: hi, Detectable: lo > 0 || hi < 0}, true
}
