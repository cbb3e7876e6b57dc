package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hashicorp/raft"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/store"
	"roundtable/node/verify"
	"roundtable/node/web/webtest"
	"roundtable/privacy"
)

// scaleReleases is the ledger the scale benchmarks read: years of
// whole-catalog releases (issue 10, item 5). ROUNDTABLE_SCALE_RELEASES
// overrides it for a quicker look.
func scaleReleases() int {
	if n, err := strconv.Atoi(os.Getenv("ROUNDTABLE_SCALE_RELEASES")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkLedgerScale serves a ledger of 100,000 whole-catalog releases
// (every indicator of catalog v1, about 28 KB each) from a real node and
// measures what issue 10 item 5 asks of it:
//
//   - list-page: GET /v1/releases?after=LEAF (a default page of 100) at
//     random cursors over loopback, body read in full: p50 and p99 (target
//     p99 < 20 ms);
//   - peak-RSS-MB: the process's peak resident size while serving those
//     pages (the high-water mark is reset first; target < 1 GB). It counts
//     the ledger file's pages the reads touched (bbolt maps the file) and
//     the benchmark's own client;
//   - series-view-built-s: from the node's start of serving to its first
//     /v1/series answer (the series view is built by one pass over the
//     ledger when the node starts), with the node's peak anonymous RSS;
//   - verify-s: `roundtable verify` of the whole ledger (Run, trust on
//     first use) paging through it, in a process of its own (target
//     < 60 s), with that process's peak RSS (verify-peak-RSS-MB) and CPU
//     time (verify-cpu-s);
//   - dashboard-ledger-ms and dashboard-ready-ms: Chromium loads the
//     dashboard; the first is when the ledger list's first page is shown
//     and checked in the browser, the second when every section has
//     rendered (target: first render < 2 s); series-first-ms, the first
//     /v1/series answer while the node builds its series view, and the
//     warm reload, peak RSS and series queries (see dashboard).
//
// The ledger is built once per run straight through the state machine
// (FSM.ApplyBatch, as raft would hand it the commands, into the file the
// node's ledger opens: DataDir/ledger/ledger) with releases from
// the real builder, then a node is opened over it; building takes minutes
// and is not timed.
//
// ROUNDTABLE_SCALE_DIR=/path keeps the built node in /path/releases-N
// (N the ledger's size) and reuses it on later runs: a directory is used
// only if the build finished (it holds the marker file "complete", written
// last); an unfinished one is removed and built again. The node then opens
// the same data dir each run, as a restarted node would. Without it the
// ledger is built in a temporary directory and removed afterwards.
//
//	go test -run '^$' -bench LedgerScale -benchtime 1x -timeout 60m ./node
//	ROUNDTABLE_SCALE_DIR=$HOME/.cache/roundtable-scale go test -run '^$' -bench 'LedgerScale/verify' -benchtime 1x -timeout 120m ./node
func BenchmarkLedgerScale(b *testing.B) {
	n := scaleReleases()
	dir, cfg := buildScaleNode(b, n)
	ctx := context.Background()
	node, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	served := time.Now() // Serve starts building the series view
	wg.Go(func() { _ = node.Serve(srvCtx) })
	defer func() { stop(); wg.Wait(); _ = node.Close() }()
	base := "http://" + node.HTTPAddr()
	waitServing(b, base, n)
	b.Logf("node over %s serving %d releases", dir, n)

	// Sub-benchmarks, so each figure is printed as soon as it is measured.
	// The first waits for the series view the node builds when it starts,
	// so the others measure a node in its steady state; run on its own, a
	// later one shares the machine with that build.
	for _, sub := range []struct {
		name string
		run  func(b *testing.B)
	}{
		{"series-view", func(b *testing.B) { seriesViewBuilt(b, base, served) }},
		{"list", func(b *testing.B) { listPages(b, base, n) }},
		{"verify", func(b *testing.B) { verifyAll(b, base, n) }},
		{"export", func(b *testing.B) { exportDownload(b, base, n) }},
		{"dashboard", func(b *testing.B) { dashboard(b, base, n) }},
	} {
		b.Run(sub.name, func(b *testing.B) {
			for range b.N {
				sub.run(b)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// exportDownload downloads GET /v1/export.csv in full twice: the first
// builds the node's export cache (DataDir/cache/export.csv) from the
// ledger, the second is served from it. Each reports its seconds, the
// process's peak RSS while it ran (target < 1 GB) and its peak anonymous
// RSS. The first counts the ledger file's pages bbolt maps as the export
// reads them all, about the ledger's size; they stay resident, so the
// second, which reads none, starts from there.
func exportDownload(b *testing.B, base string, n int) {
	var size int64
	for _, run := range []string{"first", "cached"} {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS(b)
		anonPeak := sampleAnonRSS(b)
		t0 := time.Now()
		resp, err := http.Get(base + "/v1/export.csv")
		if err != nil {
			b.Fatal(err)
		}
		cw := &rowCounter{}
		k, err := io.Copy(cw, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("export: %d, %v", resp.StatusCode, err)
		}
		if cw.rows <= int64(n) || size != 0 && k != size {
			b.Fatalf("export (%s): %d bytes, %d rows; first %d bytes", run, k, cw.rows, size)
		}
		size = k
		b.ReportMetric(time.Since(t0).Seconds(), "export-"+run+"-s")
		peak, _ := rss(b)
		b.ReportMetric(peak, "export-"+run+"-peak-RSS-MB")
		b.ReportMetric(anonPeak(), "export-"+run+"-peak-anon-MB")
		if run == "first" {
			b.ReportMetric(float64(k)/1e6, "export-MB")
			b.ReportMetric(float64(cw.rows-1)/1e6, "export-Mrows")
		}
	}
}

// sampleAnonRSS samples the process's anonymous resident size (its heap
// and stacks, not the ledger file's pages that bbolt maps) every 100 ms
// until the returned function is called, which returns the largest, in MB.
func sampleAnonRSS(b *testing.B) func() float64 {
	var peak float64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			_, anon := rss(b)
			peak = max(peak, anon)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 { close(done); <-stopped; return peak }
}

// rowCounter counts the lines written to it.
type rowCounter struct{ rows int64 }

func (c *rowCounter) Write(p []byte) (int, error) {
	c.rows += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// listPages measures pages of the listing at random cursors and the
// process's peak RSS while serving them.
func listPages(b *testing.B, base string, n int) {
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS(b)
	const pages = 300
	r := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, pages)
	var bytes int64
	client := &http.Client{}
	for i := range pages {
		path := "/v1/releases"
		if i > 0 {
			path += "?after=" + strconv.Itoa(r.IntN(n))
		}
		t0 := time.Now()
		resp, err := client.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %d, %v", path, resp.StatusCode, err)
		}
		lat = append(lat, time.Since(t0))
		bytes += k
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "list-page-p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "list-page-p99-ms")
	b.ReportMetric(float64(bytes)/pages/1e6, "list-page-MB")
	hwm, anon := rss(b)
	b.ReportMetric(hwm, "peak-RSS-MB")
	b.ReportMetric(anon, "anon-RSS-MB")
}

// verifyAll runs the researcher's verifier over the whole ledger in a
// child process (TestScaleVerifyChild, the test binary run again), as a
// researcher runs `roundtable verify` on a machine of their own, so its
// memory is measured apart from the node's: the node's reads map the
// ledger file, which once every release is read is about the file's size
// of resident pages (3.1 GB at 100,000). It reports the child's time for
// Run (verify-s), its peak RSS (verify-peak-RSS-MB, VmHWM) and its CPU
// time (verify-cpu-s, which moves much less than wall-clock time on a
// shared machine). Before the verifier streamed, it ran in this process
// and its figure was the whole process's.
func verifyAll(b *testing.B, base string, n int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleVerifyChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), verifyChildEnv+"="+base)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("verify in a child process: %v\n%s", err, out)
	}
	var res verifyChildResult
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &res) == nil {
			break
		}
	}
	if res.Err != "" {
		b.Fatalf("verify: %s", res.Err)
	}
	if res.Releases != n || res.Verified+res.Pending != n || res.Failed != 0 {
		b.Fatalf("verify: %d releases, %d verified, %d pending, %d failed; want %d (child said %q)", res.Releases, res.Verified, res.Pending, res.Failed, n, out)
	}
	b.ReportMetric(res.Seconds, "verify-s")
	b.ReportMetric(res.PeakRSSMB, "verify-peak-RSS-MB")
	b.ReportMetric(res.CPUSeconds, "verify-cpu-s")
}

// verifyChildEnv passes the node's URL to TestScaleVerifyChild.
const verifyChildEnv = "ROUNDTABLE_SCALE_VERIFY_SERVER"

// verifyChildResult is what TestScaleVerifyChild prints, one JSON line.
type verifyChildResult struct {
	Seconds, CPUSeconds, PeakRSSMB      float64
	Releases, Verified, Pending, Failed int
	Err                                 string
}

// TestScaleVerifyChild is the verifier's side of BenchmarkLedgerScale's
// verify: it runs only when verifyAll starts it, with the node's URL.
func TestScaleVerifyChild(t *testing.T) {
	base := os.Getenv(verifyChildEnv)
	if base == "" {
		t.Skip("run by BenchmarkLedgerScale/verify in a child process")
	}
	t0, cpu0 := time.Now(), processCPU(t)
	rep, err := verify.Run(context.Background(), verify.Options{Server: base, StateFile: filepath.Join(t.TempDir(), "state.json"), TOFU: true})
	res := verifyChildResult{Seconds: time.Since(t0).Seconds(), CPUSeconds: (processCPU(t) - cpu0).Seconds(),
		Releases: rep.Releases, Verified: rep.Verified, Pending: rep.Pending, Failed: rep.Failed}
	if err != nil {
		res.Err = err.Error()
	}
	res.PeakRSSMB, _ = rss(t)
	line, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s\n", line)
}

// seriesViewBuilt waits for the series view the node began to build when
// it started serving (its first /v1/series answer) and reports the time
// since then and the node's peak anonymous RSS meanwhile.
func seriesViewBuilt(b *testing.B, base string, served time.Time) {
	anonPeak := sampleAnonRSS(b)
	client := &http.Client{Timeout: 15 * time.Minute}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		resp, err := client.Get(base + "/v1/series?indicator=victims&rollup=region&ids=false")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		// A wait longer than the server's write timeout ends in an error;
		// the build goes on.
		if time.Now().After(deadline) {
			b.Fatalf("the series view was not built in 15 minutes: %v", err)
		}
	}
	b.ReportMetric(time.Since(served).Seconds(), "series-view-built-s")
	b.ReportMetric(anonPeak(), "series-view-peak-anon-RSS-MB")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Logf("getrusage: %v", err)
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dashboard loads the dashboard in Chromium and times its first render:
// the ledger list's first page, checked in the browser, and the whole page.
// The node starts building its series view when it starts serving; run
// alone (-bench LedgerScale/dashboard) the build has only just begun, so
// the page's charts wait for it (a cold start). series-first-ms is a
// /v1/series request sent beside the browser's (it waits for the same
// single build, then answers); dashboard-peak-RSS-MB is the process's peak
// while all of it ran (the node and this benchmark's client; Chromium is
// another process). The page is then loaded again in a new browser:
// dashboard-warm-ready-ms is the first render of a node whose view is
// built, as every later visitor sees it.
func dashboard(b *testing.B, base string, n int) {
	if webtest.ChromiumPath() == "" {
		b.Log("no Chromium: dashboard figures skipped")
		return
	}
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS(b)
	anonPeak := sampleAnonRSS(b)
	br := webtest.NewBrowser(b)
	t0 := time.Now()
	type answer struct {
		took  time.Duration
		bytes int64
	}
	series := make(chan answer, 1)
	go func() {
		defer close(series)
		resp, err := http.Get(base + "/v1/series?indicator=victims&rollup=region")
		if err != nil {
			b.Errorf("series: %v", err)
			return
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Errorf("series: %d, %v", resp.StatusCode, err)
			return
		}
		series <- answer{time.Since(t0), k}
	}()
	if err := chromedp.Do(br.Ctx, chromedp.Navigate(base+"/")); err != nil {
		b.Fatal(err)
	}
	webtest.WaitFor(b, br, "ledger rows checked", `document.querySelectorAll('[data-testid=sig].ok').length > 0`, 5*time.Minute)
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "dashboard-ledger-ms")
	webtest.WaitFor(b, br, "dashboard ready", `document.body.dataset.ready === "true"`, 10*time.Minute)
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "dashboard-ready-ms")
	if a, ok := <-series; ok {
		b.ReportMetric(float64(a.took.Milliseconds()), "series-first-ms")
		b.ReportMetric(float64(a.bytes)/1e6, "series-first-MB")
	}
	peak, _ := rss(b)
	b.ReportMetric(peak, "dashboard-peak-RSS-MB")
	b.ReportMetric(anonPeak(), "dashboard-peak-anon-RSS-MB")
	warm := webtest.NewBrowser(b)
	t1 := time.Now()
	if err := chromedp.Do(warm.Ctx, chromedp.Navigate(base+"/")); err != nil {
		b.Fatal(err)
	}
	webtest.WaitFor(b, warm, "dashboard ready (warm)", `document.body.dataset.ready === "true"`, 10*time.Minute)
	b.ReportMetric(float64(time.Since(t1).Milliseconds()), "dashboard-warm-ready-ms")
	seriesQueries(b, base)
}

