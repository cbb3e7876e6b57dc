package systemtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"roundtable/cluster/governance"
	"roundtable/node/api"
)

const (
	passphrase = "system test passphrase"
	// capEpsilon is the consortium's cap per partner and quarter; with
	// publishEpsilon, five releases fit in a quarter and the sixth must be
	// refused, so concurrent publishers press against the cap.
	capEpsilon     = "1"
	publishEpsilon = "0.2"
)

// raftFlags keep elections on loopback short, so a crash is survived in
// about a second.
var raftFlags = []string{"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--leader-lease-timeout", "200ms"}

// member is one partner's node process and where it listens.
type member struct {
	partner    string
	dir        string
	http, raft string
	p          *proc
	// genesis is the consortium's genesis file, a researcher's trust root.
	genesis string
	// gov signs governance statements: the consortium's two coordinator
	// keys (threshold 2) and their passphrase file.
	gov govKeys
}

type govKeys struct {
	keys     []string
	passFile string
}

// signFlags are the flags that sign with both coordinator keys.
func (g govKeys) signFlags() []string {
	return []string{"--key", g.keys[0], "--key", g.keys[1], "--passphrase-file", g.passFile}
}

func (m *member) url() string { return "http://" + m.http }

// serve starts (or restarts) the member's node with extra flags
// (--bootstrap FILE, --join ADDR --genesis FILE, or nothing for a restart).
func (m *member) serve(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--data-dir", m.dir, "--http", m.http, "--raft", m.raft, "--log-level", "warn"}, raftFlags...)
	m.p = start(t, passphrase, filepath.Join(m.dir, "..", m.partner+".log"), append(args, extra...)...)
}

func (m *member) health(ctx context.Context) (api.Health, error) {
	var h api.Health
	err := getJSON(ctx, m.url()+"/v1/health", &h)
	return h, err
}

// waitInCluster waits until the member's API answers and it sees a leader.
func (m *member) waitInCluster(ctx context.Context, t *testing.T) {
	t.Helper()
	eventually(ctx, t, 20*time.Second, m.partner+" in cluster", func(ctx context.Context) error {
		if m.p.exited() {
			t.Fatalf("%s exited: %v\n%s", m.partner, m.p.err, m.p.tail())
		}
		h, err := m.health(ctx)
		if err != nil {
			return err
		}
		if !h.InCluster {
			return fmt.Errorf("health %+v", h)
		}
		// A node that has just joined may not have applied the genesis yet,
		// and the API checks a publish request against its local catalog.
		var cat map[string]any
		return getJSON(ctx, m.url()+"/v1/catalog", &cat)
	})
}

var pubKeyLine = regexp.MustCompile(`signing public key: ([0-9a-f]{64})`)

var coordKeyLine = regexp.MustCompile(`public key: ([0-9a-f]{64})`)

// startRegion builds a region from the CLI: a CA, one store per partner
// filled with synthetic records, a genesis naming their keys, the first
// partner founding the ledger and the others joining it.
func startRegion(ctx context.Context, t *testing.T, partners ...string) []*member {
	t.Helper()
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	mustRun(ctx, t, "", "ca", "init", "--dir", ca, "--consortium", "systemtest", "--argon2-memory", "19456", "--argon2-time", "2")
	// Two coordinators, both needed for every governance statement.
	gov := govKeys{passFile: filepath.Join(root, "coordinator.pass")}
	writeFile(t, gov.passFile, "coordinator passphrase\n")
	genesis := []string{"genesis", "--consortium", "systemtest", "--epsilon-cap", capEpsilon, "--cap-ceiling", "5", "--threshold", "2"}
	for _, name := range []string{"alice", "bob"} {
		key := filepath.Join(root, name+".key")
		out := mustRun(ctx, t, "", "coordinator", "keygen", "--out", key, "--passphrase-file", gov.passFile, "--argon2-memory", "19456", "--argon2-time", "2")
		pub := coordKeyLine.FindStringSubmatch(out.stdout)
		if pub == nil {
			t.Fatalf("keygen printed no public key:\n%s", out)
		}
		gov.keys = append(gov.keys, key)
		genesis = append(genesis, "--coordinator", name+"="+pub[1])
	}
	var ms []*member
	for _, p := range partners {
		m := &member{partner: p, dir: filepath.Join(root, p), http: freeAddr(t), raft: freeAddr(t), gov: gov}
		mustRun(ctx, t, "", "ca", "issue", "--dir", ca, "--partner", p, "--out", filepath.Join(m.dir, "tls"))
		out := mustRun(ctx, t, passphrase, "init", "--data-dir", m.dir, "--partner", p, "--argon2-memory", "19456", "--argon2-time", "2")
		key := pubKeyLine.FindStringSubmatch(out.stdout)
		if key == nil {
			t.Fatalf("init printed no signing public key:\n%s", out)
		}
		genesis = append(genesis, "--partner", p+"="+p+" partner="+key[1])
		csv := filepath.Join(root, p+".csv")
		data := mustRun(ctx, t, "", "synth", "--partner", p, "--from", "2024", "--to", "2024", "--seed", "7")
		writeFile(t, csv, data.stdout)
		mustRun(ctx, t, passphrase, "import", "--data-dir", m.dir, csv)
		ms = append(ms, m)
	}
	g := mustRun(ctx, t, "", genesis...)
	gfile := filepath.Join(root, "genesis.json")
	writeFile(t, gfile, g.stdout)
	for _, m := range ms {
		m.genesis = gfile
	}

	ms[0].serve(t, "--bootstrap", gfile)
	ms[0].waitInCluster(ctx, t)
	for _, m := range ms[1:] {
		m.serve(t, "--join", ms[0].raft, "--genesis", gfile)
	}
	for _, m := range ms {
		m.waitInCluster(ctx, t)
	}
	return ms
}

