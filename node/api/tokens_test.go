package api_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// TestTokenListAndRevoke: List shows every token's id, role, name,
// creation, expiry and last four characters but never the token; Revoke
// by id refuses the token at once, also in another TokenStore on the same
// file (a running node, while 'roundtable token revoke' runs beside it),
// and says so; an unknown id and a second revocation are errors.
func TestTokenListAndRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), api.TokenFile)
	cli, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	running, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	op, err := cli.Create(api.RoleOperator, "ana")
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	re, err := cli.CreateExpiring(api.RoleResearcher, "ben", expiry)
	if err != nil {
		t.Fatal(err)
	}
	list, err := cli.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List: %d tokens, want 2", len(list))
	}
	for i, want := range []struct {
		tok     string
		role    api.Role
		name    string
		expires time.Time
	}{{op, api.RoleOperator, "ana", time.Time{}}, {re, api.RoleResearcher, "ben", expiry}} {
		got := list[i]
		if got.Role != want.role || got.Name != want.name || !got.Expires.Equal(want.expires) || !got.Revoked.IsZero() {
			t.Errorf("entry %d = %+v, want %s %s expiring %v", i, got, want.role, want.name, want.expires)
		}
		if got.Last4 != want.tok[len(want.tok)-4:] || len(got.ID) != 12 || strings.Contains(want.tok, got.ID) {
			t.Errorf("entry %d: id %q last4 %q; want a 12-digit id that is not part of the token and its last 4", i, got.ID, got.Last4)
		}
		if time.Since(got.Created) > time.Minute {
			t.Errorf("entry %d created %v", i, got.Created)
		}
	}
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, []byte(op[3:len(op)-4])) {
		t.Error("the token file holds a token")
	}

	if _, _, err := running.Check(re); err != nil {
		t.Fatalf("researcher token before revocation: %v", err)
	}
	info, err := cli.Revoke(list[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Revoked.IsZero() || info.Name != "ben" {
		t.Errorf("Revoke returned %+v", info)
	}
	_, _, err = running.Check(re)
	if !errors.Is(err, api.ErrTokenRevoked) || !strings.Contains(err.Error(), list[1].ID) {
		t.Errorf("revoked token in the running store: %v, want ErrTokenRevoked naming %s", err, list[1].ID)
	}
	if role, _, err := running.Check(op); err != nil || role != api.RoleOperator {
		t.Errorf("the other token after a revocation: %q %v", role, err)
	}
	if _, err := cli.Revoke(list[1].ID); err == nil || !strings.Contains(err.Error(), "already revoked") {
		t.Errorf("second revocation: %v", err)
	}
	if _, err := cli.Revoke("000000000000"); err == nil || !strings.Contains(err.Error(), "token list") {
		t.Errorf("revoking an unknown id: %v", err)
	}
	after, _ := running.List()
	if after[1].Revoked.IsZero() || !after[0].Revoked.IsZero() {
		t.Errorf("List after revocation: %+v", after)
	}
}

// TestTokenExpires: a token refused once its expiry passes, with the
// reason; an expiry in the past is refused at creation.
func TestTokenExpires(t *testing.T) {
	ts, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.CreateExpiring(api.RoleOperator, "late", time.Now().Add(-time.Second)); err == nil {
		t.Fatal("a token that expired before it was made was created")
	}
	tok, err := ts.CreateExpiring(api.RoleOperator, "brief", time.Now().Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.Check(tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, _, err := ts.Check(tok); !errors.Is(err, api.ErrTokenExpired) || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("after expiry: %v, want ErrTokenExpired with the date", err)
	}
	if _, _, ok := ts.Lookup(tok); ok {
		t.Fatal("Lookup accepted an expired token")
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time // zero: an error
	}{
		{"90d", now.AddDate(0, 0, 90)},
		{"1d", now.AddDate(0, 0, 1)},
		{"12w", now.AddDate(0, 0, 84)},
		{"36h", now.Add(36 * time.Hour)},
		{"2025-12-31", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2025-06-01T08:00:00Z", time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)},
		{"2025-03-10", time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC)}, // today: until it ends
		{"2025-03-09", time.Time{}},                                  // past
		{"0d", time.Time{}},
		{"-5d", time.Time{}},
		{"-1h", time.Time{}},
		{"soon", time.Time{}},
		{"", time.Time{}},
		{"99999d", time.Time{}},
	}
	for _, tc := range tests {
		got, err := api.ParseExpiry(tc.in, now)
		switch {
		case tc.want.IsZero() && err == nil:
			t.Errorf("ParseExpiry(%q) = %v, want an error", tc.in, got)
		case !tc.want.IsZero() && (err != nil || !got.Equal(tc.want)):
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestRevokedAndExpiredTokensGet401 over HTTP: a running server answers a
// revoked token (revoked through another TokenStore on the same file, as
// the CLI does) and an expired one with 401 and the reason, at the next
// request.
func TestRevokedAndExpiredTokensGet401(t *testing.T) {
	fake, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), api.TokenFile)
	served, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: served, PublicReads: false,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxImportBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cli, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/catalog", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok, err := cli.Create(api.RoleResearcher, "reader")
	if err != nil {
		t.Fatal(err)
	}
	brief, err := cli.CreateExpiring(api.RoleResearcher, "brief", time.Now().Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(tok); code != http.StatusOK {
		t.Fatalf("valid token: %d %s", code, body)
	}
	if code, body := get(brief); code != http.StatusOK {
		t.Fatalf("token before its expiry: %d %s", code, body)
	}
	list, err := cli.List()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(list[0].ID); err != nil {
		t.Fatal(err)
	}
	if code, body := get(tok); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("revoked token: %d %s, want 401 saying revoked", code, body)
	}
	time.Sleep(400 * time.Millisecond)
	if code, body := get(brief); code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("expired token: %d %s, want 401 saying expired", code, body)
	}
}
