package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/synth"
	"roundtable/privacy"
)

// releaseBench builds releases the way a partner node does: synthetic
// cases at the region's magnitudes (node/synth), the exact tables from
// aggregate.Tabulate, noise and signature from privacy.BuildRelease. The
// ledger would admit each (BuildRelease runs the ledger's own validation);
// the fake only stores them.
type releaseBench struct {
	t      *testing.T
	fake   *apitest.Fake
	tables map[string][]*aggregate.Table // catalog hash / partner / period
	n      int
}

func newReleaseBench(t *testing.T) *releaseBench {
	fake, err := apitest.New(apitest.Options{NoReleases: true, Partner: "AL"})
	if err != nil {
		t.Fatal(err)
	}
	return &releaseBench{t: t, fake: fake, tables: map[string][]*aggregate.Table{}}
}

// publish builds and adds one release; names empty means the whole
// catalog. budget is ε, or ρ when accounting is zCDP.
func (rb *releaseBench) publish(cat *aggregate.Catalog, partner string, p aggregate.Period, names []string, accounting string, budget float64) {
	rb.t.Helper()
	ctx := context.Background()
	if len(names) == 0 {
		for _, ind := range cat.Indicators {
			names = append(names, ind.Name)
		}
	}
	key := cat.Hash() + "/" + partner + "/" + p.String()
	all, ok := rb.tables[key]
	if !ok {
		var allNames []string
		for _, ind := range cat.Indicators {
			allNames = append(allNames, ind.Name)
		}
		var err error
		all, err = aggregate.Tabulate(ctx, cat, p, allNames, func(fn func(*aggregate.Case) error) error {
			_, err := synth.Cases(ctx, synth.Options{Partner: aggregate.Country(partner), From: p.Year, To: p.Year, Seed: 7}, fn)
			return err
		})
		if err != nil {
			rb.t.Fatal(err)
		}
		rb.tables[key] = all
	}
	var tables []*aggregate.Table
	for _, tb := range all {
		if slices.Contains(names, tb.Indicator().Name) {
			tables = append(tables, tb)
		}
	}
	b := privacy.Budget(math.Round(budget * privacy.Micro)) // the test's budgets have at most six decimals
	params := privacy.ReleaseParams{Accounting: accounting, Budget: b, Period: p, Partner: partner}
	rb.n++
	res := privacy.Reservation{ID: fmt.Sprintf("res-%d", rb.n), Consortium: "sweep", Partner: partner, CatalogHash: cat.Hash(), Period: p,
		Accounting: accounting, SpendMicro: b.Micro(), Indicators: names}
	s, err := privacy.BuildRelease(ctx, cat, tables, params, res, rb.fake.Key(partner))
	if err != nil {
		rb.t.Fatalf("%s %s %v at %g: %v", partner, p, names, budget, err)
	}
	if err := rb.fake.AddRelease(s); err != nil {
		rb.t.Fatal(err)
	}
}

// catalogV1Variant is a second catalog version made from v1 in the test
// (another helper builds the real v2): the age quantiles dropped, victims
// without its status margin and with other shares, exploitation with
// k = 1, and citizenship without the sex dimension (so its releases under
// the two versions cannot be combined). Its hash differs from v1's.
func catalogV1Variant(t *testing.T) *aggregate.Catalog {
	t.Helper()
	b, err := json.Marshal(aggregate.CatalogV1())
	if err != nil {
		t.Fatal(err)
	}
	var cat aggregate.Catalog
	if err := json.Unmarshal(b, &cat); err != nil {
		t.Fatal(err)
	}
	cat.Version = 2
	cat.Indicators = slices.DeleteFunc(cat.Indicators, func(ind aggregate.Indicator) bool { return ind.Name == "age" })
	for i := range cat.Indicators {
		ind := &cat.Indicators[i]
		switch ind.Name {
		case "victims":
			ind.Margins = [][]string{{}, {"sex"}, {"age_group"}}
			ind.Shares = []float64{0.4, 0.3, 0.15, 0.15}
		case "exploitation":
			ind.K = 1
		case "citizenship":
			ind.Dimensions = ind.Dimensions[:1]
		}
	}
	if err := cat.Validate(); err != nil {
		t.Fatalf("test catalog: %v", err)
	}
	if cat.Hash() == aggregate.CatalogV1().Hash() {
		t.Fatal("test catalog has v1's hash")
	}
	return &cat
}

