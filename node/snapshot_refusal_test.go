package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/cluster"
	"roundtable/node/api"
)

// bufSink is a raft.SnapshotSink in memory.
type bufSink struct{ bytes.Buffer }

func (s *bufSink) ID() string    { return "buf" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { return nil }

// otherGenesis is the region's genesis under another name: another
// consortium with the same partners and keys.
func otherGenesis(t *testing.T, r *testRegion) []byte {
	t.Helper()
	g, err := cluster.ParseGenesis(r.genesis)
	if err != nil {
		t.Fatal(err)
	}
	g.Name = "another-region"
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A snapshot of another consortium's ledger, far ahead of this node, is
// refused; /v1/health says so (status, index, reason, evidence) and
// /metrics counts it, and the node's state is unchanged.
func TestHealthReportsRefusedSnapshot(t *testing.T) {
	r := newRegion(t, "RS")
	n := r.nodes[0]
	fsm := n.Ledger().FSM()

	other, err := cluster.OpenFSM(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	g, err := cluster.ParseGenesis(otherGenesis(t, r))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := cluster.NewGenesis(g).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if res := other.ApplyBatch([]*raft.Log{{Index: 1_000_001, Type: raft.LogCommand, Data: cmd}}); !res[0].(cluster.ApplyResult).OK {
		t.Fatalf("other genesis: %+v", res[0])
	}
	snap, err := other.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}

	hash, _ := fsm.StateHash()
	head, _ := fsm.TreeHead()
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err == nil || !strings.Contains(err.Error(), "snapshot is a ledger of consortium") {
		t.Fatalf("Restore(other consortium) = %v, want a refusal", err)
	}
	if h, _ := fsm.StateHash(); h != hash {
		t.Error("state hash changed")
	}
	if h, _ := fsm.TreeHead(); h != head {
		t.Error("tree head changed")
	}

	resp, err := http.Get("http://" + n.HTTPAddr() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	ref := h.SnapshotRefused
	if h.Status != api.StatusSnapshotRefused || ref == nil || ref.Index != 1_000_001 || ref.Count != 1 ||
		!strings.Contains(ref.Reason, "consortium") {
		t.Fatalf("health = status %q, snapshot_refused %+v; want the refusal at 1000001", h.Status, ref)
	}
	if _, err := os.Stat(ref.Evidence); err != nil {
		t.Errorf("evidence named by health: %v", err)
	}
	m, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Body.Close()
	body, _ := io.ReadAll(m.Body)
	if !strings.Contains(string(body), "roundtable_ledger_snapshots_refused_total 1") {
		t.Error("/metrics does not count the refused snapshot")
	}
}

// A node started for another consortium than the one its data dir is
// pinned to refuses to start, naming both.
func TestNodeRefusesAnotherConsortiumsGenesis(t *testing.T) {
	r := newRegion(t, "RS", "AL")
	r.stops[1]()
	cfg := r.cfgs[1]
	cfg.Join, cfg.JoinGenesis = "", otherGenesis(t, r)
	n, err := Open(t.Context(), cfg)
	if err == nil {
		n.Close()
		t.Fatal("node opened for another consortium")
	}
	if !strings.Contains(err.Error(), "pinned") || !strings.Contains(err.Error(), "it was started for consortium") {
		t.Fatalf("error %q does not say the node is pinned to another consortium", err)
	}
}
