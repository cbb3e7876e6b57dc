package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// fsmKey returns a fixed ed25519 key per name, so test ledgers are
// reproducible and a "forger" is simply another name's key.
func fsmKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("fsm test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func fsmPartner(id string) Partner {
	return Partner{ID: id, Name: "NGO " + id, PublicKey: fsmKey(id).Public().(ed25519.PublicKey)}
}

// fsmCatalogJSON is a small catalog: three indicators of the v1 catalog,
// so the fixture is valid by the same rules as the real one.
func fsmCatalogJSON(t testing.TB) []byte {
	t.Helper()
	v1 := aggregate.CatalogV1()
	c := aggregate.Catalog{Version: 1}
	for _, name := range []string{"victims", "referral_source", "age"} {
		ind, ok := v1.Indicator(name)
		if !ok {
			t.Fatalf("v1 catalog has no %s", name)
		}
		c.Indicators = append(c.Indicators, *ind)
	}
	// Indented, as a coordinator would write it; tests edit it as text.
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fsmCatalogHash(t testing.TB) string {
	t.Helper()
	c, _, err := parseCatalog(fsmCatalogJSON(t))
	if err != nil {
		t.Fatalf("fixture catalog: %v", err)
	}
	return c.Hash()
}

func fsmQuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestFSM opens a ledger in a fresh directory and closes it at cleanup.
func newTestFSM(t testing.TB) *FSM {
	t.Helper()
	return openTestFSM(t, t.TempDir())
}

func openTestFSM(t testing.TB, dir string) *FSM {
	t.Helper()
	f, err := OpenFSM(dir, fsmQuietLogger())
	if err != nil {
		t.Fatalf("OpenFSM: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// fsmLog numbers commands as raft would. It also plays the coordinators:
// a governance placeholder (gov) gets the consortium id of the genesis
// added before it and the next sequence number, and is signed by the test
// coordinators c1 and c2 (2 of 3), in the order the commands are added.
type fsmLog struct {
	next uint64
	logs []*raft.Log

	consortium string
	govNext    uint64
}

func (l *fsmLog) add(t testing.TB, cmds ...Command) []*raft.Log {
	t.Helper()
	var out []*raft.Log
	for _, c := range cmds {
		switch {
		case c.Type == CmdGenesis && l.consortium == "":
			id, err := c.Genesis.ID()
			if err != nil {
				t.Fatal(err)
			}
			l.consortium, l.govNext = id, 1
			fsmConsortia.Store(t.Name(), id) // the genesis as applied, after any edits
		case isPlaceholder(c):
			c = NewGovern(signStatement(t, l.consortium, l.govNext, c.Statement.Statement.Action, "c1", "c2"))
			l.govNext++
		}
		data, err := c.Encode()
		if err != nil {
			t.Fatalf("encode %s: %v", c.Type, err)
		}
		out = append(out, l.raw(data))
	}
	return out
}

func (l *fsmLog) raw(data []byte) *raft.Log {
	l.next++
	e := &raft.Log{Index: l.next, Term: 1, Type: raft.LogCommand, Data: data}
	l.logs = append(l.logs, e)
	return e
}

// applyAll applies entries one batch and returns the results as ApplyResults.
func applyAll(t testing.TB, f *FSM, logs []*raft.Log) []ApplyResult {
	t.Helper()
	out := make([]ApplyResult, len(logs))
	for i, r := range f.ApplyBatch(logs) {
		res, ok := r.(ApplyResult)
		if !ok {
			t.Fatalf("entry %d: response %T %v, want ApplyResult", logs[i].Index, r, r)
		}
		out[i] = res
	}
	return out
}

// mustApply applies commands and fails the test on any refusal.
func mustApply(t testing.TB, f *FSM, l *fsmLog, cmds ...Command) []ApplyResult {
	t.Helper()
	res := applyAll(t, f, l.add(t, cmds...))
	for i, r := range res {
		if !r.OK {
			t.Fatalf("%s refused: %s", cmds[i].Type, r.Refusal)
		}
	}
	return res
}

// fsmGenesis founds a test consortium: the given partners, coordinators
// c1, c2 and c3 with threshold 2, a cap of ε 1 under a ceiling of ε 3.
func fsmGenesis(t testing.TB, ids ...string) Command {
	t.Helper()
	var ps []governance.Partner
	for _, id := range ids {
		p := fsmPartner(id)
		ps = append(ps, governance.Partner{ID: p.ID, Name: p.Name, PublicKey: p.PublicKey})
	}
	g := Genesis{
		Name: "western-balkans", Coordinators: fsmCoordinators("c1", "c2", "c3"), Threshold: 2,
		MaxCapMicro: 3 * privacy.Micro, Partners: ps,
		Policy:  governance.Policy{Accounting: privacy.PureDP, CapMicro: privacy.Micro},
		Catalog: fsmCatalogJSON(t),
	}
	fsmRegisterGenesis(t, g)
	return NewGenesis(g)
}

// fsmRegisterGenesis makes g the consortium fsmReservation binds this
// test's reservations to; call it again after editing a genesis that is
// not applied through fsmLog.
func fsmRegisterGenesis(t testing.TB, g Genesis) {
	t.Helper()
	id, err := g.ID()
	if err != nil {
		t.Fatal(err)
	}
	fsmConsortia.Store(t.Name(), id)
}

// fsmConsortia remembers, per test name, the consortium id of the last
// genesis fsmGenesis made in that test, so fsmReservation can bind its
// reservations to the ledger the test founds (a reservation signs its
// consortium id). Tests only.
var fsmConsortia sync.Map // test name → consortium id

// fsmConsortium returns the consortium id of the last fsmGenesis in this
// test or the nearest parent test; "" if there was none (the ledger then
// refuses the reservation, and the test says so).
func fsmConsortium(t testing.TB) string {
	for name := t.Name(); ; {
		if v, ok := fsmConsortia.Load(name); ok {
			return v.(string)
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return ""
		}
		name = name[:i]
	}
}

// fsmCoordinators names coordinator keys (fsmKey("coordinator "+name)).
func fsmCoordinators(names ...string) []governance.Coordinator {
	var cs []governance.Coordinator
	for _, n := range names {
		cs = append(cs, governance.Coordinator{Name: n, PublicKey: fsmCoordinatorKey(n).Public().(ed25519.PublicKey)})
	}
	return cs
}

func fsmCoordinatorKey(name string) ed25519.PrivateKey { return fsmKey("coordinator " + name) }

// signStatement makes a statement signed by the named coordinators.
func signStatement(t testing.TB, consortium string, seq uint64, a governance.Action, signers ...string) governance.Signed {
	t.Helper()
	s := governance.Signed{Statement: governance.Statement{Consortium: consortium, Seq: seq, Action: a}}
	for _, n := range signers {
		if err := s.Sign(fsmCoordinatorKey(n)); err != nil {
			t.Fatalf("sign statement %d: %v", seq, err)
		}
	}
	return s
}

// gov is a governance placeholder: fsmLog.add signs it (see fsmLog).
func gov(a governance.Action) Command {
	return NewGovern(governance.Signed{Statement: governance.Statement{Action: a}})
}

func isPlaceholder(c Command) bool {
	return c.Type == CmdGovern && c.Statement.Statement.Seq == 0 && c.Statement.Statement.Consortium == "" && len(c.Statement.Signatures) == 0
}

func govAddPartner(p Partner) Command {
	return gov(governance.Action{Type: governance.AddPartner, Address: p.Address,
		Partner: &governance.Partner{ID: p.ID, Name: p.Name, PublicKey: p.PublicKey}})
}
func govRemovePartner(id string) Command {
	return gov(governance.Action{Type: governance.RemovePartner, ID: id})
}
func govAddReplica(id string) Command {
	return gov(governance.Action{Type: governance.AddReplica, ID: id})
}
func govRemoveReplica(id string) Command {
	return gov(governance.Action{Type: governance.RemoveReplica, ID: id})
}
func govRemoveNode(id string) Command {
	return gov(governance.Action{Type: governance.RemoveNode, ID: id})
}
func govSetCatalog(raw []byte) Command {
	return gov(governance.Action{Type: governance.SetCatalog, Catalog: raw})
}
func govSetPolicy(p privacy.Policy) Command {
	return gov(governance.Action{Type: governance.SetPolicy, Policy: &governance.Policy{Accounting: p.Accounting, CapMicro: p.CapMicro}})
}

// signedAt signs a governance placeholder as c1 and c2 at f's next
// sequence number and returns the encoded command.
func signedAt(t testing.TB, f *FSM, c Command) []byte {
	t.Helper()
	h, _, err := f.Governance()
	if err != nil {
		t.Fatal(err)
	}
	data, err := NewGovern(signStatement(t, h.Consortium, h.Next, c.Statement.Statement.Action, "c1", "c2")).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func period(t testing.TB, s string) aggregate.Period {
	t.Helper()
	p, err := aggregate.ParsePeriod(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fsmReservation builds a reservation of spend micro on period, signed by
// signer's key (normally the partner itself). Its indicators are in the
// catalog's order, as a publisher's are.
func fsmReservation(t testing.TB, catHash, id, partner, signer, per string, spend int64) privacy.SignedReservation {
	t.Helper()
	sr, err := privacy.SignReservation(privacy.Reservation{
		ID: id, Consortium: fsmConsortium(t), Partner: partner, CatalogHash: catHash, Period: period(t, per),
		Accounting: privacy.PureDP, SpendMicro: spend, Indicators: []string{"victims", "referral_source"},
	}, fsmKey(signer))
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// fsmRelease builds the release that consumes reservation r, with value
// seed varying the noisy numbers, signed by signer's key. It is what the
// real builder makes (fixtureRelease), so the ledger's validation admits it
// when the reservation names the fixture catalog (or the v1 catalog).
func fsmRelease(t testing.TB, r privacy.Reservation, signer string, seed int64) privacy.Signed {
	t.Helper()
	return fixtureRelease(t, fixtureCatalog(t, r.CatalogHash), r, fsmKey(signer), seed)
}

// fixtureCatalog returns the catalog whose hash is given: the fixture
// catalog, or the v1 catalog; for any other hash (tests of unknown
// catalogs) the fixture catalog's content.
func fixtureCatalog(t testing.TB, hash string) *aggregate.Catalog {
	t.Helper()
	if v1 := aggregate.CatalogV1(); v1.Hash() == hash {
		return v1
	}
	c, _, err := parseCatalog(fsmCatalogJSON(t))
	if err != nil {
		t.Fatalf("fixture catalog: %v", err)
	}
	return c
}

// fixtureRelease builds the release for reservation r the way a node
// does: privacy.BuildRelease over cat's tables (of no cases), at the
// reservation's budget. The builder's draws are random, so the values are
// then set from seed, each interval moved with its value (same half-width)
// and each quantile set inside its bounds, and the release signed again:
// the same arguments give the same release, and every field the ledger
// checks is the builder's. The release keeps r's catalog hash and period
// even when cat or Tabulate would not have them (tests of refusals).
func fixtureRelease(t testing.TB, cat *aggregate.Catalog, r privacy.Reservation, key ed25519.PrivateKey, seed int64) privacy.Signed {
	t.Helper()
	rel := fixtureTemplate(t, cat, r)
	rel.Consortium, rel.Partner, rel.CatalogHash, rel.Period, rel.Reservation = r.Consortium, r.Partner, r.CatalogHash, r.Period, r.ID
	i := int64(0)
	for k := range rel.Indicators {
		ir := &rel.Indicators[k]
		for c := range ir.Cells {
			cell := &ir.Cells[c]
			m := int64(cell.CIHigh-cell.CILow) / 2
			v := (seed*31+i*17)%97 - 3
			cell.Value, cell.CILow, cell.CIHigh = v, float64(v-m), float64(v+m)
			i++
		}
		ind, _ := cat.Indicator(ir.Name)
		for q := range ir.Quantiles {
			mid := ind.Lower + (ind.Upper-ind.Lower)*ir.Quantiles[q].Rank
			ir.Quantiles[q].Value, ir.Quantiles[q].CILow, ir.Quantiles[q].CIHigh = mid, ind.Lower, ind.Upper
		}
	}
	s, err := privacy.Sign(rel, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixtureTemplates caches built releases by what shapes them, so a
// benchmark can make thousands of fixtures quickly. Tests only.
var fixtureTemplates sync.Map // string → privacy.Release

// fixtureTemplate builds (or reuses) the builder's release for r's shape:
// catalog, accounting, spend, indicators and whether it covers a year.
// The copy returned shares nothing with the cache.
func fixtureTemplate(t testing.TB, cat *aggregate.Catalog, r privacy.Reservation) privacy.Release {
	t.Helper()
	shape := fmt.Sprint(cat.Hash(), r.Accounting, r.SpendMicro, r.Indicators, r.Period.IsYear())
	if v, ok := fixtureTemplates.Load(shape); ok {
		return cloneRelease(v.(privacy.Release))
	}
	per := aggregate.Period{Year: 2024, Quarter: 1}
	if r.Period.IsYear() {
		per.Quarter = 0
	}
	tables, err := aggregate.Tabulate(context.Background(), cat, per, r.Indicators, func(func(*aggregate.Case) error) error { return nil })
	if err != nil {
		t.Fatalf("fixture tables: %v", err)
	}
	res := privacy.Reservation{ID: "template", Consortium: "template", Partner: "RS", CatalogHash: cat.Hash(), Period: per,
		Accounting: r.Accounting, SpendMicro: r.SpendMicro, Indicators: r.Indicators}
	params := res.Params()
	s, err := privacy.BuildRelease(context.Background(), cat, tables, params, res, fsmKey("template"))
	if err != nil {
		t.Fatalf("fixture release: %v", err)
	}
	fixtureTemplates.Store(shape, s.Release)
	return cloneRelease(s.Release)
}

// cloneRelease deep-copies a release through its JSON encoding.
func cloneRelease(r privacy.Release) privacy.Release {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	var out privacy.Release
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func stateHash(t testing.TB, f *FSM) string {
	t.Helper()
	h, err := f.StateHash()
	if err != nil {
		t.Fatalf("StateHash: %v", err)
	}
	return h
}
