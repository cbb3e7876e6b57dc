// Package apitest is an in-memory api.Backend with realistic fixture
// releases: six partners, 2019-Q1 to 2024-Q4, every indicator of catalog
// v1, noised and signed the way the privacy engine does it. The API tests,
// the dashboard's browser tests and the series benchmark run the real
// handlers against it, the way hashicorp/raft tests run over inmem
// transports.
package apitest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/privacy"
)

// Partners returns the fixture's partner codes, in ledger order.
func Partners() []string { return []string{"AL", "BA", "XK", "RS", "ME", "MK"} }

// Options shape the fixture.
type Options struct {
	Partner  string // this node's partner ("" for a replica); default "RS"
	Replica  bool   // run as a replica (Partner ignored)
	FromYear int    // first year with releases (default 2019)
	ToYear   int    // last year with releases (default 2024)
	Epsilon  privacy.Budget
	CapMicro int64 // policy cap per quarter (default 2 ε)
	Seed     uint64
	// NoReleases starts with an empty ledger; tests add releases built by
	// the real engine with AddRelease.
	NoReleases bool
}

// Fake is an in-memory api.Backend. It records the writes it receives so
// tests can assert on them.
type Fake struct {
	mu        sync.Mutex
	partner   string
	cat       *aggregate.Catalog
	keys      map[string]ed25519.PrivateKey
	entries   []api.ReleaseEntry
	hashes    []tlog.Hash // stored hashes of the Merkle log
	index     uint64
	policy    privacy.Policy
	spent     map[string]map[aggregate.Period]int64
	rng       *rand.Rand
	truth     func(partner string, p aggregate.Period) float64
	Imports   []ImportCall
	Publishes []PublishCall
	Members   []string // governance calls, as "govern 1 add_replica"

	statements []governance.Signed
	// NotInCluster makes Health report no leader and reads fail with
	// api.ErrNotInCluster.
	NotInCluster bool
	// RaftRPCRefused is what Health reports as refused raft RPCs.
	RaftRPCRefused map[string]uint64
	// HandshakesRefused is what Health reports as deny-listed peers.
	HandshakesRefused uint64
}

// ImportCall is one recorded Import.
type ImportCall struct {
	Filename, Format string
	Source           api.ImportSource
	Rows             int
	Imported         bool
}

// PublishCall is one recorded Publish.
type PublishCall struct {
	Period     string
	Indicators []string
	Epsilon    privacy.Budget
}

// New builds the fixture ledger.
func New(o Options) (*Fake, error) {
	if o.Partner == "" {
		o.Partner = "RS"
	}
	if o.Replica {
		o.Partner = ""
	}
	if o.FromYear == 0 {
		o.FromYear = 2019
	}
	if o.ToYear == 0 {
		o.ToYear = 2024
	}
	if o.Epsilon == 0 {
		o.Epsilon = privacy.Micro
	}
	if o.CapMicro == 0 {
		o.CapMicro = 2 * privacy.Micro
	}
	f := &Fake{
		partner: o.Partner, cat: aggregate.CatalogV1(), keys: map[string]ed25519.PrivateKey{},
		policy: privacy.Policy{Accounting: privacy.PureDP, CapMicro: o.CapMicro},
		spent:  map[string]map[aggregate.Period]int64{},
		rng:    rand.New(rand.NewPCG(o.Seed, 0x5eed)),
	}
	// A national level and a trend per partner, so charts have a shape.
	f.truth = func(partner string, p aggregate.Period) float64 {
		base := map[string]float64{"AL": 360, "BA": 180, "XK": 135, "RS": 450, "ME": 60, "MK": 120}[partner]
		t := float64((p.Year-2019)*4 + p.Quarter - 1)
		return base * (1 + 0.02*t + 0.15*math.Sin(t*math.Pi/2))
	}
	for _, p := range Partners() {
		seed := sha256.Sum256([]byte("roundtable fixture key " + p))
		f.keys[p] = ed25519.NewKeyFromSeed(seed[:])
		f.spent[p] = map[aggregate.Period]int64{}
	}
	for y := o.FromYear; y <= o.ToYear && !o.NoReleases; y++ {
		for q := 1; q <= 4; q++ {
			for _, p := range Partners() {
				if _, err := f.publish(p, aggregate.Period{Year: y, Quarter: q}, nil, o.Epsilon); err != nil {
					return nil, err
				}
			}
		}
	}
	return f, nil
}

