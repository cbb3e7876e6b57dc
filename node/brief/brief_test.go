package brief_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/node/brief"
	"roundtable/node/client"
)

// fixture serves the in-memory region (six partners, quarterly releases
// 2019–2024) behind the real API and returns its URL.
func fixture(t testing.TB, o apitest.Options) string {
	t.Helper()
	fake, err := apitest.New(o)
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
	return ts.URL
}

var briefDate = time.Date(2025, time.March, 3, 0, 0, 0, 0, time.UTC)

func fetch(t testing.TB, url string, year int) *brief.Data {
	t.Helper()
	d, err := brief.Fetch(context.Background(), client.New(url, "").Get, year)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
