// Package webtest drives the dashboard in a real headless Chromium
// (through chromedp) and asserts what a user would see. The browser tests
// of node/web run it against the in-memory backend; the node's system
// tests run the same checks against a live cluster.
package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath finds a Chromium or Chrome binary: $CHROME_PATH, then the
// usual names on PATH. It returns "" if there is none.
func ChromiumPath() string {
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// RequireChromium returns the browser path, skipping the test when there
// is none on a developer machine; under CI (CI set) a missing browser is a
// failure, so the browser tests can never silently stop running there.
func RequireChromium(t testing.TB) string {
	t.Helper()
	p := ChromiumPath()
	if p == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but no chromium was found (install it, or set CHROME_PATH)")
		}
		t.Skip("no chromium on PATH and CI is not set: skipping browser test (apt-get install chromium to run it)")
	}
	return p
}

// Browser is a headless Chromium with a fresh profile, recording console
// errors and uncaught exceptions of its tab.
type Browser struct {
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// NewBrowser starts Chromium for the test; t.Cleanup stops it.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	path := RequireChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &Browser{Ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.record("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.record("exception: " + msg)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				b.record("log." + string(ev.Entry.Source) + ": " + ev.Entry.Text + " " + ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *Browser) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// Problems returns the console errors and exceptions seen so far, and
// forgets them.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// Eval runs JavaScript in the page and decodes its value into T.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.80q: %v", js, err)
	}
	return v
}

// WaitFor polls a JavaScript condition until it is true or timeout passes.
func WaitFor(t testing.TB, b *Browser, what, cond string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(b.Ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for %s (%s): %v; console: %v", what, cond, err, b.Problems())
	}
}

// Options adjust RunDashboardChecksWith to the backend behind baseURL.
type Options struct {
	// ValidCSV is a file the node imports without error; InvalidCSV one it
	// refuses with per-line errors. Defaults suit apitest.Fake.
	ValidCSV, InvalidCSV []byte
	// Period and Epsilon are what the operator plans and publishes
	// (default 2025-Q1, 0.05).
	Period  string
	Epsilon float64
	// Indicators ticked in the plan form (default: victims).
	Indicators []string
	// ScreenshotDir receives dashboard-laptop.png, dashboard-phone.png and
	// dashboard-operator.png (default: os.TempDir()).
	ScreenshotDir string
}

// RunDashboardChecks drives the dashboard at baseURL in headless Chromium
// with the defaults of Options.
func RunDashboardChecks(t *testing.T, baseURL, operatorToken string) {
	RunDashboardChecksWith(t, baseURL, operatorToken, Options{})
}