// publishPlan is what each partner publishes, in order: six releases on
// one quarter (one more than the cap allows) and two on the next.
var publishPlan = []string{"2024-Q1", "2024-Q1", "2024-Q1", "2024-Q2", "2024-Q1", "2024-Q1", "2024-Q2", "2024-Q1"}

var publishedLine = regexp.MustCompile(`published release ([0-9a-f]+)`)

// TestRegionSurvivesLeaderCrash publishes from every partner at once while
// the leader's process is SIGKILLed and restarted, then checks that every
// acknowledged release is on every node, no quarter is overspent, and the
// nodes agree on the Merkle tree; finally a researcher verifies a follower.
func TestRegionSurvivesLeaderCrash(t *testing.T) {
	ctx := t.Context()
	ms := startRegion(ctx, t, "RS", "AL", "BA")

	type ack struct{ partner, id, period string }
	var (
		mu      sync.Mutex
		acked   []ack
		refused = budgetRefusals{}
		events  syncLog
	)
	ackc := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			for _, period := range publishPlan {
				r, err := runCmd(ctx, "", "publish", "--data-dir", m.dir, "--period", period, "--epsilon", publishEpsilon)
				if err != nil {
					t.Error(err)
					return
				}
				if r.code != 0 {
					events.add("%s %s: refused or failed: %s", m.partner, period, strings.TrimSpace(r.stderr))
					if strings.Contains(r.stderr, overBudget) {
						mu.Lock()
						refused[refused.key(m.partner, period)] = true
						mu.Unlock()
					}
				} else if id := publishedLine.FindStringSubmatch(r.stdout); id != nil {
					mu.Lock()
					acked = append(acked, ack{m.partner, id[1], period})
					mu.Unlock()
					events.add("%s %s: acknowledged %s", m.partner, period, id[1])
					ackc <- struct{}{}
				} else {
					t.Errorf("%s: publish exited 0 without a release id:\n%s", m.partner, r)
				}
				time.Sleep(150 * time.Millisecond)
			}
		})
	}

	// Crash the leader once a few releases are in, while the rest are in flight.
	publishing := make(chan struct{})
	go func() { wg.Wait(); close(publishing) }()
	for range 3 {
		select {
		case <-ackc:
		case <-publishing:
			t.Fatalf("the publishers finished with fewer than 3 acknowledged releases:\n%s", &events)
		case <-time.After(60 * time.Second):
			t.Fatalf("fewer than 3 acknowledged releases in 60s:\n%s", &events)
		}
	}
	leader := leaderOf(ctx, t, ms)
	leader.p.kill()
	events.add("SIGKILL leader %s", leader.partner)
	time.Sleep(time.Second)
	leader.serve(t) // a restart needs neither --bootstrap nor --join
	events.add("restarted %s", leader.partner)
	<-publishing
	for _, m := range ms {
		m.waitInCluster(ctx, t)
	}
	// The region works after the crash: every partner, the restarted one
	// included, publishes on a fresh quarter.
	for _, m := range ms {
		r := run(ctx, t, "", "publish", "--data-dir", m.dir, "--period", "2024-Q3", "--epsilon", publishEpsilon)
		id := publishedLine.FindStringSubmatch(r.stdout)
		if r.code != 0 || id == nil {
			t.Fatalf("%s: publish after the crash: %s", m.partner, r)
		}
		acked = append(acked, ack{m.partner, id[1], "2024-Q3"})
	}
	t.Logf("publish events:\n%s", &events)
	checkBudgetRefusals(ctx, t, ms[0], partners(ms), refused)
	// On a quarter nobody has touched, with nothing else going on, the cap
	// is exact: five releases fit, one micro-unit more does not.
	for _, id := range fillQuarterToCap(ctx, t, ms[1], "2024-Q4") {
		acked = append(acked, ack{ms[1].partner, id, "2024-Q4"})
	}
	if len(acked) < 3 {
		t.Fatalf("only %d acknowledged releases", len(acked))
	}

	// Every acknowledged release is on every node, as a linearizable read.
	var ledgers [][]api.ReleaseEntry
	for _, m := range ms {
		var rr api.ReleasesResponse
		eventually(ctx, t, 15*time.Second, m.partner+" consistent releases", func(ctx context.Context) error {
			return getJSON(ctx, m.url()+"/v1/releases?consistent=true&limit=1000", &rr)
		})
		if rr.Next != nil {
			t.Fatalf("%s: more than one page of releases (%d); the test reads one", m.partner, rr.Total)
		}
		have := map[string]api.ReleaseEntry{}
		for _, e := range rr.Releases {
			have[e.Signed.ID] = e
		}
		for _, a := range acked {
			e, ok := have[a.id]
			switch {
			case !ok:
				t.Errorf("%s: acknowledged release %s of %s (%s) is missing", m.partner, a.id, a.partner, a.period)
			case e.Signed.Release.Partner != a.partner || e.Signed.Release.Period.String() != a.period || !e.Verified:
				t.Errorf("%s: release %s is %s %s verified=%v, want %s %s verified", m.partner, a.id,
					e.Signed.Release.Partner, e.Signed.Release.Period, e.Verified, a.partner, a.period)
			}
		}
		ledgers = append(ledgers, rr.Releases)
	}

	// No quarter overspent, spend covers what was published, and every
	// node computes the same budget.
	published := map[string]int64{} // partner/quarter → spend of published releases
	for _, e := range ledgers[0] {
		published[e.Signed.Release.Partner+"/"+e.Signed.Release.Period.String()] += e.Signed.Release.SpendMicro
	}
	var first api.BudgetResponse
	for i, m := range ms {
		var b api.BudgetResponse
		eventually(ctx, t, 10*time.Second, m.partner+" budget", func(ctx context.Context) error {
			return getJSON(ctx, m.url()+"/v1/budget", &b)
		})
		if i == 0 {
			first = b
		} else if fmt.Sprint(b) != fmt.Sprint(first) {
			t.Errorf("%s budget %+v differs from %s's %+v", m.partner, b, ms[0].partner, first)
		}
		for _, p := range b.Partners {
			for _, q := range p.Quarters {
				if q.SpentMicro > b.CapMicro {
					t.Errorf("%s: %s %s spent %d µε, over the cap %d", m.partner, p.Partner, q.Quarter, q.SpentMicro, b.CapMicro)
				}
				if pub := published[p.Partner+"/"+q.Quarter]; q.SpentMicro < pub {
					t.Errorf("%s: %s %s spent %d µε but releases of %d µε are published", m.partner, p.Partner, q.Quarter, q.SpentMicro, pub)
				}
			}
		}
	}

	// Same tree on every node, under a regional checkpoint of it.
	eventually(ctx, t, 20*time.Second, "same checkpoint everywhere", func(ctx context.Context) error {
		var cps []api.Checkpoint
		for _, m := range ms {
			var h api.Health
			var cp api.Checkpoint
			if err := getJSON(ctx, m.url()+"/v1/health", &h); err != nil {
				return err
			}
			if err := getJSON(ctx, m.url()+"/v1/checkpoint", &cp); err != nil {
				return err
			}
			if cp.Size != h.TreeSize || !cp.Regional {
				return fmt.Errorf("%s: checkpoint size %d regional=%v, tree size %d", m.partner, cp.Size, cp.Regional, h.TreeSize)
			}
			cps = append(cps, cp)
		}
		for i, cp := range cps[1:] {
			if cp.Size != cps[0].Size || !bytes.Equal(cp.Root, cps[0].Root) {
				return fmt.Errorf("%s has tree %d %x, %s has %d %x", ms[i+1].partner, cp.Size, cp.Root, ms[0].partner, cps[0].Size, cps[0].Root)
			}
		}
		if cps[0].Size < int64(len(acked)) {
			return fmt.Errorf("tree size %d < %d acknowledged releases", cps[0].Size, len(acked))
		}
		return nil
	})

	t.Run("verify a follower", func(t *testing.T) {
		var follower *member
		for _, m := range ms {
			if h, err := m.health(ctx); err == nil && h.RaftState == "Follower" {
				follower = m
				break
			}
		}
		if follower == nil {
			t.Fatal("no follower")
		}
		state := filepath.Join(t.TempDir(), "verify-state.json")
		r := run(ctx, t, "", "verify", "--genesis", follower.genesis, "--server", follower.url(), "--state", state)
		if r.code != 0 || !strings.HasSuffix(r.stdout, "result:      OK\n") || !strings.Contains(r.stdout, "governance replayed from the genesis") {
			t.Fatalf("verify against %s: %s", follower.partner, r)
		}
		// Running again checks consistency with the checkpoint kept in state.
		if r := run(ctx, t, "", "verify", "--genesis", follower.genesis, "--server", follower.url(), "--state", state); r.code != 0 {
			t.Fatalf("second verify against %s: %s", follower.partner, r)
		}
	})

	t.Run("verify refuses a server with forged governance", func(t *testing.T) {
		fake := forgedGovernanceProxy(t, ms[0].url())
		// Trusting the server's keys on first use, the forgery passes.
		r := run(ctx, t, "", "verify", "--tofu", "--server", fake, "--state", filepath.Join(t.TempDir(), "tofu.json"))
		if r.code != 0 || !strings.HasSuffix(r.stdout, "result:      OK\n") {
			t.Fatalf("with --tofu the forged governance is not looked at, so this should pass: %s", r)
		}
		// From the genesis, the statement without the coordinators'
		// signatures is refused: exit non-zero, last line FAILED.
		r = run(ctx, t, "", "verify", "--genesis", ms[0].genesis, "--server", fake, "--state", filepath.Join(t.TempDir(), "genesis.json"))
		if r.code == 0 || !strings.HasSuffix(r.stdout, "result:      FAILED\n") || !strings.Contains(r.stdout, "valid coordinator signature(s), the threshold is 2 of 2") {
			t.Fatalf("verify --genesis against forged governance: %s", r)
		}
	})
}

