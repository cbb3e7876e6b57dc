package webtest_test

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/web/webtest"
	"roundtable/privacy"
)

// yearRelease is a signed victims release for a year whose cross table
// holds total people in one cell (the rest 0) and whose total cell says
// total, every cell with Laplace scale b: noise-free values, so the
// estimates are exactly the totals and the intervals follow from b.
func yearRelease(t *testing.T, fake *apitest.Fake, partner string, year int, total int64, b float64) privacy.Signed {
	t.Helper()
	ind, _ := aggregate.CatalogV1().Indicator("victims")
	ir := privacy.IndicatorRelease{Name: "victims", Mechanism: privacy.Laplace, Epsilon: 0.1}
	hw := b * math.Log(20)
	cell := func(key []string, v int64) privacy.Cell {
		return privacy.Cell{Key: key, Value: v, Scale: b, CILow: float64(v) - hw, CIHigh: float64(v) + hw}
	}
	var walk func(key []string)
	first := true
	walk = func(key []string) {
		if len(key) == len(ind.Dimensions) {
			v := int64(0)
			if first {
				v, first = total, false
			}
			ir.Cells = append(ir.Cells, cell(key, v))
			return
		}
		for _, k := range ind.Dimensions[len(key)].Keys {
			walk(append(append([]string(nil), key...), k))
		}
	}
	for _, d := range ind.Dimensions {
		ir.Dimensions = append(ir.Dimensions, d.Name)
	}
	walk(nil)
	ir.Cells = append(ir.Cells, cell([]string{aggregate.KeyAll, aggregate.KeyAll, aggregate.KeyAll}, total))
	rel := privacy.Release{Version: privacy.FormatVersion, Partner: partner, CatalogHash: aggregate.CatalogV1().Hash(),
		Period: aggregate.Period{Year: year}, Reservation: fmt.Sprintf("res-%s-%d", partner, year), Accounting: privacy.PureDP,
		SpendMicro: 100000, Indicators: []privacy.IndicatorRelease{ir}}
	s, err := privacy.Sign(rel, fake.Key(partner))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDashboardShowsChangeAndUncertainty: with data built to show them,
// the page writes the change wording and marks values too uncertain to
// read. Albania: 159 then 112 at a small noise scale — a change of −47
// whose interval excludes 0, read as "a detectable decrease", drawn as a
// trend line. Montenegro: 3 then 7 at a large scale — both years' intervals
// (about ±28) wider than the values, so no trend line, two "?" markers, and
// a change of +4 whose interval covers 0, read as "not distinguishable from
// no change". A page that drew every estimate as a trend point, or printed
// no change line, fails.
func TestDashboardShowsChangeAndUncertainty(t *testing.T) {
	webtest.RequireChromium(t)
	fake, err := apitest.New(apitest.Options{NoReleases: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		partner string
		year    int
		total   int64
		b       float64
	}{{"AL", 2021, 159, 0.5}, {"AL", 2022, 112, 0.5}, {"ME", 2021, 3, 10}, {"ME", 2022, 7, 10}} {
		if err := fake.AddRelease(yearRelease(t, fake, r.partner, r.year, r.total, r.b)); err != nil {
			t.Fatal(err)
		}
	}
	tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: tokens, PublicReads: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)

	b := webtest.NewBrowser(t)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatalf("open %s: %v", ts.URL, err)
	}
	webtest.WaitFor(t, b, "dashboard ready", `document.body.dataset.ready === "true"`, 30*time.Second)
	webtest.WaitFor(t, b, "country charts", `document.querySelectorAll('#country-charts [data-testid=change]').length >= 2`, 30*time.Second)

	type figure struct {
		Change    string `json:"change"`
		Reading   string `json:"reading"`
		Uncertain string `json:"uncertain"`
		Lines     int    `json:"lines"`
		Marks     int    `json:"marks"`
	}
	figs := webtest.Eval[map[string]figure](t, b, `Object.fromEntries([...document.querySelectorAll('#country-charts figure')].map(f => {
		const c = f.querySelector('[data-testid=change]');
		return [c.dataset.partner, {change: c.textContent, reading: c.dataset.reading, uncertain: c.dataset.uncertain,
			lines: f.querySelectorAll('svg path.line').length, marks: f.querySelectorAll('svg g.uncertain').length}];
	}))`)
	strs := webtest.Eval[map[string]string](t, b, `window.RT_STRINGS`)
	al, me := figs["AL"], figs["ME"]
	if !strings.Contains(al.Change, strs["trends.change.decrease"]) || !strings.Contains(al.Change, "-47") || al.Uncertain != "false" ||
		al.Lines != 1 || al.Marks != 0 || strings.Contains(al.Change, strs["trends.change.none"]) {
		t.Errorf("Albania: %+v, want a detectable decrease of 47 drawn as a line", al)
	}
	if !strings.Contains(me.Change, strs["trends.change.none"]) || !strings.Contains(me.Change, "+4") || me.Uncertain != "true" ||
		!strings.Contains(me.Change, strings.ReplaceAll(strs["chart.uncertain.long"], "{period}", "2022")) || me.Lines != 0 || me.Marks != 2 {
		t.Errorf("Montenegro: %+v, want %q, too uncertain to read, no line and two markers", me, strs["trends.change.none"])
	}
	// The regional trend: 162 then 119, a detectable decrease.
	region := webtest.Eval[string](t, b, `document.getElementById('trend-change').textContent`)
	if !strings.Contains(region, strs["trends.change.decrease"]) || !strings.Contains(region, "-43") {
		t.Errorf("regional change line %q, want a detectable decrease of 43", region)
	}
	// The tooltip of an uncertain marker says so.
	tip := webtest.Eval[string](t, b, `[...document.querySelectorAll('#country-charts figure')].find(f => f.querySelector('[data-partner=ME]')).querySelector('svg circle[tabindex] title').textContent`)
	if !strings.Contains(tip, strs["chart.uncertain"]) {
		t.Errorf("Montenegro's tooltip %q does not say %q", tip, strs["chart.uncertain"])
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("console errors or exceptions in the page:\n%s", strings.Join(p, "\n"))
	}
}
