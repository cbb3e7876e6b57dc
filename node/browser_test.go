package node

import (
	"os"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/node/api"
	"roundtable/node/web/webtest"
)

// TestDashboardLiveRegion runs the dashboard's browser checks against a
// live region: real ledger, real stores, the real importer and release
// workflow behind the page (node/web's own browser test uses a fake).
func TestDashboardLiveRegion(t *testing.T) {
	webtest.RequireChromium(t)
	ctx := t.Context()
	r := newRegion(t, "RS", "AL", "BA")
	// Every partner releases the whole catalog for each quarter of 2024, so
	// the trend, country, corridor and budget charts all have data; at ε 0.9
	// a quarter's totals are readable (the dashboard draws no trend through
	// a point whose interval is wider than itself).
	for _, n := range r.nodes {
		for _, q := range mustPeriod(t, "2024").Quarters() {
			if _, err := n.Publish(ctx, q, nil, 900_000); err != nil {
				t.Fatalf("publish %s %s: %v", n.ID(), q, err)
			}
		}
	}
	// The page publishes and then reads the release back from the same
	// node, so it talks to the leader, which has applied what it answers.
	var leader *Node
	for _, n := range r.nodes {
		if n.Ledger().State() == raft.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	waitRegionalCheckpoint(ctx, t, leader)
	tok, err := leader.Tokens().Create(api.RoleOperator, "browser test")
	if err != nil {
		t.Fatal(err)
	}
	partner := leader.st.Partner()
	valid := validCSV(t, partner, 3)
	invalid := validCSV(t, partner, 1) + partner + "-BAD-1,,2025-02-01,Presumed,Alien,,30,RS,RS,ForcedLabour,,,,,,,National,false,,\n"
	before, err := leader.st.Count()
	if err != nil {
		t.Fatal(err)
	}
	webtest.RunDashboardChecksWith(t, "http://"+leader.HTTPAddr(), tok, webtest.Options{
		ValidCSV: []byte(valid), InvalidCSV: []byte(invalid),
		Period: "2024-Q1", Epsilon: 0.05, Indicators: []string{"victims"},
		ScreenshotDir: screenshotDir(t),
	})
	// The page's refused upload stored nothing; its accepted one stored 3.
	if after, err := leader.st.Count(); err != nil || after != before+3 {
		t.Errorf("store has %d cases after the page's imports, want %d (%v)", after, before+3, err)
	}
	// Its publish is charged on top of the 0.9 already spent on 2024-Q1.
	if got := spentOn(t, leader, partner, "2024-Q1"); got != 950000 {
		t.Errorf("%s spent %d µε on 2024-Q1 after the page's publish, want 950000", partner, got)
	}
}

// screenshotDir is $ROUNDTABLE_SCREENSHOT_DIR when set, for a human to look
// at the live dashboard, and the test's temporary directory otherwise.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("ROUNDTABLE_SCREENSHOT_DIR"); d != "" {
		return d
	}
	return t.TempDir()
}