// orderedSubsets lists every ordered selection of distinct dimensions
// (the API accepts any order): for 3 dimensions, 1 + 3 + 6 + 6 = 16.
func orderedSubsets(dims []string) [][]string {
	out := [][]string{nil}
	var walk func(prefix []string)
	walk = func(prefix []string) {
		for _, d := range dims {
			if slices.Contains(prefix, d) {
				continue
			}
			next := append(slices.Clone(prefix), d)
			out = append(out, next)
			walk(next)
		}
	}
	walk(nil)
	return out
}

// checkSeriesAnswer fails on any answer but 200, on NaN or infinity
// anywhere in the body, and on points whose fields contradict each other.
// It returns the number of points.
func checkSeriesAnswer(t *testing.T, srv http.Handler, q url.Values) int {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/series?"+q.Encode(), nil)
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/series?%s: %d %s", q.Encode(), rec.Code, rec.Body.String())
	}
	body := rec.Body.Bytes()
	for _, bad := range []string{"NaN", "Inf", "e+308"} {
		if bytes.Contains(body, []byte(bad)) {
			t.Fatalf("GET /v1/series?%s: %q in the answer", q.Encode(), bad)
		}
	}
	resp := decode[api.SeriesResponse](t, body)
	n := 0
	for _, s := range resp.Series {
		for _, p := range s.Points {
			n++
			bad := ""
			switch {
			case p.Determined != (p.Estimate != nil):
				bad = "estimate present iff determined"
			case p.Estimate != nil && !(p.Estimate.CILow <= p.Estimate.CIHigh && p.Estimate.Value >= 0):
				bad = "interval or estimate"
			case p.Estimate != nil && s.Kind == aggregate.KindCount && p.TooUncertain != ((p.Estimate.CIHigh-p.Estimate.CILow)/2 > p.Estimate.Value):
				bad = "too_uncertain is not half-width > estimate"
			case p.Change != nil && p.Change.Detectable == (p.Change.CILow <= 0 && 0 <= p.Change.CIHigh):
				bad = "change detectable but its interval covers 0, or the reverse"
			case p.Change != nil && !p.Change.Detectable && p.Change.Reading != api.ReadingNoChange:
				bad = "change reading"
			}
			if bad != "" {
				t.Fatalf("GET /v1/series?%s: %s: %+v", q.Encode(), bad, p)
			}
		}
	}
	return n
}

