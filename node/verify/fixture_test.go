package verify

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/privacy"
)

// The fixture is a ledger built the way the cluster's FSM builds it
// (privacy.Sign, cluster.LeafData, cluster.AppendLeaf in a bbolt tx,
// cluster.SignCheckpoint under cluster.PartnerNoteName) but without raft,
// served by a fake node that emulates the API routes the verifier reads.

var partners = []string{"AL", "BA", "ME", "MK", "RS", "XK"}

func partnerKey(p, salt string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("verify fixture " + salt + p))
	return ed25519.NewKeyFromSeed(seed[:])
}

// The fixture consortium: founded by a genesis naming the partners' keys
// and coordinators c1, c2, c3 (2 of 3). Its id is what every fixture
// release and checkpoint origin names.
var (
	fixtureGenesisJSON = makeGenesis("western-balkans", "", partners)
	fixtureConsortium  = mustGenesisID(fixtureGenesisJSON)
	origin             = cluster.CheckpointOrigin("western-balkans", fixtureConsortium)
)

// coordinatorKey is coordinator name's key; salt makes another party's.
func coordinatorKey(name, salt string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("verify fixture coordinator " + salt + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// makeGenesis writes a genesis naming founders (keys partnerKey(p, salt))
// and coordinators c1, c2, c3 (keys coordinatorKey(c, salt)), 2 of 3.
func makeGenesis(name, salt string, founders []string) []byte {
	g := governance.Genesis{Name: name, Threshold: 2, MaxCapMicro: 3_000_000,
		Policy: governance.Policy{Accounting: privacy.PureDP, CapMicro: 1_000_000}, Catalog: json.RawMessage(`{"version": 1}`)}
	for _, c := range []string{"c1", "c2", "c3"} {
		g.Coordinators = append(g.Coordinators, governance.Coordinator{Name: c, PublicKey: coordinatorKey(c, salt).Public().(ed25519.PublicKey)})
	}
	for _, p := range founders {
		g.Partners = append(g.Partners, governance.Partner{ID: p, Name: "NGO " + p, PublicKey: partnerKey(p, salt).Public().(ed25519.PublicKey)})
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

func mustGenesisID(b []byte) string {
	id, err := governance.IDOfFile(b)
	if err != nil {
		panic(err)
	}
	return id
}

// writeGenesis writes the fixture genesis (or data) to a file for
// Options.Genesis.
func writeGenesis(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// statement is a governance statement for the fixture consortium at seq,
// signed by the named coordinators (keys coordinatorKey(name, salt)).
func statement(t testing.TB, consortium string, seq uint64, a governance.Action, salt string, signers ...string) governance.Signed {
	t.Helper()
	s := governance.Signed{Statement: governance.Statement{Consortium: consortium, Seq: seq, Action: a}}
	for _, n := range signers {
		if err := s.Sign(coordinatorKey(n, salt)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// honestGovernance is the fixture consortium's history: no statement yet.
func honestGovernance() api.GovernanceHistory {
	return api.GovernanceHistory{Consortium: fixtureConsortium, Next: 1, Threshold: 2, Statements: []governance.Signed{}}
}

// ledger is a Merkle log of signed releases in a temp bbolt file.
type ledger struct {
	db      *bbolt.DB
	keys    map[string]ed25519.PrivateKey
	entries []api.ReleaseEntry
}

func newLedger(t testing.TB) *ledger {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "ledger.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := &ledger{db: db, keys: map[string]ed25519.PrivateKey{}}
	for _, p := range partners {
		l.keys[p] = partnerKey(p, "")
	}
	return l
}

// fixtureRelease is a small release with cells and a quantile; v sets
// its numbers so different ledgers differ.
func fixtureRelease(partner string, quarter int, v int64) privacy.Release {
	f := float64(v)
	return privacy.Release{
		Version: privacy.FormatVersion, Consortium: fixtureConsortium, Partner: partner, CatalogHash: "cafe",
		Period:      aggregate.Period{Year: 2024, Quarter: quarter},
		Reservation: fmt.Sprintf("res-%s-%d-%d", partner, quarter, v),
		Accounting:  privacy.PureDP, SpendMicro: 600_000,
		Indicators: []privacy.IndicatorRelease{
			{Name: "victims", Mechanism: privacy.Laplace, Epsilon: 0.5, Dimensions: []string{"status", "sex"}, Cells: []privacy.Cell{
				{Key: []string{"identified", "female"}, Value: v, Scale: 2, CILow: f - 5.991464547107979, CIHigh: f + 5.991464547107979},
				{Key: []string{"identified", "male"}, Value: v / 3, Scale: 2, CILow: f/3 - 6, CIHigh: f/3 + 6},
			}},
			{Name: "age", Mechanism: privacy.Laplace, Epsilon: 0.1, Dimensions: []string{}, Quantiles: []privacy.Quantile{
				{Rank: 0.5, Value: 27.25, CILow: 22.1, CIHigh: 31.7},
			}},
		},
	}
}

// publish signs a release and appends its leaf, as the FSM does.
func (l *ledger) publish(t testing.TB, partner string, quarter int, v int64) privacy.Signed {
	t.Helper()
	s, err := privacy.Sign(fixtureRelease(partner, quarter, v), l.keys[partner])
	if err != nil {
		t.Fatal(err)
	}
	data, err := cluster.LeafData(&s)
	if err != nil {
		t.Fatal(err)
	}
	var leaf int64
	if err := l.db.Update(func(tx *bbolt.Tx) error {
		leaf, err = cluster.AppendLeaf(tx, data)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l.entries = append(l.entries, api.ReleaseEntry{Signed: s, Leaf: leaf, Verified: true,
		PublicKey: l.keys[partner].Public().(ed25519.PublicKey)})
	return s
}

// publishN publishes n releases round-robin over the partners.
func (l *ledger) publishN(t testing.TB, n int, v int64) {
	for i := range n {
		l.publish(t, partners[i%len(partners)], 1+i/len(partners)%4, v+int64(i))
	}
}

// checkpoint signs the current tree head with the signers' note keys.
func (l *ledger) checkpoint(t testing.TB, signers ...string) api.Checkpoint {
	t.Helper()
	var head tlog.Tree
	if err := l.db.View(func(tx *bbolt.Tx) (err error) {
		head, err = cluster.TreeHead(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return signTree(t, l.keys, head, signers...)
}

func signTree(t testing.TB, keys map[string]ed25519.PrivateKey, tree tlog.Tree, signers ...string) api.Checkpoint {
	t.Helper()
	var ss []note.Signer
	for _, p := range signers {
		s, err := cluster.NewNoteSigner(cluster.PartnerNoteName(p), keys[p])
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	msg, err := cluster.SignCheckpoint(origin, tree, ss...)
	if err != nil {
		t.Fatal(err)
	}
	return api.Checkpoint{Note: string(msg), Origin: origin, Size: tree.N, Root: tree.Hash[:], Signers: signers, Regional: 2*len(signers) > len(partners)}
}

// fakeNode serves a ledger over the routes the verifier reads. Tests
// change what it serves through its fields (under mu).
type fakeNode struct {
	token string // if set, every request must carry it (a node without public reads)
	mu    sync.Mutex
	l     *ledger
	cp    api.Checkpoint
	rel   []api.ReleaseEntry // the release list served; defaults to l.entries
	// proof, if set, rewrites a release answer (to tamper with it).
	proof func(*api.ReleaseResponse)
	// partners is the consortium as /v1/cluster reports it.
	partners []string
	// gov is the governance history /v1/governance serves.
	gov api.GovernanceHistory
	// pageMax bounds a page of the release list (default 3); listRequests
	// and releaseRequests count what the verifier asked for.
	pageMax                       int
	listRequests, releaseRequests int
	// proofs, if set, is the ledger inclusion and consistency proofs are
	// made from, standing in for a node whose tree forked after the
	// checkpoint.
	proofs *ledger
	// raw, if set, holds the signed bytes listed for a leaf instead of its
	// leaf bytes (cluster.LeafData); spaced writes the page's own JSON
	// with spaces, as a server other than node/api might.
	raw    map[int64][]byte
	spaced bool
}

func (n *fakeNode) proofLedger() *ledger {
	if n.proofs != nil {
		return n.proofs
	}
	return n.l
}

func startNode(t testing.TB, l *ledger, cp api.Checkpoint) (*fakeNode, string) {
	t.Helper()
	n := &fakeNode{l: l, cp: cp, partners: partners, gov: honestGovernance()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/cluster", n.cluster)
	mux.HandleFunc("GET /v1/checkpoint", n.checkpoint)
	mux.HandleFunc("GET /v1/governance", n.governance)
	mux.HandleFunc("GET /v1/releases", n.releases)
	mux.HandleFunc("GET /v1/releases/{id}", n.release)
	mux.HandleFunc("GET /v1/consistency", n.consistency)
	mux.HandleFunc("GET /v1/export.csv", n.export)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		want := n.token
		n.mu.Unlock()
		if want != "" && r.Header.Get("Authorization") != "Bearer "+want {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return n, srv.URL
}

// set swaps what the node serves.
func (n *fakeNode) set(l *ledger, cp api.Checkpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.l, n.cp, n.rel = l, cp, nil
}

func (n *fakeNode) list() []api.ReleaseEntry {
	if n.rel != nil {
		return n.rel
	}
	return n.l.entries
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (n *fakeNode) cluster(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	writeJSON(w, 200, api.ClusterInfo{Consortium: "western-balkans", Partners: n.partners})
}

func (n *fakeNode) governance(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	writeJSON(w, 200, n.gov)
}

func (n *fakeNode) checkpoint(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	writeJSON(w, 200, n.cp)
}

// releases pages like the real API (?after=LEAF&limit=N), but at most
// pageMax (default 3) to a page, so every test's run pages through the list.
func (n *fakeNode) releases(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.listRequests++
	after, limit := int64(-1), api.PageDefaultLimit
	if v := r.URL.Query().Get("after"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	limit = min(limit, cmp.Or(n.pageMax, 3))
	all := n.list()
	start := len(all)
	for i, e := range all {
		if e.Leaf > after {
			start = i
			break
		}
	}
	end := min(start+limit, len(all))
	var next *int64
	if end < len(all) {
		next = &all[end-1].Leaf
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(n.page(all[start:end], int64(len(all)), next))
}

// page writes a page as node/api's writePage does: each release's leaf
// bytes passed through (or n.raw's), the rest as encoding/json would.
func (n *fakeNode) page(entries []api.ReleaseEntry, total int64, next *int64) []byte {
	sep, colon := ",", ":"
	if n.spaced {
		sep, colon = ", ", ": "
	}
	b := fmt.Appendf(nil, `{"applied_index"%s0%s"consistent"%sfalse%s"total"%s%d`, colon, sep, colon, sep, colon, total)
	if next != nil {
		b = fmt.Appendf(b, `%s"next"%s%d`, sep, colon, *next)
	}
	b = fmt.Appendf(b, `%s"releases"%s[`, sep, colon)
	for i, e := range entries {
		if i > 0 {
			b = append(b, sep...)
		}
		signed, ok := n.raw[e.Leaf]
		if !ok {
			var err error
			if signed, err = cluster.LeafData(&e.Signed); err != nil {
				panic(err)
			}
		}
		key, err := json.Marshal(e.PublicKey)
		if err != nil {
			panic(err)
		}
		b = fmt.Appendf(b, `{"signed"%s%s%s"leaf"%s%d%s"verified"%strue%s"public_key"%s%s}`, colon, signed, sep, colon, e.Leaf, sep, colon, sep, colon, key)
	}
	return append(b, "]}\n"...)
}

// release answers like the real API: the entry and a proof against the
// node's current tree (not the checkpoint's).
func (n *fakeNode) release(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.releaseRequests++
	for _, e := range n.list() {
		if e.Signed.ID != r.PathValue("id") {
			continue
		}
		resp := api.ReleaseResponse{ReleaseEntry: e}
		err := n.proofLedger().db.View(func(tx *bbolt.Tx) error {
			head, err := cluster.TreeHead(tx)
			if err != nil {
				return err
			}
			leaf := min(e.Leaf, head.N-1)
			p, err := cluster.InclusionProof(tx, leaf, head.N)
			if err != nil {
				return err
			}
			resp.Proof = api.Proof{Leaf: e.Leaf, TreeSize: head.N, Root: head.Hash[:], Hashes: [][]byte{}}
			for _, h := range p {
				resp.Proof.Hashes = append(resp.Proof.Hashes, h[:])
			}
			return nil
		})
		if err != nil {
			writeJSON(w, 500, map[string]string{"error": err.Error()})
			return
		}
		if n.proof != nil {
			n.proof(&resp)
		}
		writeJSON(w, 200, resp)
		return
	}
	writeJSON(w, 404, map[string]string{"error": "not found", "detail": "no release " + r.PathValue("id")})
}

func (n *fakeNode) consistency(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	from, err1 := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		writeJSON(w, 400, map[string]string{"error": "bad from/to"})
		return
	}
	resp := consistencyResponse{From: from, To: to, Hashes: [][]byte{}}
	err := n.proofLedger().db.View(func(tx *bbolt.Tx) error {
		p, err := cluster.ConsistencyProof(tx, from, to)
		for _, h := range p {
			resp.Hashes = append(resp.Hashes, h[:])
		}
		return err
	})
	if err != nil {
		writeJSON(w, 422, map[string]string{"error": "invalid", "detail": err.Error()})
		return
	}
	writeJSON(w, 200, resp)
}

// export renders the list as node/api's export.go does (the contract test
// in export_contract_test.go checks the parser against the real one).
func (n *fakeNode) export(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w.Header().Set("Content-Type", "text/csv")
	_, _ = w.Write(renderExport(n.list()))
}

func renderExport(entries []api.ReleaseEntry) []byte {
	var b strings.Builder
	cw := csv.NewWriter(&b)
	_ = cw.Write(api.ExportColumns())
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, e := range entries {
		rel := &e.Signed.Release
		for _, ir := range rel.Indicators {
			row := func(dims, key, est, lo, hi, scale string) []string {
				return []string{rel.Partner, rel.Period.String(), ir.Name, dims, key, est, lo, hi,
					ir.Mechanism, scale, f(ir.Epsilon), f(ir.Rho), e.Signed.ID, strconv.FormatInt(e.Leaf, 10)}
			}
			for _, c := range ir.Cells {
				_ = cw.Write(row(strings.Join(ir.Dimensions, "|"), strings.Join(c.Key, "|"), strconv.FormatInt(c.Value, 10), f(c.CILow), f(c.CIHigh), f(c.Scale)))
			}
			for _, q := range ir.Quantiles {
				_ = cw.Write(row("rank", f(q.Rank), f(q.Value), f(q.CILow), f(q.CIHigh), ""))
			}
		}
	}
	cw.Flush()
	return []byte(b.String())
}

func mustSign(t testing.TB, r privacy.Release, key ed25519.PrivateKey) privacy.Signed {
	t.Helper()
	s, err := privacy.Sign(r, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func treeOfCheckpoint(t testing.TB, cp api.Checkpoint) tlog.Tree {
	t.Helper()
	var h tlog.Hash
	copy(h[:], cp.Root)
	return tlog.Tree{N: cp.Size, Hash: h}
}
