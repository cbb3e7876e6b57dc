package api

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// viewCache holds the derived view of the ledger (the series estimates,
// rendered series answers) for one applied index. The ledger only grows,
// and every node at the same index holds the same releases, so the
// applied index is a complete cache key.
//
// The view is built from the ledger a page at a time (Backend.ReleasePage:
// stored bytes, each release decoded, merged into the accumulator and
// dropped), so memory scales with the distinct cells × periods the
// ledger publishes, not with its releases (aggregate.MeasurementSet). The
// accumulator is kept: when the index moves, only the releases appended
// since are read, and only the blocks they touch are solved again.
//
// One build runs at a time. Requests that arrive during it wait for it
// (or for their own context) and get its result; a request never sees a
// half-built view. The build does not stop when the request that started
// it goes away: the next request would only have to redo it.
type viewCache struct {
	mu      sync.Mutex
	base    context.Context // builds run under it: the server's (see warm), else none
	view    *ledgerView     // the latest complete view
	pending *viewBuild      // the build in progress, nil when none
	acc     viewAccumulator
}

// viewBuild is one build's outcome, readable once done is closed.
type viewBuild struct {
	index uint64 // the applied index when it began; the view is of it
	done  chan struct{}
	view  *ledgerView
	err   error
}

func newViewCache() *viewCache { return &viewCache{} }

// maxCachedAnswers and maxCachedBytes bound the rendered answers kept per
// index; a query string is attacker-chosen, and an answer on a ledger of
// years lists thousands of release ids per point, so neither the map nor
// its bytes may grow without bound.
const (
	maxCachedAnswers = 256
	maxCachedBytes   = 64 << 20
)

// ledgerView is everything derived from the releases at one index. It is
// read-only once built, except for the answer cache.
type ledgerView struct {
	index     uint64
	catalog   *aggregate.Catalog
	quantiles map[string][]quantileObs // quantile indicator → its releases, ledger order
	est       *aggregate.Estimates
	estErr    error

	mu      sync.Mutex
	answers map[string][]byte
	bytes   int // of answers
}

// estimates returns the consistent estimates of the view's releases.
func (v *ledgerView) estimates() (*aggregate.Estimates, error) { return v.est, v.estErr }

// quantileObs is one release of a quantile indicator: its count cell and
// its quantiles, served as published.
type quantileObs struct {
	partner   string
	period    aggregate.Period
	release   string
	hasCell   bool
	cell      privacy.Cell
	quantiles []privacy.Quantile
}

