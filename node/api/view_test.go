package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// pagingBackend records how the series view reads the ledger, and can
// hold the first page until released.
type pagingBackend struct {
	*apitest.Fake
	pages   atomic.Int64
	fromTop atomic.Int64 // pages asked from leaf 0
	afters  chan int64   // each page's cursor
	hold    chan struct{}
}

func (p *pagingBackend) ReleasePage(ctx context.Context, consistent bool, q api.PageQuery) (api.ReleasePage, error) {
	p.pages.Add(1)
	if q.After < 0 {
		p.fromTop.Add(1)
	}
	select {
	case p.afters <- q.After:
	default:
	}
	if p.hold != nil {
		<-p.hold
	}
	return p.Fake.ReleasePage(ctx, consistent, q)
}

func serveBackend(t *testing.T, b api.Backend) *httptest.Server {
	t.Helper()
	store, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: b, Tokens: store, PublicReads: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("GET %s: %d %v %.200s", url, resp.StatusCode, err, b)
	}
	return b
}

// TestSeriesViewOneBuild: concurrent first requests share one build of
// the series view (one pass over the ledger, not one per request) and get
// the same answer; after the ledger grows, the view is extended from the
// last leaf it read, not rebuilt, and answers exactly as a view built
// from scratch over the grown ledger.
func TestSeriesViewOneBuild(t *testing.T) {
	fake, err := apitest.New(apitest.Options{Seed: 11, FromYear: 2022, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	b := &pagingBackend{Fake: fake, afters: make(chan int64, 1), hold: make(chan struct{})}
	ts := serveBackend(t, b)
	const path = "/v1/series?indicator=victims&by=sex&rollup=region"

	const clients = 8
	answers := make([][]byte, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { answers[i] = get(t, ts.URL+path) })
	}
	select {
	case <-b.afters:
	case <-time.After(10 * time.Second):
		t.Fatal("no build started")
	}
	time.Sleep(200 * time.Millisecond) // let the other requests arrive while the build is held
	close(b.hold)
	wg.Wait()
	if n := b.fromTop.Load(); n != 1 {
		t.Errorf("%d concurrent first requests read the ledger from the start %d times, want once", clients, n)
	}
	for i := 1; i < clients; i++ {
		if string(answers[i]) != string(answers[0]) {
			t.Fatalf("request %d got another answer than request 0", i)
		}
	}
	if len(answers[0]) < 100 {
		t.Fatalf("answer %q", answers[0])
	}

	// The ledger grows: the next view reads from the last leaf on.
	rels, _, err := fake.Releases(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.Publish(context.Background(), aggregate.Period{Year: 2024, Quarter: 4}, []string{"victims"}, 10_000, ""); err != nil {
		t.Fatal(err)
	}
	for len(b.afters) > 0 {
		<-b.afters
	}
	grown := get(t, ts.URL+path)
	select {
	case after := <-b.afters:
		if want := int64(len(rels) - 1); after != want {
			t.Errorf("the grown ledger was read after leaf %d, want after %d (the last leaf read before)", after, want)
		}
	default:
		t.Fatal("the view was not extended after the ledger grew")
	}
	if n := b.fromTop.Load(); n != 1 {
		t.Errorf("the ledger was read from the start %d times, want once", n)
	}
	fresh := get(t, serveBackend(t, fake).URL+path)
	if string(grown) != string(fresh) {
		t.Errorf("the extended view answers differently from a view built from scratch:\n%.400s\n%.400s", grown, fresh)
	}
	if string(grown) == string(answers[0]) {
		t.Error("the answer did not change after a release for 2024-Q4")
	}
}

// TestSeriesViewAfterPublish: a request made after a release was appended
// sees it, even when a build that began before the release (the
// warm-up, or another client's) is still running when it arrives.
func TestSeriesViewAfterPublish(t *testing.T) {
	fake, err := apitest.New(apitest.Options{Seed: 12, FromYear: 2023, ToYear: 2024})
	if err != nil {
		t.Fatal(err)
	}
	b := &pagingBackend{Fake: fake, afters: make(chan int64, 1), hold: make(chan struct{})}
	ts := serveBackend(t, b)
	const path = "/v1/series?indicator=victims&rollup=region"
	early := make(chan []byte, 1)
	go func() { early <- get(t, ts.URL+path) }()
	<-b.afters // the first build is reading the ledger, held
	if _, err := fake.Publish(context.Background(), aggregate.Period{Year: 2024, Quarter: 4}, []string{"victims"}, 10_000, ""); err != nil {
		t.Fatal(err)
	}
	late := make(chan []byte, 1)
	go func() { late <- get(t, ts.URL+path) }()
	time.Sleep(200 * time.Millisecond) // the late request joins the held build
	close(b.hold)
	before, after := <-early, <-late
	fresh := get(t, serveBackend(t, fake).URL+path)
	if string(after) != string(fresh) {
		t.Errorf("a request after the publish got the view from before it:\n%.300s\nwant\n%.300s", after, fresh)
	}
	if string(before) == string(fresh) {
		t.Error("the release changed nothing: the test shows nothing")
	}
}
