package webtest_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/web/webtest"
)

// TestDashboardLanguages renders the dashboard in each language in
// Chromium over the in-memory region and fails on English left in a
// translated page, a message id or placeholder shown raw, a catalog code
// shown instead of its label, a missing locale, a choice not remembered,
// or a brief that does not download.
func TestDashboardLanguages(t *testing.T) {
	webtest.RequireChromium(t)
	fake, err := apitest.New(apitest.Options{FromYear: 2022})
	if err != nil {
		t.Fatal(err)
	}
	store, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: store, PublicReads: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	webtest.CheckLanguages(t, ts.URL, "")
}