// TestSeriesNoAdmittedReleaseBreaksAQuery is issue 9's item 8. Before the
// fix, one victims-only release at ε = 10⁻⁶ into an empty quarter made
// every /v1/series answer a 500 ("singular normal matrix"). Here releases
// built by the real engine — ε = 10⁻⁶ into empty quarters, whole-catalog
// releases at 10⁻⁴, a year release at 10⁻⁶ over quarters at 1, a zCDP
// release at ρ = 10⁻⁶, and releases under two catalog versions — are
// queried for every indicator, every ordered `by` the API accepts, every
// rollup, with and without pooling, over every period, with each version
// current in turn. Every answer must be a 200 without NaN or infinity.
func TestSeriesNoAdmittedReleaseBreaksAQuery(t *testing.T) {
	v1, v2 := aggregate.CatalogV1(), catalogV1Variant(t)
	rb := newReleaseBench(t)
	q := func(y, q int) aggregate.Period { return aggregate.Period{Year: y, Quarter: q} }
	rb.publish(v1, "XK", q(2022, 1), []string{"victims"}, privacy.PureDP, 1e-6) // the case
	rb.publish(v1, "XK", q(2022, 2), nil, privacy.PureDP, 1e-4)
	for quarter := 1; quarter <= 4; quarter++ {
		rb.publish(v1, "AL", q(2022, quarter), nil, privacy.PureDP, 1)
	}
	rb.publish(v1, "AL", q(2022, 0), []string{"victims"}, privacy.PureDP, 1e-6)
	rb.publish(v2, "AL", q(2023, 0), nil, privacy.PureDP, 1e-4)
	rb.publish(v2, "XK", q(2023, 3), []string{"victims"}, privacy.PureDP, 1e-6)
	rb.publish(v1, "AL", q(2024, 1), nil, privacy.PureDP, 0.5)
	rb.publish(v2, "AL", q(2024, 1), []string{"victims", "citizenship"}, privacy.PureDP, 0.5) // two versions, one quarter
	rb.publish(v2, "AL", q(2024, 2), nil, privacy.PureDP, 1e-6)
	rb.publish(v2, "XK", q(2024, 2), nil, privacy.ZCDP, 1e-6)

	srv := newEnvWith(t, rb.fake).srv
	periods := []string{""}
	for y := 2021; y <= 2025; y++ {
		periods = append(periods, fmt.Sprint(y))
		for quarter := 1; quarter <= 4; quarter++ {
			periods = append(periods, fmt.Sprintf("%d-Q%d", y, quarter))
		}
	}
	queries, points := 0, 0
	for _, cur := range []*aggregate.Catalog{v1, v2} {
		rb.fake.SetCatalog(cur)
		for _, ind := range cur.Indicators {
			var dims []string
			for _, d := range ind.Dimensions {
				dims = append(dims, d.Name)
			}
			for _, by := range orderedSubsets(dims) {
				for _, rollup := range []string{"", "year", "region", "year,region"} {
					for _, pool := range []string{"", "3"} {
						for _, p := range periods {
							quarter := len(p) > 4
							if quarter && (rollup != "" || pool != "" || len(by) > 1) {
								continue // quarters are swept with the plain series
							}
							v := url.Values{"indicator": {ind.Name}}
							set := func(k, x string) {
								if x != "" {
									v.Set(k, x)
								}
							}
							set("by", strings.Join(by, ","))
							set("rollup", rollup)
							set("pool", pool)
							set("from", p)
							set("to", p)
							points += checkSeriesAnswer(t, srv, v)
							queries++
						}
					}
				}
			}
		}
		queries++
		points += checkSeriesAnswer(t, srv, url.Values{}) // every indicator at once
	}
	t.Logf("%d queries, %d points, all 200", queries, points)

	// The quarter is there, and reads as too uncertain.
	rb.fake.SetCatalog(v1)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/series?indicator=victims&partner=XK&from=2022-Q1&to=2022-Q1", nil))
	resp := decode[api.SeriesResponse](t, rec.Body.Bytes())
	// At ε = 1e-6 the noise's scale is about a million people: the point
	// must say so. It is marked too uncertain whenever its interval is
	// wider than the estimate, which the noise makes true about 95% of the
	// time; in the other draws the huge interval itself says it.
	pts := resp.Series[0].Points
	if len(pts) != 1 || pts[0].Estimate == nil {
		t.Fatalf("XK 2022-Q1 victims at ε = 1e-6: %+v, want one determined point", pts)
	}
	e := pts[0].Estimate
	hw := (e.CIHigh - e.CILow) / 2
	if hw < 1e5 || pts[0].TooUncertain != (hw > e.Value) {
		t.Errorf("XK 2022-Q1 victims at ε = 1e-6: estimate %v, half-width %v, too uncertain %v; want a half-width of about a million, marked too uncertain exactly when it exceeds the estimate",
			e.Value, hw, pts[0].TooUncertain)
	}
}

// TestSeriesRandomReleaseMixes is the property form: random sequences of
// releases (partner, period, indicators, budget from 10⁻⁶ to 1, pure or
// zCDP, catalog version) from the real engine; after each, the whole
// catalog, victims by each dimension and all roll-ups must answer 200
// with finite numbers.
func TestSeriesRandomReleaseMixes(t *testing.T) {
	v1, v2 := aggregate.CatalogV1(), catalogV1Variant(t)
	budgets := []float64{1e-6, 1e-4, 0.01, 1}
	for trial := range 4 {
		r := rand.New(rand.NewPCG(uint64(trial), 99))
		rb := newReleaseBench(t)
		srv := newEnvWith(t, rb.fake).srv
		for range 6 {
			cat := []*aggregate.Catalog{v1, v2}[r.IntN(2)]
			var names []string
			if r.IntN(2) == 0 { // a random subset, in catalog order
				for _, ind := range cat.Indicators {
					if r.IntN(3) == 0 {
						names = append(names, ind.Name)
					}
				}
			}
			acc := []string{privacy.PureDP, privacy.ZCDP}[r.IntN(2)]
			p := aggregate.Period{Year: 2022 + r.IntN(2), Quarter: r.IntN(5)}
			rb.publish(cat, []string{"AL", "XK", "ME"}[r.IntN(3)], p, names, acc, budgets[r.IntN(len(budgets))])
			rb.fake.SetCatalog([]*aggregate.Catalog{v1, v2}[r.IntN(2)])
			for _, rollup := range []string{"", "year", "region", "year,region"} {
				checkSeriesAnswer(t, srv, url.Values{"rollup": {rollup}})
				checkSeriesAnswer(t, srv, url.Values{"rollup": {rollup}, "pool": {"3"}})
				for _, by := range []string{"sex", "age_group", "sex,age_group"} {
					checkSeriesAnswer(t, srv, url.Values{"indicator": {"victims"}, "by": {by}, "rollup": {rollup}})
				}
			}
		}
	}
}
