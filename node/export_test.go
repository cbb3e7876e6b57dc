package node

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"roundtable/node/api"
)

// TestNodeExportCache: a node keeps its export in DataDir/cache, extends
// it after a release, keeps it across a restart (the consortium and the
// last leaf check out), and serves what a server with no cache streams
// from the same ledger.
func TestNodeExportCache(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "BA")
	streamed := func(n *Node) []byte {
		srv, err := api.New(api.Config{Backend: (*backend)(n), Tokens: n.Tokens(), PublicReads: true,
			UI: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		return download(t, ts.URL)
	}
	dir := filepath.Join(r.cfgs[0].DataDir, CacheDir)
	check := func(n *Node, leaves int64) os.FileInfo {
		t.Helper()
		got, want := download(t, n.HTTPURL()), streamed(n)
		if !bytes.Equal(got, want) || bytes.Count(got, []byte("\n")) < 100 {
			t.Fatalf("the node's export (%d bytes) differs from the streamed one (%d bytes)", len(got), len(want))
		}
		var st struct{ Leaves, Bytes int64 }
		data, err := os.ReadFile(filepath.Join(dir, "export.json"))
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil || st.Leaves != leaves || st.Bytes != int64(len(got)) {
			t.Fatalf("export.json %+v (%v); want %d leaves, %d bytes", st, err, leaves, len(got))
		}
		fi, err := os.Stat(filepath.Join(dir, "export.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	for _, p := range []string{"2024-Q1", "2024-Q2"} {
		if _, err := r.nodes[0].Publish(ctx, mustPeriod(t, p), nil, 500_000); err != nil {
			t.Fatal(err)
		}
	}
	first := check(r.nodes[0], 2)
	if _, err := r.nodes[0].Publish(ctx, mustPeriod(t, "2024-Q3"), nil, 500_000); err != nil {
		t.Fatal(err)
	}
	if fi := check(r.nodes[0], 3); !os.SameFile(first, fi) {
		t.Error("the cache was rebuilt after a release, not extended")
	}
	n := r.restart(0)
	if fi := check(n, 3); !os.SameFile(first, fi) {
		t.Error("the cache was rebuilt after a restart")
	}
}

func download(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s, %v: %.300s", resp.Status, err, body)
	}
	return body
}
