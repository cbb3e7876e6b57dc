package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"roundtable/privacy"
)

// ExportColumns returns the header of GET /v1/export.csv: one row per
// published cell (and per published quantile), with everything a reader
// needs to judge it (invariant 3) and to find it in the ledger.
func ExportColumns() []string {
	return []string{"partner", "period", "indicator", "dimensions", "key", "estimate",
		"ci_low", "ci_high", "mechanism", "scale", "epsilon", "rho", "release_id", "leaf_index"}
}

// GET /v1/export.csv is every published cell of the ledger: over years of
// whole-catalog releases, tens of millions of rows and gigabytes (issue
// 10, item 5). No answer holds it: rows are rendered one release at a
// time from pages of the ledger, and either streamed to the client or
// appended to the on-disk cache (export_cache.go) that is then streamed.
// See DESIGN.md, "Export".
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	out := s.pacedWriter(w, r)
	if s.export == nil {
		return s.streamExport(r.Context(), w, out, s.cfg.Backend)
	}
	consortium := func(ctx context.Context) string { return s.cfg.Backend.Health(ctx).ConsortiumID }
	snap, err := s.export.snapshot(r.Context(), s.cfg.Backend, consortium, out.hold)
	if err != nil {
		return err
	}
	defer snap.file.Close()
	setExportHeaders(w, snap.applied)
	w.Header().Set("Content-Length", strconv.FormatInt(snap.size, 10))
	if _, err := io.CopyBuffer(out, io.NewSectionReader(snap.file, 0, snap.size), make([]byte, 128<<10)); err != nil {
		s.log.Debug("export: sending stopped", "err", err) // the client went away, or the disk failed: Content-Length tells the client
	}
	return nil
}

