package node

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"roundtable/node/api"
	"roundtable/node/client"
	"roundtable/privacy"
)

// TestYearlyPublishAndChecks runs the default cadence through a live
// node: a yearly release with its indicators named out of catalog order
// publishes, lists them in catalog order, charges its budget to each of
// the year's four quarters and yields a yearly series point; and every
// request refused for its parameters is refused by the node's check
// before a reservation exists, with the reason, spending nothing.
func TestYearlyPublishAndChecks(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS")
	rs := r.nodes[0]

	c, err := rs.CheckPublish(ctx, mustPeriod(t, "2024"), []string{"exploitation", "victims"}, 250_000)
	if err != nil {
		t.Fatal(err)
	}
	if want := "will spend ε 0.25 on each of 2024-Q1..Q4 of RS; 0.75 of 1 left in each after this"; c.Summary != want {
		t.Errorf("summary %q, want %q", c.Summary, want)
	}
	res, err := rs.Publish(ctx, mustPeriod(t, "2024"), []string{"exploitation", "victims"}, 250_000)
	if err != nil {
		t.Fatalf("yearly publish, indicators out of catalog order: %v", err)
	}
	if res.Period != "2024" || !slices.Equal(res.Indicators, []string{"victims", "exploitation"}) || res.SpentMicro != 250_000 {
		t.Errorf("result %+v", res)
	}
	for _, q := range []string{"2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"} {
		if got := spentOn(t, rs, "RS", q); got != 250_000 {
			t.Errorf("%s: spent %d micro, want the yearly release's 250000 on each quarter", q, got)
		}
	}
	if got := spentOn(t, rs, "RS", "2025-Q1"); got != 0 {
		t.Errorf("2025-Q1: spent %d", got)
	}
	series, err := client.New("http://"+rs.HTTPAddr(), "").Series(ctx, url.Values{"indicator": {"victims"}, "rollup": {"year"}, "partner": {"RS"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(series.Series) != 1 || len(series.Series[0].Points) != 1 || series.Series[0].Points[0].Period != "2024" {
		t.Errorf("yearly series: %+v", series.Series)
	}

	refused := []struct {
		name    string
		period  string
		inds    []string
		budget  privacy.Budget
		refusal bool // a *privacy.Refusal (budget) rather than api.ErrInvalid
		want    string
	}{
		{"zero", "2025", nil, 0, false, "ε budget 0 is not positive"},
		{"negative", "2025", nil, -1, false, "is not positive"},
		{"above the cap", "2025", nil, 1_500_000, true, "above the consortium's cap of 1 per quarter"},
		{"above what is left", "2024-Q3", nil, 800_000, true, "2024-Q3 has 0.750000 left"},
		{"unknown indicator", "2025", []string{"nope"}, 100_000, false, `indicator "nope" is not in catalog`},
		{"indicator twice", "2025", []string{"age", "age"}, 100_000, false, "named twice"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, checkErr := rs.CheckPublish(ctx, mustPeriod(t, tc.period), tc.inds, tc.budget)
			_, err := rs.Publish(ctx, mustPeriod(t, tc.period), tc.inds, tc.budget)
			for _, e := range []error{checkErr, err} {
				var ref *privacy.Refusal
				if errors.As(e, &ref) != tc.refusal || (!tc.refusal && !errors.Is(e, api.ErrInvalid)) || e == nil || !strings.Contains(e.Error(), tc.want) {
					t.Errorf("%v, want %s saying %q", e, map[bool]string{true: "a refusal", false: "ErrInvalid"}[tc.refusal], tc.want)
				}
			}
		})
	}
	if _, err := rs.st.Get(pendingKey); err == nil {
		t.Error("a refused request left a pending release")
	}
	for _, q := range []string{"2024-Q3", "2025-Q1"} {
		if got, want := spentOn(t, rs, "RS", q), map[string]int64{"2024-Q3": 250_000, "2025-Q1": 0}[q]; got != want {
			t.Errorf("after the refusals %s spent %d, want %d", q, got, want)
		}
	}
	var n int
	if err := rs.Ledger().FSM().Releases(func(int64, privacy.Signed) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("%d releases in the ledger, %v; want the one yearly release", n, err)
	}
}
