package verify

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

func header() []string { return api.ExportColumns() }

// TestExportContract runs the real /v1/export.csv handler (over
// apitest.Fake) and checks its output row by row against the releases it
// came from, so a change of export format breaks this test rather than
// researchers' verifications.
func TestExportContract(t *testing.T) {
	f, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: f, Tokens: ts, PublicReads: true, UI: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	resp, err := http.Get(hs.URL + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s, %v", resp.Status, err)
	}
	entries, _, err := f.Releases(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	var rels []bundleRelease
	for _, e := range entries {
		rels = append(rels, bundleRelease{Signed: e.Signed, Leaf: e.Leaf})
	}
	ok, errs := checkExport(strings.NewReader(string(body)), "export.csv", rels)
	if len(errs) > 0 {
		t.Fatalf("real export does not check: %v", errs)
	}
	if want := strings.Count(string(body), "\n") - 1; ok != want || ok == 0 {
		t.Errorf("%d rows matched, export has %d", ok, want)
	}
}
