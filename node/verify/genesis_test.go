package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
)

// The attacks below are played by fake servers on loopback. Each test
// first shows the attack passing a researcher who trusts the server's keys
// on first use (--tofu, a fresh state file), then refused by the same
// researcher holding the genesis (--genesis), which still passes the honest
// server.

// genesisOpts verifies url from the fixture genesis with a fresh state file.
func genesisOpts(t *testing.T, url string) Options {
	t.Helper()
	return Options{Server: url, StateFile: filepath.Join(t.TempDir(), "state.json"), Genesis: writeGenesis(t, fixtureGenesisJSON)}
}

// outcome runs a verification and returns its report, error and the last
// line the CLI prints (Report.Write).
func outcome(t *testing.T, o Options) (Report, error, string) {
	t.Helper()
	rep, err := Run(context.Background(), o)
	var out bytes.Buffer
	if werr := rep.Write(&out, err); werr != nil {
		t.Fatal(werr)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return rep, err, lines[len(lines)-1]
}

// mustPassTOFU shows the attack working without a trust root: a fresh
// researcher trusting the server's keys on first use sees result OK.
func mustPassTOFU(t *testing.T, url string) Report {
	t.Helper()
	rep, err, last := outcome(t, opts(t, url))
	if err != nil || last != "result:      OK" || rep.Failed != 0 {
		t.Fatalf("with --tofu the attack should pass (it is what the genesis prevents): %v, %q", err, last)
	}
	return rep
}

// mustFailGenesis runs with the genesis and wants a fatal result wrapping
// kind and naming want.
func mustFailGenesis(t *testing.T, url string, kind error, want string) {
	t.Helper()
	o := genesisOpts(t, url)
	_, err, last := outcome(t, o)
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), want) {
		t.Fatalf("with --genesis: %v, want %v naming %q", err, kind, want)
	}
	if last != "result:      FAILED" {
		t.Errorf("last line %q, want FAILED", last)
	}
	if _, serr := os.Stat(o.StateFile); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a failed run wrote the state file (%v)", serr)
	}
}

// honestLedger is 8 releases by every partner, checkpointed by a majority.
func honestLedger(t *testing.T) (*ledger, api.Checkpoint) {
	l := newLedger(t)
	for i := range 8 {
		l.publish(t, partners[i%len(partners)], 1+i/len(partners), 100+int64(i))
	}
	return l, l.checkpoint(t, majority...)
}

// TestGenesisHonestServer: the honest server passes from the genesis, with
// the keys and the partner set governance establishes.
func TestGenesisHonestServer(t *testing.T) {
	hl, cp := honestLedger(t)
	_, url := startNode(t, hl, cp)
	rep, err, last := outcome(t, genesisOpts(t, url))
	if err != nil || last != "result:      OK" {
		t.Fatalf("honest server with --genesis: %v, %q", err, last)
	}
	if rep.Verified != 8 || rep.Consortium != fixtureConsortium || !slices.Equal(rep.Partners, partners) {
		t.Errorf("verified %d, consortium %s, partners %v", rep.Verified, rep.Consortium, rep.Partners)
	}
	if !strings.Contains(rep.KeySource, "governance replayed from the genesis") || strings.Contains(rep.KeySource, "WARNING") {
		t.Errorf("key source %q", rep.KeySource)
	}
}