// seriesQueries times the dashboard's and the brief's kinds of /v1/series
// query on the built view, each asked once (a new query string: the
// answer is computed, not served from the answer cache).
func seriesQueries(b *testing.B, base string) {
	queries := []string{
		"indicator=victims&by=sex&rollup=region",
		"indicator=victims&rollup=year",
		"indicator=victims&rollup=year%2Cregion&pool=3",
		"indicator=corridors&by=citizenship_group%2Cexploitation_country_group&rollup=year%2Cregion&from=2020&to=2020",
		"rollup=year%2Cregion",
	}
	var worst time.Duration
	var bytes int64
	for _, q := range queries {
		t0 := time.Now()
		resp, err := http.Get(base + "/v1/series?" + q)
		if err != nil {
			b.Fatal(err)
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("series %s: %d, %v", q, resp.StatusCode, err)
		}
		worst = max(worst, time.Since(t0))
		bytes = max(bytes, k)
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "series-query-max-ms")
	b.ReportMetric(float64(bytes)/1e6, "series-query-max-MB")
}

func waitServing(b *testing.B, base string, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/v1/releases?limit=1&consistent=true")
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var page struct {
				Total int `json:"total"`
			}
			if json.Unmarshal(body, &page) == nil && resp.StatusCode == 200 && page.Total == n {
				return
			}
			last = fmt.Sprintf("%d %.300s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("the node never served the ledger: %s", last)
}

// resetPeakRSS clears the kernel's high-water mark of this process's RSS
// (VmHWM), so the next reading is the peak from here on.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v); the figure includes the build", err)
	}
}

