package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/store"
)

// TestBackupRestoreRejoin runs an operator's disaster recovery with the
// real binary: `backup` of a serving node (through its operator socket, no
// passphrase) while `publish` processes run on it and on another partner;
// the node is SIGKILLed and its directory counts as lost; `restore` refuses
// a wrong passphrase (saying so, leaving nothing) and a non-empty
// directory, then restores into a new one; `serve --join --genesis` on a
// new address brings the node back with the same certificate. It must
// catch up to the others' tree (same size and root at the same applied
// index), publish again as RS, and hold the same cases as the lost node.
func TestBackupRestoreRejoin(t *testing.T) {
	ctx := t.Context()
	ms := startRegion(ctx, t, "RS", "AL", "BA")
	rs, al := ms[0], ms[1]
	root := filepath.Dir(rs.dir)

	// Both partners publish one quarter after another until the backup is
	// done, so publishing is under way for the whole backup however fast
	// the machine is.
	var wg sync.WaitGroup
	var published syncLog
	var backupDone atomic.Bool
	var periods []string
	for y := 2024; y >= 2019; y-- {
		for q := 1; q <= 4; q++ {
			periods = append(periods, fmt.Sprintf("%d-Q%d", y, q))
		}
	}
	for _, m := range []*member{rs, al} {
		wg.Go(func() {
			for _, period := range periods {
				if backupDone.Load() {
					return
				}
				r, err := runCmd(ctx, "", "publish", "--data-dir", m.dir, "--period", period, "--epsilon", publishEpsilon)
				if err != nil || r.code != 0 {
					t.Errorf("%s publish %s: %v %s", m.partner, period, err, r)
					return
				}
				published.add("%s %s", m.partner, period)
			}
		})
	}
	backup := filepath.Join(root, "rs.rtbackup")
	time.Sleep(300 * time.Millisecond) // let the first publishes start
	published.add("backup starts")
	out := mustRun(ctx, t, "", "backup", "--data-dir", rs.dir, "--out", backup)
	published.add("backup done")
	backupDone.Store(true)
	if !strings.Contains(out.stdout, "online, from the running node") {
		t.Errorf("backup of a serving node did not go through the node:\n%s", out)
	}
	if r := run(ctx, t, "", "backup", "--data-dir", rs.dir, "--out", backup); r.code == 0 || !strings.Contains(r.stderr, "never overwrites") {
		t.Errorf("a second backup to the same file: %s", r)
	}
	wg.Wait()
	if events := published.String(); strings.HasSuffix(events, "backup starts\nbackup done") {
		t.Fatalf("every publish had finished before the backup started; nothing ran during it:\n%s", events)
	}
	t.Logf("publishes and the backup:\n%s", &published)

	// RS's machine is lost.
	rs.p.kill()
	lost := casesOf(t, rs.dir)

	dir := filepath.Join(root, "RS-new")
	r := run(ctx, t, "not the passphrase", "restore", "--from", backup, "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "does not open with this passphrase") {
		t.Errorf("restore with a wrong passphrase: %s", r)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left %s behind (%v)", dir, err)
	}
	if r := run(ctx, t, passphrase, "restore", "--from", backup, "--data-dir", al.dir); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore over a node's data dir: %s", r)
	}
	out = mustRun(ctx, t, passphrase, "restore", "--from", backup, "--data-dir", dir)
	if !strings.Contains(out.stdout, "restored partner RS's node") {
		t.Errorf("restore output:\n%s", out)
	}
	if got := casesOf(t, dir); !slices.Equal(got, lost) || len(got) == 0 {
		t.Errorf("restored store holds %d cases, the lost one %d (or their content differs)", len(got), len(lost))
	}

	// The new machine has a new address and rejoins with the same certificate.
	rs2 := &member{partner: "RS", dir: dir, http: freeAddr(t), raft: freeAddr(t), genesis: rs.genesis, gov: rs.gov}
	rs2.serve(t, "--join", al.raft, "--genesis", rs.genesis)
	rs2.waitInCluster(ctx, t)
	r = run(ctx, t, "", "publish", "--data-dir", rs2.dir, "--period", "2024-Q4", "--epsilon", publishEpsilon)
	if r.code != 0 || publishedLine.FindStringSubmatch(r.stdout) == nil {
		t.Fatalf("publish from the restored node: %s", r)
	}
	live := []*member{al, ms[2], rs2}
	eventually(ctx, t, 30*time.Second, "the restored node has caught up", func(ctx context.Context) error {
		var views []string
		for _, m := range live {
			h, err := m.health(ctx)
			if err != nil {
				return err
			}
			var cp api.Checkpoint
			if err := getJSON(ctx, m.url()+"/v1/checkpoint", &cp); err != nil {
				return err
			}
			views = append(views, fmt.Sprintf("applied %d, tree %d, checkpoint %d/%x", h.AppliedIndex, h.TreeSize, cp.Size, cp.Root))
		}
		if len(slices.Compact(slices.Clone(views))) != 1 {
			return fmt.Errorf("nodes differ: %q", views)
		}
		return nil
	})
}

// casesOf reads every case of the store in dir (no node may be running
// on it) as sorted canonical JSON.
func casesOf(t *testing.T, dir string) []string {
	t.Helper()
	st, err := store.Open(dir, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []string
	err = st.Cases(t.Context(), func(c *aggregate.Case) error {
		b, err := json.Marshal(c)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
