package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// viewCache holds the derived views of the ledger (the series index,
// rendered series answers) for one applied index. The ledger
// only grows, and every node at the same index holds the same releases, so
// the applied index is a complete cache key.
type viewCache struct {
	mu   sync.Mutex
	view *ledgerView
}

func newViewCache() *viewCache { return &viewCache{} }

// maxCachedAnswers bounds the rendered answers kept per index; a query
// string is attacker-chosen, so the map must not grow without bound.
const maxCachedAnswers = 256

// ledgerView is everything derived from the releases at one index.
type ledgerView struct {
	index    uint64
	catalog  *aggregate.Catalog
	partners []string                 // partners with releases, sorted
	obs      map[string][]observation // indicator → releases of it, ledger order

	mu      sync.Mutex
	answers map[string][]byte
	est     *aggregate.Estimates
	estErr  error
}

// estimates solves the consistency post-processing once per index.
func (v *ledgerView) estimates() (*aggregate.Estimates, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.est == nil && v.estErr == nil {
		v.est, v.estErr = aggregate.NewEstimates(v.measurements())
		if v.estErr != nil {
			v.estErr = fmt.Errorf("series: %w", v.estErr)
		}
	}
	return v.est, v.estErr
}

// measurements converts the published count cells for aggregate's
// combiner. Quantile indicators' count cell is included (it is a count
// with no dimensions); their quantiles are served as published.
//
// Releases made under an earlier catalog version combine with the current
// one's when the indicator keeps its dimensions (a key the other version
// lacks is a cell that version's quarters do not have; see
// aggregate.newBlock). An indicator whose dimensions changed, or that the
// current catalog no longer has, cannot be placed in the current tables:
// its releases stay in /v1/releases and the export but are not combined.
func (v *ledgerView) measurements() []aggregate.Measurement {
	var ms []aggregate.Measurement
	for _, name := range slices.Sorted(maps.Keys(v.obs)) {
		if v.catalog == nil {
			break
		}
		ind, ok := v.catalog.Indicator(name)
		if !ok {
			continue
		}
		dims := dimNames(ind)
		for _, o := range v.obs[name] {
			if !slices.Equal(o.ir.Dimensions, dims) {
				continue
			}
			for _, c := range o.ir.Cells {
				ms = append(ms, aggregate.Measurement{
					Partner: o.partner, Period: o.period, Indicator: o.ir.Name, Dimensions: o.ir.Dimensions,
					Key: c.Key, Value: c.Value, Variance: cellVariance(o.ir.Mechanism, c.Scale),
					Mechanism: o.ir.Mechanism, ReleaseID: o.release, Leaf: o.leaf,
				})
			}
		}
	}
	return ms
}

// observation is one partner's release of one indicator for one period.
type observation struct {
	partner string
	period  aggregate.Period
	release string
	leaf    int64
	ir      *privacy.IndicatorRelease
}

// get returns the view for the backend's current applied index, building
// it if the index moved.
func (c *viewCache) get(ctx context.Context, b Backend) (*ledgerView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil && c.view.index == b.AppliedIndex() {
		return c.view, nil
	}
	cat, _, err := b.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("series view: %w", err)
	}
	rels, idx, err := b.Releases(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("series view: %w", err)
	}
	c.view = buildView(idx, cat, rels)
	return c.view, nil
}

func buildView(idx uint64, cat *aggregate.Catalog, rels []ReleaseEntry) *ledgerView {
	v := &ledgerView{index: idx, catalog: cat, obs: map[string][]observation{}, answers: map[string][]byte{}}
	for i := range rels {
		e := &rels[i]
		rel := &e.Signed.Release
		if !slices.Contains(v.partners, rel.Partner) {
			v.partners = append(v.partners, rel.Partner)
		}
		for j := range rel.Indicators {
			ir := &rel.Indicators[j]
			o := observation{partner: rel.Partner, period: rel.Period, release: e.Signed.ID, leaf: e.Leaf, ir: ir}
			v.obs[ir.Name] = append(v.obs[ir.Name], o)
		}
	}
	slices.Sort(v.partners)
	return v
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
