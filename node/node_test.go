package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/node/client"
	"roundtable/node/store"
	"roundtable/node/synth"
	"roundtable/privacy"
)

const testPassphrase = "node test passphrase"

// testCap is the consortium's budget cap per partner and quarter (ε).
const testCap privacy.Budget = 1 * privacy.Micro

// testRegion is a live in-process region: real stores, real raft over
// mutual TLS on loopback, real HTTP APIs.
type testRegion struct {
	t     *testing.T
	dir   string
	ca    *cluster.CA
	nodes []*Node // partners in the order given, then any replica
	cfgs  []Config
	stops []func() // stops node i's Serve and closes it
	// genesis is the consortium's genesis file; joiners are given it
	// (serve --genesis), as the coordinators hand it to every partner.
	genesis []byte
}

// newRegion starts one partner node per code: the first founds the
// ledger, the others join it. Each store holds the synthetic records of
// 2024. t.Cleanup closes everything.
func newRegion(t *testing.T, partners ...string) *testRegion {
	t.Helper()
	ctx := t.Context()
	r := &testRegion{t: t, dir: t.TempDir()}
	var err error
	if r.ca, err = cluster.InitCA(filepath.Join(r.dir, "ca"), "node-test", []byte(testPassphrase), store.MinKDFParams()); err != nil {
		t.Fatal(err)
	}
	kdf := store.MinKDFParams()
	var members []governance.Partner
	for _, p := range partners {
		dir := filepath.Join(r.dir, p)
		if err := r.ca.Issue(p, []string{"127.0.0.1"}, filepath.Join(dir, TLSDir)); err != nil {
			t.Fatal(err)
		}
		if err := store.Init(dir, p, []byte(testPassphrase), kdf); err != nil {
			t.Fatal(err)
		}
		members = append(members, governance.Partner{ID: p, Name: p + " partner", PublicKey: fillStore(t, dir, p)})
	}
	cat, err := aggregate.CatalogV1().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	genesis, err := json.Marshal(cluster.Genesis{Name: "node-test",
		Coordinators: []governance.Coordinator{{Name: "coordinator", PublicKey: testCoordinator().Public().(ed25519.PublicKey)}},
		Threshold:    1, MaxCapMicro: (10 * testCap).Micro(), Partners: members,
		Policy:  governance.Policy{Accounting: privacy.PureDP, CapMicro: testCap.Micro()},
		Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	r.genesis = genesis
	t.Cleanup(r.close)
	for i, p := range partners {
		cfg := r.config(p)
		cfg.Passphrase = []byte(testPassphrase)
		if i == 0 {
			cfg.Genesis = genesis
		} else {
			cfg.Join, cfg.JoinGenesis = r.nodes[0].RaftAddr(), genesis
		}
		r.start(cfg)
		if i == 0 {
			r.waitGenesis(ctx, r.nodes[0])
		}
	}
	for _, n := range r.nodes {
		r.waitGenesis(ctx, n)
	}
	return r
}

// fillStore imports one partner's synthetic 2024 records and returns its
// signing public key.
func fillStore(t *testing.T, dir, partner string) []byte {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(dir, []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	imp, err := st.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Abort()
	if _, err := synth.Cases(ctx, synth.Options{Partner: aggregate.Country(partner), From: 2024, To: 2024, Seed: 11},
		func(c *aggregate.Case) error { return imp.Add(c) }); err != nil {
		t.Fatal(err)
	}
	if _, err := imp.Commit(); err != nil {
		t.Fatal(err)
	}
	return st.PublicKey()
}

func (r *testRegion) config(name string) Config {
	return Config{
		DataDir: filepath.Join(r.dir, name), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", PublicReads: true,
		Timing: Timing{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond,
			LeaderLease: 200 * time.Millisecond, CosignInterval: 100 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)).With("node", name),
	}
}

// start opens a node and serves it until the region closes or the node
// is stopped.
func (r *testRegion) start(cfg Config) *Node {
	r.t.Helper()
	n, err := Open(r.t.Context(), cfg)
	if err != nil {
		r.t.Fatalf("open %s: %v", cfg.DataDir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Serve(ctx) })
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := n.Close(); err != nil {
				r.t.Logf("close %s: %v", n.ID(), err)
			}
		})
	}
	// A restarted node keeps its raft address, so peers find it again.
	cfg.RaftAddr = n.RaftAddr()
	r.nodes = append(r.nodes, n)
	r.cfgs = append(r.cfgs, cfg)
	r.stops = append(r.stops, stop)
	return n
}