// get returns the view for the backend's current applied index, building
// it (or waiting for the build in progress) if the index moved.
func (c *viewCache) get(ctx context.Context, b Backend) (*ledgerView, error) {
	for {
		c.mu.Lock()
		idx := b.AppliedIndex()
		if v := c.view; v != nil && v.index == idx {
			c.mu.Unlock()
			return v, nil
		}
		bl := c.pending
		if bl == nil {
			base := c.base
			if base == nil {
				base = context.WithoutCancel(ctx)
			}
			bl = c.start(base, b)
		}
		c.mu.Unlock()
		select {
		case <-bl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// A build that began before this request's index (the warm-up, say,
		// before a release this client just published) is not its answer:
		// wait for the next one, which begins at or after that index.
		if bl.err != nil || bl.index >= idx {
			return bl.view, bl.err
		}
	}
}

// start begins a build at the current index; c.mu is held.
func (c *viewCache) start(ctx context.Context, b Backend) *viewBuild {
	bl := &viewBuild{done: make(chan struct{}), index: b.AppliedIndex()}
	c.pending = bl
	go c.build(ctx, b, bl)
	return bl
}

// warm starts building the view as the server starts, so that the first
// dashboard need not wait for a pass over the ledger (tens of seconds at
// 100,000 releases), and makes ctx the context of every build: they stop
// when the server does.
func (c *viewCache) warm(ctx context.Context, b Backend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base = ctx
	if c.pending == nil && c.view == nil {
		c.start(ctx, b)
	}
}

// build extends the accumulator to the ledger's end and publishes the
// view. Only one build runs at a time (c.pending), so it alone touches
// c.acc.
func (c *viewCache) build(ctx context.Context, b Backend, bl *viewBuild) {
	v, err := c.acc.extend(ctx, b, bl.index)
	if err != nil {
		err = fmt.Errorf("series view: %w", err)
	}
	bl.view, bl.err = v, err
	c.mu.Lock()
	if err == nil {
		c.view = v
	}
	c.pending = nil
	c.mu.Unlock()
	close(bl.done)
}

// viewAccumulator is the ledger's releases merged so far, from leaf 0 to
// next−1, under one catalog.
type viewAccumulator struct {
	catalog   *aggregate.Catalog
	hash      string
	next      int64 // the first leaf not yet added
	set       *aggregate.MeasurementSet
	quantiles map[string][]quantileObs
	partners  map[string]string // interned partner codes of quantileObs
	est       *aggregate.Estimates
	estErr    error
	stale     bool // releases were added since est
	decoders  []*releaseDecoder
}

// reset starts over under cat (a new catalog changes which releases
// combine: see add).
func (a *viewAccumulator) reset(cat *aggregate.Catalog, hash string) {
	*a = viewAccumulator{catalog: cat, hash: hash, set: aggregate.NewMeasurementSet(),
		quantiles: map[string][]quantileObs{}, partners: map[string]string{}, stale: true, decoders: a.decoders}
}

// extend reads the releases appended since the last call, a page at a
// time, and returns the view at the index read before them (the view may
// hold a few releases more; the next index rebuilds and adds nothing).
func (a *viewAccumulator) extend(ctx context.Context, b Backend, idx uint64) (*ledgerView, error) {
	cat, hash, err := b.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	if a.set == nil || hash != a.hash {
		a.reset(cat, hash)
	}
	for after := a.next - 1; ; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		page, err := b.ReleasePage(ctx, false, PageQuery{After: after, Limit: PageMaxLimit})
		if err != nil {
			return nil, err
		}
		if err := a.addPage(page.Releases); err != nil {
			return nil, err
		}
		if page.Next < 0 {
			break
		}
		after = page.Next
	}
	return a.snapshot(idx), nil
}

// addPage decodes a page's releases on every core and adds them in leaf
// order (the merge's floating-point sums, and so the answers, depend on
// the order).
func (a *viewAccumulator) addPage(rels []RawRelease) error {
	decoded := make([]*privacy.Signed, len(rels))
	errs := make([]error, len(rels))
	var wg sync.WaitGroup
	for len(a.decoders) < runtime.GOMAXPROCS(0) {
		d := newReleaseDecoder()
		d.skipIntervals = a.countsOnly
		a.decoders = append(a.decoders, d)
	}
	workers := len(a.decoders)
	for w, d := range a.decoders {
		wg.Go(func() {
			for i := w; i < len(rels); i += workers {
				decoded[i], errs[i] = d.decodeViewRelease(rels[i].Signed)
			}
		})
	}
	wg.Wait()
	for i := range rels {
		if errs[i] != nil {
			return fmt.Errorf("ledger leaf %d: %w", rels[i].Leaf, errs[i])
		}
		if rels[i].Leaf < a.next {
			return fmt.Errorf("ledger leaf %d listed after leaf %d", rels[i].Leaf, a.next-1)
		}
		a.add(rels[i].Leaf, decoded[i])
		decoded[i] = nil // let the page's releases go as they are merged
		a.next = rels[i].Leaf + 1
	}
	return nil
}