// PublicKey is a partner's release key.
func (f *Fake) PublicKey(partner string) ed25519.PublicKey {
	return f.keys[partner].Public().(ed25519.PublicKey)
}

// publish noises synthetic tables with Laplace noise, signs, charges the
// budget and appends. f.mu must be held or f not yet shared.
func (f *Fake) publish(partner string, period aggregate.Period, names []string, budget privacy.Budget) (api.PublishResult, error) {
	spend, eps := budget.Micro(), budget.Value()
	newSpend, err := privacy.Admit(f.policy, privacy.PureDP, period, spend, func(q aggregate.Period) int64 { return f.spent[partner][q] })
	if err != nil {
		return api.PublishResult{}, err
	}
	var inds []*aggregate.Indicator
	for i := range f.cat.Indicators {
		ind := &f.cat.Indicators[i]
		if len(names) == 0 || contains(names, ind.Name) {
			inds = append(inds, ind)
		}
	}
	total := f.truth(partner, period)
	if period.IsYear() {
		total *= 4
	}
	rel := privacy.Release{Version: privacy.FormatVersion, Partner: partner, CatalogHash: f.cat.Hash(), Period: period,
		Reservation: fmt.Sprintf("res-%s-%s-%d", partner, period, len(f.entries)), Accounting: privacy.PureDP, SpendMicro: spend}
	for _, ind := range inds {
		rel.Indicators = append(rel.Indicators, f.noiseIndicator(ind, eps/float64(len(inds)), total))
	}
	signed, err := privacy.Sign(rel, f.keys[partner])
	if err != nil {
		return api.PublishResult{}, err
	}
	leaf, err := f.appendSigned(signed)
	if err != nil {
		return api.PublishResult{}, err
	}
	for _, q := range newSpend {
		f.spent[partner][q.Quarter] = q.SpentMicro
	}
	f.index += 2 // a reservation and a publish command
	return api.PublishResult{ID: signed.ID, Leaf: leaf, Partner: partner, Period: period.String(),
		Indicators: indicatorNames(inds), SpentMicro: spend, AppliedIndex: f.index}, nil
}

// appendSigned adds a signed release to the log. f.mu must be held or f
// not yet shared.
func (f *Fake) appendSigned(s privacy.Signed) (int64, error) {
	body, err := s.Release.Canonical()
	if err != nil {
		return 0, err
	}
	leaf := int64(len(f.entries))
	hs, err := tlog.StoredHashes(leaf, body, f)
	if err != nil {
		return 0, fmt.Errorf("fake merkle: %w", err)
	}
	f.hashes = append(f.hashes, hs...)
	var pub ed25519.PublicKey
	if k, ok := f.keys[s.Release.Partner]; ok {
		pub = k.Public().(ed25519.PublicKey)
	}
	f.entries = append(f.entries, api.ReleaseEntry{Signed: s, Leaf: leaf, Verified: true, PublicKey: pub})
	return leaf, nil
}

// AddRelease appends a release built elsewhere (by privacy.BuildRelease,
// say) as the ledger would after admitting it; the fake does not
// re-validate it. Sign it with Key(partner).
func (f *Fake) AddRelease(s privacy.Signed) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.appendSigned(s); err != nil {
		return err
	}
	f.index += 2
	return nil
}

// Key is a fixture partner's signing key.
func (f *Fake) Key(partner string) ed25519.PrivateKey { return f.keys[partner] }

// SetCatalog makes cat the current catalog, as a governance statement
// registering a new version would.
func (f *Fake) SetCatalog(cat *aggregate.Catalog) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cat = cat
	f.index++
}