// TestGenesisRefusesFakeServer is the review's attack: a server that
// serves every release with its values ×10, re-signed with its own partner
// keys, under a checkpoint co-signed by those keys, and its own
// /v1/governance. A fresh researcher with --tofu sees OK; with --genesis
// it fails, naming the coordinator signatures, the consortium or the key.
func TestGenesisRefusesFakeServer(t *testing.T) {
	fakeGenesis := makeGenesis("western-balkans", "evil", partners)
	cases := []struct {
		name string
		gov  func(t *testing.T) api.GovernanceHistory
		kind error
		want string
	}{
		{"its own coordinators sign statements for this consortium", func(t *testing.T) api.GovernanceHistory {
			// It re-adds every partner with its key after removing it; its
			// coordinators sign (2 of its own 3).
			h := honestGovernance()
			h.Statements = append(h.Statements, statement(t, fixtureConsortium, 1, governance.Action{Type: governance.RemovePartner, ID: "RS"}, "evil", "c1", "c2"))
			return h
		}, ErrGovernance, "statement 1 has 0 valid coordinator signature(s), the threshold is 2 of 3"},
		{"its own genesis", func(t *testing.T) api.GovernanceHistory {
			return api.GovernanceHistory{Consortium: mustGenesisID(fakeGenesis), Next: 1, Statements: []governance.Signed{}}
		}, ErrConsortium, "the governance history served is for consortium " + mustGenesisID(fakeGenesis)},
		{"the honest governance", func(t *testing.T) api.GovernanceHistory { return honestGovernance() },
			ErrKeyChanged, "partner AL: the server reports key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hl, hcp := honestLedger(t)
			_, honest := startNode(t, hl, hcp)
			fl := newLedger(t)
			for _, p := range partners {
				fl.keys[p] = partnerKey(p, "evil")
			}
			for i, e := range hl.entries { // every release, values ×10
				r := e.Signed.Release
				fl.publish(t, r.Partner, r.Period.Quarter, 10*(100+int64(i)))
			}
			fn, fake := startNode(t, fl, fl.checkpoint(t, majority...))
			fn.gov = tc.gov(t)

			rep := mustPassTOFU(t, fake)
			if rep.Verified != 8 || fl.entries[0].Signed.Release.Indicators[0].Cells[0].Value != 1000 {
				t.Fatalf("the fake should pass with every value ×10: verified %d", rep.Verified)
			}
			mustFailGenesis(t, fake, tc.kind, tc.want)
			if _, err, _ := outcome(t, genesisOpts(t, honest)); err != nil {
				t.Errorf("honest server with --genesis: %v", err)
			}
		})
	}
}

// TestGenesisRefusesSwappedKey: a server that keeps the honest governance
// and checkpoint but swaps RS's key in its release list, appending
// releases signed by that key after the checkpoint. With --tofu they pass
// as pending; with --genesis the served key is refused, naming RS.
func TestGenesisRefusesSwappedKey(t *testing.T) {
	build := func(t *testing.T) *ledger {
		l := newLedger(t)
		others := []string{"AL", "BA", "ME", "MK", "XK"}
		for i := range 8 { // RS publishes nothing before the checkpoint
			l.publish(t, others[i%len(others)], 1+i/len(others), 100+int64(i))
		}
		return l
	}
	hl := build(t)
	cp := hl.checkpoint(t, "AL", "BA", "ME", "MK")
	_, honest := startNode(t, hl, cp)
	fl := build(t)
	fl.keys["RS"] = partnerKey("RS", "evil")
	fl.publish(t, "RS", 1, 1000)
	fl.publish(t, "RS", 2, 1010)
	fn, fake := startNode(t, fl, cp) // the honest checkpoint, the honest governance
	if fn.gov.Consortium != fixtureConsortium || len(fn.gov.Statements) != 0 {
		t.Fatal("the fake must serve the honest governance")
	}

	if rep := mustPassTOFU(t, fake); rep.Pending != 2 {
		t.Fatalf("the forged RS releases should pass as pending: %+v", rep)
	}
	mustFailGenesis(t, fake, ErrKeyChanged, "partner RS: the server reports key")
	if _, err, _ := outcome(t, genesisOpts(t, honest)); err != nil {
		t.Errorf("honest server with --genesis: %v", err)
	}
}

// evilPartnerLedger is the honest ledger plus two releases appended after
// the checkpoint by EV, a partner the honest governance never added.
func evilPartnerLedger(t *testing.T) (*ledger, api.Checkpoint) {
	l, cp := honestLedger(t)
	l.keys["EV"] = partnerKey("EV", "evil")
	l.publish(t, "EV", 1, 5000)
	l.publish(t, "EV", 2, 5000)
	return l, cp
}

// TestGenesisRefusesUnderThresholdGovernance: a server adds partner EV with
// a statement signed by one coordinator (the threshold is 2) and serves
// EV's releases. --tofu passes them; --genesis refuses the statement. The
// same statement signed by two coordinators is accepted, so the threshold
// is what refuses it.
func TestGenesisRefusesUnderThresholdGovernance(t *testing.T) {
	addEV := governance.Action{Type: governance.AddPartner, Partner: &governance.Partner{ID: "EV", Name: "NGO EV", PublicKey: pub(partnerKey("EV", "evil"))}}
	l, cp := evilPartnerLedger(t)
	n, url := startNode(t, l, cp)
	n.gov.Statements = []governance.Signed{statement(t, fixtureConsortium, 1, addEV, "", "c1")}
	n.gov.Next = 2

	if rep := mustPassTOFU(t, url); rep.Pending != 2 {
		t.Fatalf("EV's releases should pass as pending: %+v", rep)
	}
	mustFailGenesis(t, url, ErrGovernance, "statement 1 has 1 valid coordinator signature(s), the threshold is 2 of 3")

	n.mu.Lock()
	n.gov.Statements = []governance.Signed{statement(t, fixtureConsortium, 1, addEV, "", "c1", "c2")}
	n.mu.Unlock()
	rep, err, _ := outcome(t, genesisOpts(t, url))
	if err != nil || rep.Pending != 2 || rep.Governance != 1 {
		t.Errorf("with the threshold met: %v, %+v", err, rep)
	}
}

