package verify

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The tests in this file kill mutants of bundle.go that `make mutate`
// found alive (docs/testing.md).

// TestGenesisBundleWithoutGovernance: a bundle made with --genesis from a
// ledger with no governance statements yet verifies offline, pinned by
// --consortium, and its report does not call the genesis unpinned.
func TestGenesisBundleWithoutGovernance(t *testing.T) {
	hl, cp := honestLedger(t)
	_, url := startNode(t, hl, cp)
	path := filepath.Join(t.TempDir(), "bundle.json")
	if _, err := Bundle(context.Background(), genesisOpts(t, url), path); err != nil {
		t.Fatal(err)
	}
	rep, err := Offline(OfflineOptions{Bundle: path, Consortium: fixtureConsortium})
	if err != nil || rep.Verified != 8 || rep.Consortium != fixtureConsortium {
		t.Fatalf("offline with --consortium: %v %+v", err, rep)
	}
	if strings.Contains(rep.KeySource, "compare that id") {
		t.Errorf("key source %q asks to compare an id the caller pinned", rep.KeySource)
	}
}

// TestOfflineExportErrorCap: an export whose every row is wrong gives
// exactly maxExportErrors row errors and one saying the check stopped.
func TestOfflineExportErrorCap(t *testing.T) {
	bundlePath, csvPath, _ := bundled(t)
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows)-1 <= maxExportErrors {
		t.Fatalf("the fixture export has %d rows, want more than %d", len(rows)-1, maxExportErrors)
	}
	for _, r := range rows[1:] {
		v, err := strconv.ParseFloat(r[colEstimate], 64)
		if err != nil {
			t.Fatalf("estimate %q: %v", r[colEstimate], err)
		}
		r[colEstimate] = fmt.Sprint(v + 1)
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csvPath, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Offline(OfflineOptions{Bundle: bundlePath, Export: csvPath})
	if !errors.Is(err, ErrExport) {
		t.Fatalf("error %v, want %v", err, ErrExport)
	}
	if len(rep.Failures) != maxExportErrors+1 || !strings.Contains(rep.Failures[maxExportErrors], fmt.Sprintf("stopped after %d bad rows", maxExportErrors)) {
		t.Errorf("%d failures, the last %q; want %d row errors and a stop", len(rep.Failures), rep.Failures[len(rep.Failures)-1], maxExportErrors)
	}
}