// ReadHashes implements tlog.HashReader over the stored hashes.
func (f *Fake) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(f.hashes)) {
			return nil, fmt.Errorf("fake merkle: hash %d not stored", x)
		}
		out[i] = f.hashes[x]
	}
	return out, nil
}

// noiseIndicator makes one indicator's cells: a plausible split of total
// over the keys, plus Laplace noise at the scale the engine would use.
func (f *Fake) noiseIndicator(ind *aggregate.Indicator, eps, total float64) privacy.IndicatorRelease {
	ir := privacy.IndicatorRelease{Name: ind.Name, Mechanism: privacy.Laplace, Epsilon: eps}
	for _, d := range ind.Dimensions {
		ir.Dimensions = append(ir.Dimensions, d.Name)
	}
	if ind.Kind == aggregate.KindQuantiles {
		b := 1 / (eps / 2)
		ir.Cells = []privacy.Cell{f.cell(nil, total, b)}
		for _, r := range ind.Ranks {
			v := 14 + 20*r + f.rng.NormFloat64()
			ir.Quantiles = append(ir.Quantiles, privacy.Quantile{Rank: r, Value: math.Round(v*10) / 10, CILow: math.Round(v - 4), CIHigh: math.Round(v + 4)})
		}
		return ir
	}
	for m := 0; m < ind.NumMeasurements(); m++ {
		b := float64(ind.K) / (eps * ind.Share(m))
		kept := ind.Kept(m)
		f.forEachKey(ind, kept, func(key []string, weight float64) {
			ir.Cells = append(ir.Cells, f.cell(key, total*weight*float64(ind.K)/2, b))
		})
	}
	return ir
}

// forEachKey walks the cells of a measurement keeping the named dimensions,
// with a deterministic, uneven weight per cell (weights of one dimension
// sum to 1; a summed-out dimension has key "*").
func (f *Fake) forEachKey(ind *aggregate.Indicator, kept []string, fn func([]string, float64)) {
	key := make([]string, len(ind.Dimensions))
	var walk func(d int, w float64)
	walk = func(d int, w float64) {
		if d == len(ind.Dimensions) {
			fn(append([]string(nil), key...), w)
			return
		}
		dim := ind.Dimensions[d]
		if !contains(kept, dim.Name) {
			key[d] = aggregate.KeyAll
			walk(d+1, w)
			return
		}
		// Zipf-like: earlier keys are commoner.
		var norm float64
		for i := range dim.Keys {
			norm += 1 / float64(i+1)
		}
		for i, k := range dim.Keys {
			key[d] = k
			walk(d+1, w/float64(i+1)/norm)
		}
	}
	walk(0, 1)
}

func (f *Fake) cell(key []string, mean, b float64) privacy.Cell {
	// Laplace(b) as the difference of two exponentials.
	noise := b * (f.rng.ExpFloat64() - f.rng.ExpFloat64())
	v := int64(math.Round(mean + noise))
	hw := math.Ceil(b * math.Log(1/0.05))
	return privacy.Cell{Key: key, Value: v, Scale: b, CILow: float64(v) - hw, CIHigh: float64(v) + hw}
}

// Partner implements api.Backend.
func (f *Fake) Partner() string { return f.partner }

// AppliedIndex implements api.Backend.
func (f *Fake) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index
}

// Health implements api.Backend.
func (f *Fake) Health(ctx context.Context) api.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := api.Health{Status: api.StatusOK, Partner: f.partner, InCluster: !f.NotInCluster, CaughtUp: !f.NotInCluster, RaftState: "Leader",
		Leader: "node-RS", AppliedIndex: f.index, CommitIndex: f.index, LastContact: "0s", Version: "test",
		Releases: len(f.entries), TreeSize: int64(len(f.entries)), RaftRPCRefused: maps.Clone(f.RaftRPCRefused),
		HandshakesRefused: f.HandshakesRefused}
	if f.NotInCluster {
		h.RaftState, h.Leader = "Follower", ""
	}
	return h
}

func (f *Fake) inCluster() error {
	if f.NotInCluster {
		return fmt.Errorf("fake: %w", api.ErrNotInCluster)
	}
	return nil
}

