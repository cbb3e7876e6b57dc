package verify

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bundled runs Bundle against a good node and also downloads its export.
func bundled(t *testing.T) (bundlePath, csvPath string, l *ledger) {
	t.Helper()
	_, url, l := goodNode(t)
	dir := t.TempDir()
	bundlePath = filepath.Join(dir, "bundle.json")
	rep, err := Bundle(context.Background(), opts(t, url), bundlePath)
	if err != nil {
		t.Fatalf("Bundle: %v", err)
	}
	if rep.Bundle != bundlePath || rep.Verified != 8 {
		t.Fatalf("bundle report: %+v", rep)
	}
	resp, err := http.Get(url + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	csvPath = filepath.Join(dir, "export.csv")
	if err := os.WriteFile(csvPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return bundlePath, csvPath, l
}

func TestOfflineRoundTrip(t *testing.T) {
	bundlePath, csvPath, l := bundled(t)
	rep, err := Offline(OfflineOptions{Bundle: bundlePath, Export: csvPath})
	if err != nil {
		t.Fatalf("Offline: %v", err)
	}
	// 10 releases × (2 cells + 1 quantile).
	if rep.Verified != 8 || rep.Pending != 2 || rep.ExportRows != 30 || !strings.Contains(rep.KeySource, "from the bundle itself") {
		t.Errorf("offline report: verified %d pending %d rows %d keys %q", rep.Verified, rep.Pending, rep.ExportRows, rep.KeySource)
	}
	own := Keys{}
	for p, k := range l.keys {
		own[p] = k.Public().(ed25519.PublicKey)
	}
	if rep, err := Offline(OfflineOptions{Bundle: bundlePath, Keys: own}); err != nil || rep.KeySource != "given by the caller" {
		t.Errorf("offline with own keys: %q, %v", rep.KeySource, err)
	}
	// A wrong key for a partner that did not sign the checkpoint fails
	// that partner's release; for a signer, its signature stops counting.
	own["MK"] = partnerKey("MK", "other").Public().(ed25519.PublicKey)
	if _, err := Offline(OfflineOptions{Bundle: bundlePath, Keys: own}); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "partner MK") {
		t.Errorf("offline with a wrong MK key: %v, want %v", err, ErrSignature)
	}
	own["RS"] = partnerKey("RS", "other").Public().(ed25519.PublicKey)
	if _, err := Offline(OfflineOptions{Bundle: bundlePath, Keys: own}); !errors.Is(err, ErrNotRegional) {
		t.Errorf("offline with a wrong RS key: %v, want %v", err, ErrNotRegional)
	}
}

func TestOfflineTamperedBundle(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(m map[string]any)
		want   error
		naming string
	}{
		{"cell value", func(m map[string]any) {
			cell := dig(m, "releases", 3, "signed", "release", "indicators", 0, "cells", 1).(map[string]any)
			cell["value"] = cell["value"].(float64) + 1
		}, ErrSignature, "leaf 3"},
		// A whole-ledger bundle carries no proofs: the checkpoint's root is
		// recomputed from its leaves, so two releases swapping places (each
		// still validly signed) no longer hash to it.
		{"leaf order", func(m map[string]any) {
			a, b := dig(m, "releases", 1).(map[string]any), dig(m, "releases", 2).(map[string]any)
			a["signed"], b["signed"] = b["signed"], a["signed"]
		}, ErrInclusion, "hash to root"},
		{"checkpoint note", func(m map[string]any) {
			cp := m["checkpoint"].(map[string]any)
			cp["note"] = strings.Replace(cp["note"].(string), "\n8\n", "\n7\n", 1)
		}, ErrCheckpoint, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundlePath, _, _ := bundled(t)
			var m map[string]any
			b, _ := os.ReadFile(bundlePath)
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, _ = json.Marshal(m)
			if err := os.WriteFile(bundlePath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Offline(OfflineOptions{Bundle: bundlePath})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %v, want %v naming %q", err, tc.want, tc.naming)
			}
		})
	}
}

func TestOfflineCSVRowAltered(t *testing.T) {
	cases := []struct {
		name      string
		from, to  string
		line      string
		mentioned string
	}{
		{"estimate", ",identified|female,100,", ",identified|female,101,", "line 2", "estimate is \"101\""},
		{"interval", "94.00853545289202", "94.1", "line 2", "ci_low"},
		{"quantile", ",rank,0.5,27.25,", ",rank,0.5,28,", "line 4", "estimate is \"28\""},
		{"epsilon", ",laplace,2,0.5,", ",laplace,2,0.05,", "line 2", "epsilon"},
		{"rho", ",laplace,2,0.5,0,", ",laplace,2,0.5,0.5,", "line 2", "rho"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundlePath, csvPath, _ := bundled(t)
			b, _ := os.ReadFile(csvPath)
			if !strings.Contains(string(b), tc.from) {
				t.Fatalf("fixture export lacks %q:\n%s", tc.from, b)
			}
			altered := strings.Replace(string(b), tc.from, tc.to, 1)
			if err := os.WriteFile(csvPath, []byte(altered), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Offline(OfflineOptions{Bundle: bundlePath, Export: csvPath})
			if !errors.Is(err, ErrExport) {
				t.Fatalf("error %v, want %v", err, ErrExport)
			}
			for _, want := range []string{"export.csv " + tc.line, tc.mentioned} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q: %v", want, err)
				}
			}
			if rep.ExportRows != 29 || len(rep.Failures) != 1 {
				t.Errorf("rows ok %d, failures %v", rep.ExportRows, rep.Failures)
			}
		})
	}
}

func TestOfflineCSVMalformed(t *testing.T) {
	bundlePath, csvPath, _ := bundled(t)
	for name, body := range map[string]string{
		"header":          "partner,period\n",
		"unknown release": strings.Join(header(), ",") + "\nRS,2024-Q1,victims,sex,female,1,0,2,laplace,1,0.5," + strings.Repeat("0", 64) + ",0\n",
	} {
		if err := os.WriteFile(csvPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Offline(OfflineOptions{Bundle: bundlePath, Export: csvPath}); !errors.Is(err, ErrExport) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOfflineBadBundleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.json")
	for _, body := range []string{"{", `{"format":"other"}`} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Offline(OfflineOptions{Bundle: path}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("bundle %q: %v", body, err)
		}
	}
}

// dig walks decoded JSON by keys and indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}
