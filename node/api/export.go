package api

import (
	"bytes"
	"encoding/csv"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// ExportColumns returns the header of GET /v1/export.csv: one row per
// published cell (and per published quantile), with everything a reader
// needs to judge it (invariant 3) and to find it in the ledger.
func ExportColumns() []string {
	return []string{"partner", "period", "indicator", "dimensions", "key", "estimate",
		"ci_low", "ci_high", "mechanism", "scale", "epsilon", "rho", "release_id", "leaf_index"}
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	v, err := s.views.get(r.Context(), s.cfg.Backend)
	if err != nil {
		return err
	}
	b, err := v.exportCSV(func() ([]ReleaseEntry, error) {
		rels, _, err := s.cfg.Backend.Releases(r.Context(), false)
		return rels, err
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="roundtable-`+strconv.FormatUint(v.index, 10)+`.csv"`)
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
	return nil
}

// exportCSV renders the export once per applied index. Keys of a
// multi-dimension cell are joined with "|" in the order "dimensions" lists;
// "*" marks a dimension summed out (a margin).
//
// A spreadsheet opening the file runs any cell that starts like a formula
// (CSV injection). The ledger admits only catalog names and keys, but the
// export does not rely on it: every text column goes through CSVText.
// Numeric columns (estimate, ci_low, ci_high, scale, epsilon, rho, leaf_index)
// are written by strconv from numbers, never from strings, so a noisy
// negative count stays "-3", a number a spreadsheet sums; a value that is
// not a finite number cannot reach them as one (csvFloat).
func (v *ledgerView) exportCSV(releases func() ([]ReleaseEntry, error)) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.csv != nil {
		return v.csv, nil
	}
	entries, err := releases()
	if err != nil {
		return nil, err
	}
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
	if err := cw.Error(); err != nil {
		return nil, err
	}
	v.csv = buf.Bytes()
	return v.csv, nil
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
