package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/keyseal"
	"roundtable/privacy"
)

// The test harness: a regional CA, partner keys and a genesis in a temp
// dir, and nodes on loopback ports with short timeouts. Everything a test
// starts is stopped by t.Cleanup.

// testPartners are the founding partners of the test consortium.
var testPartnerIDs = []string{"AL", "BA", "XK", "RS"}

// testCapMicro is the policy's cap: ε = 1.0 per partner and quarter.
const testCapMicro = privacy.Micro

type testRegion struct {
	tb      testing.TB
	caDir   string
	ca      *CA
	keys    map[string]ed25519.PrivateKey
	catalog *aggregate.Catalog
	genesis []byte
	logger  *slog.Logger
	// production: nodes run with the production raft timeouts (the
	// Default* constants) instead of the short test ones.
	production bool
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("ROUNDTABLE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

func newTestRegion(tb testing.TB) *testRegion {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := InitCA(filepath.Join(dir, "ca"), "Test Region", testCAPass, keyseal.Minimum())
	if err != nil {
		tb.Fatal(err)
	}
	r := &testRegion{tb: tb, caDir: filepath.Join(dir, "ca"), ca: ca, keys: map[string]ed25519.PrivateKey{},
		catalog: aggregate.CatalogV1(), logger: testLogger(tb)}
	var partners []governance.Partner
	for _, id := range testPartnerIDs {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		r.keys[id] = priv
		partners = append(partners, governance.Partner{ID: id, Name: "NGO " + id, PublicKey: pub})
	}
	catJSON, err := r.catalog.Canonical()
	if err != nil {
		tb.Fatal(err)
	}
	g := Genesis{
		Name:         "Test Region",
		Coordinators: fsmCoordinators("c1", "c2", "c3"),
		Threshold:    2,
		MaxCapMicro:  10 * testCapMicro,
		Partners:     partners,
		Policy:       governance.Policy{Accounting: privacy.PureDP, CapMicro: testCapMicro},
		Catalog:      catJSON,
	}
	r.genesis, err = json.Marshal(g)
	if err != nil {
		tb.Fatal(err)
	}
	fsmRegisterGenesis(tb, g) // makeRelease binds reservations to it
	return r
}

// govern signs a governance action as coordinators c1 and c2 at the
// ledger's next sequence number and submits it through n; a refusal fails
// the test.
func (r *testRegion) govern(ctx context.Context, n *Node, a governance.Action) ApplyResult {
	r.tb.Helper()
	if _, err := n.ConsistentRead(ctx); err != nil {
		r.tb.Fatal(err)
	}
	h, _, err := n.FSM().Governance()
	if err != nil {
		r.tb.Fatal(err)
	}
	res, err := n.Govern(ctx, signStatement(r.tb, h.Consortium, h.Next, a, "c1", "c2"))
	if err != nil {
		r.tb.Fatalf("govern %s: %v", a.Type, err)
	}
	if !res.OK {
		r.tb.Fatalf("govern %s refused: %s", a.Type, res.Refusal)
	}
	return res
}

// waitOut waits until id has left n's raft configuration.
func waitOut(tb testing.TB, n *Node, id string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.inConfiguration(id) {
		if time.Now().After(deadline) {
			tb.Fatalf("%s is still in the configuration", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodeTLS issues a certificate for id from the region's CA.
func (r *testRegion) nodeTLS(id string) *NodeTLS {
	r.tb.Helper()
	return issueTLS(r.tb, r.ca, id)
}

func issueTLS(tb testing.TB, ca *CA, id string) *NodeTLS {
	tb.Helper()
	certPEM, keyPEM, err := ca.IssuePEM(id, nil)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := NewNodeTLS(certPEM, keyPEM, ca.CertPEM())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// config is a node config with test timeouts, pinned to the region's
// genesis (as serve --genesis pins a joiner); the caller sets Bootstrap or
// Join.
func (r *testRegion) config(id, dataDir string) Config {
	cfg := Config{
		Genesis:            r.genesis,
		DataDir:            dataDir,
		ID:                 id,
		RaftAddr:           "127.0.0.1:0",
		TLS:                r.nodeTLS(id),
		Voter:              true,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		TransportTimeout:   2 * time.Second,
		HandshakeTimeout:   2 * time.Second,
		SnapshotInterval:   time.Hour, // tests snapshot on purpose, not on a timer
		CosignInterval:     100 * time.Millisecond,
		Logger:             r.logger.With("test_node", id),
	}
	if r.production {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout = 0, 0, 0, 0
		cfg.TransportTimeout, cfg.HandshakeTimeout, cfg.CosignInterval = 0, 0, 0
	}
	if key, ok := r.keys[id]; ok {
		s, err := NewNoteSigner(PartnerNoteName(id), key)
		if err != nil {
			r.tb.Fatal(err)
		}
		cfg.Signer = s
	}
	return cfg
}

// open starts a node and registers its Close with the test.
func (r *testRegion) open(cfg Config) *Node {
	r.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		r.tb.Fatalf("open %s: %v", cfg.ID, err)
	}
	r.tb.Cleanup(func() { _ = n.Close() })
	return n
}

// startCluster bootstraps the first id and joins the others to it.
func (r *testRegion) startCluster(ids ...string) []*Node {
	r.tb.Helper()
	first := r.config(ids[0], r.tb.TempDir())
	first.Bootstrap = r.genesis
	nodes := []*Node{r.open(first)}
	for _, id := range ids[1:] {
		cfg := r.config(id, r.tb.TempDir())
		cfg.Join = nodes[0].Addr()
		nodes = append(nodes, r.open(cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		if _, err := n.ConsistentRead(ctx); err != nil {
			r.tb.Fatalf("node %s never caught up: %v", n.ID(), err)
		}
	}
	return nodes
}

// release builds a reservation and the matching signed release for
// partner over period, spending spend micro-ε.
func (r *testRegion) release(partner string, period aggregate.Period, spend int64) (privacy.SignedReservation, privacy.Signed) {
	r.tb.Helper()
	return makeRelease(r.tb, r.keys[partner], r.catalog.Hash(), partner, period, spend)
}

func makeRelease(tb testing.TB, key ed25519.PrivateKey, catalogHash, partner string, period aggregate.Period, spend int64) (privacy.SignedReservation, privacy.Signed) {
	return makeReleaseOf(tb, key, catalogHash, partner, period, spend, []string{"referral_source"})
}

// makeReleaseOf is makeRelease for the given indicators (all of v1's: a
// whole-catalog release).
func makeReleaseOf(tb testing.TB, key ed25519.PrivateKey, catalogHash, partner string, period aggregate.Period, spend int64, indicators []string) (privacy.SignedReservation, privacy.Signed) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		tb.Fatal(err)
	}
	res := privacy.Reservation{
		ID: hex.EncodeToString(id[:]), Consortium: fsmConsortium(tb), Partner: partner, CatalogHash: catalogHash, Period: period,
		Accounting: privacy.PureDP, SpendMicro: spend, Indicators: indicators,
	}
	sr, err := privacy.SignReservation(res, key)
	if err != nil {
		tb.Fatal(err)
	}
	// The region's catalog is v1; a test of an unknown catalog keeps its hash.
	s := fixtureRelease(tb, aggregate.CatalogV1(), res, key, int64(period.Year*4+period.Quarter))
	return sr, s
}

// publish reserves and publishes through n, failing the test on a
// refusal. It returns the release id once both are acknowledged.
func publishOne(ctx context.Context, n *Node, sr privacy.SignedReservation, s privacy.Signed) (string, error) {
	res, err := n.Reserve(ctx, sr)
	if err != nil {
		return "", err
	}
	if !res.OK {
		return "", &privacy.Refusal{Reason: "reserve: " + res.Refusal}
	}
	res, err = n.Publish(ctx, s)
	if err != nil {
		return "", err
	}
	if !res.OK {
		return "", &privacy.Refusal{Reason: "publish: " + res.Refusal}
	}
	return res.ReleaseID, nil
}

// leaderOf returns the node that leads, waiting for one.
func leaderOf(tb testing.TB, nodes []*Node) *Node {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.State().String() == "Leader" {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no leader")
	return nil
}

// converge waits until every node has applied the same index with the same
// state hash and Merkle root (co-signatures may still be landing, so it
// retries), and returns that state hash.
func converge(tb testing.TB, nodes []*Node) string {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, n := range nodes {
			if _, err := n.ConsistentRead(ctx); err != nil {
				tb.Fatalf("consistent read on %s: %v", n.ID(), err)
			}
		}
		cancel()
		type view struct {
			idx  uint64
			hash string
			root string
			size int64
		}
		var views []view
		for _, n := range nodes {
			var v view
			v.idx = n.FSM().AppliedIndex()
			h, err := n.FSM().StateHash()
			if err != nil {
				tb.Fatal(err)
			}
			v.hash = h
			tree, err := n.FSM().TreeHead()
			if err != nil {
				tb.Fatal(err)
			}
			v.root, v.size = tree.Hash.String(), tree.N
			views = append(views, v)
		}
		same := true
		for _, v := range views[1:] {
			if v != views[0] {
				same = false
			}
		}
		if same {
			return views[0].hash
		}
		last = ""
		for i, v := range views {
			last += nodes[i].ID() + ": " + jsonString(v.idx, v.size, v.root, v.hash) + "\n"
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("nodes did not converge:\n%s", last)
	return ""
}

func jsonString(v ...any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// collector gathers acknowledged release ids from many goroutines.
type collector struct {
	mu  sync.Mutex
	ids []string
}

func (c *collector) add(id string) {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.mu.Unlock()
}

func (c *collector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}