// forgedGovernanceProxy serves upstream's API, except that /v1/governance
// gains a statement adding partner EV signed by a key that is no
// coordinator's: what a server would show to pass off EV's releases.
func forgedGovernanceProxy(t *testing.T, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("GET /v1/governance", func(w http.ResponseWriter, r *http.Request) {
		var h api.GovernanceHistory
		if err := getJSON(r.Context(), upstream+"/v1/governance", &h); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		evPub, _, _ := ed25519.GenerateKey(rand.Reader)
		_, forger, _ := ed25519.GenerateKey(rand.Reader)
		s := governance.Signed{Statement: governance.Statement{Consortium: h.Consortium, Seq: h.Next,
			Action: governance.Action{Type: governance.AddPartner, Partner: &governance.Partner{ID: "EV", Name: "forged", PublicKey: evPub}}}}
		if err := s.Sign(forger); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h.Statements = append(h.Statements, s)
		h.Next++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

func partners(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.partner)
	}
	return out
}

// leaderOf asks each member who leads and returns that member.
func leaderOf(ctx context.Context, t *testing.T, ms []*member) *member {
	t.Helper()
	var leader *member
	eventually(ctx, t, 10*time.Second, "a leader", func(ctx context.Context) error {
		for _, m := range ms {
			h, err := m.health(ctx)
			if err != nil {
				continue
			}
			if i := slices.IndexFunc(ms, func(x *member) bool { return x.partner == h.Leader }); i >= 0 {
				leader = ms[i]
				return nil
			}
		}
		return fmt.Errorf("no member names a leader")
	})
	return leader
}