// Catalog implements api.Backend.
func (f *Fake) Catalog(ctx context.Context) (*aggregate.Catalog, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inCluster(); err != nil {
		return nil, "", err
	}
	return f.cat, f.cat.Hash(), nil
}

// Releases implements api.Backend.
func (f *Fake) Releases(ctx context.Context, consistent bool) ([]api.ReleaseEntry, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inCluster(); err != nil {
		return nil, 0, err
	}
	return f.entries[:len(f.entries):len(f.entries)], f.index, nil
}

// ReleasePage implements api.Backend over Releases, with api's Pager.
func (f *Fake) ReleasePage(ctx context.Context, consistent bool, q api.PageQuery) (api.ReleasePage, error) {
	rels, idx, err := f.Releases(ctx, consistent)
	if err != nil {
		return api.ReleasePage{}, err
	}
	return PageOf(rels, idx, q)
}

// PageOf pages entries as a node pages its ledger: each release's JSON
// (encoded as the ledger stores it) is offered to an api.Pager in order.
// A test backend that alters what Releases returns pages through this to
// serve the same alterations in the listing.
func PageOf(entries []api.ReleaseEntry, idx uint64, q api.PageQuery) (api.ReleasePage, error) {
	keys := map[string][]byte{}
	for _, e := range entries {
		keys[e.Signed.Release.Partner] = e.PublicKey
	}
	pg := api.NewPager(q)
	for _, e := range entries {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e.Signed); err != nil {
			return api.ReleasePage{}, err
		}
		more, err := pg.Offer(e.Leaf, bytes.TrimSuffix(b.Bytes(), []byte("\n")), keys)
		if err != nil || !more {
			if err != nil {
				return api.ReleasePage{}, err
			}
			break
		}
	}
	return pg.Page(idx, int64(len(entries))), nil
}

// Release implements api.Backend with a real RFC 6962 inclusion proof.
func (f *Fake) Release(ctx context.Context, id string) (api.ReleaseEntry, api.Proof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inCluster(); err != nil {
		return api.ReleaseEntry{}, api.Proof{}, err
	}
	for _, e := range f.entries {
		if e.Signed.ID != id {
			continue
		}
		n := int64(len(f.entries))
		proof, err := tlog.ProveRecord(n, e.Leaf, f)
		if err != nil {
			return e, api.Proof{}, fmt.Errorf("fake proof: %w", err)
		}
		root, err := tlog.TreeHash(n, f)
		if err != nil {
			return e, api.Proof{}, fmt.Errorf("fake proof: %w", err)
		}
		body, _ := e.Signed.Release.Canonical()
		lh := tlog.RecordHash(body)
		p := api.Proof{Leaf: e.Leaf, TreeSize: n, Root: root[:], LeafHash: lh[:], Hashes: [][]byte{}}
		for _, h := range proof {
			p.Hashes = append(p.Hashes, append([]byte(nil), h[:]...))
		}
		return e, p, nil
	}
	return api.ReleaseEntry{}, api.Proof{}, fmt.Errorf("release %s: %w", id, api.ErrNotFound)
}

// Checkpoint implements api.Backend. The note is signed by every partner.
// Consistency proves that the tree of size to extends the one of size from.
func (f *Fake) Consistency(ctx context.Context, from, to int64) ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if from < 1 || from > to || to > int64(len(f.entries)) {
		return nil, fmt.Errorf("%w: sizes %d..%d outside the tree of %d", api.ErrInvalid, from, to, len(f.entries))
	}
	proof, err := tlog.ProveTree(to, from, f)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(proof))
	for i, h := range proof {
		out[i] = h[:]
	}
	return out, nil
}

