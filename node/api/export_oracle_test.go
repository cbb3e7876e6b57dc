package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// oracleExportCSV is the export as it was rendered before the on-disk
// cache (from the series view's decoded releases, whole, in memory): the
// tests hold the streamed and cached exports to its bytes.
func oracleExportCSV(entries []ReleaseEntry) []byte {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	_ = cw.Write(ExportColumns())
	f, t := csvFloat, CSVText
	for _, e := range entries {
		rel := &e.Signed.Release
		for _, ir := range rel.Indicators {
			common := func(dims, key, est, lo, hi, scale string) []string {
				return []string{t(rel.Partner), t(rel.Period.String()), t(ir.Name), t(dims), t(key), est, lo, hi,
					t(ir.Mechanism), scale, f(ir.Epsilon), f(ir.Rho), t(e.Signed.ID), strconv.FormatInt(e.Leaf, 10)}
			}
			dims := strings.Join(ir.Dimensions, "|")
			for _, c := range ir.Cells {
				_ = cw.Write(common(dims, strings.Join(c.Key, "|"), strconv.FormatInt(c.Value, 10), f(c.CILow), f(c.CIHigh), f(c.Scale)))
			}
			for _, q := range ir.Quantiles {
				_ = cw.Write(common("rank", strconv.FormatFloat(q.Rank, 'g', -1, 64), f(q.Value), f(q.CILow), f(q.CIHigh), ""))
			}
		}
	}
	cw.Flush()
	return buf.Bytes()
}

// OracleExportCSV is oracleExportCSV for the tests of package api_test.
var OracleExportCSV = oracleExportCSV

// entriesPager pages entries as a ledger stores them (each release's JSON,
// offered to a Pager in leaf order).
type entriesPager []ReleaseEntry

func (es entriesPager) ReleasePage(ctx context.Context, consistent bool, q PageQuery) (ReleasePage, error) {
	pg := NewPager(q)
	for _, e := range es {
		if e.Leaf <= q.After {
			continue
		}
		data, err := json.Marshal(e.Signed)
		if err != nil {
			return ReleasePage{}, err
		}
		if more, err := pg.Offer(e.Leaf, data, nil); err != nil || !more {
			if err != nil {
				return ReleasePage{}, err
			}
			break
		}
	}
	return pg.Page(uint64(2*len(es)), int64(len(es))), nil
}

// streamedExport is the export a server with no cache directory sends.
func streamedExport(t *testing.T, src releasePager) []byte {
	t.Helper()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	rec := httptest.NewRecorder()
	if err := s.streamExport(t.Context(), rec, rec, src); err != nil {
		t.Fatal(err)
	}
	return rec.Body.Bytes()
}

// cachedExport is the export a server with the cache dir sends.
func cachedExport(t *testing.T, dir string, src releasePager) []byte {
	t.Helper()
	c := newExportCache(dir, slog.New(slog.DiscardHandler))
	snap, err := c.snapshot(t.Context(), src, func(context.Context) string { return "consortium" }, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.file.Close()
	b := make([]byte, snap.size)
	if _, err := snap.file.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}