// RunDashboardChecksWith checks that the dashboard renders charts with the
// published data, verifies the ledger's signatures, shows no console
// errors, is readable at laptop and phone widths, and lets an operator
// import a file (seeing the validation report of a bad one) and plan and
// publish a release.
func RunDashboardChecksWith(t *testing.T, baseURL, operatorToken string, o Options) {
	t.Helper()
	o = o.withDefaults()
	b := NewBrowser(t)
	ctx := b.Ctx

	// The token goes in before the first load, so a node that requires a
	// token for reads works too.
	if err := chromedp.Do(ctx, chromedp.Navigate(baseURL+"/static/strings.js")); err != nil {
		t.Fatalf("open %s: %v", baseURL, err)
	}
	Eval[bool](t, b, fmt.Sprintf("sessionStorage.setItem('roundtable.token', %q), true", operatorToken))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900), chromedp.Navigate(baseURL+"/")); err != nil {
		t.Fatalf("open %s: %v", baseURL, err)
	}
	WaitFor(t, b, "dashboard ready", `document.body.dataset.ready === "true"`, 30*time.Second)
	WaitFor(t, b, "signature checks", `[...document.querySelectorAll('[data-testid=sig]')].length > 0 &&
		[...document.querySelectorAll('[data-testid=sig]')].every(e => e.className === "ok" || e.className === "bad")`, 30*time.Second)

	t.Run("charts", func(t *testing.T) { checkCharts(t, b) })
	t.Run("known value", func(t *testing.T) { checkKnownValue(t, b, baseURL, operatorToken) })
	t.Run("ledger", func(t *testing.T) { checkLedger(t, b) })
	t.Run("ledger paging", func(t *testing.T) { checkLedgerPaging(t, b, baseURL, operatorToken) })
	t.Run("screenshots", func(t *testing.T) { screenshots(t, b, o.ScreenshotDir) })
	t.Run("operator", func(t *testing.T) {
		checkOperator(t, b, baseURL, operatorToken, o)
		// The operator panel after an import and a publish, for a human to look at.
		if err := chromedp.Do(ctx, chromedp.ScrollIntoView(chromedp.CSS("#operator"))); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(o.ScreenshotDir, "dashboard-operator.png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	})
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("console errors or exceptions in the page:\n%s", strings.Join(p, "\n"))
	}
}

func (o Options) withDefaults() Options {
	if o.ValidCSV == nil {
		o.ValidCSV = []byte("case_id,sex\nc1,female\nc2,male\n")
	}
	if o.InvalidCSV == nil {
		o.InvalidCSV = []byte("case_id,sex\nc1,BAD\nc2,female,extra\n")
	}
	if o.Period == "" {
		o.Period = "2025-Q1"
	}
	if o.Epsilon == 0 {
		o.Epsilon = 0.05
	}
	if o.Indicators == nil {
		o.Indicators = []string{"victims"}
	}
	if o.ScreenshotDir == "" {
		o.ScreenshotDir = os.TempDir()
	}
	return o
}

func checkCharts(t *testing.T, b *Browser) {
	counts := Eval[map[string]int](t, b, `({
		trendPaths: document.querySelectorAll('#trend-chart svg path.line').length,
		trendBands: document.querySelectorAll('#trend-chart svg path.band').length,
		countryPaths: document.querySelectorAll('#country-charts svg path.line').length,
		countryFigures: document.querySelectorAll('#country-charts figure').length,
		heatCells: document.querySelectorAll('#corridor-chart svg rect').length,
		budgetBars: document.querySelectorAll('#budget-charts svg rect.spent').length,
	})`)
	for _, k := range []string{"trendPaths", "trendBands", "countryPaths", "countryFigures", "heatCells", "budgetBars"} {
		if counts[k] == 0 {
			t.Errorf("%s: none drawn (%v)", k, counts)
		}
	}
	// Every path must have real coordinates, not NaN from a bad value.
	bad := Eval[int](t, b, `[...document.querySelectorAll('svg path')].filter(p => /NaN|Infinity/.test(p.getAttribute('d'))).length`)
	if bad > 0 {
		t.Errorf("%d SVG paths have NaN or Infinity coordinates", bad)
	}
}

// checkKnownValue compares the headline with the API's latest regional
// estimate of the default indicator.
func checkKnownValue(t *testing.T, b *Browser, baseURL, token string) {
	indicator := Eval[string](t, b, `document.getElementById('indicator').value`)
	var resp struct {
		Series []struct {
			Points []struct {
				Period   string `json:"period"`
				Estimate struct {
					Value float64 `json:"value"`
				} `json:"estimate"`
			} `json:"points"`
		} `json:"series"`
	}
	getJSON(t, baseURL+"/v1/series?"+url.Values{"indicator": {indicator}, "rollup": {"region"}}.Encode(), token, &resp)
	if len(resp.Series) == 0 || len(resp.Series[0].Points) == 0 {
		t.Fatalf("the API has no regional points for %s", indicator)
	}
	last := resp.Series[0].Points[len(resp.Series[0].Points)-1]
	got := Eval[map[string]string](t, b, `({value: document.getElementById('headline').dataset.value || "", text: document.getElementById('headline').textContent})`)
	if got["value"] != fmt.Sprint(last.Estimate.Value) {
		t.Errorf("headline value %q, want the API's %v for %s", got["value"], last.Estimate.Value, last.Period)
	}
	want := Eval[string](t, b, fmt.Sprintf("Math.round(%v).toLocaleString()", last.Estimate.Value))
	if !strings.Contains(got["text"], want) || !strings.Contains(got["text"], last.Period) {
		t.Errorf("headline %q does not show %s for %s", got["text"], want, last.Period)
	}
}

func checkLedger(t *testing.T, b *Browser) {
	r := Eval[map[string]any](t, b, `({
		rows: document.querySelectorAll('#ledger-table tbody tr').length,
		bad: document.querySelectorAll('#ledger-table tbody td.bad').length,
		ok: document.querySelectorAll('#ledger-table tbody td.ok').length,
		mode: document.getElementById('verify-mode').textContent,
		browserMode: window.RT_STRINGS['ledger.verify.browser'],
		okText: document.querySelector('#ledger-table tbody td.ok') ? document.querySelector('#ledger-table tbody td.ok').textContent : "",
		okBrowser: window.RT_STRINGS['ledger.sig.ok.browser'],
		size: document.getElementById('checkpoint').textContent,
	})`)
	if r["rows"].(float64) == 0 || r["bad"].(float64) != 0 || r["ok"] != r["rows"] {
		t.Errorf("ledger: %v rows, %v verified, %v invalid", r["rows"], r["ok"], r["bad"])
	}
	// Chromium has WebCrypto Ed25519 and 127.0.0.1 is a secure context, so
	// the page must have checked the signatures itself.
	if r["mode"] != r["browserMode"] || r["okText"] != r["okBrowser"] {
		t.Errorf("signatures were not verified in the browser: mode %q, cell %q", r["mode"], r["okText"])
	}
	if !strings.Contains(r["size"].(string), "roundtable/") {
		t.Errorf("checkpoint note not shown: %q", r["size"])
	}
}

// checkLedgerPaging: the list shows the newest releases, leaves counting
// down from the ledger's last without a gap, and "load older" appends the
// page before them (checked in the browser like the first) until leaf 0,
// when the button goes away.
func checkLedgerPaging(t *testing.T, b *Browser, baseURL, token string) {
	var head struct {
		Total int `json:"total"`
	}
	getJSON(t, baseURL+"/v1/releases?limit=1", token, &head)
	leaves := func() []int {
		return Eval[[]int](t, b, `[...document.querySelectorAll('#ledger-table tbody tr')].map(tr => Number(tr.children[3].textContent))`)
	}
	checkRun := func(got []int) {
		t.Helper()
		for i, leaf := range got {
			if leaf != head.Total-1-i {
				t.Fatalf("row %d shows leaf %d, want %d (newest first, no gap): %v", i, leaf, head.Total-1-i, got)
			}
		}
	}
	got := leaves()
	if len(got) == 0 || len(got) > 100 {
		t.Fatalf("first render shows %d rows of %d releases", len(got), head.Total)
	}
	checkRun(got)
	for pages := 0; len(got) < head.Total; pages++ {
		if pages > 3 {
			return // enough pages seen; a long ledger need not be clicked through
		}
		if Eval[bool](t, b, `document.getElementById('ledger-more').hidden`) {
			t.Fatalf("%d of %d releases shown and no way to load older ones", len(got), head.Total)
		}
		before := len(got)
		Eval[bool](t, b, `document.getElementById('ledger-more').click(), true`)
		WaitFor(t, b, "older releases", fmt.Sprintf(`document.querySelectorAll('#ledger-table tbody tr').length > %d &&
			[...document.querySelectorAll('[data-testid=sig]')].every(e => e.className === "ok")`, before), 30*time.Second)
		got = leaves()
		checkRun(got)
	}
	if !Eval[bool](t, b, `document.getElementById('ledger-more').hidden`) {
		t.Error("every release is shown but the load-older button is still there")
	}
}

func screenshots(t *testing.T, b *Browser, dir string) {
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"laptop", 1366, 900}, {"phone", 390, 844}} {
		before := Eval[string](t, b, `document.body.dataset.renders`)
		width := Eval[int](t, b, `window.innerWidth`)
		if err := chromedp.Do(b.Ctx, chromedp.EmulateViewport(vp.w, vp.h)); err != nil {
			t.Fatal(err)
		}
		if int64(width) != vp.w {
			// The page redraws its charts at the new width.
			WaitFor(t, b, "redraw at "+vp.name+" width", fmt.Sprintf("document.body.dataset.renders !== %q", before), 10*time.Second)
		}
		// Nothing may be wider than the viewport: the page must reflow,
		// with only tables and the heat map scrolling inside their boxes.
		over := Eval[int](t, b, `document.documentElement.scrollWidth - window.innerWidth`)
		if over > 0 {
			t.Errorf("%s: page is %dpx wider than the viewport", vp.name, over)
		}
		png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "dashboard-"+vp.name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	if err := chromedp.Do(b.Ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatal(err)
	}
}

