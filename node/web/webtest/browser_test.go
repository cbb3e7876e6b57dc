package webtest_test

import (
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/web/webtest"
)

// TestDashboard runs the browser checks against the in-memory backend,
// with reads public and with reads behind a token.
func TestDashboard(t *testing.T) {
	webtest.RequireChromium(t)
	for _, public := range []bool{true, false} {
		name := map[bool]string{true: "public reads", false: "token reads"}[public]
		t.Run(name, func(t *testing.T) {
			fake, err := apitest.New(apitest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			store, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := store.Create(api.RoleOperator, "browser-test")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := api.New(api.Config{Backend: fake, Tokens: store, PublicReads: public,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

			webtest.RunDashboardChecksWith(t, ts.URL, tok, webtest.Options{ScreenshotDir: screenshotDir(t, public)})

			imports, publishes, _ := fake.Snapshot()
			if len(imports) != 2 || imports[0].Imported || !imports[1].Imported {
				t.Errorf("backend saw imports %+v, want a refused then an accepted file", imports)
			}
			if len(publishes) != 1 || publishes[0].Period != "2025-Q1" {
				t.Errorf("backend saw publishes %+v, want one for 2025-Q1", publishes)
			}
		})
	}
}

// screenshotDir keeps the public run's screenshots in /tmp for a human to
// look at; the other run's go to the test's temporary directory.
func screenshotDir(t *testing.T, public bool) string {
	if public {
		return ""
	}
	return t.TempDir()
}
