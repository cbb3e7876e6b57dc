package aggregate

import (
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
}

// SeriesPoint is one consistent estimate with its raw counterpart. Points
// of one Series answer share their Key and ReleaseIDs slices (a query can
// return tens of thousands of points): treat them as read-only.
type SeriesPoint struct {
	Partner     string // or RegionPartner
	Period      Period
	Key         []string // one per SeriesQuery.By dimension, in By order
	Raw         int64    // sum of the published (noisy) full-table cells
	RawVariance float64
	Estimate    int64 // consistent: integer, ≥ 0, sums agree across margins, years and partners
	// CILow, CIHigh: 95% interval for the true count, centred on the WLS
	// (unrounded) estimate, from its covariance; see ci95. CILow may be
	// negative (it is not clipped, so coverage is as stated).
	CILow      float64
	CIHigh     float64
	Small      bool     // Estimate < 5 or the interval's half-width exceeds it
	ReleaseIDs []string // the releases the point draws on, sorted
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
	partner  string
	year     int
	units    []unit
	leaves   []int     // global leaf ids in this block
	rows     []row     // every measurement
	x        []float64 // WLS estimate per unknown (unit·len(leaves) + local leaf)
	est      []int64   // consistent integer estimate per unknown
	raw      []rawCell // latest published full-table cell per unknown
	yearRaw  []rawCell // per local leaf, from a year release (nil if none)
	comps    []*component
	compOf   []int
	pos      []int
	releases []releaseRef
	maxComp  int
	cellVar  []float64 // Var(x̂_j), precomputed: most points are one cell per component
	cellLap  []float64 // its largest Laplace term
}

// unit is a span of time the block solves for: one published quarter, the
// whole year (only a year release), or the rest of a year whose other
// quarters were published on their own.
type unit struct {
	quarter  int   // 1–4; 0 for the whole year; -1 for the rest
	quarters uint8 // bit q-1 per covered quarter
}

type rawCell struct {
	value    int64
	variance float64
	leaf     int64 // ledger leaf of the release, to keep the latest
	ok       bool
}

type releaseRef struct {
	id      string
	quarter int
}

// NewEstimates checks the measurements and computes consistent estimates
// for every (partner, indicator, year). It refuses the whole set if any
// measurement is malformed, so a query never mixes good and bad input.
func NewEstimates(ms []Measurement) (*Estimates, error) {
	e := &Estimates{indicators: make(map[string]*indicatorEstimates), widths: sharedHalfWidths()}
	type blockKey struct {
		partner, indicator string
		year               int
	}
	groups := make(map[blockKey][]int)
	var order []blockKey
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
		ind := e.indicators[m.Indicator]
		if ind == nil {
			ind = &indicatorEstimates{dims: m.Dimensions, index: make(map[string]int)}
			e.indicators[m.Indicator] = ind
		}
		if !slices.Equal(ind.dims, m.Dimensions) {
			return nil, fmt.Errorf("measurement %d: %s has dimensions %v, earlier ones %v", i, m.Indicator, m.Dimensions, ind.dims)
		}
		if !slices.Contains(m.Key, KeyAll) {
			k := strings.Join(m.Key, "\x00")
			if _, ok := ind.index[k]; !ok {
				ind.index[k] = len(ind.leaves)
				ind.leaves = append(ind.leaves, m.Key)
			}
		}
		bk := blockKey{m.Partner, m.Indicator, m.Period.Year}
		if _, ok := groups[bk]; !ok {
			order = append(order, bk)
		}
		groups[bk] = append(groups[bk], i)
	}
	slices.SortFunc(order, func(a, b blockKey) int {
		if c := strings.Compare(a.partner, b.partner); c != 0 {
			return c
		}
		return a.year - b.year
	})
	for _, bk := range order {
		ind := e.indicators[bk.indicator]
		b, err := newBlock(ind, bk.partner, bk.year, ms, groups[bk])
		if err != nil {
			return nil, fmt.Errorf("%s %s %d: %w", bk.partner, bk.indicator, bk.year, err)
		}
		ind.blocks = append(ind.blocks, b)
	}
	return e, nil
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