func checkOperator(t *testing.T, b *Browser, baseURL, token string, o Options) {
	WaitFor(t, b, "operator tools", `!document.getElementById('operator-tools').hidden`, 10*time.Second)
	dir := t.TempDir()
	upload := func(name string, body []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		Eval[bool](t, b, `document.getElementById('import-result').replaceChildren(), true`)
		if err := chromedp.Do(b.Ctx, chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{p})); err != nil {
			t.Fatal(err)
		}
		Eval[bool](t, b, `document.getElementById('import-form').requestSubmit(), true`)
		WaitFor(t, b, "import report", `document.getElementById('import-result').childElementCount > 0`, 30*time.Second)
	}

	upload("invalid.csv", o.InvalidCSV)
	rep := Eval[map[string]any](t, b, `({cls: document.querySelector('#import-result p').className,
		rows: document.querySelectorAll('#import-result tbody tr').length})`)
	if rep["cls"] != "error" || rep["rows"].(float64) == 0 {
		t.Errorf("invalid file: report %v, want an error with per-line rows", rep)
	}
	// The page logs nothing for a 422, but the browser logs the failed
	// request itself; that one is expected.
	b.DropProblems("422")

	upload("valid.csv", o.ValidCSV)
	if cls := Eval[string](t, b, `document.querySelector('#import-result p').className`); cls != "ok" {
		t.Errorf("valid file: result class %q, want ok; text %q", cls, Eval[string](t, b, `document.getElementById('import-result').textContent`))
	}

	inds, _ := json.Marshal(o.Indicators)
	Eval[bool](t, b, fmt.Sprintf(`(() => {
		document.getElementById('plan-period').value = %q;
		document.getElementById('plan-epsilon').value = %q;
		const want = %s;
		document.querySelectorAll('#plan-indicators input').forEach(c => { c.checked = want.includes(c.value); });
		document.getElementById('plan-form').requestSubmit();
		return true;
	})()`, o.Period, fmt.Sprint(o.Epsilon), inds))
	WaitFor(t, b, "plan table", `document.querySelectorAll('#plan-result tbody tr').length > 0 && !document.getElementById('publish').disabled`, 30*time.Second)
	if n := Eval[int](t, b, `document.querySelectorAll('#plan-result tbody tr').length`); n != len(o.Indicators) {
		t.Errorf("plan shows %d rows, want %d", n, len(o.Indicators))
	}
	Eval[bool](t, b, `document.getElementById('publish').click(), true`)
	WaitFor(t, b, "publish result", `document.getElementById('publish-result').textContent !== ""`, 60*time.Second)
	id := Eval[string](t, b, `document.getElementById('publish-result').dataset.releaseId || ""`)
	if id == "" {
		t.Fatalf("publish failed in the page: %q", Eval[string](t, b, `document.getElementById('publish-result').textContent`))
	}
	var rel struct {
		Signed struct {
			Release struct {
				Period string `json:"period"`
			} `json:"release"`
		} `json:"signed"`
	}
	getJSON(t, baseURL+"/v1/releases/"+id, token, &rel)
	if rel.Signed.Release.Period != o.Period {
		t.Errorf("published release %s has period %q, want %q", id, rel.Signed.Release.Period, o.Period)
	}
}

// DropProblems forgets recorded problems containing s (an expected failed
// request the browser logs by itself, say).
func (b *Browser) DropProblems(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.problems[:0]
	for _, p := range b.problems {
		if !strings.Contains(p, s) {
			kept = append(kept, p)
		}
	}
	b.problems = kept
}

func getJSON(t *testing.T, u, token string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
