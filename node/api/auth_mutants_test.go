package api_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"roundtable/node/api"
)

// The tests in this file kill mutants of the token checks that `make
// mutate` found alive (docs/testing.md).

// TestRevocationSeenWhenFileRewrittenInPlace: the store re-reads its file
// when any of inode, modification time or size changed. A file rewritten in
// place (same inode) whose modification time was put back still differs in
// size, and the revocation it carries must be seen at the next check.
func TestRevocationSeenWhenFileRewrittenInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), api.TokenFile)
	running, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := running.Create(api.RoleOperator, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := running.Check(tok); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Revoke through another store, then copy its file over the running
	// store's inode and restore the old modification time.
	other := filepath.Join(t.TempDir(), api.TokenFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	cli, err := api.OpenTokenStore(other)
	if err != nil {
		t.Fatal(err)
	}
	list, err := cli.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %v, %v", list, err)
	}
	if _, err := cli.Revoke(list[0].ID); err != nil {
		t.Fatal(err)
	}
	revoked, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, revoked, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) || after.Size() == before.Size() {
		t.Fatalf("setup: want the same inode and time with another size (size %d → %d)", before.Size(), after.Size())
	}
	if _, _, err := running.Check(tok); !errors.Is(err, api.ErrTokenRevoked) {
		t.Fatalf("Check after an in-place revocation: %v, want ErrTokenRevoked", err)
	}
}

// TestParseExpiryLimits: a count of days or weeks is accepted up to 3660
// (ten years of days) and refused above.
func TestParseExpiryLimits(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"3660d": now.AddDate(0, 0, 3660),
		"1d":    now.AddDate(0, 0, 1),
		"3660w": now.AddDate(0, 0, 7*3660),
	} {
		got, err := api.ParseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"3661d", "0d", "-1d", "3661w", "", "soon"} {
		if got, err := api.ParseExpiry(in, now); err == nil {
			t.Errorf("ParseExpiry(%q) = %v, want an error", in, got)
		}
	}
}