func (f *Fake) Checkpoint(ctx context.Context) (api.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inCluster(); err != nil {
		return api.Checkpoint{}, err
	}
	n := int64(len(f.entries))
	root, err := tlog.TreeHash(n, f)
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("fake checkpoint: %w", err)
	}
	origin := "roundtable/western-balkans"
	text := fmt.Sprintf("%s\n%d\n%s\n", origin, n, base64.StdEncoding.EncodeToString(root[:]))
	var sigs strings.Builder
	for _, p := range Partners() {
		sig := ed25519.Sign(f.keys[p], []byte(text))
		fmt.Fprintf(&sigs, "— roundtable-%s %s\n", p, base64.StdEncoding.EncodeToString(append([]byte{0, 0, 0, 0}, sig...)))
	}
	return api.Checkpoint{Note: text + "\n" + sigs.String(), Origin: origin, Size: n, Root: root[:],
		Signers: Partners(), Regional: true}, nil
}

// Budget implements api.Backend.
func (f *Fake) Budget(ctx context.Context, partner string) (privacy.Policy, []privacy.QuarterSpend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sp, ok := f.spent[partner]
	if !ok {
		return privacy.Policy{}, nil, fmt.Errorf("partner %q: %w", partner, api.ErrNotFound)
	}
	out := make([]privacy.QuarterSpend, 0, len(sp))
	for q, v := range sp {
		out = append(out, privacy.QuarterSpend{Quarter: q, SpentMicro: v})
	}
	slices.SortFunc(out, func(a, b privacy.QuarterSpend) int {
		return cmp.Or(cmp.Compare(a.Quarter.Year, b.Quarter.Year), cmp.Compare(a.Quarter.Quarter, b.Quarter.Quarter))
	})
	return f.policy, out, nil
}

// Partners implements api.Backend.
func (f *Fake) Partners(ctx context.Context) ([]string, error) { return Partners(), nil }

// Cluster implements api.Backend.
func (f *Fake) Cluster(ctx context.Context) (api.ClusterInfo, error) {
	ci := api.ClusterInfo{Consortium: "western-balkans", Partners: Partners(), Replicas: []string{"replica-1"}}
	for i, p := range Partners() {
		ci.Servers = append(ci.Servers, api.ServerInfo{ID: "node-" + p, Address: fmt.Sprintf("127.0.0.1:%d", 7001+i), Voter: true, Leader: p == "RS"})
	}
	ci.Servers = append(ci.Servers, api.ServerInfo{ID: "replica-1", Address: "127.0.0.1:7100"})
	return ci, nil
}

// Import implements api.Backend with a toy validator: the header must
// include case_id, every row must have the header's width, and a field
// "BAD" is invalid. Good enough to exercise the report path.
func (f *Fake) Import(ctx context.Context, r io.Reader, filename, format string, src api.ImportSource) (api.ImportReport, error) {
	rep := api.ImportReport{Files: []string{filename}, Errors: []api.LineError{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header []string
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Split(sc.Text(), ",")
		if line == 1 {
			header = fields
			if !contains(header, "case_id") {
				rep.Errors = append(rep.Errors, api.LineError{File: filename, Line: 1, Field: "case_id", Message: "header has no case_id column"})
			}
			continue
		}
		rep.Rows++
		bad := len(fields) != len(header)
		for i, v := range fields {
			if v == "BAD" && i < len(header) {
				rep.Errors = append(rep.Errors, api.LineError{File: filename, Line: line, Field: header[i], Message: `"BAD" is not an allowed value`})
				bad = true
			}
		}
		if len(fields) != len(header) {
			rep.Errors = append(rep.Errors, api.LineError{File: filename, Line: line, Message: fmt.Sprintf("row has %d fields, header has %d", len(fields), len(header))})
		}
		if bad {
			rep.Invalid++
		}
	}
	if err := sc.Err(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return rep, fmt.Errorf("import %s: %w", filename, err)
		}
		// As the real importer: what the upload holds is the client's fault.
		return rep, fmt.Errorf("%w: import %s: line %d: %v", api.ErrInvalid, filename, line+1, err)
	}
	rep.Imported = len(rep.Errors) == 0
	if rep.Imported {
		rep.Stored = rep.Rows
	}
	f.mu.Lock()
	f.Imports = append(f.Imports, ImportCall{Filename: filename, Format: format, Source: src, Rows: rep.Rows, Imported: rep.Imported})
	f.mu.Unlock()
	return rep, nil
}

