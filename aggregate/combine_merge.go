package aggregate

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Repeated measurements of one quantity merge into one row.
//
// Releases of the same partner, period and indicator publish the same
// cells again, each with independent noise: k cells y_i of one key are k
// rows with the same columns. In the normal equations they contribute
// Σw_i·aaᵀ to AᵀWA and Σw_i·y_i·a to AᵀWy (w_i = 1/variance_i), which is
// exactly what one row with weight W = Σw_i and value ȳ = Σw_i·y_i / W
// contributes. So x̂, the covariance (AᵀWA)⁻¹ and hence every estimate are
// unchanged. The noise of ȳ is Σ(w_i/W)·e_i: variance 1/W, and its Laplace
// terms have variances w_i/W², so Σv² = Σ_L w_i²/W⁴ and Σv³ = Σ_L w_i³/W⁶
// (sums over the Laplace cells). In linearMoments a row enters with weight
// h = s·W (s the sum of the solution's coefficients over its columns); its
// terms then contribute h⁴·Σv² = s⁴·Σ_L w_i² and h⁶·Σv³ = s⁶·Σ_L w_i³,
// which is what the k rows contribute one by one (h_i = s·w_i, term_i =
// s²w_i). Intervals are therefore unchanged too: a merged row carries its
// Laplace moments as the ratios lap2 = Σ_L w_i²/W² and lap3 = Σ_L w_i³/W³
// (1 and 1 for one Laplace cell, 0 for Gaussian ones), which stay in
// [0, 1] whatever the noise scale. TestMergedEqualsUnmerged checks it on
// random ledgers with repeats.
//
// The raw (direct) measurement is not merged: it stays the latest
// published cell, as without merging. The sums are additive, so a
// MeasurementSet grows release by release and memory scales with distinct
// cells × periods, not with the number of releases.

// MeasurementSet collects published cells for the consistent estimates,
// one at a time, merging repeated measurements of the same cell (same
// partner, period, indicator and key). It is the incremental form of
// NewEstimates: Add as releases arrive, Estimates when an answer is
// needed; blocks that received nothing since the previous Estimates are
// not solved again. A MeasurementSet is not safe for concurrent use; the
// Estimates it returns are independent of later Adds.
type MeasurementSet struct {
	unmerged   bool  // one row per measurement (the reference path, for tests)
	err        error // the first refused measurement: Estimates refuses the whole set
	n          int
	indicators map[string]*setIndicator
	blocks     map[blockKey]*setBlock
	strs       map[string]string
	// The previous measurement's block and release: a release's cells
	// arrive together, so most lookups are these.
	lastInd     *setIndicator
	lastBlock   *setBlock
	lastRelease string
	buf         []byte
}

type blockKey struct {
	partner, indicator string
	year               int
}

// setIndicator is what a MeasurementSet knows of one indicator.
type setIndicator struct {
	name   string
	dims   []string
	leaves [][]string     // every full key seen, in first-seen order
	index  map[string]int // joined full key → leaf id
}

// setBlock holds one block's merged cells and its solved form, kept
// until a cell of the block changes.
type setBlock struct {
	key      blockKey
	cells    []*mergedCell
	byKey    [5]map[string]*mergedCell // per quarter (0: the year), joined key → cell
	releases []releaseRef              // in arrival order; repeats collapse when solved
	solved   *block
}

// mergedCell is one (period, key) of a block: the inverse-variance
// weighted mean of its measurements and their noise moments, and the
// latest published cell as the direct measurement.
type mergedCell struct {
	quarter int
	key     []string
	joined  string
	margin  bool // the key sums out a dimension
	leaf    int  // global leaf id of a full key
	n       int
	mean    float64 // Σw·y / Σw, updated in place
	first   float64 // the variance of the first measurement (used alone when n = 1)
	sumW    float64
	lapW2   float64 // Σ w² over the Laplace measurements
	lapW3   float64 // Σ w³
	raw     rawCell
	release string // the first measurement's release, for errors
	last    string // the latest measurement's release, to refuse a cell published twice in a row
}

