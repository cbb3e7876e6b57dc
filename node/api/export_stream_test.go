package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/privacy"
)

// bigLedger is a ledger of n large releases made as they are read, in
// pages of at most pageLen, so a test can see what the export holds while
// it reads: before each page after leaf gateAt it calls gate.
type bigLedger struct {
	*apitest.Fake // the rest of the Backend; its own ledger is empty
	n, pageLen    int64
	gateAt        int64
	gate          func()
	pause         time.Duration // before each page
	template      privacy.Signed
}

const bigCells = 300 // cells a bigLedger release holds: about 40 KB of CSV

func newBigLedger(t *testing.T, n int64) *bigLedger {
	t.Helper()
	fake, err := apitest.New(apitest.Options{NoReleases: true})
	if err != nil {
		t.Fatal(err)
	}
	ir := privacy.IndicatorRelease{Name: "victims_by_age_sex", Mechanism: "laplace", Epsilon: 0.01, Dimensions: []string{"age", "sex"}}
	for i := range bigCells {
		ir.Cells = append(ir.Cells, privacy.Cell{Key: []string{fmt.Sprintf("%d-%d", i, i+1), "female"},
			Value: int64(i*7 - 100), Scale: 200.25, CILow: float64(i) - 599.5, CIHigh: float64(i) + 599.5})
	}
	rel := privacy.Release{Partner: "RS", Period: aggregate.Period{Year: 2024, Quarter: 1}, Indicators: []privacy.IndicatorRelease{ir}}
	return &bigLedger{Fake: fake, n: n, pageLen: 50, gateAt: n, template: privacy.Signed{Release: rel}}
}

func (l *bigLedger) ReleasePage(ctx context.Context, consistent bool, q api.PageQuery) (api.ReleasePage, error) {
	if q.After >= l.gateAt && l.gate != nil {
		l.gate()
	}
	time.Sleep(l.pause)
	if err := ctx.Err(); err != nil {
		return api.ReleasePage{}, err
	}
	q.Limit = int(min(int64(q.Limit), l.pageLen))
	pg := api.NewPager(q)
	for leaf := q.After + 1; leaf < l.n; leaf++ {
		s := l.template
		s.ID = fmt.Sprintf("%064x", leaf)
		data, err := json.Marshal(s)
		if err != nil {
			return api.ReleasePage{}, err
		}
		if more, err := pg.Offer(leaf, data, nil); err != nil || !more {
			if err != nil {
				return api.ReleasePage{}, err
			}
			break
		}
	}
	return pg.Page(uint64(2*l.n), l.n), nil
}

// TestExportStreamsAsItReads: a server with no cache sends the export as
// it reads the ledger. The ledger's pages after leaf 150 (about 6 MB of
// CSV) are held back until the client has received 1 MiB, which an
// export that rendered the whole ledger before sending never does.
func TestExportStreamsAsItReads(t *testing.T) {
	const n = 300
	lg := newBigLedger(t, n)
	received := make(chan struct{})
	var held sync.Once
	var buffered atomic.Bool
	lg.gateAt = 150
	lg.gate = func() {
		held.Do(func() {
			select {
			case <-received:
			case <-time.After(time.Minute):
				buffered.Store(true)
			}
		})
	}
	ts := exportServer(t, lg, "")
	resp, err := ts.Client().Get(ts.URL + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var total, rows int64
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				rows++
			}
		}
		if total < 1<<20 && total+int64(k) >= 1<<20 {
			close(received)
		}
		total += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if buffered.Load() {
		t.Fatal("the client had not received 1 MiB a minute after half the ledger was read: the export is not streamed")
	}
	if rows != 1+n*bigCells || total < 10<<20 {
		t.Errorf("%d rows, %d bytes; want %d rows, over 10 MiB", rows, total, 1+n*bigCells)
	}
}

// TestExportCacheWritesAsItReads: the cache is written as the ledger is
// read; the file holds the first half's rows (less one write buffer)
// before the second half is read.
func TestExportCacheWritesAsItReads(t *testing.T) {
	const n = 300
	lg := newBigLedger(t, n)
	dir := t.TempDir()
	var onDisk atomic.Int64
	lg.gateAt = 150
	lg.gate = func() {
		if fi, err := os.Stat(filepath.Join(dir, "export.csv")); err == nil && onDisk.Load() == 0 {
			onDisk.Store(fi.Size())
		}
	}
	_, body := getExport(t, exportServer(t, lg, dir))
	if onDisk.Load() < 4<<20 {
		t.Errorf("the cache file held %d bytes when half the ledger (%d bytes of rows) was read", onDisk.Load(), len(body)/2)
	}
}

// TestExportCachedServeAllocates: serving a built cache copies the file
// through a fixed buffer; the request allocates a small part of what it
// sends.
func TestExportCachedServeAllocates(t *testing.T) {
	const n = 300
	ts := exportServer(t, newBigLedger(t, n), t.TempDir())
	_, body := getExport(t, ts)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := ts.Client().Get(ts.URL + "/v1/export.csv")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || sent != int64(len(body)) {
		t.Fatalf("second export: %d bytes, %v; want %d", sent, err, len(body))
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(sent)/4 {
		t.Errorf("serving %d cached bytes allocated %d bytes", sent, alloc)
	}
}

// TestExportOutlivesTimeouts: an export that takes many times the
// server's write timeout to prepare and send (a slow ledger, building the
// cache first or streaming) still arrives whole; net/http would cut the
// answer at the write deadline it set when the request was read.
func TestExportOutlivesTimeouts(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			const n = 60
			lg := newBigLedger(t, n)
			lg.pageLen, lg.pause = 5, 150*time.Millisecond // 12 pages: 1.8 s
			dir := ""
			if cached {
				dir = t.TempDir()
			}
			tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
			if err != nil {
				t.Fatal(err)
			}
			lim := api.Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
			srv, err := api.New(api.Config{Backend: lg, Tokens: tokens, PublicReads: true, CacheDir: dir, Limits: lim,
				UI: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			t0 := time.Now()
			resp, err := http.Get("http://" + ln.Addr().String() + "/v1/export.csv")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("export after %v: %s, %v", time.Since(t0), resp.Status, err)
			}
			if rows := bytes.Count(body, []byte("\n")); rows != 1+n*bigCells {
				t.Errorf("%d rows after %v, want %d", rows, time.Since(t0), 1+n*bigCells)
			}
		})
	}
}
