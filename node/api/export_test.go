package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// exportServer serves backend's API with the export cache in cacheDir
// ("" for none), as a node (restarted) would.
func exportServer(t *testing.T, backend api.Backend, cacheDir string) *httptest.Server {
	t.Helper()
	tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: backend, Tokens: tokens, PublicReads: true, CacheDir: cacheDir,
		UI: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func getExport(t *testing.T, ts *httptest.Server) (*http.Response, []byte) {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s, %v: %.300s", resp.Status, err, body)
	}
	return resp, body
}

// wantExport is the old renderer's export of what backend holds now.
func wantExport(t *testing.T, backend api.Backend) ([]byte, uint64) {
	t.Helper()
	entries, idx, err := backend.Releases(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	return api.OracleExportCSV(entries), idx
}

// TestExportMatchesOldRenderer: streamed (no cache directory) and from the
// cache, first build and again, the export is byte for byte what the old
// whole-ledger renderer made of a fixture ledger, with the same headers.
func TestExportMatchesOldRenderer(t *testing.T) {
	fake, err := apitest.New(apitest.Options{FromYear: 2023, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	want, idx := wantExport(t, fake)
	if bytes.Count(want, []byte("\n")) < 1000 {
		t.Fatalf("fixture too small: %d rows", bytes.Count(want, []byte("\n")))
	}
	for _, tc := range []struct {
		name     string
		cacheDir string
	}{{"streamed", ""}, {"cached", t.TempDir()}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := exportServer(t, fake, tc.cacheDir)
			for range 2 {
				resp, body := getExport(t, ts)
				if !bytes.Equal(body, want) {
					t.Fatalf("export (%d bytes) differs from the old renderer's (%d bytes)", len(body), len(want))
				}
				for h, v := range map[string]string{
					"Content-Type":        "text/csv; charset=utf-8",
					"Content-Disposition": `attachment; filename="roundtable-` + strconv.FormatUint(idx, 10) + `.csv"`,
					"Cache-Control":       "no-store",
				} {
					if got := resp.Header.Get(h); got != v {
						t.Errorf("%s: %q, want %q", h, got, v)
					}
				}
			}
		})
	}
}

// TestExportCacheAppends: after new releases the cache file is extended,
// not rewritten, and serves the old renderer's bytes for the grown ledger.
func TestExportCacheAppends(t *testing.T) {
	fake, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ts := exportServer(t, fake, dir)
	_, first := getExport(t, ts)
	before, err := os.Stat(filepath.Join(dir, "export.csv"))
	if err != nil {
		t.Fatal(err)
	}
	n0 := cacheState(t, dir).Leaves
	for q := 1; q <= 3; q++ {
		if _, err := fake.Publish(t.Context(), aggregate.Period{Year: 2025, Quarter: q}, nil, 100_000, ""); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := wantExport(t, fake)
	_, body := getExport(t, ts)
	if !bytes.Equal(body, want) {
		t.Fatalf("export after 3 releases (%d bytes) differs from the old renderer's (%d bytes)", len(body), len(want))
	}
	if !bytes.HasPrefix(body, first) || len(body) == len(first) {
		t.Errorf("the grown export does not extend the first one")
	}
	after, err := os.Stat(filepath.Join(dir, "export.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the cache file was replaced, not appended to")
	}
	if st := cacheState(t, dir); st.Leaves != n0+3 || st.Bytes != int64(len(body)) {
		t.Errorf("export.json says %d leaves, %d bytes; want %d, %d", st.Leaves, st.Bytes, n0+3, len(body))
	}
}

type exportState struct {
	Format     int    `json:"format"`
	Consortium string `json:"consortium"`
	Leaves     int64  `json:"leaves"`
	Bytes      int64  `json:"bytes"`
	LastLeaf   string `json:"last_leaf_sha256"`
}

func cacheState(t *testing.T, dir string) exportState {
	t.Helper()
	var st exportState
	data, err := os.ReadFile(filepath.Join(dir, "export.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// consortiumOf makes a fake report another consortium id.
type consortiumOf struct {
	*apitest.Fake
	id string
}

func (c consortiumOf) Health(ctx context.Context) api.Health {
	h := c.Fake.Health(ctx)
	h.ConsortiumID = c.id
	return h
}

// TestExportCacheRecovers: a cache a crash or an operator left in any
// state (an append cut short, a stale or missing export.json, rows cut
// mid-way, another consortium's or another ledger's rows) is detected on
// the next start; the export served is the old renderer's bytes for the
// ledger the node holds.
func TestExportCacheRecovers(t *testing.T) {
	newFake := func(t *testing.T, seed uint64, empty bool) *apitest.Fake {
		f, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024, Seed: seed, NoReleases: empty})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	csvPath := func(dir string) string { return filepath.Join(dir, "export.csv") }
	statePath := func(dir string) string { return filepath.Join(dir, "export.json") }
	writeState := func(t *testing.T, dir string, edit func(*exportState)) {
		st := cacheState(t, dir)
		edit(&st)
		data, _ := json.Marshal(st)
		if err := os.WriteFile(statePath(dir), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		rebuilt bool // a new file, rather than the old one cut and extended
		// damage acts on a cache built over built, then the node restarts
		// over serve (nil: built).
		damage func(t *testing.T, dir string, built *apitest.Fake) (serve api.Backend)
	}{
		{"intact", false, func(t *testing.T, dir string, built *apitest.Fake) api.Backend { return nil }},
		{"append cut short: stale export.json, a torn row after it", false, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			old, err := os.ReadFile(statePath(dir))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := built.Publish(t.Context(), aggregate.Period{Year: 2025, Quarter: 1}, nil, 100_000, ""); err != nil {
				t.Fatal(err)
			}
			getExport(t, exportServer(t, built, dir)) // appends and commits
			if err := os.WriteFile(statePath(dir), old, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(csvPath(dir), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("RS,2025-Q2,victims,,,17,1"); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"rows cut mid-way (file shorter than committed)", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			st := cacheState(t, dir)
			if err := os.Truncate(csvPath(dir), st.Bytes-100); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"export.json missing", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			if err := os.Remove(statePath(dir)); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"export.csv missing", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			if err := os.Remove(csvPath(dir)); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"export.json garbage", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			if err := os.WriteFile(statePath(dir), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"older format", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			writeState(t, dir, func(st *exportState) { st.Format = 0 })
			return nil
		}},
		{"committed length not at a row's end", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			writeState(t, dir, func(st *exportState) { st.Bytes -= 3 })
			return nil
		}},
		{"another consortium", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			return consortiumOf{built, "another"}
		}},
		{"another ledger, as long", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			return newFake(t, 99, false)
		}},
		{"a shorter ledger", true, func(t *testing.T, dir string, built *apitest.Fake) api.Backend {
			f := newFake(t, 1, true)
			if _, err := f.Publish(t.Context(), aggregate.Period{Year: 2024, Quarter: 1}, nil, 100_000, ""); err != nil {
				t.Fatal(err)
			}
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			built := newFake(t, 1, false)
			dir := t.TempDir()
			getExport(t, exportServer(t, built, dir))
			serve := tc.damage(t, dir, built)
			if serve == nil {
				serve = built
			}
			before, _ := os.Stat(csvPath(dir))
			want, _ := wantExport(t, serve)
			ts := exportServer(t, serve, dir) // the node restarts
			for i := range 2 {
				if _, body := getExport(t, ts); !bytes.Equal(body, want) {
					t.Fatalf("export %d (%d bytes) differs from the old renderer's (%d bytes)", i+1, len(body), len(want))
				}
			}
			if fi, err := os.Stat(csvPath(dir)); err != nil || fi.Size() != int64(len(want)) || cacheState(t, dir).Bytes != int64(len(want)) {
				t.Errorf("cache file %v (%v), want %d bytes committed", fi.Size(), err, len(want))
			}
			after, err := os.Stat(csvPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			if rebuilt := before == nil || !os.SameFile(before, after); rebuilt != tc.rebuilt {
				t.Errorf("cache rebuilt: %v, want %v", rebuilt, tc.rebuilt)
			}
			if st := cacheState(t, dir); st.Consortium != serve.Health(t.Context()).ConsortiumID {
				t.Errorf("cache of consortium %q, the ledger's is %q", st.Consortium, serve.Health(t.Context()).ConsortiumID)
			}
		})
	}
}

// TestExportConcurrent: exports read while releases are published are
// each the old renderer's export of a prefix of the ledger, never a torn
// row, and name the applied index they hold.
func TestExportConcurrent(t *testing.T) {
	fake, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	ts := exportServer(t, fake, t.TempDir())
	const readers, publishes = 4, 6
	bodies := make(chan [2]string, readers*publishes)
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for range publishes {
				resp, body := getExport(t, ts)
				bodies <- [2]string{resp.Header.Get("Content-Disposition"), string(body)}
			}
		})
	}
	for q := range publishes {
		if _, err := fake.Publish(t.Context(), aggregate.Period{Year: 2026 + q/4, Quarter: q%4 + 1}, nil, 100_000, ""); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(bodies)
	entries, _, err := fake.Releases(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // body → its Content-Disposition
	for k := len(entries) - publishes; k <= len(entries); k++ {
		idx := fake.AppliedIndex() - 2*uint64(len(entries)-k) // the fake applies two commands per release
		want[string(api.OracleExportCSV(entries[:k]))] = fmt.Sprintf(`attachment; filename="roundtable-%d.csv"`, idx)
	}
	for got := range bodies {
		disp, ok := want[got[1]]
		if !ok {
			t.Fatalf("an export (%d bytes) is no prefix of the ledger", len(got[1]))
		}
		if disp != got[0] {
			t.Errorf("export of %s named %s", disp, got[0])
		}
	}
}

// swappable is a backend whose ledger can be replaced under a running
// server.
type swappable struct {
	mu sync.Mutex
	*apitest.Fake
}

func (s *swappable) use(f *apitest.Fake) { s.mu.Lock(); s.Fake = f; s.mu.Unlock() }
func (s *swappable) fake() *apitest.Fake { s.mu.Lock(); defer s.mu.Unlock(); return s.Fake }
func (s *swappable) ReleasePage(ctx context.Context, c bool, q api.PageQuery) (api.ReleasePage, error) {
	return s.fake().ReleasePage(ctx, c, q)
}

// TestExportCacheLedgerShrinks: a ledger with fewer leaves than the cache
// under a running server (replaced by a restore, say) gets its own export,
// not the cache's rows.
func TestExportCacheLedgerShrinks(t *testing.T) {
	long, err := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	short, err := apitest.New(apitest.Options{NoReleases: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := short.Publish(t.Context(), aggregate.Period{Year: 2024, Quarter: 1}, nil, 100_000, ""); err != nil {
		t.Fatal(err)
	}
	sw := &swappable{Fake: long}
	ts := exportServer(t, sw, t.TempDir())
	getExport(t, ts)
	sw.use(short)
	want, _ := wantExport(t, short)
	if _, body := getExport(t, ts); !bytes.Equal(body, want) {
		t.Fatalf("export of the shorter ledger (%d bytes) differs from the old renderer's (%d bytes)", len(body), len(want))
	}
}