// restart closes node i (a clean stop; the ledger and store keep their
// files) and opens it again from its data dir, as `serve` with neither
// --bootstrap nor --join would.
func (r *testRegion) restart(i int) *Node {
	r.t.Helper()
	r.stops[i]()
	cfg := r.cfgs[i]
	cfg.Genesis, cfg.Join, cfg.JoinGenesis = nil, "", nil
	n := r.start(cfg)
	last := len(r.nodes) - 1
	r.nodes[i], r.cfgs[i], r.stops[i] = n, r.cfgs[last], r.stops[last]
	r.nodes, r.cfgs, r.stops = r.nodes[:last], r.cfgs[:last], r.stops[:last]
	return n
}

// testCoordinator is the test consortium's one coordinator key (1 of 1).
func testCoordinator() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("node test coordinator"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// govern signs a statement as the coordinator and submits it through the
// first node.
func (r *testRegion) govern(ctx context.Context, a governance.Action) {
	r.t.Helper()
	h, _, err := r.nodes[0].Ledger().FSM().Governance()
	if err != nil {
		r.t.Fatal(err)
	}
	st := governance.Signed{Statement: governance.Statement{Consortium: h.Consortium, Seq: h.Next, Action: a}}
	if err := st.Sign(testCoordinator()); err != nil {
		r.t.Fatal(err)
	}
	res, err := r.nodes[0].Ledger().Govern(ctx, st)
	if err != nil || !res.OK {
		r.t.Fatalf("govern %s: %+v %v", a.Type, res, err)
	}
}

// addReplica registers and starts a read replica (no store, no key).
func (r *testRegion) addReplica(ctx context.Context, name string) *Node {
	r.t.Helper()
	id := "replica-" + name
	if err := r.ca.Issue(id, []string{"127.0.0.1"}, filepath.Join(r.dir, id, TLSDir)); err != nil {
		r.t.Fatal(err)
	}
	r.govern(ctx, governance.Action{Type: governance.AddReplica, ID: id})
	cfg := r.config(id)
	cfg.Join, cfg.JoinGenesis = r.nodes[0].RaftAddr(), r.genesis
	n := r.start(cfg)
	r.waitGenesis(ctx, n)
	return n
}

func (r *testRegion) close() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
}

func (r *testRegion) waitGenesis(ctx context.Context, n *Node) {
	r.t.Helper()
	waitFor(ctx, r.t, 20*time.Second, n.ID()+" applied the genesis", func() error {
		_, err := n.Ledger().FSM().Consortium()
		return err
	})
}

// waitRegionalCheckpoint waits until n holds a regional checkpoint of its
// whole tree, and returns it.
func waitRegionalCheckpoint(ctx context.Context, t *testing.T, n *Node) api.Checkpoint {
	t.Helper()
	var cp api.Checkpoint
	waitFor(ctx, t, 20*time.Second, n.ID()+" regional checkpoint", func() error {
		tree, err := n.Ledger().FSM().TreeHead()
		if err != nil {
			return err
		}
		if cp, err = (*backend)(n).Checkpoint(ctx); err != nil {
			return err
		}
		if !cp.Regional || cp.Size != tree.N {
			return fmt.Errorf("checkpoint size %d regional=%v, tree size %d", cp.Size, cp.Regional, tree.N)
		}
		return nil
	})
	return cp
}