// add merges one release's count cells and keeps its quantiles. A
// malformed measurement makes the set refuse itself, which estimates()
// reports, as NewEstimates would.
//
// Releases made under an earlier catalog version combine with the current
// one's when the indicator keeps its dimensions (a key the other version
// lacks is a cell that version's quarters do not have; see
// aggregate.newBlock). An indicator whose dimensions changed, or that the
// current catalog no longer has, cannot be placed in the current tables:
// its releases stay in /v1/releases and the export but are not combined.
// Quantile indicators' count cell is combined (it is a count with no
// dimensions); their quantiles are served as published.
func (a *viewAccumulator) add(leaf int64, s *privacy.Signed) {
	a.stale = true
	if a.catalog == nil {
		return
	}
	rel := &s.Release
	for j := range rel.Indicators {
		ir := &rel.Indicators[j]
		ind, ok := a.catalog.Indicator(ir.Name)
		if !ok {
			continue
		}
		if ind.Kind == aggregate.KindQuantiles {
			a.addQuantiles(s, ir)
		}
		if !slices.Equal(ir.Dimensions, dimNames(ind)) {
			continue
		}
		for _, c := range ir.Cells {
			_ = a.set.Add(&aggregate.Measurement{
				Partner: rel.Partner, Period: rel.Period, Indicator: ir.Name, Dimensions: ir.Dimensions,
				Key: c.Key, Value: c.Value, Variance: cellVariance(ir.Mechanism, c.Scale),
				Mechanism: ir.Mechanism, ReleaseID: s.ID, Leaf: leaf,
			})
		}
	}
}

func (a *viewAccumulator) addQuantiles(s *privacy.Signed, ir *privacy.IndicatorRelease) {
	p, ok := a.partners[s.Release.Partner]
	if !ok {
		p = s.Release.Partner
		a.partners[p] = p
	}
	o := quantileObs{partner: p, period: s.Release.Period, release: s.ID, quantiles: slices.Clone(ir.Quantiles)}
	if len(ir.Cells) > 0 {
		o.hasCell, o.cell = true, ir.Cells[0]
		o.cell.Key = nil
	}
	a.quantiles[ir.Name] = append(a.quantiles[ir.Name], o)
}

// countsOnly reports whether the view uses nothing of an indicator's
// cells but their values and scales: every count indicator (the combiner
// computes its own intervals), not the quantile ones (served as
// published).
func (a *viewAccumulator) countsOnly(indicator string) bool {
	if a.catalog == nil {
		return false
	}
	ind, ok := a.catalog.Indicator(indicator)
	return ok && ind.Kind != aggregate.KindQuantiles
}

// snapshot solves what changed and returns a view that later adds do not
// touch: the estimates are the set's answer at this point, and each
// quantile list is capped at its current length.
func (a *viewAccumulator) snapshot(idx uint64) *ledgerView {
	if a.stale {
		a.est, a.estErr = a.set.Estimates()
		if a.estErr != nil {
			a.estErr = fmt.Errorf("series: %w", a.estErr)
		}
		a.stale = false
	}
	q := maps.Clone(a.quantiles)
	for k, obs := range q {
		q[k] = obs[:len(obs):len(obs)]
	}
	return &ledgerView{index: idx, catalog: a.catalog, quantiles: q, est: a.est, estErr: a.estErr, answers: map[string][]byte{}}
}

// buildView is the view of rels under cat at idx, built as the cache
// builds it (for tests that hold their releases in memory).
func buildView(idx uint64, cat *aggregate.Catalog, rels []ReleaseEntry) *ledgerView {
	var a viewAccumulator
	a.reset(cat, "")
	for i := range rels {
		a.add(rels[i].Leaf, &rels[i].Signed)
	}
	return a.snapshot(idx)
}

// cellVariance is the variance of a cell's noise: 2b² for Laplace, σ² for
// Gaussian.
func cellVariance(mechanism string, scale float64) float64 {
	if mechanism == privacy.Gaussian {
		return scale * scale
	}
	return 2 * scale * scale
}

// z95 is the standard normal 97.5% quantile: combined intervals use the
// normal approximation of a sum of independent noises.
const z95 = 1.959963984540054
