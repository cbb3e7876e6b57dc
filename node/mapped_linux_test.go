package node

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"roundtable/cluster"
	"roundtable/node/api"
)

// ledgerResidentKB is how much of the node's ledger file is resident in
// this process's mappings (/proc/self/smaps), in kB.
func ledgerResidentKB(t *testing.T, n *Node) int {
	t.Helper()
	path := filepath.Join(n.cfg.DataDir, "ledger", "ledger", cluster.LedgerFile)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			in = fields[len(fields)-1] == path
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("smaps: %q", sc.Text())
			}
			total += kb
		}
	}
	return total
}

// TestPagingGivesBackMappedPages: once pages of the listing have read
// mappedBudget bytes of the ledger, the node gives the file's mapped pages
// back, so a pass over years of releases (the series view's, the
// export's) does not leave the whole file resident in the node.
func TestPagingGivesBackMappedPages(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS")
	n := r.nodes[0]
	for _, q := range mustPeriod(t, "2024").Quarters() {
		if _, err := n.Publish(ctx, q, nil, 100_000); err != nil {
			t.Fatal(err)
		}
	}
	b := (*backend)(n)
	page := func() {
		t.Helper()
		p, err := b.ReleasePage(ctx, false, api.PageQuery{After: -1, Limit: 100})
		if err != nil || len(p.Releases) != 4 {
			t.Fatalf("page: %d releases, %v", len(p.Releases), err)
		}
	}
	defer func(old int64) { mappedBudget = old }(mappedBudget)
	mappedBudget = 1 << 40 // never: the page's reads stay resident
	page()
	resident := ledgerResidentKB(t, n)
	if resident < 64 {
		t.Fatalf("after reading 4 whole-catalog releases only %d kB of the ledger file is resident: the test does not see the mapping", resident)
	}
	mappedBudget = 1 // every page gives the mapping back
	page()
	if got := ledgerResidentKB(t, n); got > resident/2 {
		t.Errorf("after a page over the budget %d kB of the ledger file is resident (%d kB before): the mapped pages were not given back", got, resident)
	}
}