// newBlock sets up and solves one block.
func newBlock(ind *indicatorEstimates, partner string, year int, ms []Measurement, idx []int) (*block, error) {
	b := &block{partner: partner, year: year}
	var quarters uint8
	hasYear := false
	local := make(map[int]int)
	for _, i := range idx {
		m := &ms[i]
		if m.Period.Quarter == 0 {
			hasYear = true
		} else {
			quarters |= 1 << (m.Period.Quarter - 1)
		}
		if !slices.Contains(m.Key, KeyAll) {
			g := ind.index[strings.Join(m.Key, "\x00")]
			if _, ok := local[g]; !ok {
				local[g] = len(b.leaves)
				b.leaves = append(b.leaves, g)
			}
		}
		ref := releaseRef{m.ReleaseID, m.Period.Quarter}
		if !slices.Contains(b.releases, ref) {
			b.releases = append(b.releases, ref)
		}
	}
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
	L := len(b.leaves)
	b.raw = make([]rawCell, L*len(b.units))
	if hasYear {
		b.yearRaw = make([]rawCell, L)
	}
	if err := b.addRows(ind, ms, idx, local); err != nil {
		return nil, err
	}
	if err := b.solve(); err != nil {
		return nil, err
	}
	return b, nil
}

// addRows turns each measurement into a row over the block's unknowns and
// keeps the latest raw cross cell of each period.
func (b *block) addRows(ind *indicatorEstimates, ms []Measurement, idx []int, local map[int]int) error {
	L := len(b.leaves)
	for _, i := range idx {
		m := &ms[i]
		r := row{value: float64(m.Value), variance: m.Variance, laplace: m.Mechanism != MechanismGaussian}
		isLeaf := !slices.Contains(m.Key, KeyAll)
		leaf := -1
		if isLeaf {
			leaf = local[ind.index[strings.Join(m.Key, "\x00")]]
		}
		for u, un := range b.units {
			if m.Period.Quarter != 0 && un.quarter != m.Period.Quarter {
				continue
			}
			if isLeaf { // a cross cell covers exactly its own leaf
				r.cols = append(r.cols, u*L+leaf)
				continue
			}
			for l, g := range b.leaves {
				if keyMatches(m.Key, ind.leaves[g]) {
					r.cols = append(r.cols, u*L+l)
				}
			}
		}
		if len(r.cols) == 0 {
			return fmt.Errorf("release %s: %v sums no published cell", m.ReleaseID, m.Key)
		}
		b.rows = append(b.rows, r)
		if isLeaf {
			cell := rawCell{value: m.Value, variance: m.Variance, leaf: m.Leaf, ok: true}
			if m.Period.Quarter == 0 {
				keepLatest(&b.yearRaw[leaf], cell)
			} else {
				keepLatest(&b.raw[slices.IndexFunc(b.units, func(u unit) bool { return u.quarter == m.Period.Quarter })*L+leaf], cell)
			}
		}
	}
	return nil
}

// solve computes the WLS estimates, each cell's variance, and the
// consistent integer leaves of every time unit.
func (b *block) solve() error {
	L := len(b.leaves)
	n := L * len(b.units)
	x, comps, compOf, pos, err := solveWLS(n, b.rows)
	if err != nil {
		return err
	}
	b.x, b.comps, b.compOf, b.pos = x, comps, compOf, pos
	for _, c := range comps {
		b.maxComp = max(b.maxComp, len(c.vars))
	}
	scratch := make([]float64, b.maxComp)
	b.cellVar, b.cellLap = make([]float64, n), make([]float64, n)
	for j := range n {
		b.cellVar[j], b.cellLap[j] = comps[compOf[j]].linearMoments(b.rows, pos, []int{j}, scratch)
	}
	b.est = make([]int64, n)
	for u := range b.units {
		copy(b.est[u*L:(u+1)*L], integerLeaves(x[u*L:(u+1)*L]))
	}
	return nil
}

