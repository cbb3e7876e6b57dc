package api

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
)

// ExportColumns returns the header of GET /v1/export.csv: one row per
// published cell (and per published quantile), with everything a reader
// needs to judge it (invariant 3) and to find it in the ledger.
func ExportColumns() []string {
	return []string{"partner", "period", "indicator", "dimensions", "key", "estimate",
		"ci_low", "ci_high", "mechanism", "scale", "epsilon", "release_id", "leaf_index"}
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	v, err := s.views.get(r.Context(), s.cfg.Backend)
	if err != nil {
		return err
	}
	b, err := v.exportCSV()
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
func (v *ledgerView) exportCSV() ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.csv != nil {
		return v.csv, nil
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	_ = cw.Write(ExportColumns())
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, e := range v.entries {
		rel := &e.Signed.Release
		for _, ir := range rel.Indicators {
			common := func(dims, key, est, lo, hi, scale string) []string {
				return []string{rel.Partner, rel.Period.String(), ir.Name, dims, key, est, lo, hi,
					ir.Mechanism, scale, f(ir.Epsilon), e.Signed.ID, strconv.FormatInt(e.Leaf, 10)}
			}
			dims := strings.Join(ir.Dimensions, "|")
			for _, c := range ir.Cells {
				_ = cw.Write(common(dims, strings.Join(c.Key, "|"), strconv.FormatInt(c.Value, 10), f(c.CILow), f(c.CIHigh), f(c.Scale)))
			}
			for _, q := range ir.Quantiles {
				_ = cw.Write(common("rank", f(q.Rank), f(q.Value), f(q.CILow), f(q.CIHigh), ""))
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
