package cluster

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// A leader that sends a forged InstallSnapshot through raft: the leader's
// snapshot store is given a forged snapshot (a made-up RS release, signed
// by a key governance never registered, at applied index 1,000,001) as its
// newest, and a follower that was down while the log was compacted needs a
// snapshot. Real raft on both ends, over the real TLS transport. The
// follower refuses it every time raft resends it, stays up with its state
// unchanged, reports the refusal and keeps the evidence; once the leader
// sends its honest snapshot instead, the follower installs it and converges.
func TestSystemRefusesForgedInstallSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes hundreds of releases")
	}
	r := newTestRegion(t)
	first := r.config("AL", t.TempDir())
	first.Bootstrap = r.genesis
	first.SnapshotThreshold, first.TrailingLogs = 1<<40, 16
	nodes := []*Node{r.open(first)}
	var lateCfg Config
	for _, id := range []string{"BA", "XK"} {
		cfg := r.config(id, t.TempDir())
		cfg.Join = nodes[0].Addr()
		cfg.SnapshotThreshold, cfg.TrailingLogs = 1<<40, 16
		if id == "XK" {
			lateCfg = cfg
		}
		nodes = append(nodes, r.open(cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	converge(t, nodes)
	late := nodes[2]
	lateCfg.RaftAddr = late.Addr()
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
	publishMany(t, ctx, nodes[0], r, 100, 8)
	leader := leaderOf(t, nodes[:2])
	if err := leader.raft.Snapshot().Error(); err != nil { // compacts the log: XK needs a snapshot
		t.Fatal(err)
	}

	// The forged snapshot, planted as the leader's newest.
	forged := forgeSnapshot(t, snapshotBytes(t, leader.FSM()), func(tx *bbolt.Tx) {
		forgeMadeUpRelease(t, tx)
		put(t, bucket(tx, bucketMeta), keyApplied, binary.BigEndian.AppendUint64(nil, 1_000_001))
	})
	passesIntegrity(t, forged)
	forgedID := plantSnapshot(t, leader, forged, 1_000_001)

	late = r.open(lateCfg)
	nodes[2] = late
	before := viewOfNode(t, late)
	waitUntil(t, 30*time.Second, "the follower refuses the forged snapshot", func() bool {
		ref := late.FSM().SnapshotRefusal()
		return ref != nil && ref.Index == 1_000_001
	})
	ref := late.FSM().SnapshotRefusal()
	if _, err := os.Stat(ref.Evidence); err != nil {
		t.Fatalf("evidence of the refusal: %v", err)
	}
	if got := viewOfNode(t, late); got != before {
		t.Fatalf("the refused snapshot changed the follower: %+v, was %+v", got, before)
	}
	if late.State() == raft.Shutdown {
		t.Fatal("the follower stopped after refusing a snapshot")
	}
	if si := late.Stats()["last_snapshot_index"]; si == "1000001" {
		t.Fatalf("raft recorded the refused snapshot as installed: %v", late.Stats())
	}
	waitUntil(t, 10*time.Second, "raft's copy of the refused snapshot is removed", func() bool {
		return !storeHasIndex(t, late, 1_000_001)
	})

	// The honest leader's own snapshot is installed and the region converges.
	if err := os.RemoveAll(filepath.Join(leader.cfg.DataDir, "raft", "snapshots", forgedID)); err != nil {
		t.Fatal(err)
	}
	sr, s := r.release("RS", aggregate.Period{Year: 2030, Quarter: 1}, 1)
	if _, err := publishOne(ctx, leader, sr, s); err != nil {
		t.Fatal(err)
	}
	converge(t, nodes)
	if late.FSM().AppliedIndex() >= 1_000_001 {
		t.Fatalf("follower's applied index is %d", late.FSM().AppliedIndex())
	}
}

// forgeMadeUpRelease adds a release of RS that RS never signed, with its
// reservation and spend, consistently with the tree.
func forgeMadeUpRelease(t *testing.T, tx *bbolt.Tx) {
	t.Helper()
	mallory := fsmKey("mallory")
	var cat string
	_ = bucket(tx, bucketCatalogs).ForEach(func(k, _ []byte) error { cat = string(k); return nil })
	sr, s := makeRelease(t, mallory, cat, "RS", aggregate.Period{Year: 2031, Quarter: 2}, 1)
	putRecord(t, tx, reservationRecord{Reservation: sr, Release: s.ID})
	put(t, bucket(tx, bucketSpend), "RS/2031-Q2", binary.BigEndian.AppendUint64(nil, 1))
	appendRelease(t, tx, s)
}

// plantSnapshot stores a snapshot stream in n's raft snapshot store as the
// newest (a high term), as a malicious leader's store would hold it.
func plantSnapshot(t *testing.T, n *Node, stream []byte, index uint64) string {
	t.Helper()
	_, trans := raft.NewInmemTransport("")
	conf := raft.Configuration{}
	for _, s := range n.Servers() {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: suffrage})
	}
	sink, err := n.snaps.Create(1, index, 1_000, conf, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(stream); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func storeHasIndex(t *testing.T, n *Node, index uint64) bool {
	t.Helper()
	list, err := n.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.Index == index {
			return true
		}
	}
	return false
}

func viewOfNode(t *testing.T, n *Node) nodeView { return viewOf(t, n.FSM()) }

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
