// Package demo runs a whole region on one machine: a regional CA, partner
// nodes for AL, BA, XK and RS and a researcher read replica on loopback,
// synthetic records, yearly releases through the ledger, and the
// dashboard. Everything is the real thing (stores, mutual TLS, raft, the
// DP engine); only the data is synthetic and the network is loopback.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/keyseal"
	"roundtable/node"
	"roundtable/node/api"
	"roundtable/node/client"
	"roundtable/node/store"
	"roundtable/node/synth"
	"roundtable/node/verify"
	"roundtable/privacy"
)

// Options configures a demo region.
type Options struct {
	HTTPAddr string // the first partner's dashboard, e.g. 127.0.0.1:8080
	Check    bool   // headless: verify, query, summarise, exit
	Dir      string // where the region's files go; "" = a temporary directory
	From, To int    // years of synthetic data
	Out      io.Writer
	// RunCLI, if set, runs a roundtable command line (without the program
	// name) as the binary would, writing its output to out. With Check, the
	// demo runs the verify command it prints through it, exactly as a
	// researcher would type it.
	RunCLI func(ctx context.Context, args []string, out io.Writer) error
}

// The demo's region and its budget. Each partner publishes each closed
// year once, the whole catalog at ReleaseBudget (the default cadence: the
// same cost per person as four quarterly releases, half the interval on a
// year), which leaves budget on every quarter for an operator to try
// publishing from the dashboard.
var demoPartners = []string{"RS", "AL", "BA", "XK"}

const (
	ReleaseBudget privacy.Budget = 2 * privacy.Micro  // ε, charged to each quarter of the year
	CapBudget     privacy.Budget = 3 * privacy.Micro  // ε per quarter
	MaxCapBudget  privacy.Budget = 10 * privacy.Micro // the genesis's ceiling on the cap
	// CoordinatorKeyFile and GenesisFile are in the region's directory.
	CoordinatorKeyFile = "coordinator.key"
	GenesisFile        = "genesis.json"
	replicaID          = "replica-research"
	passphrase         = "demo passphrase — never use this for real data"
)

// Run brings the region up, publishes, and either waits for ctx (serving
// the dashboard) or, with Check, verifies and returns.
func Run(ctx context.Context, o Options) (err error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.From == 0 {
		o.From, o.To = 2019, 2024
	}
	r := &region{o: o, out: o.Out}
	if r.dir = o.Dir; r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "roundtable-demo-*"); err != nil {
			return err
		}
		defer os.RemoveAll(r.dir)
	} else if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if err := r.up(ctx); err != nil {
		return err
	}
	if err := r.publish(ctx); err != nil {
		return err
	}
	if err := r.awaitCheckpoint(ctx); err != nil {
		return err
	}
	if o.Check {
		return r.check(ctx)
	}
	return r.serve(ctx)
}