func setExportHeaders(w http.ResponseWriter, applied uint64) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="roundtable-`+strconv.FormatUint(applied, 10)+`.csv"`)
	h.Set("Cache-Control", "no-store")
}

// streamExport renders the export straight from the ledger's pages to the
// client (a server with no cache directory). Once the first row is sent
// the status cannot change: a ledger that fails mid-way aborts the
// response, so the client sees a broken download rather than a short
// file that looks whole.
func (s *Server) streamExport(ctx context.Context, w http.ResponseWriter, out io.Writer, src releasePager) error {
	lr, err := readLeaves(ctx, src, 0)
	if err != nil {
		return err
	}
	setExportHeaders(w, lr.applied)
	bw := bufio.NewWriterSize(out, 64<<10)
	if _, err := bw.Write(exportHeader()); err != nil {
		return nil // the client went away
	}
	var clientGone bool
	err = exportRows(ctx, lr, func(_ RawRelease, rows []byte) error {
		if _, err := bw.Write(rows); err != nil {
			clientGone = true
			return err
		}
		return nil
	})
	if clientGone {
		return nil
	}
	if err != nil {
		s.abortExport(ctx, lr.at, err)
	}
	_ = bw.Flush()
	return nil
}

// abortExport ends a response whose status is sent: net/http closes the
// connection without finishing the body.
func (s *Server) abortExport(ctx context.Context, leaf int64, err error) {
	if ctx.Err() == nil {
		s.log.Error("export stopped", "leaf", leaf, "err", err)
	}
	panic(http.ErrAbortHandler)
}

// exportMinRate is the slowest average a client may read the export at
// (bytes a second). A download of gigabytes needs longer than the
// server's WriteTimeout, which otherwise bounds every answer; a client
// that stops reading must still not hold its connection for ever.
const exportMinRate = 64 << 10

// pacedWriter writes the export to w, moving the connection's write
// deadline on as it goes: the answer may take the route's usual timeout
// (WriteTimeout, or OperatorTimeout for an operator) plus a second per
// exportMinRate bytes, counted from its first byte; before that, hold
// keeps the deadline a timeout ahead while the cache is built.
func (s *Server) pacedWriter(w http.ResponseWriter, r *http.Request) *paced {
	base := s.cfg.Limits.WriteTimeout
	if callerOf(r.Context()).Role == RoleOperator {
		base = s.cfg.Limits.OperatorTimeout
	}
	return &paced{w: w, rc: http.NewResponseController(w), base: base}
}

type paced struct {
	w     io.Writer
	rc    *http.ResponseController
	base  time.Duration
	start time.Time // the first byte
	n     int64     // bytes written
	held  time.Time // the last hold
}

func (p *paced) Write(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.n += int64(len(b))
	p.setDeadline(p.start.Add(p.base + time.Duration(float64(p.n)/exportMinRate*float64(time.Second))))
	return p.w.Write(b)
}

// hold moves the deadline to a timeout from now, while nothing has been
// written; it is called often and acts a few times per timeout.
func (p *paced) hold() {
	if now := time.Now(); p.start.IsZero() && now.Sub(p.held) >= min(time.Second, p.base/4) {
		p.held = now
		p.setDeadline(now.Add(p.base))
	}
}

func (p *paced) setDeadline(t time.Time) {
	// A recorder (tests) has no connection, hence no deadline to move.
	_ = p.rc.SetWriteDeadline(t)
}

// releasePager is what the export reads of a Backend: the ledger, a page
// at a time.
type releasePager interface {
	ReleasePage(ctx context.Context, consistent bool, q PageQuery) (ReleasePage, error)
}

// leafReader reads the releases at leaves from, from+1, … a page at a
// time, up to the tree size its first page saw: an export answers for the
// ledger as its request found it, and a page holds at most PageMaxBytes.
type leafReader struct {
	src     releasePager
	page    ReleasePage
	i       int
	at      int64  // the leaf next returns next
	end     int64  // the tree size the first page saw
	applied uint64 // the applied index the first page saw
}

func readLeaves(ctx context.Context, src releasePager, from int64) (*leafReader, error) {
	lr := &leafReader{src: src, at: from}
	if err := lr.fetch(ctx); err != nil {
		return nil, err
	}
	lr.end, lr.applied = lr.page.Total, lr.page.AppliedIndex
	return lr, nil
}

func (lr *leafReader) fetch(ctx context.Context) error {
	p, err := lr.src.ReleasePage(ctx, false, PageQuery{After: lr.at - 1, Limit: PageMaxLimit})
	if err != nil {
		return fmt.Errorf("export: read the ledger from leaf %d: %w", lr.at, err)
	}
	lr.page, lr.i = p, 0
	return nil
}

// next returns the release at leaf lr.at, or ok false at the end.
func (lr *leafReader) next(ctx context.Context) (rel RawRelease, ok bool, err error) {
	if lr.at >= lr.end {
		return RawRelease{}, false, nil
	}
	if lr.i == len(lr.page.Releases) {
		if err := lr.fetch(ctx); err != nil {
			return RawRelease{}, false, err
		}
		if len(lr.page.Releases) == 0 {
			return RawRelease{}, false, fmt.Errorf("export: the ledger ends at leaf %d; it held %d leaves", lr.at, lr.end)
		}
	}
	rel = lr.page.Releases[lr.i]
	if rel.Leaf != lr.at {
		return RawRelease{}, false, fmt.Errorf("ledger corrupt: export wants leaf %d, the ledger gave %d", lr.at, rel.Leaf)
	}
	lr.i++
	lr.at++
	return rel, true, nil
}

// exportRows renders the rows of the releases lr has left and hands them
// to emit in leaf order. Decoding a whole-catalog release costs more than
// writing its rows, so a batch of a few releases per core is rendered at
// once; the batch bounds what is held. On an error reading the ledger the
// releases read before it are still emitted, so a cache keeps them.
func exportRows(ctx context.Context, lr *leafReader, emit func(rel RawRelease, rows []byte) error) error {
	workers := runtime.GOMAXPROCS(0)
	slots := make([]*rowRenderer, 4*workers)
	for i := range slots {
		slots[i] = newRowRenderer()
	}
	batch := make([]RawRelease, 0, len(slots))
	out := make([][]byte, len(slots))
	errs := make([]error, len(slots))
	for {
		batch = batch[:0]
		var readErr error
		for len(batch) < cap(batch) {
			rel, ok, err := lr.next(ctx)
			if err != nil || !ok {
				readErr = err
				break
			}
			batch = append(batch, rel)
		}
		var wg sync.WaitGroup
		for w := range min(workers, len(batch)) {
			wg.Go(func() {
				for i := w; i < len(batch); i += workers {
					out[i], errs[i] = slots[i].render(batch[i])
				}
			})
		}
		wg.Wait()
		for i, rel := range batch {
			if errs[i] != nil {
				return errs[i]
			}
			if err := emit(rel, out[i]); err != nil {
				return err
			}
		}
		if readErr != nil || len(batch) < cap(batch) {
			return readErr
		}
	}
}

// exportHeader is the CSV line of ExportColumns.
func exportHeader() []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	_ = cw.Write(ExportColumns())
	cw.Flush()
	return b.Bytes()
}

// rowRenderer renders one release's rows into a buffer it reuses, so a
// release is written whole or not at all.
type rowRenderer struct {
	buf bytes.Buffer
	cw  *csv.Writer
}

func newRowRenderer() *rowRenderer {
	r := &rowRenderer{}
	r.cw = csv.NewWriter(&r.buf)
	return r
}

// render decodes a stored release and returns its rows; the bytes are
// valid until the next call.
func (r *rowRenderer) render(rel RawRelease) ([]byte, error) {
	var s privacy.Signed
	if err := json.Unmarshal(rel.Signed, &s); err != nil {
		return nil, fmt.Errorf("ledger corrupt: leaf %d: %w", rel.Leaf, err)
	}
	r.buf.Reset()
	writeReleaseRows(r.cw, &s, rel.Leaf)
	r.cw.Flush()
	if err := r.cw.Error(); err != nil {
		return nil, fmt.Errorf("export: leaf %d: %w", rel.Leaf, err)
	}
	return r.buf.Bytes(), nil
}

// writeReleaseRows writes a release's rows. Keys of a multi-dimension cell
// are joined with "|" in the order "dimensions" lists; "*" marks a
// dimension summed out (a margin).
//
// A spreadsheet opening the file runs any cell that starts like a formula
// (CSV injection). The ledger admits only catalog names and keys, but the
// export does not rely on it: every text column goes through CSVText.
// Numeric columns (estimate, ci_low, ci_high, scale, epsilon, rho, leaf_index)
// are written by strconv from numbers, never from strings, so a noisy
// negative count stays "-3", a number a spreadsheet sums; a value that is
// not a finite number cannot reach them as one (csvFloat).
func writeReleaseRows(cw *csv.Writer, s *privacy.Signed, leaf int64) {
	f, t := csvFloat, CSVText
	rel := &s.Release
	id, partner, period, leafText := t(s.ID), t(rel.Partner), t(rel.Period.String()), strconv.FormatInt(leaf, 10)
	row := make([]string, 14)
	for _, ir := range rel.Indicators {
		name, mech, eps, rho := t(ir.Name), t(ir.Mechanism), f(ir.Epsilon), f(ir.Rho)
		common := func(dims, key, est, lo, hi, scale string) []string {
			row = append(row[:0], partner, period, name, dims, key, est, lo, hi, mech, scale, eps, rho, id, leafText)
			return row
		}
		dims := t(strings.Join(ir.Dimensions, "|"))
		for _, c := range ir.Cells {
			_ = cw.Write(common(dims, t(strings.Join(c.Key, "|")), strconv.FormatInt(c.Value, 10), f(c.CILow), f(c.CIHigh), f(c.Scale)))
		}
		for _, q := range ir.Quantiles {
			_ = cw.Write(common(t("rank"), t(strconv.FormatFloat(q.Rank, 'g', -1, 64)), f(q.Value), f(q.CILow), f(q.CIHigh), ""))
		}
	}
}

// CSVText is how the export writes a text column: a field a spreadsheet
// would read as a formula, one starting with = + - @, a tab or a carriage
// return, gets a leading single quote (OWASP's advice), which spreadsheets
// show as text and hide. A checker of the export (node/verify) compares a
// text column with CSVText of the signed value.
func CSVText(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// csvFloat writes a numeric column: a finite number as strconv writes it
// (digits, a leading "-" only for a negative number, an exponent), and
// anything else ("NaN", "+Inf") as neutralised text.
func csvFloat(x float64) string {
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return CSVText(s)
	}
	return s
}
