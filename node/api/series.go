package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"roundtable/aggregate"
)

// SeriesResponse is GET /v1/series.
type SeriesResponse struct {
	AppliedIndex uint64            `json:"applied_index"`
	Series       []IndicatorSeries `json:"series"`
}

// IndicatorSeries is one indicator's points.
type IndicatorSeries struct {
	Indicator string        `json:"indicator"`
	Title     string        `json:"title"`
	Kind      string        `json:"kind"`
	By        []string      `json:"by"`
	Rollup    string        `json:"rollup"`
	Pool      int           `json:"pool,omitempty"` // years pooled per point (blocks counted back from the latest year)
	Points    []SeriesPoint `json:"points"`
}

// SeriesPoint is one estimate (aggregate.SeriesPoint in JSON).
type SeriesPoint struct {
	Partner string   `json:"partner"` // partner code, or "region"
	Period  string   `json:"period"`  // 2024-Q1, 2024 for a year, 2022-2024 for pooled years
	Key     []string `json:"key"`     // one key per By dimension
	// Raw is the direct measurement of this quantity: the published cell
	// that measures it (the total cell for a total, the margin cell for a
	// breakdown published as a margin, the cross-table cell for the full
	// breakdown), summed over quarters, partners or pooled years for a
	// roll-up; with that measurement's own 95% interval. null when no
	// release measures the quantity directly (never a sum of finer cells).
	Raw *Estimate `json:"raw"`
	// Estimate is the consistent post-processed value (weighted least
	// squares over margins, quarters and partners; integer, ≥ 0) with its
	// 95% interval; null when the published measurements do not determine
	// the quantity (Determined false).
	Estimate   *Estimate `json:"estimate"`
	Determined bool      `json:"determined"`
	// TooUncertain: the interval's half-width is larger than the estimate
	// (or the quantity is undetermined): too uncertain to read as a number
	// or a trend point.
	TooUncertain bool    `json:"too_uncertain"`
	Small        bool    `json:"small"` // the estimate is below 5, or too uncertain
	Change       *Change `json:"change,omitempty"`
	// ReleaseIDs are the releases the point draws on, sorted; null when
	// the query says ids=false. ReleaseCount is how many there are, always.
	ReleaseIDs   []string        `json:"release_ids"`
	ReleaseCount int             `json:"release_count"`
	Quantiles    []QuantilePoint `json:"quantiles,omitempty"`
}

// Estimate is a value with its 95% interval.
type Estimate struct {
	Value  float64 `json:"value"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
}

// Change is a point's difference from the same quantity one period
// earlier (a year earlier for quarters and years, the previous block for
// pooled years), with its 95% interval and how to read it.
type Change struct {
	From       string  `json:"from"`
	Value      float64 `json:"value"`
	CILow      float64 `json:"ci_low"`
	CIHigh     float64 `json:"ci_high"`
	Detectable bool    `json:"detectable"` // the interval excludes 0
	Reading    string  `json:"reading"`    // ReadingNoChange, ReadingIncrease or ReadingDecrease
}

// How a change reads.
const (
	ReadingNoChange = "not distinguishable from no change"
	ReadingIncrease = "increase"
	ReadingDecrease = "decrease"
)

// QuantilePoint is a published quantile (e.g. the median age).
type QuantilePoint struct {
	Rank   float64 `json:"rank"`
	Value  float64 `json:"value"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
}

// RegionPartner is the partner label of region roll-up points.
const RegionPartner = "region"

// seriesQuery is a parsed, validated GET /v1/series.
type seriesQuery struct {
	indicators []*aggregate.Indicator
	by         []string
	partners   []string
	from, to   aggregate.Period
	year       bool // roll quarters up to years
	region     bool // roll partners up to the region
	pool       int  // years pooled per point (implies year); 0 or 1: none
	// noIDs leaves release_ids out of the points (ids=false): a point of a
	// ledger with years of releases draws on thousands of them, and a
	// chart needs only their count.
	noIDs bool
}