// Plan implements api.Backend with the real planner (it reads no data)
// and the real warnings.
func (f *Fake) Plan(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, target int64) (api.PlanAnswer, error) {
	rows, err := privacy.Plan(f.cat, indicators, privacy.PlanParams{Accounting: privacy.PureDP, Budget: budget, TargetHalfWidth: target})
	if err != nil {
		return api.PlanAnswer{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	ans := api.PlanAnswer{Period: period.String(), Accounting: privacy.PureDP, Epsilon: budget, TargetCI: target,
		Rows: rows, Cadences: privacy.CompareCadences(rows), Cap: privacy.Budget(f.policy.CapMicro)}
	ans.Warnings = privacy.PlanWarnings(privacy.PureDP, budget, rows, ans.Cap, -1)
	return ans, nil
}

// CheckPublish implements api.Backend with the real accountant.
func (f *Fake) CheckPublish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (privacy.Charge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.partner == "" {
		return privacy.Charge{}, api.ErrNotPartner
	}
	names, err := f.cat.Select(indicators)
	if err != nil {
		return privacy.Charge{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return privacy.NewCharge(f.policy, f.partner, period, names, budget, func(q aggregate.Period) int64 { return f.spent[f.partner][q] })
}

// Publish implements api.Backend.
func (f *Fake) Publish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, reservation string) (api.PublishResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Publishes = append(f.Publishes, PublishCall{Period: period.String(), Indicators: indicators, Epsilon: budget})
	if f.partner == "" {
		return api.PublishResult{}, api.ErrNotPartner
	}
	return f.publish(f.partner, period, indicators, budget)
}

// PendingReleases implements api.Backend: the fake finishes every publish
// before answering, so nothing is ever pending.
func (f *Fake) PendingReleases(ctx context.Context) (api.PendingReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.PendingReport{Partner: f.partner, Pending: []api.PendingRelease{}, Recent: []api.PublishEvent{}}, nil
}

// FakeConsortium is the fake ledger's consortium id.
const FakeConsortium = "fa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4efa4e"

// Governance implements api.Backend.
func (f *Fake) Governance(ctx context.Context) (api.GovernanceHistory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.GovernanceHistory{Consortium: FakeConsortium, Next: uint64(len(f.statements)) + 1, Threshold: 1,
		Statements: append([]governance.Signed{}, f.statements...)}, nil
}

// Govern implements api.Backend. The fake checks only the envelope's
// consortium and sequence number and that there is a signature; the real
// checks are the ledger's (cluster tests).
func (f *Fake) Govern(ctx context.Context, s governance.Signed) (api.GovernResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := uint64(len(f.statements)) + 1
	switch {
	case s.Statement.Consortium != FakeConsortium:
		return api.GovernResult{}, fmt.Errorf("%w: statement is for another consortium", api.ErrConflict)
	case s.Statement.Seq != next:
		return api.GovernResult{}, fmt.Errorf("%w: statement %d is not the next (%d)", api.ErrConflict, s.Statement.Seq, next)
	case len(s.Signatures) == 0:
		return api.GovernResult{}, fmt.Errorf("%w: statement %d has 0 valid coordinator signature(s)", api.ErrConflict, s.Statement.Seq)
	}
	f.statements = append(f.statements, s)
	f.Members = append(f.Members, fmt.Sprintf("govern %d %s", next, s.Statement.Action.Type))
	return api.GovernResult{Seq: next, Action: s.Statement.Action.Type}, nil
}

// Snapshot returns copies of the recorded calls.
func (f *Fake) Snapshot() (imports []ImportCall, publishes []PublishCall, members []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ImportCall(nil), f.Imports...), append([]PublishCall(nil), f.Publishes...), append([]string(nil), f.Members...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func indicatorNames(inds []*aggregate.Indicator) []string {
	out := make([]string, len(inds))
	for i, ind := range inds {
		out[i] = ind.Name
	}
	return out
}

var _ api.Backend = (*Fake)(nil)
