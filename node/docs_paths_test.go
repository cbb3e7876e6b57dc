package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuidePathsExist: the files docs/cluster.md tells an operator to back
// up or write are where a running node keeps them, and the missing-
// certificate hint sends an operator to the guide, not to a command only
// the coordinator can run.
func TestGuidePathsExist(t *testing.T) {
	r := newRegion(t, "BA")
	guide, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ledger/ledger/ledger.db", "ledger/raft/raft.db", "ledger/raft/"} {
		if !strings.Contains(string(guide), "`DATA-DIR/"+p) {
			t.Errorf("docs/cluster.md does not name DATA-DIR/%s", p)
		}
		if _, err := os.Stat(filepath.Join(r.cfgs[0].DataDir, p)); err != nil {
			t.Errorf("a running node has no %s: %v", p, err)
		}
	}
	cfg := r.config("nocert")
	_, err = Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "docs/operator.md, section 3") || strings.Contains(err.Error(), "ca issue") {
		t.Errorf("missing certificate: %v; want a pointer to docs/operator.md section 3 and no CA command", err)
	}
}
