package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"roundtable/node/api"
)

// soak is set by 'make soak': the long variants (a leader frozen for 90 s
// with default timings).
var soak = os.Getenv("ROUNDTABLE_SOAK") != ""

// freezeProc SIGSTOPs p; the returned func SIGCONTs it (idempotent) and is
// also registered as a cleanup, so a failed test never leaves it stopped.
func freezeProc(t *testing.T, p *proc) func() {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw) // runs before start's kill (cleanups run last-in first-out)
	return thaw
}

// publishTimed runs one publish and reports how long it took.
type timedResult struct {
	result
	took time.Duration
	err  error
}

func publishAsync(ctx context.Context, m *member, period string, extra ...string) chan timedResult {
	out := make(chan timedResult, 1)
	go func() {
		t0 := time.Now()
		r, err := runCmd(ctx, "", append([]string{"publish", "--data-dir", m.dir, "--period", period, "--epsilon", publishEpsilon}, extra...)...)
		out <- timedResult{r, time.Since(t0), err}
	}()
	return out
}

// startPublishStreaming starts a publish and returns once the command says
// it is sending the release request, so the caller can act while the
// release is in flight; the result arrives on the channel.
func startPublishStreaming(ctx context.Context, t *testing.T, m *member, period string, extra ...string) chan timedResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, append([]string{"publish", "--data-dir", m.dir, "--period", period, "--epsilon", publishEpsilon}, extra...)...)
	cmd.Env = env("")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sending := make(chan struct{})
	out := make(chan timedResult, 1)
	go func() {
		var stderr strings.Builder
		sc := bufio.NewScanner(pipe)
		signalled := false
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "reserving budget") {
				signalled = true
				close(sending)
			}
		}
		err := cmd.Wait()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code, err = ee.ExitCode(), nil
		}
		if !signalled {
			close(sending)
		}
		out <- timedResult{r, time.Since(t0), err}
	}()
	select {
	case <-sending:
	case <-time.After(30 * time.Second):
		t.Fatal("publish never started sending")
	}
	return out
}