// rss reads the peak (VmHWM) and current anonymous (RssAnon) resident
// size of this process, in MB.
func rss(b testing.TB) (peak, anon float64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Logf("no /proc/self/status: %v", err)
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			peak = kb / 1024
		}
		if _, err := fmt.Sscanf(line, "RssAnon: %f kB", &kb); err == nil {
			anon = kb / 1024
		}
	}
	return peak, anon
}

// scalePartners sign the ledger's releases; the node is a third partner,
// AL, whose store holds its key. Two of three co-sign the checkpoint, a
// majority.
var scalePartners = []string{"BA", "ME"}

func scaleKey(p string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("scale-bench " + p))
	return ed25519.NewKeyFromSeed(seed[:])
}

// buildScaleNode makes the data dir of node AL (TLS, store, ledger) whose
// ledger holds n whole-catalog releases and a checkpoint co-signed by a
// majority, and returns the dir and the node's config.
func buildScaleNode(b *testing.B, n int) (string, Config) {
	b.Helper()
	cache := os.Getenv("ROUNDTABLE_SCALE_DIR")
	if cache == "" {
		return buildScaleNodeIn(b, b.TempDir(), n)
	}
	root := filepath.Join(cache, fmt.Sprintf("releases-%d", n))
	marker := filepath.Join(root, "complete")
	if genesis, err := os.ReadFile(marker); err == nil {
		dir := filepath.Join(root, "AL")
		b.Logf("reusing the ledger of %d releases built in %s", n, root)
		return dir, scaleConfig(dir, genesis)
	}
	if err := os.RemoveAll(root); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		b.Fatal(err)
	}
	dir, cfg := buildScaleNodeIn(b, root, n)
	// Written last, so a directory holding it holds a finished build; it
	// keeps the genesis the node's config needs.
	if err := os.WriteFile(marker, cfg.Genesis, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir, cfg
}

