package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// countingWriter is a ResponseWriter that keeps nothing but the count of
// bytes written, so the only allocations measured are the server's.
type countingWriter struct {
	h http.Header
	n int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(int)             {}
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// storedPages is a Backend that serves only the listing, from stored
// release bytes held once, as a node serves them from its ledger.
type storedPages struct {
	Backend // every other method: not called
	raws    [][]byte
}

func (b storedPages) ReleasePage(_ context.Context, _ bool, q PageQuery) (ReleasePage, error) {
	pg := NewPager(q)
	for i, r := range b.raws {
		if more, err := pg.Offer(int64(i), r, nil); err != nil || !more {
			if err != nil {
				return ReleasePage{}, err
			}
			break
		}
	}
	return pg.Page(1, int64(len(b.raws))), nil
}

// TestListingReusesPageBuffers: serving pages of the listing one after
// another allocates far less than the pages hold: the buffer a page's
// releases are copied into is recycled (ReleasePage.Free), so a node that
// also holds a large series view does not make 3 MB of garbage a page
// (which made the collector run every few dozen pages and tripled the
// listing's p99 at 100,000 releases).
func TestListingReusesPageBuffers(t *testing.T) {
	var raws [][]byte
	pad := strings.Repeat(`{"name":"victims","cells":[1,2,3]},`, 800) // about 28 KB, a whole-catalog release's size
	for i := range 100 {
		raws = append(raws, []byte(fmt.Sprintf(`{"id":"r%d","release":{"partner":"RS","period":"2024-Q1","indicators":[%s{}]},"signature":"c2ln"}`, i, pad)))
	}
	s := &Server{cfg: Config{Backend: storedPages{raws: raws}}}
	serve := func() int {
		w := &countingWriter{h: http.Header{}}
		if err := s.handleReleases(w, httptest.NewRequest(http.MethodGet, "/v1/releases", nil)); err != nil {
			t.Fatal(err)
		}
		return w.n
	}
	page := serve() // warms the pool
	if page < 2<<20 {
		t.Fatalf("a page is %d bytes: too small to tell copies from overhead", page)
	}
	const rounds = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range rounds {
		serve()
	}
	runtime.ReadMemStats(&after)
	perPage := int(after.TotalAlloc-before.TotalAlloc) / rounds
	t.Logf("a page of %d bytes allocates %d bytes", page, perPage)
	if perPage > page/4 {
		t.Errorf("serving a page of %d bytes allocates %d bytes: its releases are copied into fresh memory each time", page, perPage)
	}
}

// TestListingBuffersConcurrent: pages served at once, each from a recycled
// buffer, are each exactly the page served alone; a buffer handed to the
// next page before the last was written would mix two pages' bytes.
func TestListingBuffersConcurrent(t *testing.T) {
	var raws [][]byte
	for i := range 60 {
		pad := strings.Repeat(fmt.Sprintf(`{"name":"n%d"},`, i), 200)
		raws = append(raws, []byte(fmt.Sprintf(`{"id":"r%d","release":{"partner":"RS","period":"2024-Q1","indicators":[%s{}]},"signature":"c2ln"}`, i, pad)))
	}
	s := &Server{cfg: Config{Backend: storedPages{raws: raws}}}
	get := func(after int) string {
		w := httptest.NewRecorder()
		if err := s.handleReleases(w, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/releases?limit=7&after=%d", after), nil)); err != nil {
			t.Error(err)
		}
		return w.Body.String()
	}
	want := map[int]string{}
	for after := 0; after < 60; after += 5 {
		want[after] = get(after)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				after := 5 * ((g + i) % len(want))
				if got := get(after); got != want[after] {
					t.Errorf("page after %d served concurrently differs from the page served alone", after)
					return
				}
			}
		})
	}
	wg.Wait()
}
