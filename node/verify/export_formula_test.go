package verify

import (
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// TestCheckExportNeutralisedText: the export writes a text column that
// starts like a spreadsheet formula with a leading quote (api.CSVText);
// the check accepts exactly that form of the signed value, and refuses the
// raw one, which a spreadsheet would run.
func TestCheckExportNeutralisedText(t *testing.T) {
	rel := privacy.Release{Partner: "RS", Period: aggregate.Period{Year: 2024, Quarter: 1},
		Indicators: []privacy.IndicatorRelease{{Name: "-victims", Mechanism: "laplace", Epsilon: 0.5,
			Dimensions: []string{"sex"}, Cells: []privacy.Cell{{Key: []string{"=1+1"}, Value: -3, Scale: 2, CILow: -9, CIHigh: 3}}}}}
	rels := []bundleRelease{{Signed: privacy.Signed{ID: "abc", Release: rel}, Leaf: 4}}
	head := strings.Join(header(), ",") + "\n"
	good := head + `RS,2024-Q1,'-victims,sex,'=1+1,-3,-9,3,laplace,2,0.5,0,abc,4` + "\n"
	if ok, errs := checkExport(strings.NewReader(good), "export.csv", rels); ok != 1 || len(errs) != 0 {
		t.Fatalf("neutralised row: %d ok, %v", ok, errs)
	}
	raw := head + `RS,2024-Q1,-victims,sex,=1+1,-3,-9,3,laplace,2,0.5,0,abc,4` + "\n"
	if ok, errs := checkExport(strings.NewReader(raw), "export.csv", rels); ok != 0 || len(errs) != 1 {
		t.Fatalf("raw formula row: %d ok, %v", ok, errs)
	}
}