type region struct {
	o   Options
	out io.Writer
	dir string
	// coordKey is the coordinator's key file (passphrase: the demo's).
	coordKey string
	log      *slog.Logger
	logF     *os.File
	nodes    []*node.Node // partners in demoPartners order, then the replica
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func (r *region) step(format string, args ...any) {
	fmt.Fprintf(r.out, "• "+format+"\n", args...)
}

// up makes the CA, certificates, stores and synthetic data, then starts
// the nodes: the first partner founds the ledger, the others join it.
func (r *region) up(ctx context.Context) error {
	var err error
	if r.logF, err = os.Create(filepath.Join(r.dir, "region.log")); err != nil {
		return err
	}
	r.log = slog.New(slog.NewTextHandler(r.logF, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r.step("region files in %s (node logs: region.log)", r.dir)
	// The CA key is sealed like a real one, under the demo's passphrase.
	ca, err := cluster.InitCA(filepath.Join(r.dir, "ca"), "western-balkans-demo", []byte(passphrase), keyseal.Minimum())
	if err != nil {
		return err
	}
	kdf := store.MinKDFParams() // the fastest the floor allows; production uses DefaultKDFParams
	var partners []governance.Partner
	for _, p := range demoPartners {
		dir := filepath.Join(r.dir, p)
		if err := ca.Issue(p, []string{"127.0.0.1", "localhost"}, filepath.Join(dir, node.TLSDir)); err != nil {
			return err
		}
		if err := store.Init(dir, p, []byte(passphrase), kdf); err != nil {
			return err
		}
		pub, n, err := r.fill(ctx, dir, p)
		if err != nil {
			return err
		}
		r.step("%s: store created, %d synthetic case records %d–%d imported (encrypted)", p, n, r.o.From, r.o.To)
		partners = append(partners, governance.Partner{ID: p, Name: partnerName(p), PublicKey: pub})
	}
	if err := ca.Issue(replicaID, []string{"127.0.0.1", "localhost"}, filepath.Join(r.dir, "replica", node.TLSDir)); err != nil {
		return err
	}
	cat, err := aggregate.CatalogV2().Canonical()
	if err != nil {
		return err
	}
	// The region's one coordinator (1 of 1; a real consortium names three
	// and a threshold of two). Its key file lives in the region's directory
	// and never on a node.
	r.coordKey = filepath.Join(r.dir, CoordinatorKeyFile)
	coordPub, err := governance.GenerateKeyFile(r.coordKey, []byte(passphrase), keyseal.Minimum())
	if err != nil {
		return err
	}
	genesis, err := json.MarshalIndent(cluster.Genesis{
		Name:         "western-balkans-demo",
		Coordinators: []governance.Coordinator{{Name: "regional coordinator", PublicKey: coordPub}},
		Threshold:    1,
		MaxCapMicro:  MaxCapBudget.Micro(),
		Partners:     partners,
		Policy:       governance.Policy{Accounting: privacy.PureDP, CapMicro: CapBudget.Micro()},
		Catalog:      cat,
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, GenesisFile), genesis, 0o600); err != nil {
		return err
	}
	id, err := governance.IDOfFile(genesis)
	if err != nil {
		return err
	}
	r.step("genesis: consortium %s…, governed by one coordinator key (1 of 1) in %s", id[:16], CoordinatorKeyFile)
	for i, p := range demoPartners {
		cfg := r.nodeConfig(p, i)
		if i == 0 {
			cfg.Genesis = genesis
		} else {
			cfg.Join, cfg.JoinGenesis = r.nodes[0].RaftAddr(), genesis // serve --join ADDR --genesis FILE
		}
		n, err := node.Open(ctx, cfg)
		if err != nil {
			return fmt.Errorf("start %s: %w", p, err)
		}
		r.start(n)
		if i == 0 {
			if err := n.Ledger().WaitForLeader(ctx); err != nil {
				return err
			}
			if err := waitGenesis(ctx, n); err != nil {
				return err
			}
		}
	}
	if err := r.govern(ctx, governance.Action{Type: governance.AddReplica, ID: replicaID}); err != nil {
		return err
	}
	cfg := r.nodeConfig("replica", len(demoPartners))
	cfg.Join, cfg.JoinGenesis = r.nodes[0].RaftAddr(), genesis
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start replica: %w", err)
	}
	r.start(n)
	r.step("ledger up: %d partner nodes and a researcher replica over mutual TLS (leader %s)", len(demoPartners), leaderOf(r.nodes[0]))
	return nil
}

// govern does what a coordinator does: prepare a statement from the
// ledger's governance history, sign it with the key file, submit it.
func (r *region) govern(ctx context.Context, a governance.Action) error {
	c := client.New("http://"+r.nodes[0].HTTPAddr(), "")
	st, err := c.Prepare(ctx, a)
	if err != nil {
		return err
	}
	key, err := governance.OpenKeyFile(r.coordKey, []byte(passphrase))
	if err != nil {
		return err
	}
	if err := st.Sign(key); err != nil {
		return err
	}
	res, err := c.Govern(ctx, st)
	if err != nil {
		return fmt.Errorf("governance %s: %w", a.Type, err)
	}
	r.step("coordinator-signed statement %d (%s) admitted by the ledger", res.Seq, a.Type)
	return nil
}

// fill imports one partner's synthetic records and returns its signing key.
func (r *region) fill(ctx context.Context, dir, partner string) ([]byte, int, error) {
	st, err := store.Open(dir, []byte(passphrase))
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	imp, err := st.BeginImport(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer imp.Abort()
	n, err := synth.Cases(ctx, synth.Options{Partner: aggregate.Country(partner), From: r.o.From, To: r.o.To, Seed: 2026},
		func(c *aggregate.Case) error { return imp.Add(c) })
	if err != nil {
		return nil, 0, err
	}
	if _, err := imp.Commit(); err != nil {
		return nil, 0, err
	}
	return st.PublicKey(), n, nil
}

func (r *region) nodeConfig(name string, i int) node.Config {
	httpAddr := "127.0.0.1:0"
	if i == 0 && r.o.HTTPAddr != "" {
		httpAddr = r.o.HTTPAddr
	}
	cfg := node.Config{
		DataDir: filepath.Join(r.dir, name), HTTPAddr: httpAddr, RaftAddr: "127.0.0.1:0", PublicReads: true,
		// Loopback: short timeouts keep the demo snappy. Real regions keep the
		// defaults, sized for 50–400 ms round trips.
		Timing: node.Timing{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond,
			LeaderLease: 200 * time.Millisecond, CosignInterval: 200 * time.Millisecond},
		Logger: r.log.With("node", name),
	}
	if name != "replica" {
		cfg.Passphrase = []byte(passphrase)
	}
	return cfg
}

func (r *region) start(n *node.Node) {
	r.nodes = append(r.nodes, n)
	ctx, cancel := context.WithCancel(context.Background())
	prev := r.stop
	r.stop = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := n.Serve(ctx); err != nil {
			r.log.Error("serve", "node", n.ID(), "err", err)
		}
	}()
}

// publish releases the whole catalog once for every year of every
// partner, partners in parallel, each through its own node.
func (r *region) publish(ctx context.Context) error {
	start := time.Now()
	errs := make([]error, len(demoPartners))
	var wg sync.WaitGroup
	for i := range demoPartners {
		wg.Go(func() {
			n := r.nodes[i]
			for y := r.o.From; y <= r.o.To; y++ {
				year := aggregate.Period{Year: y}
				if _, err := n.Publish(ctx, year, nil, ReleaseBudget); err != nil {
					errs[i] = fmt.Errorf("%s %s: %w", demoPartners[i], year, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.step("published %d signed yearly releases (whole catalog, ε %s on each quarter of the year, cap %s) in %s",
		(r.o.To-r.o.From+1)*len(demoPartners), ReleaseBudget, CapBudget, time.Since(start).Round(time.Millisecond))
	return nil
}

// awaitCheckpoint waits until the partners have co-signed a regional
// checkpoint covering every release, so a researcher can verify them all.
func (r *region) awaitCheckpoint(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	want, err := r.nodes[0].Ledger().FSM().TreeHead()
	if err != nil {
		return err
	}
	for {
		done := true
		for _, n := range r.nodes { // the replica included: researchers read it
			_, size, regional, err := n.Ledger().FSM().Checkpoint()
			done = done && err == nil && regional && size == want.N
		}
		if done {
			r.step("regional checkpoint over %d releases co-signed by a majority of partners, on every node", want.N)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no regional checkpoint covering every release: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verifyArgs is the verify command a researcher runs against the replica:
// the genesis is the trust root, so partner keys come only from governance
// replayed from it, never from the server.
func (r *region) verifyArgs() []string {
	return []string{"verify", "--genesis", filepath.Join(r.dir, GenesisFile),
		"--server", "http://" + r.nodes[len(r.nodes)-1].HTTPAddr(), "--state", filepath.Join(r.dir, "verify-state.json")}
}

// shellLine prints args as a command line to paste (quoting what needs it).
func shellLine(args []string) string {
	out := []string{"roundtable"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// check does what a researcher would: verify the ledger through the
// replica from the genesis, then query a regional series.
func (r *region) check(ctx context.Context) error {
	replica := "http://" + r.nodes[len(r.nodes)-1].HTTPAddr()
	rep, err := verify.Run(ctx, verify.Options{Server: replica, StateFile: filepath.Join(r.dir, "verify-state.json"), Genesis: filepath.Join(r.dir, GenesisFile)})
	if err != nil {
		return fmt.Errorf("verify the ledger: %w", err)
	}
	r.step("verified %d releases from %d partners from the genesis (consortium %s…): signatures, inclusion proofs, checkpoint signed by %v", rep.Verified, len(rep.Partners), rep.Consortium[:16], rep.Signers)
	if rep.Verified == 0 || rep.Failed > 0 {
		return fmt.Errorf("verification: %d verified, %d failed", rep.Verified, rep.Failed)
	}
	line := shellLine(r.verifyArgs())
	fmt.Fprintf(r.out, "\nVerify it yourself: %s\n", line)
	if r.o.RunCLI != nil {
		var out strings.Builder
		err := r.o.RunCLI(ctx, r.verifyArgs(), &out)
		if err != nil || !strings.HasSuffix(out.String(), "result:      OK\n") {
			return fmt.Errorf("the printed command %s did not pass (%v):\n%s", line, err, out.String())
		}
		r.step("ran it: result OK")
	}
	q := url.Values{"indicator": {"victims"}, "rollup": {"region,year"}}
	res, err := client.New(replica, "").Series(ctx, q)
	if err != nil {
		return fmt.Errorf("query the regional series: %w", err)
	}
	if len(res.Series) == 0 || len(res.Series[0].Points) == 0 {
		return errors.New("the regional series of victims is empty")
	}
	fmt.Fprintln(r.out, "\nVictims in the region per year (consistent estimate, 95% interval):")
	for _, p := range res.Series[0].Points {
		if p.Estimate == nil {
			return fmt.Errorf("the regional series of victims has no estimate for %s: the releases do not determine it", p.Period)
		}
		fmt.Fprintf(r.out, "  %s  %5.0f  [%.0f, %.0f]\n", p.Period, p.Estimate.Value, p.Estimate.CILow, p.Estimate.CIHigh)
	}
	fmt.Fprintln(r.out, "\ndemo check passed")
	return nil
}

// serve prints how to use the region and waits for Ctrl-C.
func (r *region) serve(ctx context.Context) error {
	ts := r.nodes[0].Tokens()
	toks := map[api.Role]string{}
	for _, role := range api.Roles() {
		t, err := ts.Create(role, "demo "+string(role))
		if err != nil {
			return err
		}
		toks[role] = t
	}
	fmt.Fprintf(r.out, "\nThe region is running. Dashboard: http://%s/\n\n", r.nodes[0].HTTPAddr())
	for i, n := range r.nodes {
		name := "researcher replica"
		if i < len(demoPartners) {
			name = partnerName(demoPartners[i]) + " (" + demoPartners[i] + ")"
		}
		fmt.Fprintf(r.out, "  %-34s http://%s/   ledger %s\n", name, n.HTTPAddr(), n.RaftAddr())
	}
	fmt.Fprintf(r.out, "\nTokens for http://%s (paste into the dashboard, or send as 'Authorization: Bearer …'):\n", r.nodes[0].HTTPAddr())
	for _, role := range api.Roles() {
		fmt.Fprintf(r.out, "  %-12s %s\n", role, toks[role])
	}
	fmt.Fprintf(r.out, "\nGovernance: the coordinator key is %s (1 of 1, passphrase %q), the genesis %s;\nthe regional CA is in %s (same passphrase).\n",
		r.coordKey, passphrase, filepath.Join(r.dir, GenesisFile), filepath.Join(r.dir, "ca"))
	fmt.Fprintf(r.out, "\nVerify the ledger from the genesis: %s\n", shellLine(r.verifyArgs()))
	fmt.Fprintln(r.out, "Press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintln(r.out, "\nstopping the region…")
	return nil
}

func (r *region) close() error {
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
	var errs []error
	for i := len(r.nodes) - 1; i >= 0; i-- {
		errs = append(errs, r.nodes[i].Close())
	}
	if r.logF != nil {
		errs = append(errs, r.logF.Close())
	}
	return errors.Join(errs...)
}

func waitGenesis(ctx context.Context, n *node.Node) error {
	for {
		if _, err := n.Ledger().FSM().Consortium(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func leaderOf(n *node.Node) string {
	id, _ := n.Ledger().Leader()
	return id
}

func partnerName(code string) string {
	switch code {
	case "AL":
		return "Albania partner NGO"
	case "BA":
		return "Bosnia and Herzegovina partner NGO"
	case "XK":
		return "Kosovo partner NGO"
	case "RS":
		return "Serbia partner NGO"
	}
	return code + " partner NGO"
}