// NewMeasurementSet returns an empty set.
func NewMeasurementSet() *MeasurementSet {
	return &MeasurementSet{indicators: map[string]*setIndicator{}, blocks: map[blockKey]*setBlock{}, strs: map[string]string{}}
}

// Len is the number of measurements added.
func (s *MeasurementSet) Len() int { return s.n }

// intern returns the set's copy of str: a ledger of 100,000 releases
// repeats a few hundred keys and partner codes, and each release id in
// every block it touches.
func (s *MeasurementSet) intern(str string) string {
	if v, ok := s.strs[str]; ok {
		return v
	}
	v := strings.Clone(str)
	s.strs[v] = v
	return v
}

// Add checks one measurement and merges it in. A malformed measurement,
// or a release publishing the same cell twice, is refused, and then so is
// the whole set (Estimates returns the error), as NewEstimates refuses
// its whole input.
func (s *MeasurementSet) Add(m *Measurement) error {
	if s.err != nil {
		return s.err
	}
	if err := s.add(m); err != nil {
		s.err = fmt.Errorf("measurement %d (%s %s %s %v): %w", s.n, m.Partner, m.Period, m.Indicator, m.Key, err)
		return s.err
	}
	s.n++
	return nil
}

func (s *MeasurementSet) add(m *Measurement) error {
	if err := checkMeasurement(m); err != nil {
		return err
	}
	ind := s.lastInd
	if ind == nil || ind.name != m.Indicator {
		ind = s.indicators[m.Indicator]
	}
	if ind == nil {
		dims := make([]string, len(m.Dimensions))
		for i, d := range m.Dimensions {
			dims[i] = s.intern(d)
		}
		ind = &setIndicator{name: s.intern(m.Indicator), dims: dims, index: map[string]int{}}
		s.indicators[ind.name] = ind
	}
	s.lastInd = ind
	if !slices.Equal(ind.dims, m.Dimensions) {
		return fmt.Errorf("%s has dimensions %v, earlier ones %v", m.Indicator, m.Dimensions, ind.dims)
	}
	b := s.lastBlock
	if b == nil || b.key.partner != m.Partner || b.key.indicator != m.Indicator || b.key.year != m.Period.Year {
		bk := blockKey{m.Partner, m.Indicator, m.Period.Year}
		if b = s.blocks[bk]; b == nil {
			bk.partner, bk.indicator = s.intern(bk.partner), s.intern(bk.indicator)
			b = &setBlock{key: bk}
			s.blocks[bk] = b
		}
		s.lastBlock = b
	}
	s.buf = s.buf[:0]
	for i, k := range m.Key {
		if i > 0 {
			s.buf = append(s.buf, 0)
		}
		s.buf = append(s.buf, k...)
	}
	q := m.Period.Quarter
	if b.byKey[q] == nil {
		b.byKey[q] = map[string]*mergedCell{}
	}
	c := b.byKey[q][string(s.buf)]
	if c != nil && c.last == m.ReleaseID {
		return fmt.Errorf("release %s publishes %s %v twice", m.ReleaseID, m.Indicator, m.Key)
	}
	if m.ReleaseID != s.lastRelease {
		s.lastRelease = s.intern(m.ReleaseID)
	}
	release := s.lastRelease
	if c == nil || s.unmerged {
		c = s.newCell(ind, m, string(s.buf), release)
		b.cells = append(b.cells, c)
		if b.byKey[q][c.joined] == nil {
			b.byKey[q][c.joined] = c
		}
	}
	c.merge(m, release)
	if n := len(b.releases); n == 0 || b.releases[n-1] != (releaseRef{release, q}) {
		b.releases = append(b.releases, releaseRef{release, q})
	}
	b.solved = nil
	return nil
}