func (s *Server) handleSeries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowParams(q, "indicator", "by", "partner", "from", "to", "rollup", "pool", "ids"); err != nil {
		return err
	}
	v, err := s.views.get(r.Context(), s.cfg.Backend)
	if err != nil {
		return err
	}
	// The canonical query string (sorted by key) names the answer.
	key := q.Encode()
	if b, ok := v.answer(key); ok {
		writeRaw(w, b)
		return nil
	}
	partners, err := s.cfg.Backend.Partners(r.Context())
	if err != nil {
		return err
	}
	sq, err := parseSeriesQuery(v.catalog, partners, q.Get)
	if err != nil {
		return err
	}
	est, err := v.estimates()
	if err != nil {
		return err
	}
	// Indicators are independent and Estimates is safe for concurrent use,
	// so a whole-catalog query uses every core.
	resp := SeriesResponse{AppliedIndex: v.index, Series: make([]IndicatorSeries, len(sq.indicators))}
	errs := make([]error, len(sq.indicators))
	var wg sync.WaitGroup
	for i, ind := range sq.indicators {
		wg.Go(func() { resp.Series[i], errs[i] = v.series(est, ind, sq) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	v.remember(key, b)
	writeRaw(w, b)
	return nil
}

func writeRaw(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func (v *ledgerView) answer(key string) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, ok := v.answers[key]
	return b, ok
}

func (v *ledgerView) remember(key string, b []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(b) > maxCachedBytes/4 {
		return // rendering it again costs less than holding it
	}
	if len(v.answers) >= maxCachedAnswers || v.bytes+len(b) > maxCachedBytes {
		clear(v.answers) // crude, but bounded; the next index starts afresh anyway
		v.bytes = 0
	}
	v.answers[key] = b
	v.bytes += len(b)
}

func parseSeriesQuery(cat *aggregate.Catalog, partners []string, get func(string) string) (seriesQuery, error) {
	var sq seriesQuery
	if cat == nil {
		return sq, &httpError{Status: http.StatusServiceUnavailable, Msg: "not in cluster", Detail: "no catalog in the ledger yet"}
	}
	names := make([]string, len(cat.Indicators))
	for i, ind := range cat.Indicators {
		names[i] = ind.Name
	}
	if p := get("indicator"); p != "" {
		for _, n := range strings.Split(p, ",") {
			ind, ok := cat.Indicator(n)
			if !ok {
				return sq, errParam("indicator", "unknown indicator "+n+"; allowed: "+strings.Join(names, ", "))
			}
			sq.indicators = append(sq.indicators, ind)
		}
	} else {
		for i := range cat.Indicators {
			sq.indicators = append(sq.indicators, &cat.Indicators[i])
		}
	}
	if p := get("by"); p != "" {
		sq.by = strings.Split(p, ",")
		if len(sq.by) > 8 {
			return sq, errParam("by", "at most 8 dimensions")
		}
		for _, ind := range sq.indicators {
			for i, d := range sq.by {
				if _, ok := ind.Dimension(d); !ok {
					return sq, errParam("by", "indicator "+ind.Name+" has no dimension "+d+"; allowed: "+strings.Join(dimNames(ind), ", "))
				}
				if slices.Contains(sq.by[:i], d) {
					return sq, errParam("by", "dimension "+d+" is named twice")
				}
			}
		}
	}
	sq.partners = partners
	if p := get("partner"); p != "" {
		sq.partners = strings.Split(p, ",")
		for _, c := range sq.partners {
			if !slices.Contains(partners, c) {
				return sq, errParam("partner", "unknown partner "+c+"; allowed: "+strings.Join(partners, ", "))
			}
		}
	}
	var err error
	if sq.from, err = periodParam(get("from"), "from", aggregate.Period{Year: 1900, Quarter: 1}, false); err != nil {
		return sq, err
	}
	if sq.to, err = periodParam(get("to"), "to", aggregate.Period{Year: 9999, Quarter: 4}, true); err != nil {
		return sq, err
	}
	if periodLess(sq.to, sq.from) {
		return sq, errParam("to", "to ("+sq.to.String()+") is before from ("+sq.from.String()+")")
	}
	switch get("rollup") {
	case "":
	case "year":
		sq.year = true
	case "region":
		sq.region = true
	case "year,region", "region,year":
		sq.year, sq.region = true, true
	default:
		return sq, errParam("rollup", "allowed: year, region, year,region")
	}
	if p := get("pool"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > aggregate.MaxPoolYears {
			return sq, errParam("pool", fmt.Sprintf("a whole number of years from 1 to %d", aggregate.MaxPoolYears))
		}
		sq.pool = n
		sq.year = sq.year || n > 1 // pooling sums whole years
	}
	switch get("ids") {
	case "", "true":
	case "false":
		sq.noIDs = true
	default:
		return sq, errParam("ids", "allowed: true (the default: each point lists its release ids), false (only release_count)")
	}
	return sq, nil
}

// periodParam reads a quarter or a year; a year means its first quarter
// for from and its last for to.
func periodParam(s, name string, def aggregate.Period, end bool) (aggregate.Period, error) {
	if s == "" {
		return def, nil
	}
	p, err := aggregate.ParsePeriod(s)
	if err != nil {
		return p, errParam(name, "want a quarter like 2019-Q1 or a year like 2019")
	}
	if p.IsYear() {
		p.Quarter = 1
		if end {
			p.Quarter = 4
		}
	}
	return p, nil
}

func periodLess(a, b aggregate.Period) bool {
	return a.Year < b.Year || a.Year == b.Year && a.Quarter < b.Quarter
}

// inRange reports whether every quarter of p lies in [from, to].
func inRange(p aggregate.Period, from, to aggregate.Period) bool {
	qs := p.Quarters()
	return !periodLess(qs[0], from) && !periodLess(to, qs[len(qs)-1])
}

func dimNames(ind *aggregate.Indicator) []string {
	out := make([]string, len(ind.Dimensions))
	for i, d := range ind.Dimensions {
		out[i] = d.Name
	}
	return out
}

func (v *ledgerView) quantilePoints(ind *aggregate.Indicator, sq seriesQuery) []SeriesPoint {
	out := []SeriesPoint{}
	for _, o := range v.quantiles[ind.Name] {
		if !slices.Contains(sq.partners, o.partner) || !inRange(o.period, sq.from, sq.to) {
			continue
		}
		sp := SeriesPoint{Partner: o.partner, Period: o.period.String(), Key: []string{}, ReleaseIDs: []string{o.release}, ReleaseCount: 1, Determined: true}
		if sq.noIDs {
			sp.ReleaseIDs = nil
		}
		if o.hasCell {
			c := o.cell
			sp.Raw = &Estimate{Value: float64(c.Value), CILow: c.CILow, CIHigh: c.CIHigh}
			// Not clipped, like every interval here (see aggregate's ci95).
			sp.Estimate = &Estimate{Value: math.Max(0, float64(c.Value)), CILow: c.CILow, CIHigh: c.CIHigh}
			sp.TooUncertain = (c.CIHigh-c.CILow)/2 > sp.Estimate.Value
			sp.Small = sp.Estimate.Value < 5 || sp.TooUncertain
		}
		for _, q := range o.quantiles {
			sp.Quantiles = append(sp.Quantiles, QuantilePoint{Rank: q.Rank, Value: q.Value, CILow: q.CILow, CIHigh: q.CIHigh})
		}
		out = append(out, sp)
	}
	return out
}

func (v *ledgerView) series(est *aggregate.Estimates, ind *aggregate.Indicator, sq seriesQuery) (IndicatorSeries, error) {
	out := IndicatorSeries{Indicator: ind.Name, Title: ind.Title, Kind: ind.Kind, By: nonNil(sq.by), Points: []SeriesPoint{}}
	if ind.Kind == aggregate.KindQuantiles {
		out.By = []string{}
		out.Points = v.quantilePoints(ind, sq)
		return out, nil
	}
	out.Rollup = rollupName(sq)
	pool := 0
	if sq.pool > 1 {
		pool, out.Pool = sq.pool, sq.pool
	}
	pts, err := est.Series(aggregate.SeriesQuery{Indicator: ind.Name, By: sq.by, Partners: sq.partners,
		From: sq.from, To: sq.to, RollUpYears: sq.year, RollUpRegion: sq.region, PoolYears: pool})
	if err != nil {
		return out, err
	}
	out.Points = make([]SeriesPoint, 0, len(pts))
	for i := range pts {
		sp := seriesPoint(&pts[i])
		if sq.noIDs {
			sp.ReleaseIDs = nil
		}
		out.Points = append(out.Points, sp)
	}
	return out, nil
}

// seriesPoint is p in JSON: no NaN or infinity ever reaches the encoder
// (it would refuse them), an undetermined estimate is null.
func seriesPoint(p *aggregate.SeriesPoint) SeriesPoint {
	out := SeriesPoint{Partner: p.Partner, Period: periodLabel(p.Period, p.FirstYear), Key: nonNil(p.Key),
		Determined: p.Determined, TooUncertain: p.TooUncertain, Small: p.Small, ReleaseIDs: nonNil(p.ReleaseIDs), ReleaseCount: len(p.ReleaseIDs)}
	if p.HasRaw {
		out.Raw = &Estimate{Value: float64(p.Raw), CILow: p.RawCILow, CIHigh: p.RawCIHigh}
	}
	if p.Determined {
		out.Estimate = &Estimate{Value: float64(p.Estimate), CILow: p.CILow, CIHigh: p.CIHigh}
	}
	if c := p.Change; c != nil {
		out.Change = &Change{From: periodLabel(c.From, c.FromFirst), Value: float64(c.Value), CILow: c.CILow, CIHigh: c.CIHigh,
			Detectable: c.Detectable, Reading: ReadingNoChange}
		switch {
		case c.Detectable && c.CILow > 0:
			out.Change.Reading = ReadingIncrease
		case c.Detectable:
			out.Change.Reading = ReadingDecrease
		}
	}
	return out
}

// periodLabel is a period as the API writes it; pooled years as
// "2022-2024".
func periodLabel(p aggregate.Period, first int) string {
	if first != 0 && first != p.Year {
		return fmt.Sprintf("%d-%d", first, p.Year)
	}
	return p.String()
}

func rollupName(sq seriesQuery) string {
	switch {
	case sq.year && sq.region:
		return "year,region"
	case sq.year:
		return "year"
	case sq.region:
		return "region"
	}
	return ""
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