// TestGenesisRefusesUnknownPartner: a server serves releases from EV, a
// partner governance never added. --tofu pins EV's key and passes;
// --genesis refuses, naming EV.
func TestGenesisRefusesUnknownPartner(t *testing.T) {
	l, cp := evilPartnerLedger(t)
	_, url := startNode(t, l, cp)
	mustPassTOFU(t, url)
	mustFailGenesis(t, url, ErrUnknownPartner, "comes from partner EV, which governance never added")
}

// TestGenesisRemovedPartner: after governance removes MK, MK's past
// releases still verify with its key, and the checkpoint's majority is
// counted over the five partners still active.
func TestGenesisRemovedPartner(t *testing.T) {
	hl, _ := honestLedger(t)
	n, url := startNode(t, hl, hl.checkpoint(t, "AL", "BA", "ME"))
	n.gov.Statements = []governance.Signed{statement(t, fixtureConsortium, 1, governance.Action{Type: governance.RemovePartner, ID: "MK"}, "", "c2", "c3")}
	rep, err, _ := outcome(t, genesisOpts(t, url))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.ByPartner["MK"] != 1 || rep.Verified != 8 || slices.Contains(rep.Partners, "MK") || len(rep.Partners) != 5 {
		t.Errorf("MK's release should verify and MK not count: %+v", rep)
	}
	// Three of six founders would not be a majority: the removal is what
	// makes this checkpoint regional.
	n.mu.Lock()
	n.gov.Statements = nil
	n.mu.Unlock()
	if _, err, _ := outcome(t, genesisOpts(t, url)); !errors.Is(err, ErrNotRegional) {
		t.Errorf("without the removal: %v, want ErrNotRegional", err)
	}
}

// TestGenesisSplitView: two servers that each pass alone from the genesis
// (both checkpoints co-signed by a majority of the real partner keys) but
// show different histories: comparing them is fatal.
func TestGenesisSplitView(t *testing.T) {
	hl, fl := ledgerOf(8, 100)(t), ledgerOf(8, 9000)(t)
	_, honest := startNode(t, hl, hl.checkpoint(t, majority...))
	_, fake := startNode(t, fl, fl.checkpoint(t, majority...))
	for _, s := range []string{honest, fake} {
		if _, err, _ := outcome(t, genesisOpts(t, s)); err != nil {
			t.Fatalf("%s alone with --genesis: %v (the attack needs each view to pass alone)", s, err)
		}
	}
	o := genesisOpts(t, honest)
	reps, err := RunAll(context.Background(), o, []string{honest, fake})
	if !errors.Is(err, ErrSplitView) || !strings.Contains(err.Error(), "both show a regional checkpoint of size 8") {
		t.Fatalf("RunAll: %v, want a split view", err)
	}
	var out bytes.Buffer
	if werr := WriteComparison(&out, reps, []string{honest, fake}, err); werr != nil {
		t.Fatal(werr)
	}
	if !strings.HasSuffix(out.String(), "result:      FAILED (2 servers compared)\n") {
		t.Errorf("a split view must end in FAILED:\n%s", out.String())
	}
}

// TestGenesisStateRemembersConsortium: a state file that verified one
// consortium refuses another genesis, and a later --tofu-free run with
// pinned keys refuses a server whose checkpoint names another consortium.
func TestGenesisStateRemembersConsortium(t *testing.T) {
	hl, cp := honestLedger(t)
	_, url := startNode(t, hl, cp)
	o := genesisOpts(t, url)
	if _, err, _ := outcome(t, o); err != nil {
		t.Fatal(err)
	}
	var st state
	if b, err := os.ReadFile(o.StateFile); err != nil || json.Unmarshal(b, &st) != nil || st.Consortium != fixtureConsortium {
		t.Fatalf("state file consortium %q (%v)", st.Consortium, err)
	}
	other := o
	other.Genesis = writeGenesis(t, makeGenesis("western-balkans", "evil", partners))
	if _, err, _ := outcome(t, other); !errors.Is(err, ErrConsortium) || !strings.Contains(err.Error(), "is for consortium "+fixtureConsortium) {
		t.Errorf("another genesis with this state file: %v", err)
	}
	// A server of another consortium whose partners hold the same keys:
	// the pinned keys verify its signatures, the consortium does not match.
	elsewhere := newLedger(t)
	otherID := mustGenesisID(makeGenesis("elsewhere", "", partners))
	for i := range 8 {
		r := fixtureRelease(partners[i%len(partners)], 1, 100+int64(i))
		r.Consortium = otherID
		elsewhere.appendSigned(t, mustSign(t, r, elsewhere.keys[r.Partner]))
	}
	var head api.Checkpoint
	{
		c := elsewhere.checkpoint(t, majority...)
		head = signTreeAt(t, elsewhere, "roundtable/elsewhere/"+otherID, treeOfCheckpoint(t, c))
	}
	_, url2 := startNode(t, elsewhere, head)
	pinned := Options{Server: url2, StateFile: o.StateFile}
	if _, err, _ := outcome(t, pinned); !errors.Is(err, ErrConsortium) {
		t.Errorf("a server of another consortium with the pinned state: %v, want ErrConsortium", err)
	}
}

