package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/web/webtest"
)

// TestDashboardImportSourceReplace: an operator corrects a source from the
// dashboard as `import --source NAME --replace [--allow-foreign]` does from
// the command line. The form's choices reach the node; replacing removes
// exactly the records the new file no longer holds; "replace" without a
// source, and foreign records without the box ticked, store nothing.
func TestDashboardImportSourceReplace(t *testing.T) {
	webtest.RequireChromium(t)
	r := newRegion(t, "RS")
	n := r.nodes[0]
	tok, err := n.Tokens().Create(api.RoleOperator, "browser import test")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(validCSV(t, "RS", 3), "\n"), "\n")
	header, rows := lines[0], lines[1:]
	file := func(rs ...string) []byte { return []byte(header + "\n" + strings.Join(rs, "\n") + "\n") }
	// A record of a person identified in Albania, not in Serbia: citizen
	// of and exploited in AL.
	cols := strings.Split(rows[0], ",")
	cols[slices.Index(aggregate.Columns, "case_id")] = "RS-FOREIGN-1"
	cols[slices.Index(aggregate.Columns, "person_id")] = "RS-FOREIGN-P1"
	cols[slices.Index(aggregate.Columns, "citizenship")] = "AL"
	cols[slices.Index(aggregate.Columns, "country_of_exploitation")] = "AL"
	foreign := strings.Join(cols, ",")

	count := func() int {
		t.Helper()
		c, err := n.st.Count()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := count()

	b := webtest.NewBrowser(t)
	url := "http://" + n.HTTPAddr()
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(url+"/static/strings.js")); err != nil {
		t.Fatal(err)
	}
	webtest.Eval[bool](t, b, fmt.Sprintf("sessionStorage.setItem('roundtable.token', %q), true", tok))
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, b, "operator tools", `!document.getElementById('operator-tools').hidden`, 30*time.Second)
	dir := t.TempDir()
	upload := func(name string, body []byte, source string, replace, allowForeign bool) (cls, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		webtest.Eval[bool](t, b, fmt.Sprintf(`(() => {
			document.getElementById('import-result').replaceChildren();
			document.getElementById('import-source').value = %q;
			document.getElementById('import-replace').checked = %v;
			document.getElementById('import-foreign').checked = %v;
			return true;
		})()`, source, replace, allowForeign))
		if err := chromedp.Do(b.Ctx, chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{p})); err != nil {
			t.Fatal(err)
		}
		webtest.Eval[bool](t, b, `document.getElementById('import-form').requestSubmit(), true`)
		webtest.WaitFor(t, b, "import result", `document.getElementById('import-result').childElementCount > 0`, 30*time.Second)
		return webtest.Eval[string](t, b, `document.querySelector('#import-result p').className`),
			webtest.Eval[string](t, b, `document.getElementById('import-result').textContent`)
	}

	if cls, text := upload("shelter.csv", file(rows...), "shelter", false, false); cls != "ok" || count() != base+3 {
		t.Fatalf("first import of source shelter: %s %q, store holds %d, want %d", cls, text, count(), base+3)
	}
	// The shelter's corrected export no longer holds the third record.
	cls, text := upload("shelter-corrected.csv", file(rows[:2]...), "shelter", true, false)
	if cls != "ok" || count() != base+2 {
		t.Fatalf("replacing import: %s %q, store holds %d, want %d", cls, text, count(), base+2)
	}
	if !strings.Contains(text, "1 records of source shelter") {
		t.Errorf("replacing import does not say what it removed: %q", text)
	}
	// Replace without a source: refused in the page, nothing sent.
	if cls, text := upload("no-source.csv", file(rows[:1]...), "", true, false); cls != "error" || !strings.Contains(text, "needs a source name") || count() != base+2 {
		t.Errorf("replace without a source: %s %q, store holds %d, want %d", cls, text, count(), base+2)
	}
	// A record identified in another country: refused until the box is
	// ticked.
	cls, text = upload("foreign.csv", file(foreign), "", false, false)
	if cls != "error" || !strings.Contains(text, "1 of 1 records were identified in another country") || count() != base+2 {
		t.Errorf("foreign record without the box: %s %q, store holds %d, want %d", cls, text, count(), base+2)
	}
	b.DropProblems("422")
	if cls, text := upload("foreign.csv", file(foreign), "", false, true); cls != "ok" || count() != base+3 {
		t.Errorf("foreign record with the box ticked: %s %q, store holds %d, want %d", cls, text, count(), base+3)
	}
	// A ledger without releases has no checkpoint yet: the page shows
	// that, and the browser logs the 404 itself.
	b.DropProblems("/v1/checkpoint")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("browser problems: %v", p)
	}
}
