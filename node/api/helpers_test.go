package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// env is a server over the fake backend with a token per role.
type env struct {
	fake   *apitest.Fake
	srv    *api.Server
	ts     *httptest.Server
	tokens map[api.Role]string
}

func newEnv(t testing.TB, publicReads bool, o apitest.Options) *env {
	t.Helper()
	fake, err := apitest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOver(t, publicReads, fake)
}

// newEnvWith is a server with public reads over a given fake.
func newEnvWith(t testing.TB, fake *apitest.Fake) *env {
	t.Helper()
	return newEnvOver(t, true, fake)
}

func newEnvOver(t testing.TB, publicReads bool, fake *apitest.Fake) *env {
	t.Helper()
	store, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fake: fake, tokens: map[api.Role]string{}}
	for _, r := range api.Roles() {
		tok, err := store.Create(r, "test-"+string(r))
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[r] = tok
	}
	e.srv, err = api.New(api.Config{Backend: fake, Tokens: store, PublicReads: publicReads,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImportBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

// do sends a request as role ("" for no token) and returns status and body.
func (e *env) do(t testing.TB, role api.Role, method, path string, body []byte, ctype string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v in %.300s", v, err, b)
	}
	return v
}