// TestGenesisConsortiumFlag: --consortium must be the genesis's id.
func TestGenesisConsortiumFlag(t *testing.T) {
	hl, cp := honestLedger(t)
	_, url := startNode(t, hl, cp)
	o := genesisOpts(t, url)
	o.Consortium = fixtureConsortium
	if _, err, _ := outcome(t, o); err != nil {
		t.Errorf("the right id: %v", err)
	}
	o = genesisOpts(t, url)
	o.Consortium = strings.Repeat("0", 64)
	if _, err, _ := outcome(t, o); !errors.Is(err, ErrConsortium) || !strings.Contains(err.Error(), "hashes to consortium id "+fixtureConsortium) {
		t.Errorf("a wrong id: %v", err)
	}
}

// TestGenesisBundle: a bundle made with --genesis carries the genesis and
// the governance history; --offline replays them with no network, pinned
// by --consortium or --genesis, and refuses a tampered history.
func TestGenesisBundle(t *testing.T) {
	hl, cp := honestLedger(t)
	n, url := startNode(t, hl, cp)
	n.gov.Statements = []governance.Signed{statement(t, fixtureConsortium, 1, governance.Action{Type: governance.RemovePartner, ID: "XK"}, "", "c1", "c3")}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if _, err := Bundle(context.Background(), genesisOpts(t, url), path); err != nil {
		t.Fatal(err)
	}
	var m material
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &m) != nil || len(m.Genesis) == 0 || len(m.Governance) != 1 {
		t.Fatalf("bundle lacks the genesis or governance (%v)", err)
	}
	rep, err := Offline(OfflineOptions{Bundle: path, Consortium: fixtureConsortium})
	if err != nil || rep.Verified != 8 || rep.Consortium != fixtureConsortium || slices.Contains(rep.Partners, "XK") {
		t.Errorf("offline with --consortium: %v %+v", err, rep)
	}
	rep, err = Offline(OfflineOptions{Bundle: path})
	if err != nil || !strings.Contains(rep.KeySource, "compare that id with the one the coordinators publish") {
		t.Errorf("offline from the bundle's own genesis: %v %q", err, rep.KeySource)
	}
	if _, err := Offline(OfflineOptions{Bundle: path, Consortium: strings.Repeat("1", 64)}); !errors.Is(err, ErrConsortium) {
		t.Errorf("offline with another id: %v", err)
	}
	// A history whose statement lost a signature no longer replays.
	m.Governance[0].Signatures = m.Governance[0].Signatures[:1]
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	if b, err := json.Marshal(m); err != nil || os.WriteFile(tampered, b, 0o600) != nil {
		t.Fatal(err)
	}
	if _, err := Offline(OfflineOptions{Bundle: tampered, Genesis: writeGenesis(t, fixtureGenesisJSON)}); !errors.Is(err, ErrGovernance) {
		t.Errorf("offline with an under-signed history: %v, want ErrGovernance", err)
	}
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// signTreeAt signs tree under origin with the majority's keys of l.
func signTreeAt(t *testing.T, l *ledger, origin string, tree tlog.Tree) api.Checkpoint {
	t.Helper()
	var ss []note.Signer
	for _, p := range majority {
		s, err := cluster.NewNoteSigner(cluster.PartnerNoteName(p), l.keys[p])
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	msg, err := cluster.SignCheckpoint(origin, tree, ss...)
	if err != nil {
		t.Fatal(err)
	}
	return api.Checkpoint{Note: string(msg), Origin: origin, Size: tree.N, Root: tree.Hash[:], Signers: majority, Regional: true}
}