// scaleConfig is the config of the scale node over data dir dir.
func scaleConfig(dir string, genesis []byte) Config {
	return Config{DataDir: dir, Passphrase: []byte(testPassphrase), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Genesis: genesis, PublicReads: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// buildScaleNodeIn builds the scale node's data dir under root.
func buildScaleNodeIn(b *testing.B, root string, n int) (string, Config) {
	b.Helper()
	ctx := context.Background()
	ca, err := cluster.InitCA(filepath.Join(root, "ca"), "scale", []byte(testPassphrase), store.MinKDFParams())
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, "AL")
	if err := ca.Issue("AL", []string{"127.0.0.1"}, filepath.Join(dir, TLSDir)); err != nil {
		b.Fatal(err)
	}
	if err := store.Init(dir, "AL", []byte(testPassphrase), store.MinKDFParams()); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(dir, []byte(testPassphrase))
	if err != nil {
		b.Fatal(err)
	}
	members := []governance.Partner{{ID: "AL", Name: "AL partner", PublicKey: st.PublicKey()}}
	st.Close()
	for _, p := range scalePartners {
		members = append(members, governance.Partner{ID: p, Name: p + " partner", PublicKey: scaleKey(p).Public().(ed25519.PublicKey)})
	}
	cat := aggregate.CatalogV1()
	catJSON, err := cat.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	g := cluster.Genesis{Name: "scale",
		Coordinators: []governance.Coordinator{{Name: "coordinator", PublicKey: testCoordinator().Public().(ed25519.PublicKey)}},
		Threshold:    1, MaxCapMicro: 10 * privacy.Micro, Partners: members,
		Policy:  governance.Policy{Accounting: privacy.PureDP, CapMicro: 10 * privacy.Micro},
		Catalog: catJSON}
	genesis, err := json.Marshal(g)
	if err != nil {
		b.Fatal(err)
	}
	id, err := governance.IDOfFile(genesis)
	if err != nil {
		b.Fatal(err)
	}
	fsm, err := cluster.OpenFSM(filepath.Join(dir, "ledger", "ledger"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	parsed, err := cluster.ParseGenesis(genesis)
	if err != nil {
		b.Fatal(err)
	}
	ap := &scaleApplier{b: b, fsm: fsm}
	ap.apply(cluster.NewGenesis(parsed))
	t0 := time.Now()
	fillScaleLedger(ctx, b, ap, cat, id, n)
	b.Logf("built a ledger of %d whole-catalog releases in %v", n, time.Since(t0).Round(time.Second))
	tree, err := fsm.TreeHead()
	if err != nil || tree.N != int64(n) {
		b.Fatalf("ledger holds %d releases (%v), want %d", tree.N, err, n)
	}
	origin := cluster.CheckpointOrigin("scale", id)
	for _, p := range scalePartners {
		s, err := cluster.NewNoteSigner(cluster.PartnerNoteName(p), scaleKey(p))
		if err != nil {
			b.Fatal(err)
		}
		msg, err := cluster.SignCheckpoint(origin, tree, s)
		if err != nil {
			b.Fatal(err)
		}
		ap.apply(cluster.NewCosign(p, msg))
	}
	if _, _, regional, err := fsm.Checkpoint(); err != nil || !regional {
		b.Fatalf("checkpoint regional %v, %v", regional, err)
	}
	if err := fsm.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, scaleConfig(dir, genesis)
}

// scaleApplier hands the state machine encoded commands as raft would,
// with consecutive log indexes, and fails on any refusal.
type scaleApplier struct {
	b     *testing.B
	fsm   *cluster.FSM
	index uint64
}

func (a *scaleApplier) apply(cmds ...cluster.Command) {
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		data, err := c.Encode()
		if err != nil {
			a.b.Fatal(err)
		}
		a.index++
		logs[i] = &raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: data}
	}
	for i, r := range a.fsm.ApplyBatch(logs) {
		if res, ok := r.(cluster.ApplyResult); !ok || !res.OK {
			a.b.Fatalf("command %d (%s): %+v", logs[i].Index, cmds[i].Type, r)
		}
	}
}

// fillScaleLedger appends n whole-catalog releases, alternating partners
// over 100 quarters, each reserved and then published. Releases are the
// builder's (one BuildRelease per partner, re-signed per period and
// reservation); signing runs on every core while the state machine
// applies the previous batch.
func fillScaleLedger(ctx context.Context, b *testing.B, ap *scaleApplier, cat *aggregate.Catalog, consortium string, n int) {
	var all []string
	for _, ind := range cat.Indicators {
		all = append(all, ind.Name)
	}
	const spend = 10_000 // 0.01 ε: 500 releases a partner-quarter fit under the cap of 10
	templates := map[string]privacy.Release{}
	tables, err := aggregate.Tabulate(ctx, cat, aggregate.Period{Year: 2024, Quarter: 1}, all, func(func(*aggregate.Case) error) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range scalePartners {
		res := privacy.Reservation{ID: "template", Consortium: consortium, Partner: p, CatalogHash: cat.Hash(),
			Period: aggregate.Period{Year: 2024, Quarter: 1}, Accounting: privacy.PureDP, SpendMicro: spend, Indicators: all}
		s, err := privacy.BuildRelease(ctx, cat, tables, res.Params(), res, scaleKey(p))
		if err != nil {
			b.Fatal(err)
		}
		templates[p] = s.Release
	}
	const batch = 256
	make1 := func(i int) (cluster.Command, cluster.Command) {
		p := scalePartners[i%len(scalePartners)]
		q := (i / len(scalePartners)) % 100
		res := privacy.Reservation{ID: fmt.Sprintf("scale-%d", i), Consortium: consortium, Partner: p, CatalogHash: cat.Hash(),
			Period: aggregate.Period{Year: 2000 + q/4, Quarter: 1 + q%4}, Accounting: privacy.PureDP, SpendMicro: spend, Indicators: all}
		sr, err := privacy.SignReservation(res, scaleKey(p))
		if err != nil {
			panic(err)
		}
		rel := templates[p] // shares the indicators, which nothing changes
		rel.Period, rel.Reservation = res.Period, res.ID
		s, err := privacy.Sign(rel, scaleKey(p))
		if err != nil {
			panic(err)
		}
		return cluster.NewReserve(sr), cluster.NewPublish(s)
	}
	batches := make(chan []cluster.Command, 2)
	go func() {
		defer close(batches)
		for start := 0; start < n; start += batch {
			end := min(start+batch, n)
			reserves := make([]cluster.Command, end-start)
			pubs := make([]cluster.Command, end-start)
			var wg sync.WaitGroup
			for w := range runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					for i := start + w; i < end; i += runtime.GOMAXPROCS(0) {
						reserves[i-start], pubs[i-start] = make1(i)
					}
				})
			}
			wg.Wait()
			batches <- append(reserves, pubs...)
		}
	}()
	done := 0
	for cmds := range batches {
		ap.apply(cmds...)
		done += len(cmds) / 2
		if done%20_000 < batch {
			b.Logf("ledger: %d of %d releases", done, n)
		}
	}
}
