package webtest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/web/webtest"
)

// lyingBackend serves the fake ledger with two of its newest releases
// altered after signing, each still marked verified as a lying or broken
// server would: one has a cell value changed (its id no longer hashes its
// content), the other a flipped bit in its signature (id intact, signature
// invalid).
type lyingBackend struct {
	*apitest.Fake
	alteredContent, alteredSignature string // release ids
}

func (b *lyingBackend) Releases(ctx context.Context, consistent bool) ([]api.ReleaseEntry, uint64, error) {
	rels, idx, err := b.Fake.Releases(ctx, consistent)
	if err != nil {
		return nil, idx, err
	}
	out := make([]api.ReleaseEntry, len(rels))
	for i, e := range rels {
		switch e.Signed.ID {
		case b.alteredContent:
			e = deepCopy(e)
			e.Signed.Release.Indicators[0].Cells[0].Value += 7
		case b.alteredSignature:
			e = deepCopy(e)
			e.Signed.Signature[10] ^= 0x40
		}
		e.Verified = true
		out[i] = e
	}
	return out, idx, nil
}

func (b *lyingBackend) ReleasePage(ctx context.Context, consistent bool, q api.PageQuery) (api.ReleasePage, error) {
	rels, idx, err := b.Releases(ctx, consistent)
	if err != nil {
		return api.ReleasePage{}, err
	}
	return apitest.PageOf(rels, idx, q)
}

func deepCopy(e api.ReleaseEntry) api.ReleaseEntry {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // a fixture entry always encodes
	}
	var out api.ReleaseEntry
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// TestDashboardShowsTamperedReleases: the page checks each release's id
// and Ed25519 signature itself and shows the outcome, so two releases
// altered after signing are marked invalid although the server calls them
// verified, and every other row stays valid. A page that ignored its own
// verify() (or trusted the server's flag) would show all rows valid.
func TestDashboardShowsTamperedReleases(t *testing.T) {
	webtest.RequireChromium(t)
	fake, err := apitest.New(apitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rels, _, err := fake.Releases(t.Context(), false)
	if err != nil || len(rels) < 3 {
		t.Fatalf("fixture releases: %d, %v", len(rels), err)
	}
	lying := &lyingBackend{Fake: fake, alteredContent: rels[len(rels)-1].Signed.ID, alteredSignature: rels[len(rels)-3].Signed.ID}
	tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: lying, Tokens: tokens, PublicReads: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	webtest.WaitFor(t, b, "signature checks", `[...document.querySelectorAll('[data-testid=sig]')].length > 0 &&
		[...document.querySelectorAll('[data-testid=sig]')].every(e => e.className === "ok" || e.className === "bad")`, 30*time.Second)

	type row struct {
		ID   string `json:"id"` // the first 16 hex digits the page shows
		Cls  string `json:"cls"`
		Text string `json:"text"`
	}
	rows := webtest.Eval[[]row](t, b, `[...document.querySelectorAll('#ledger-table tbody tr')].map(tr => {
		const sig = tr.querySelector('[data-testid=sig]');
		return {id: tr.children[2].textContent.slice(0, 16), cls: sig.className, text: sig.textContent};
	})`)
	strs := webtest.Eval[map[string]string](t, b, `({bad: window.RT_STRINGS['ledger.sig.bad.browser'], ok: window.RT_STRINGS['ledger.sig.ok.browser'],
		mode: document.getElementById('verify-mode').textContent, browserMode: window.RT_STRINGS['ledger.verify.browser']})`)
	if strs["mode"] != strs["browserMode"] {
		t.Fatalf("the page did not verify in the browser (mode %q); the test needs WebCrypto Ed25519", strs["mode"])
	}
	bad := map[string]bool{lying.alteredContent[:16]: true, lying.alteredSignature[:16]: true}
	seen := 0
	for _, r := range rows {
		want, wantText := "ok", strs["ok"]
		if bad[r.ID] {
			want, wantText = "bad", strs["bad"]
			seen++
		}
		if r.Cls != want || r.Text != wantText {
			t.Errorf("release %s…: shown %q (%s), want %q (%s)", r.ID, r.Text, r.Cls, wantText, want)
		}
	}
	if seen != 2 {
		t.Errorf("%d of the 2 altered releases are in the ledger table (%d rows)", seen, len(rows))
	}
}
