package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// fsmRaftNode is one member of an in-memory raft cluster driving a real
// FSM: raft's own in-memory twins for the transport and stores, so the
// test exercises the FSM under raft's real batching, snapshots and restarts.
type fsmRaftNode struct {
	id       raft.ServerID
	dir      string
	fsm      *FSM
	raft     *raft.Raft
	trans    *raft.InmemTransport
	logs     *raft.InmemStore
	snaps    *raft.InmemSnapshotStore
	addr     raft.ServerAddress
	shutdown bool
}

func fsmRaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.BatchApplyCh = true
	c.SnapshotThreshold = 1 << 30 // snapshots only when a test asks
	c.Logger = hclog.NewNullLogger()
	return c
}

func (n *fsmRaftNode) start(t testing.TB) {
	t.Helper()
	// Not openTestFSM: stop closes the FSM after raft has shut down, and
	// the cluster's cleanup stops every node.
	f, err := OpenFSM(n.dir, fsmQuietLogger())
	if err != nil {
		t.Fatalf("OpenFSM %s: %v", n.id, err)
	}
	n.fsm = f
	r, err := raft.NewRaft(fsmRaftConfig(n.id), n.fsm, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		_ = f.Close()
		t.Fatalf("NewRaft %s: %v", n.id, err)
	}
	n.raft = r
	n.shutdown = false
}

func (n *fsmRaftNode) stop(t testing.TB) {
	t.Helper()
	if n.shutdown {
		return
	}
	n.shutdown = true
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Errorf("shutdown %s: %v", n.id, err)
	}
	if err := n.fsm.Close(); err != nil {
		t.Errorf("close %s: %v", n.id, err)
	}
}

func newFSMRaftCluster(t testing.TB, size int) []*fsmRaftNode {
	t.Helper()
	nodes := make([]*fsmRaftNode, size)
	var servers []raft.Server
	for i := range nodes {
		id := raft.ServerID(fmt.Sprintf("node%d", i))
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		nodes[i] = &fsmRaftNode{id: id, dir: t.TempDir(), trans: trans, addr: addr,
			logs: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
		servers = append(servers, raft.Server{ID: id, Address: addr})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, n := range nodes {
		n.start(t)
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop(t)
		}
	})
	return nodes
}

func fsmLeader(t testing.TB, nodes []*fsmRaftNode) *fsmRaftNode {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if !n.shutdown && n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

// applyPipelined submits commands to the leader without waiting for each
// one, as a busy API would, and returns the results in order.
func applyPipelined(t testing.TB, leader *fsmRaftNode, cmds [][]byte) []ApplyResult {
	t.Helper()
	futures := make([]raft.ApplyFuture, len(cmds))
	for i, c := range cmds {
		futures[i] = leader.raft.Apply(c, 10*time.Second)
	}
	out := make([]ApplyResult, len(cmds))
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		res, ok := f.Response().(ApplyResult)
		if !ok {
			t.Fatalf("apply %d: response %T %v", i, f.Response(), f.Response())
		}
		out[i] = res
	}
	return out
}

// waitApplied waits until every running node's FSM has applied index.
func waitApplied(t testing.TB, nodes []*fsmRaftNode, index uint64) {
	t.Helper()
	// The state machine sees commands only: a no-op or configuration entry
	// at the end of the log (an election under load adds one) never moves
	// its applied index, so wait for the last command at or below index.
	for _, n := range nodes {
		if !n.shutdown && n.raft.State() == raft.Leader {
			index = lastCommandIndex(t, n, index)
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for !n.shutdown && n.fsm.AppliedIndex() < index {
			if time.Now().After(deadline) {
				t.Fatalf("%s applied %d, want %d", n.id, n.fsm.AppliedIndex(), index)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// lastCommandIndex is the index of the last command entry at or below
// index in n's log.
func lastCommandIndex(t testing.TB, n *fsmRaftNode, index uint64) uint64 {
	t.Helper()
	for i := index; i > 0; i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			return index // compacted into a snapshot: the command is older
		}
		if l.Type == raft.LogCommand {
			return i
		}
	}
	return index
}

func releaseCommands(t testing.TB, cat string, from, n int) [][]byte {
	t.Helper()
	partners := []string{"AL", "BA", "RS"}
	var cmds [][]byte
	for i := from; i < from+n; i++ {
		p := partners[i%len(partners)]
		r := fsmReservation(t, cat, fmt.Sprintf("raft-%d", i), p, p, fmt.Sprintf("%d-Q%d", 1900+i/4, 1+i%4), 1_000)
		for _, c := range []Command{NewReserve(r), NewPublish(fsmRelease(t, r.Reservation, p, int64(i)))} {
			data, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, data)
		}
	}
	return cmds
}

// TestFSMUnderRaft runs the FSM in a three-node raft cluster: every node
// reaches the same state; a node restarted after a snapshot comes back
// from its own ledger file (raft's start-up Restore is skipped) and
// catches up with what it missed.
func TestFSMUnderRaft(t *testing.T) {
	nodes := newFSMRaftCluster(t, 3)
	leader := fsmLeader(t, nodes)
	genesis, err := fsmGenesis(t, "AL", "BA", "RS").Encode()
	if err != nil {
		t.Fatal(err)
	}
	cat := fsmCatalogHash(t)
	cmds := append([][]byte{genesis}, releaseCommands(t, cat, 0, 60)...)
	for i, r := range applyPipelined(t, leader, cmds) {
		if !r.OK {
			t.Fatalf("command %d refused: %s", i, r.Refusal)
		}
	}
	last := leader.raft.LastIndex()
	waitApplied(t, nodes, last)
	want := stateHash(t, leader.fsm)
	for _, n := range nodes {
		if h := stateHash(t, n.fsm); h != want {
			t.Errorf("%s state differs from the leader's", n.id)
		}
	}

	// Restart a follower after a snapshot, while the cluster moves on.
	var follower *fsmRaftNode
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	if err := follower.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	follower.stop(t)
	applyPipelined(t, leader, releaseCommands(t, cat, 60, 20))
	follower.start(t)
	last = leader.raft.LastIndex()
	waitApplied(t, nodes, last)
	if h, w := stateHash(t, follower.fsm), stateHash(t, leader.fsm); h != w {
		t.Error("restarted follower differs from the leader")
	}
	if head, _ := follower.fsm.TreeHead(); head.N != 80 {
		t.Errorf("restarted follower has %d releases, want 80", head.N)
	}
}

// BenchmarkFSMRaftCluster measures releases per second (a reserve and a
// publish each) through a three-node in-memory raft cluster on this
// machine: every node verifies and stores every release, so the three
// FSMs share the machine's cores as they would in `make demo`.
func BenchmarkFSMRaftCluster(b *testing.B) {
	nodes := newFSMRaftCluster(b, 3)
	leader := fsmLeader(b, nodes)
	g := fsmGenesis(b, "AL", "BA", "RS")
	g.Genesis.Policy.CapMicro = 1 << 50
	fsmRegisterGenesis(b, *g.Genesis)
	genesis, err := g.Encode()
	if err != nil {
		b.Fatal(err)
	}
	applyPipelined(b, leader, [][]byte{genesis})
	cmds := releaseCommands(b, fsmCatalogHash(b), 0, b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i, r := range applyPipelined(b, leader, cmds) {
		if !r.OK {
			b.Fatalf("command %d refused: %s", i, r.Refusal)
		}
	}
	waitApplied(b, nodes, leader.raft.LastIndex())
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "releases/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/release")
}
