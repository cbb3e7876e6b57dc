package systemtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/node/api"
)

// TestGovernanceFromTheCLI governs a real region (two coordinators,
// threshold 2) the way coordinators would: one signature is refused, a
// statement prepared by one and signed by the other is admitted, a resend
// is harmless, a policy above the genesis ceiling is refused whoever signs,
// and a signed node removal takes the node out of the raft configuration.
func TestGovernanceFromTheCLI(t *testing.T) {
	ctx := t.Context()
	ms := startRegion(ctx, t, "RS", "AL", "BA")
	g := ms[0].gov
	srv := ms[0].url()
	pass := []string{"--passphrase-file", g.passFile}

	r := run(ctx, t, "", append([]string{"replica", "add", "--server", srv, "--id", "research", "--key", g.keys[0]}, pass...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "1 valid coordinator signature(s), the threshold is 2 of 2") {
		t.Fatalf("one signature of two: %s", r)
	}

	st := filepath.Join(t.TempDir(), "statement.json")
	mustRun(ctx, t, "", append([]string{"replica", "add", "--server", srv, "--id", "research", "--key", g.keys[0], "--out", st}, pass...)...)
	wrong := filepath.Join(t.TempDir(), "wrong.pass")
	writeFile(t, wrong, "not the passphrase\n")
	if r := run(ctx, t, "", "governance", "sign", "--key", g.keys[1], "--passphrase-file", wrong, st); r.code == 0 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Fatalf("sign with a wrong passphrase: %s", r)
	}
	out := mustRun(ctx, t, "", append([]string{"governance", "sign", "--key", g.keys[1]}, append(pass, st)...)...)
	if !strings.Contains(out.stdout, "add replica replica-research") || !strings.Contains(out.stdout, "2 signature(s)") {
		t.Fatalf("sign: %s", out)
	}
	// Submitted to another node than the one it was prepared on.
	if out := mustRun(ctx, t, "", "governance", "submit", "--server", ms[1].url(), st); !strings.Contains(out.stdout, "statement 1 (add_replica) admitted") {
		t.Fatalf("submit: %s", out)
	}
	if out := mustRun(ctx, t, "", "governance", "submit", "--server", srv, st); !strings.Contains(out.stdout, "already in the ledger") {
		t.Fatalf("resubmit: %s", out)
	}

	r = run(ctx, t, "", append([]string{"policy", "set", "--server", srv, "--epsilon-cap", "6"}, g.signFlags()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "above the ceiling the genesis sets") {
		t.Fatalf("policy above the ceiling: %s", r)
	}
	mustRun(ctx, t, "", append([]string{"policy", "set", "--server", srv, "--epsilon-cap", "2"}, g.signFlags()...)...)
	mustRun(ctx, t, "", append([]string{"node", "remove", "--server", srv, "--id", "BA"}, g.signFlags()...)...)

	eventually(ctx, t, 20*time.Second, "BA out of the raft configuration", func(ctx context.Context) error {
		var c api.ClusterInfo
		if err := getJSON(ctx, srv+"/v1/cluster", &c); err != nil {
			return err
		}
		for _, s := range c.Servers {
			if s.ID == "BA" {
				return fmt.Errorf("servers %+v", c.Servers)
			}
		}
		return nil
	})
	// Another node serves the same history once it has applied it (reads
	// are local, so a follower may lag the leader by a moment).
	eventually(ctx, t, 20*time.Second, "the whole governance history on another node", func(ctx context.Context) error {
		var h api.GovernanceHistory
		if err := getJSON(ctx, ms[1].url()+"/v1/governance", &h); err != nil {
			return err
		}
		var types []string
		for _, s := range h.Statements {
			types = append(types, s.Statement.Action.Type)
		}
		if got := strings.Join(types, ","); got != "add_replica,set_policy,remove_node" || h.Next != 4 || h.Threshold != 2 {
			return fmt.Errorf("governance history %s, next %d, threshold %d", got, h.Next, h.Threshold)
		}
		return nil
	})
}