// TestFrozenLeaderPublishing SIGSTOPs the leader's process while a publish
// is in flight through a follower and starts new publishes through both
// followers: the one in flight must land within 15 s and the new ones within
// 10 s of the freeze (issue 10: they used to wait out the whole freeze).
// Then a second node is frozen: the last one, without a quorum, must stop
// calling itself caught up. After SIGCONT every node agrees, and each
// release was charged once.
func TestFrozenLeaderPublishing(t *testing.T) {
	ctx := t.Context()
	ms := startRegion(ctx, t, "RS", "AL", "BA")
	leader := leaderOf(ctx, t, ms)
	var followers []*member
	for _, m := range ms {
		if m != leader {
			followers = append(followers, m)
		}
	}

	inflight := startPublishStreaming(ctx, t, followers[0], "2024-Q1")
	frozenAt := time.Now()
	thaw := freezeProc(t, leader.p)
	t.Logf("SIGSTOP leader %s with a publish in flight through %s", leader.partner, followers[0].partner)
	fresh := []chan timedResult{publishAsync(ctx, followers[0], "2024-Q2"), publishAsync(ctx, followers[1], "2024-Q2")}

	var ids []string
	check := func(what string, tr timedResult, limit time.Duration) {
		t.Helper()
		id := publishedLine.FindStringSubmatch(tr.stdout)
		if tr.err != nil || tr.code != 0 || id == nil {
			t.Fatalf("%s with the leader frozen: %v %s", what, tr.err, tr.result)
		}
		since := tr.took
		t.Logf("%s: published %s in %v", what, id[1], since.Round(time.Millisecond))
		if since > limit {
			t.Errorf("%s took %v with the leader frozen, want at most %v", what, since, limit)
		}
		ids = append(ids, id[1])
	}
	check("publish in flight through "+followers[0].partner, <-inflight, 15*time.Second)
	check("new publish through "+followers[0].partner, <-fresh[0], 10*time.Second)
	check("new publish through "+followers[1].partner, <-fresh[1], 10*time.Second)
	t.Logf("all three landed %v after the freeze", time.Since(frozenAt).Round(time.Millisecond))

	// The survivors lead themselves and say so.
	for _, m := range followers {
		h, err := m.health(ctx)
		if err != nil || !h.InCluster || !h.CaughtUp || h.Leader == leader.partner {
			t.Errorf("%s health with the old leader frozen: %+v %v, want in cluster and caught up under a new leader", m.partner, h, err)
		}
	}
	if soak {
		soakFrozen(ctx, t, followers, frozenAt, &ids)
	}

	// Freeze a second node: the last one has no quorum, so no leader it
	// hears from; within the election timeout (300 ms here) plus slack its
	// health must stop saying caught up.
	last, second := followers[1], followers[0]
	thaw2 := freezeProc(t, second.p)
	eventually(ctx, t, 5*time.Second, last.partner+" not caught up without a quorum", func(ctx context.Context) error {
		var h api.Health
		if err := getJSONAny(ctx, last.url()+"/v1/health", &h); err != nil {
			return err
		}
		if h.CaughtUp || h.InCluster {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
	thaw2()
	thaw()
	t.Logf("SIGCONT %s and %s", leader.partner, second.partner)

	// Every node converges on the same ledger, with each release once and
	// each partner charged once per release.
	for _, m := range ms {
		m.waitInCluster(ctx, t)
	}
	eventually(ctx, t, 20*time.Second, "every node has every release once", func(ctx context.Context) error {
		for _, m := range ms {
			var rr api.ReleasesResponse
			if err := getJSON(ctx, m.url()+"/v1/releases?consistent=true", &rr); err != nil {
				return err
			}
			count := map[string]int{}
			for _, e := range rr.Releases {
				count[e.Signed.ID]++
			}
			for _, id := range ids {
				if count[id] != 1 {
					return fmt.Errorf("%s has release %s %d times", m.partner, id, count[id])
				}
			}
			if len(rr.Releases) != len(ids) {
				return fmt.Errorf("%s has %d releases, %d acknowledged", m.partner, len(rr.Releases), len(ids))
			}
		}
		return nil
	})
	want := map[string]int64{followers[0].partner + "/2024-Q1": 200_000, followers[0].partner + "/2024-Q2": 200_000, followers[1].partner + "/2024-Q2": 200_000}
	for key, micro := range want {
		partner, quarter, _ := strings.Cut(key, "/")
		spent, _, err := spentMicro(ctx, leader, partner, quarter)
		if err != nil {
			t.Fatal(err)
		}
		if !soak && spent != micro {
			t.Errorf("%s spent %d µε on %s, want %d: one charge per release", partner, spent, quarter, micro)
		}
	}
}

// soakFrozen keeps the leader frozen for 90 s, publishing through the
// survivors every few seconds; each must land within 10 s.
func soakFrozen(ctx context.Context, t *testing.T, survivors []*member, frozenAt time.Time, ids *[]string) {
	quarters := []string{"2024-Q3", "2024-Q4"}
	for i := 0; time.Since(frozenAt) < 90*time.Second; i++ {
		m := survivors[i%2]
		tr := <-publishAsync(ctx, m, quarters[(i/2)%2])
		id := publishedLine.FindStringSubmatch(tr.stdout)
		if tr.code != 0 || id == nil {
			if strings.Contains(tr.stderr, overBudget) {
				continue
			}
			t.Fatalf("soak: publish %d through %s: %s", i, m.partner, tr.result)
		}
		if tr.took > 10*time.Second {
			t.Errorf("soak: publish %d through %s took %v", i, m.partner, tr.took)
		}
		*ids = append(*ids, id[1])
		time.Sleep(2 * time.Second)
	}
	t.Logf("soak: %d releases through the survivors during a 90 s freeze", len(*ids))
}

// getJSONAny is getJSON that also decodes a non-200 answer (health answers
// 503 with its document when the node is not in a cluster).
func getJSONAny(ctx context.Context, url string, v any) error {
	err := getJSON(ctx, url, v)
	if err != nil && strings.Contains(err.Error(), ": 503 ") {
		_, body, _ := strings.Cut(err.Error(), ": 503 ")
		return json.Unmarshal([]byte(body), v)
	}
	return err
}

var reservationIn = regexp.MustCompile(`reservation ([0-9a-f]{32})`)

// serveWithEnv starts m's node with extra environment and log level info.
func (m *member) serveWithEnv(t *testing.T, extraEnv ...string) {
	t.Helper()
	args := append([]string{"serve", "--data-dir", m.dir, "--http", m.http, "--raft", m.raft, "--log-level", "info"}, raftFlags...)
	log := filepath.Join(m.dir, "..", fmt.Sprintf("%s-%d.log", m.partner, time.Now().UnixNano()))
	m.p = startEnv(t, passphrase, extraEnv, log, args...)
}

// TestPublishKilledAtEachStep SIGKILLs a node at each step of a publish
// (after reserving, after signing, after the ledger took the release but
// before the answer) and checks what the operator is told, what
// 'publish --status' shows, and that a restart completes the release
// exactly once with one charge.
func TestPublishKilledAtEachStep(t *testing.T) {
	ctx := t.Context()
	ms := startRegion(ctx, t, "RS", "AL", "BA")
	al := ms[1]
	cases := []struct {
		step, period string
		// restartDuringWait restarts the node while the command waits for
		// it, so the node itself says what became of the release.
		restartDuringWait bool
	}{
		{api.StepReserved, "2024-Q1", false},
		{api.StepSigned, "2024-Q2", false},
		{api.StepPublished, "2024-Q3", true},
	}
	for _, c := range cases {
		t.Run("killed "+c.step, func(t *testing.T) {
			al.p.kill()
			al.serveWithEnv(t, "ROUNDTABLE_TEST_STOP_AT="+c.step)
			al.waitInCluster(ctx, t)
			wait := "2s"
			if c.restartDuringWait {
				wait = "60s"
			}
			res := publishAsync(ctx, al, c.period, "--reconnect-wait", wait)
			eventually(ctx, t, 30*time.Second, "AL at "+c.step, func(context.Context) error {
				if !strings.Contains(al.p.tail(), "test stop point reached") {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			al.p.kill()
			if c.restartDuringWait {
				al.serveWithEnv(t)
			}
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			out := r.stdout + r.stderr
			t.Logf("publish killed at %s said:\n%s", c.step, out)
			if strings.Contains(out, "EOF") || strings.Contains(out, "connection refused") {
				t.Errorf("a raw transport error without words:\n%s", out)
			}
			m := reservationIn.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("the command does not name its reservation:\n%s", r.result)
			}
			resID := m[1]
			if c.restartDuringWait {
				// The node came back within the wait and said where the
				// release stands: finished, or being completed now.
				finished := r.code == 0 && publishedLine.MatchString(r.stdout)
				completing := r.code == 3 && strings.Contains(out, "the node is completing the release now") && strings.Contains(out, "Do not publish again")
				if !finished && !completing {
					t.Fatalf("after a restart within the wait: %s", r.result)
				}
			} else {
				for _, w := range []string{"did not answer within 2s", "0.2 for " + c.period, "release will be completed when the node starts again",
					"Do not publish again", "roundtable publish --status --data-dir " + al.dir} {
					if !strings.Contains(out, w) {
						t.Errorf("the command does not say %q:\n%s", w, out)
					}
				}
				if r.code != 3 {
					t.Errorf("exit status %d, want 3 (not finished)", r.code)
				}
				al.serveWithEnv(t)
			}
			al.waitInCluster(ctx, t)

			// The restart completed it: --status shows nothing in flight and
			// the completion with its release id; the log says so at INFO.
			var status string
			eventually(ctx, t, 30*time.Second, "completion recorded", func(ctx context.Context) error {
				r, err := runCmd(ctx, "", "publish", "--data-dir", al.dir, "--status")
				if err != nil {
					return err
				}
				status = r.stdout
				if r.code != 0 || !strings.Contains(status, "No release in flight on AL") || !strings.Contains(status, resID) {
					return fmt.Errorf("--status: %s", r)
				}
				return nil
			})
			t.Logf("publish --status:\n%s", status)
			line := ""
			for _, l := range strings.Split(status, "\n") {
				if strings.Contains(l, resID) {
					line = l
				}
			}
			if !strings.Contains(line, "completed after a restart") {
				t.Errorf("--status does not show reservation %s completed after a restart:\n%s", resID, status)
			}
			releases := releasesWith(ctx, t, al, resID)
			if len(releases) != 1 {
				t.Fatalf("%d releases use reservation %s, want exactly 1", len(releases), resID)
			}
			if !strings.Contains(line, releases[0]) {
				t.Errorf("--status line %q does not name release %s", line, releases[0])
			}
			logText, _ := os.ReadFile(al.p.log)
			if !regexp.MustCompile(`level=INFO msg="publish: release completed after a restart" release=` + releases[0]).Match(logText) {
				t.Errorf("the node's log does not report the completion of %s at INFO:\n%s", releases[0], al.p.tail())
			}
			spent, _, err := spentMicro(ctx, ms[0], "AL", c.period)
			if err != nil {
				t.Fatal(err)
			}
			if spent != 200_000 {
				t.Errorf("AL spent %d µε on %s, want 200000: charged once", spent, c.period)
			}
		})
	}
}

// releasesWith lists the ids of the releases (read consistently from m)
// that use reservation.
func releasesWith(ctx context.Context, t *testing.T, m *member, reservation string) []string {
	t.Helper()
	var rr api.ReleasesResponse
	eventually(ctx, t, 15*time.Second, "consistent releases", func(ctx context.Context) error {
		return getJSON(ctx, m.url()+"/v1/releases?consistent=true", &rr)
	})
	var out []string
	for _, e := range rr.Releases {
		if e.Signed.Release.Reservation == reservation {
			out = append(out, e.Signed.ID)
		}
	}
	return out
}

func init() {
	// The soak runs (make soak) use the default raft timings, sized for
	// 50–400 ms round trips between offices, as a real region would.
	if soak {
		raftFlags = nil
	}
}
