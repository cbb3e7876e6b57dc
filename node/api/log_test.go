package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// TestRequestLinesAtDebug: a node's log at INFO holds no line per request
// (served, refused or unrouted); at DEBUG each request has its line.
func TestRequestLinesAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		fake, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
		if err != nil {
			t.Fatal(err)
		}
		tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		srv, err := api.New(api.Config{Backend: fake, Tokens: tokens, PublicReads: true,
			Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))})
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/v1/health", "/v1/releases?consistent=maybe", "/v1/nope"} {
			srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
		}
		got := strings.Count(buf.String(), "msg=http ")
		if want := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 3}[level]; got != want {
			t.Errorf("log at %v: %d request lines, want %d:\n%s", level, got, want, buf.String())
		}
	}
}