func keepLatest(dst *rawCell, c rawCell) {
	if !dst.ok || c.leaf > dst.leaf {
		*dst = c
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
// year ≤ To.Year.
func (e *Estimates) Series(q SeriesQuery) ([]SeriesPoint, error) {
	ind, ok := e.indicators[q.Indicator]
	if !ok {
		if q.Indicator == "" {
			return nil, errors.New("series: no indicator")
		}
		return nil, nil // nothing published yet
	}
	proj, keys, err := ind.projection(q.By)
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", q.Indicator, err)
	}
	var buf pointBuf
	if q.RollUpRegion {
		return e.regionSeries(ind, q, proj, keys, &buf), nil
	}
	out := make([]SeriesPoint, 0, len(ind.blocks)*4*len(keys))
	for _, b := range ind.blocks {
		if !q.wantsPartner(b.partner) {
			continue
		}
		for _, sp := range b.spans(q) {
			acc := b.point(sp, proj, len(keys), &buf)
			ids := b.releaseIDs(sp.period)
			for k := range keys {
				out = append(out, acc[k].finish(e.widths, b.partner, sp.period, keys[k], ids))
			}
		}
	}
	return out, nil
}

func (q *SeriesQuery) wantsPartner(p string) bool {
	return len(q.Partners) == 0 || slices.Contains(q.Partners, p)
}

// regionSeries sums the partners' points of each period and key. Partners
// are independent (their noise is), so means and variances add, the
// largest Laplace term is the larger of theirs, and the integer estimates
// add and stay consistent. A period's point sums the partners that
// published it; ReleaseIDs say which.
func (e *Estimates) regionSeries(ind *indicatorEstimates, q SeriesQuery, proj []int, keys [][]string, buf *pointBuf) []SeriesPoint {
	nkeys := len(keys)
	base := make(map[Period]int) // period → offset of its key 0 in sums
	ids := make(map[Period][]string)
	var sums []pointAcc
	for _, b := range ind.blocks {
		if !q.wantsPartner(b.partner) {
			continue
		}
		for _, sp := range b.spans(q) {
			off, ok := base[sp.period]
			if !ok {
				off = len(sums)
				base[sp.period] = off
				sums = append(sums, make([]pointAcc, nkeys)...)
			}
			acc := b.point(sp, proj, nkeys, buf)
			for k := range acc {
				sums[off+k].add(&acc[k])
			}
			ids[sp.period] = append(ids[sp.period], b.releaseIDs(sp.period)...)
		}
	}
	periods := make([]Period, 0, len(base))
	for p := range base {
		periods = append(periods, p)
	}
	slices.SortFunc(periods, comparePeriods)
	out := make([]SeriesPoint, 0, len(periods)*nkeys)
	for _, p := range periods {
		list := ids[p]
		slices.Sort(list)
		list = slices.Compact(list)
		off := base[p]
		for k := range keys {
			out = append(out, sums[off+k].finish(e.widths, RegionPartner, p, keys[k], list))
		}
	}
	return out
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
	at := make([]int, len(by))
	for i, name := range by {
		at[i] = slices.Index(ind.dims, name)
		if at[i] < 0 {
			return nil, nil, fmt.Errorf("dimension %q is not one of %s", name, strings.Join(ind.dims, ", "))
		}
		if slices.Contains(at[:i], at[i]) {
			return nil, nil, fmt.Errorf("dimension %q asked for twice", name)
		}
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

// span is one output period of a block: the units it sums.
type span struct {
	period Period
	units  []int
}

func (b *block) spans(q SeriesQuery) []span {
	lo, hi := math.MinInt, math.MaxInt
	if q.From != (Period{}) {
		lo = q.From.Year*4 + max(q.From.Quarter, 1) - 1
	}
	if q.To != (Period{}) {
		hi = q.To.Year*4 + 3
		if q.To.Quarter > 0 {
			hi = q.To.Year*4 + q.To.Quarter - 1
		}
	}
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
	est         int64
	mean        float64 // the WLS (unrounded) estimate the interval is centred on
	variance    float64
	laplaceMax  float64 // the largest single Laplace term's variance
	raw         int64
	rawVariance float64
}

func (a *pointAcc) add(b *pointAcc) {
	a.est += b.est
	a.mean += b.mean
	a.variance += b.variance
	a.laplaceMax = max(a.laplaceMax, b.laplaceMax)
	a.raw += b.raw
	a.rawVariance += b.rawVariance
}

// point sums a span's unknowns per output key.
// pointBuf is scratch space reused across the points of one query.
type pointBuf struct {
	acc     []pointAcc
	offsets []int
	flat    []int
	moments []float64
}

func (b *block) point(s span, proj []int, nkeys int, buf *pointBuf) []pointAcc {
	L := len(b.leaves)
	buf.acc = slices.Grow(buf.acc[:0], nkeys)[:nkeys]
	clear(buf.acc)
	acc := buf.acc
	// Group the span's unknowns by output key (a counting sort into flat).
	buf.offsets = slices.Grow(buf.offsets[:0], nkeys+1)[:nkeys+1]
	clear(buf.offsets)
	for range s.units {
		for _, g := range b.leaves {
			buf.offsets[proj[g]+1]++
		}
	}
	for k := range nkeys {
		buf.offsets[k+1] += buf.offsets[k]
	}
	n := buf.offsets[nkeys]
	buf.flat = slices.Grow(buf.flat[:0], n)[:n]
	fill := slices.Clone(buf.offsets[:nkeys])
	yearly := len(s.units) > 1 || b.units[s.units[0]].quarter <= 0
	for _, u := range s.units {
		for l, g := range b.leaves {
			j := u*L + l
			k := proj[g]
			a := &acc[k]
			a.est += b.est[j]
			a.mean += b.x[j]
			buf.flat[fill[k]] = j
			fill[k]++
			if !yearly || b.yearRaw == nil {
				a.raw += b.raw[j].value
				a.rawVariance += b.raw[j].variance
			}
		}
	}
	if yearly && b.yearRaw != nil {
		for l, g := range b.leaves {
			acc[proj[g]].raw += b.yearRaw[l].value
			acc[proj[g]].rawVariance += b.yearRaw[l].variance
		}
	}
	buf.moments = slices.Grow(buf.moments[:0], b.maxComp)[:b.maxComp]
	for k := range nkeys {
		set := buf.flat[buf.offsets[k]:buf.offsets[k+1]]
		b.addMoments(&acc[k], set, buf.moments)
	}
	return acc
}

// addMoments adds the variance of Σ_{j∈set} x̂_j to a. Unknowns of
// different components are uncorrelated: their moments add component by
// component, in a fixed order so the floating-point sum is reproducible.
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
		var v, lap float64
		if end-start == 1 {
			v, lap = b.cellVar[set[start]], b.cellLap[set[start]]
		} else {
			v, lap = b.comps[b.compOf[set[start]]].linearMoments(b.rows, b.pos, set[start:end], scratch)
		}
		a.variance += v
		a.laplaceMax = max(a.laplaceMax, lap)
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
	lo, hi := w.ci95(a.mean, a.variance, a.laplaceMax)
	return SeriesPoint{
		Partner: partner, Period: p, Key: key,
		Raw: a.raw, RawVariance: a.rawVariance,
		Estimate: a.est, CILow: lo, CIHigh: hi,
		Small:      a.est < 5 || (hi-lo)/2 > float64(a.est),
		ReleaseIDs: ids,
	}
}