func waitFor(ctx context.Context, t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func mustPeriod(t testing.TB, s string) aggregate.Period {
	t.Helper()
	p, err := aggregate.ParsePeriod(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spentOn is what the ledger has charged partner on quarter, in µε.
func spentOn(t testing.TB, n *Node, partner, quarter string) int64 {
	t.Helper()
	spends, err := n.Ledger().FSM().Spend(partner)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spends {
		if s.Quarter.String() == quarter {
			return s.SpentMicro
		}
	}
	return 0
}

// TestRegionReleaseWorkflow publishes through a live region and checks
// what a reader relies on: the inclusion proof verifies against the
// regional checkpoint, the budget reflects the spend on every node, a
// replica cannot publish, and a bad upload changes nothing.
func TestRegionReleaseWorkflow(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS", "AL", "BA")
	rs, al, ba := r.nodes[0], r.nodes[1], r.nodes[2]

	// Publish from a follower too: its reservation is forwarded to the leader.
	res, err := al.Publish(ctx, mustPeriod(t, "2024-Q1"), []string{"victims", "citizenship"}, 300_000)
	if err != nil {
		t.Fatalf("publish AL: %v", err)
	}
	if _, err := rs.Publish(ctx, mustPeriod(t, "2024"), []string{"victims"}, 100_000); err != nil {
		t.Fatalf("publish RS: %v", err)
	}
	if res.Partner != "AL" || res.Period != "2024-Q1" || res.SpentMicro != 300000 || len(res.Indicators) != 2 {
		t.Errorf("publish result %+v", res)
	}

	t.Run("inclusion proof against the regional checkpoint", func(t *testing.T) {
		b := (*backend)(ba) // a third node, neither publisher
		// Both releases applied on ba before its checkpoint is read: the
		// regional checkpoint then covers both.
		if _, err := ba.Ledger().ConsistentRead(ctx); err != nil {
			t.Fatal(err)
		}
		cp := waitRegionalCheckpoint(ctx, t, ba)
		if len(cp.Signers) < 2 {
			t.Errorf("regional checkpoint signed by %v, want a majority of 3", cp.Signers)
		}
		if cp.Size != 2 {
			t.Errorf("checkpoint size %d, want 2 releases", cp.Size)
		}
		e, proof, err := b.Release(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Verified || e.Signed.Release.Partner != "AL" || e.Leaf != res.Leaf {
			t.Errorf("entry: verified=%v partner %s leaf %d, want verified AL leaf %d", e.Verified, e.Signed.Release.Partner, e.Leaf, res.Leaf)
		}
		if proof.TreeSize != cp.Size || !bytes.Equal(proof.Root, cp.Root) {
			t.Fatalf("proof is for tree %d %x, checkpoint is %d %x", proof.TreeSize, proof.Root, cp.Size, cp.Root)
		}
		// Recompute the leaf from the release, not from the proof's own claim.
		data, err := cluster.LeafData(&e.Signed)
		if err != nil {
			t.Fatal(err)
		}
		var root tlog.Hash
		copy(root[:], cp.Root)
		hashes := make(tlog.RecordProof, len(proof.Hashes))
		for i, h := range proof.Hashes {
			copy(hashes[i][:], h)
		}
		if err := tlog.CheckRecord(hashes, cp.Size, root, e.Leaf, tlog.RecordHash(data)); err != nil {
			t.Errorf("inclusion proof does not verify: %v", err)
		}
		// The check can fail: one changed byte of the release breaks it.
		tampered := bytes.Replace(data, []byte(`"AL"`), []byte(`"XK"`), 1)
		if err := tlog.CheckRecord(hashes, cp.Size, root, e.Leaf, tlog.RecordHash(tampered)); err == nil {
			t.Error("a tampered release verifies against the checkpoint")
		}
	})

	t.Run("budget", func(t *testing.T) {
		want := []struct {
			partner, quarter string
			micro            int64
		}{
			{"AL", "2024-Q1", 300000}, {"AL", "2024-Q2", 0},
			{"RS", "2024-Q1", 100000}, {"RS", "2024-Q4", 100000}, // a year spends on each quarter
			{"BA", "2024-Q1", 0},
		}
		for _, n := range r.nodes {
			waitFor(ctx, t, 10*time.Second, n.ID()+" applied both releases", func() error {
				if s := spentOn(t, n, "RS", "2024-Q4"); s == 0 {
					return errors.New("RS's yearly release not applied yet")
				}
				return nil
			})
			for _, w := range want {
				pol, spends, err := (*backend)(n).Budget(ctx, w.partner)
				if err != nil {
					t.Fatal(err)
				}
				if pol.CapMicro != testCap.Micro() {
					t.Errorf("%s: cap %d", n.ID(), pol.CapMicro)
				}
				var got int64
				for _, s := range spends {
					if s.Quarter.String() == w.quarter {
						got = s.SpentMicro
					}
				}
				if got != w.micro {
					t.Errorf("%s: %s spent %d µε on %s, want %d", n.ID(), w.partner, got, w.quarter, w.micro)
				}
			}
		}
		if _, _, err := (*backend)(rs).Budget(ctx, "ME"); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("budget of an unknown partner: %v, want ErrNotFound", err)
		}
		// Over what is left is refused (by the node's check, before a
		// reservation exists) and spends nothing.
		_, err := al.Publish(ctx, mustPeriod(t, "2024-Q1"), []string{"victims"}, 800_000)
		var refusal *privacy.Refusal
		if !errors.As(err, &refusal) {
			t.Errorf("publish over the cap: %v, want a refusal", err)
		}
		if got := spentOn(t, al, "AL", "2024-Q1"); got != 300000 {
			t.Errorf("after a refusal AL spent %d on 2024-Q1, want 300000", got)
		}
	})

	t.Run("replica refuses to publish", func(t *testing.T) {
		rep := r.addReplica(ctx, "research")
		if _, err := rep.Publish(ctx, mustPeriod(t, "2024-Q2"), nil, 100_000); !errors.Is(err, api.ErrNotPartner) {
			t.Errorf("replica Publish: %v, want ErrNotPartner", err)
		}
		if _, err := (*backend)(rep).Import(ctx, strings.NewReader("x"), "x.csv", "csv", api.ImportSource{}); !errors.Is(err, api.ErrNotPartner) {
			t.Errorf("replica Import: %v, want ErrNotPartner", err)
		}
		// Through HTTP, it is a 409 whatever the token.
		tok, err := rep.Tokens().Create(api.RoleOperator, "test")
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.New("http://"+rep.HTTPAddr(), tok).Publish(ctx, "2024-Q2", nil, 100_000)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 409 {
			t.Errorf("replica POST /v1/releases: %v, want 409", err)
		}
		// The replica still serves reads of the whole ledger.
		rels, _, err := (*backend)(rep).Releases(ctx, true)
		if err != nil || len(rels) != 2 {
			t.Errorf("replica releases: %d, %v; want 2", len(rels), err)
		}
	})

	t.Run("import with a bad row is refused whole", func(t *testing.T) {
		tok, err := rs.Tokens().Create(api.RoleOperator, "test")
		if err != nil {
			t.Fatal(err)
		}
		before, err := rs.st.Count()
		if err != nil {
			t.Fatal(err)
		}
		csv := validCSV(t, "RS", 3) + "RS-BAD-1,,2024-02-01,Presumed,Alien,,30,RS,RS,ForcedLabour,,,,,,,National,false,,\n"
		_, err = client.New("http://"+rs.HTTPAddr(), tok).Import(ctx, "bad.csv", "csv", strings.NewReader(csv))
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 422 {
			t.Fatalf("import with a bad row: %v, want 422", err)
		}
		report, _ := json.Marshal(ce.Body.Report)
		if !strings.Contains(string(report), `"line":5`) || !strings.Contains(string(report), `"field":"sex"`) {
			t.Errorf("422 report does not name line 5, field sex: %s", report)
		}
		after, err := rs.st.Count()
		if err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("store has %d cases after a refused import, had %d", after, before)
		}
		// The same rows without the bad one go in.
		rep, err := client.New("http://"+rs.HTTPAddr(), tok).Import(ctx, "good.csv", "csv", strings.NewReader(validCSV(t, "RS", 3)))
		if err != nil || !rep.Imported || rep.Rows != 3 {
			t.Errorf("good import: %+v, %v", rep, err)
		}
	})
}

// validCSV is the header and n fresh rows of partner's synthetic records,
// with case ids no store holds yet.
func validCSV(t testing.TB, partner string, n int) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := synth.Generate(context.Background(), &buf, synth.Options{Partner: aggregate.Country(partner), From: 2025, To: 2025, Seed: 99}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(buf.String(), "\n", n+2)
	if got := strings.Join(aggregate.Columns, ","); lines[0] != got {
		t.Fatalf("synth header %q, want aggregate.Columns %q", lines[0], got)
	}
	return strings.Join(lines[:n+1], "\n") + "\n"
}
