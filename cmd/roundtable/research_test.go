package main

import (
	"bytes"
	"strings"
	"testing"

	"roundtable/node/api"
)

// TestQueryTableReadable: the table prints whole counts with "±"
// half-widths (one decimal below ±10), the direct measurement or "-", the
// change with its interval and reading, and the too-uncertain note; no
// number carries more than one decimal.
func TestQueryTableReadable(t *testing.T) {
	res := api.SeriesResponse{Series: []api.IndicatorSeries{{
		Indicator: "victims", Title: "Victims", By: []string{}, Rollup: "year",
		Points: []api.SeriesPoint{
			{Partner: "AL", Period: "2021", Key: []string{}, Determined: true,
				Estimate: &api.Estimate{Value: 159, CILow: 127.31415926535897, CIHigh: 190.68584073464103},
				Raw:      &api.Estimate{Value: 150, CILow: 61.123456789, CIHigh: 238.876543211}},
			{Partner: "AL", Period: "2022", Key: []string{}, Determined: true,
				Estimate: &api.Estimate{Value: 112, CILow: 80.2, CIHigh: 143.8},
				Change:   &api.Change{From: "2021", Value: -47, CILow: -91.77777, CIHigh: -2.22222, Detectable: true, Reading: api.ReadingDecrease}},
			{Partner: "ME", Period: "2022", Key: []string{}, Determined: true, TooUncertain: true, Small: true,
				Estimate: &api.Estimate{Value: 3, CILow: -4.2345, CIHigh: 10.2345},
				Change:   &api.Change{From: "2021", Value: 1, CILow: -9.3, CIHigh: 11.3, Reading: api.ReadingNoChange}},
		},
	}}}
	var b bytes.Buffer
	if err := writeSeries(&b, "table", res); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"159 ± 32", "[127, 191]", "150 ± 89",
		"112 ± 32", "-47 [-92, -2] since 2021: decrease",
		"3 ± 7.2", "[-4.2, 10.2]", "+1 [-9, 11] since 2021: not distinguishable from no change", "too uncertain to read",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "31415") || strings.Contains(out, "77777") {
		t.Errorf("table prints unrounded numbers:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[3], "  -  ") {
		t.Errorf("a point without a direct measurement should show raw as -: %q", lines[3])
	}
	b.Reset()
	if err := writeSeries(&b, "csv", res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "victims,AL,2021,,159,127.3,190.7,150,61.1,238.9,false,false,,,,,\n") ||
		!strings.Contains(b.String(), "2021,-47,-91.8,-2.2,decrease") {
		t.Errorf("csv:\n%s", b.String())
	}
}