func (s *MeasurementSet) newCell(ind *setIndicator, m *Measurement, joined, release string) *mergedCell {
	key := make([]string, len(m.Key))
	for i, k := range m.Key {
		key[i] = s.intern(k)
	}
	c := &mergedCell{quarter: m.Period.Quarter, key: key, joined: s.intern(joined), margin: slices.Contains(key, KeyAll), release: release}
	if !c.margin {
		id, ok := ind.index[c.joined]
		if !ok {
			id = len(ind.leaves)
			ind.index[c.joined] = id
			ind.leaves = append(ind.leaves, key)
		}
		c.leaf = id
	}
	return c
}

// merge adds one measurement of the cell.
func (c *mergedCell) merge(m *Measurement, release string) {
	w := 1 / m.Variance
	laplace := m.Mechanism != MechanismGaussian
	c.n++
	c.sumW += w
	if c.n == 1 {
		c.mean, c.first = float64(m.Value), m.Variance
	} else {
		c.mean += w / c.sumW * (float64(m.Value) - c.mean)
	}
	if laplace {
		c.lapW2 += w * w
		c.lapW3 += w * w * w
	}
	if c.n == 1 || m.Leaf > c.raw.leaf {
		c.raw = rawCell{value: m.Value, variance: m.Variance, laplace: laplace, leaf: m.Leaf}
	}
	c.last = release
}

// row is the cell as one measurement over cols.
func (c *mergedCell) row(cols []int) row {
	if c.n == 1 {
		r := row{cols: cols, value: c.mean, variance: c.first}
		if c.lapW2 > 0 {
			r.lap2, r.lap3 = 1, 1
		}
		return r
	}
	return row{cols: cols, value: c.mean, variance: 1 / c.sumW,
		lap2: c.lapW2 / (c.sumW * c.sumW), lap3: c.lapW3 / (c.sumW * c.sumW * c.sumW)}
}

// Estimates solves every block that changed since the last call and
// returns the consistent estimates of everything added so far.
func (s *MeasurementSet) Estimates() (*Estimates, error) {
	if s.err != nil {
		return nil, s.err
	}
	e := &Estimates{indicators: make(map[string]*indicatorEstimates, len(s.indicators)), widths: sharedHalfWidths()}
	for name, si := range s.indicators {
		e.indicators[name] = &indicatorEstimates{dims: si.dims, leaves: slices.Clone(si.leaves)}
	}
	order := make([]*setBlock, 0, len(s.blocks))
	var stale []*setBlock
	for _, b := range s.blocks {
		order = append(order, b)
		if b.solved == nil {
			stale = append(stale, b)
		}
	}
	slices.SortFunc(order, func(a, b *setBlock) int {
		return cmp.Or(strings.Compare(a.key.partner, b.key.partner), a.key.year-b.key.year, strings.Compare(a.key.indicator, b.key.indicator))
	})
	if err := s.solve(e, stale); err != nil {
		return nil, err
	}
	for _, b := range order {
		ind := e.indicators[b.key.indicator]
		ind.blocks = append(ind.blocks, b.solved)
	}
	return e, nil
}

// solve solves the stale blocks on every core: blocks share nothing.
// The first failing block in partner, year order names the error.
func (s *MeasurementSet) solve(e *Estimates, stale []*setBlock) error {
	errs := make([]error, len(stale))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(stale)) {
		wg.Go(func() {
			for i := range next {
				b := stale[i]
				solved, err := newBlock(e.indicators[b.key.indicator], b.key.partner, b.key.year, b.cells, b.releases)
				if err != nil {
					errs[i] = fmt.Errorf("%s %s %d: %w", b.key.partner, b.key.indicator, b.key.year, err)
					continue
				}
				b.solved = solved
			}
		})
	}
	for i := range stale {
		next <- i
	}
	close(next)
	wg.Wait()
	first := -1
	for i, err := range errs {
		if err != nil && (first < 0 || compareBlockKeys(stale[i].key, stale[first].key) < 0) {
			first = i
		}
	}
	if first >= 0 {
		return errs[first]
	}
	return nil
}

func compareBlockKeys(a, b blockKey) int {
	return cmp.Or(strings.Compare(a.partner, b.partner), a.year-b.year, strings.Compare(a.indicator, b.indicator))
}
