package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/keyseal"
	"roundtable/privacy"
)

// System tests: real nodes over mutual TLS on 127.0.0.1 in one process.

var q1 = aggregate.Period{Year: 2024, Quarter: 1}

// Killing the leader while several goroutines publish loses no
// acknowledged release: every one is on every surviving node afterwards.
func TestSystemKillLeaderDuringPublishing(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(t, nodes)

	var acked collector
	var failures atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		// Publish through the followers, which survive the kill and must
		// retry through the election.
		via := nodes[g%3]
		if via == leader {
			via = nodes[(g+1)%3]
		}
		partner := testPartnerIDs[g%len(testPartnerIDs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sr, s := r.release(partner, aggregate.Period{Year: 2000 + i%20, Quarter: 1 + i%4}, 1000)
				id, err := publishOne(ctx, via, sr, s)
				if err != nil {
					failures.Add(1)
					continue
				}
				acked.add(id)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	before := len(acked.all())
	leader.crash()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	var survivors []*Node
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	ids := acked.all()
	if before == 0 || len(ids) <= before {
		t.Fatalf("acknowledged %d releases before the kill and %d in all: publishing did not continue after the kill", before, len(ids))
	}
	if f := failures.Load(); f != 0 {
		t.Errorf("%d publishes failed; with retries until the deadline every one should succeed", f)
	}
	converge(t, survivors)
	for _, n := range survivors {
		for _, id := range ids {
			if _, _, err := n.FSM().Release(id); err != nil {
				t.Fatalf("acknowledged release %s missing on %s: %v", id, n.ID(), err)
			}
		}
	}
	t.Logf("%d releases acknowledged (%d before the kill); all present on %d survivors", len(ids), before, len(survivors))
}

// cut separates group a from group b in both directions.
func cut(a, b []*Node, on bool) {
	for _, x := range a {
		for _, y := range b {
			x.stream.setCut(on, y.ID())
			y.stream.setCut(on, x.ID())
		}
	}
}

// A node cut off from the majority cannot commit (its Apply times out)
// while the majority goes on; after healing it converges.
func TestSystemMinorityPartition(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	// Cut off the leader, the harder case: it must stop acknowledging.
	minority := leaderOf(t, nodes)
	var majority []*Node
	for _, n := range nodes {
		if n != minority {
			majority = append(majority, n)
		}
	}
	cut([]*Node{minority}, majority, true)

	sr, s := r.release("RS", q1, 1000)
	mctx, mcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := publishOne(mctx, minority, sr, s)
	mcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish on the minority side: got %v, want a deadline error", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sr2, s2 := r.release("BA", q1, 1000)
	if _, err := publishOne(ctx, majority[0], sr2, s2); err != nil {
		t.Fatalf("publish on the majority side: %v", err)
	}
	if lid, _ := majority[1].Leader(); lid == minority.ID() || lid == "" {
		t.Fatalf("majority's leader is %q, want one of its own", lid)
	}
	if _, _, err := minority.FSM().Release(s2.ID); err == nil {
		t.Fatal("minority has the majority's release while cut off")
	}

	cut([]*Node{minority}, majority, false)
	// The minority's own release may or may not have been committed by the
	// new leader; retrying it after healing must succeed exactly once.
	if _, err := publishOne(ctx, minority, sr, s); err != nil {
		t.Fatalf("retry on the healed node: %v", err)
	}
	converge(t, nodes)
	for _, n := range nodes {
		for _, id := range []string{s.ID, s2.ID} {
			if _, _, err := n.FSM().Release(id); err != nil {
				t.Fatalf("release %s missing on %s after healing: %v", id, n.ID(), err)
			}
		}
	}
}

// A node that was down while many releases were published catches up
// through an installed snapshot, not by replaying the log.
func TestSystemSnapshotCatchUp(t *testing.T) {
	r := newTestRegion(t)
	first := r.config("AL", t.TempDir())
	first.Bootstrap = r.genesis
	first.SnapshotThreshold = 256
	first.TrailingLogs = 64
	nodes := []*Node{r.open(first)}
	var lateCfg Config
	for _, id := range []string{"BA", "XK"} {
		cfg := r.config(id, t.TempDir())
		cfg.Join = nodes[0].Addr()
		cfg.SnapshotThreshold = 256
		cfg.TrailingLogs = 64
		if id == "XK" {
			cfg.SnapshotThreshold = 1 << 40 // never snapshots itself
			lateCfg = cfg
		}
		nodes = append(nodes, r.open(cfg))
	}
	late := nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := late.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	lateCfg.RaftAddr = late.Addr()
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}

	const releases = 2000
	publishMany(t, ctx, nodes[0], r, releases, 32)
	for _, n := range nodes[:2] {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.ID(), err)
		}
	}

	late = r.open(lateCfg)
	nodes[2] = late
	if _, err := late.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	stats := late.Stats()
	if si, _ := strconv.ParseUint(stats["last_snapshot_index"], 10, 64); si == 0 {
		t.Fatalf("restarted node shows no installed snapshot: %v", stats)
	}
	tree, err := late.FSM().TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	if tree.N < releases {
		t.Fatalf("restarted node has %d releases, want ≥ %d", tree.N, releases)
	}
	converge(t, nodes)
}

// publishMany publishes count releases through n with conc goroutines,
// spread over partners and periods so that no budget runs out.
func publishMany(tb testing.TB, ctx context.Context, n *Node, r *testRegion, count, conc int) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				partner := testPartnerIDs[i%int64(len(testPartnerIDs))]
				sr, s := r.release(partner, aggregate.Period{Year: 2000 + int(i/4)%25, Quarter: 1 + int(i/100)%4}, 1)
				if _, err := publishOne(ctx, n, sr, s); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		tb.Fatalf("publish: %v", err)
	}
}

// Two nodes racing reservations for the same partner and quarter never
// let the spend exceed the cap, on any node.
func TestSystemBudgetRace(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const each = 300_000 // 0.3 ε: at most three fit under the cap of 1.0
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		via := nodes[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sr, _ := r.release("RS", q1, each)
			res, err := via.Reserve(ctx, sr)
			switch {
			case err != nil:
				t.Errorf("reserve via %s: %v", via.ID(), err)
			case res.OK:
				admitted.Add(1)
			case strings.HasPrefix(res.Refusal, "over budget"):
				refused.Add(1)
			default:
				t.Errorf("unexpected refusal: %s", res.Refusal)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 3 || refused.Load() != 5 {
		t.Fatalf("admitted %d, refused %d; want 3 and 5", admitted.Load(), refused.Load())
	}
	converge(t, nodes)
	for _, n := range nodes {
		spend, err := n.FSM().Spend("RS")
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, q := range spend {
			if q.SpentMicro > testCapMicro {
				t.Fatalf("%s: RS spent %d on %s, over the cap %d", n.ID(), q.SpentMicro, q.Quarter, testCapMicro)
			}
			total += q.SpentMicro
		}
		if total != 3*each {
			t.Fatalf("%s: RS spent %d in all, want %d", n.ID(), total, 3*each)
		}
	}
}

// Bad releases are refused with the same reason whichever node they are
// sent to, and change nothing; the state ends identical everywhere.
func TestSystemRefusalsAgree(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A valid release to replay and to reuse the reservation of.
	sr, s := r.release("AL", q1, 600_000)
	if _, err := publishOne(ctx, nodes[0], sr, s); err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forgedRes, _ := makeRelease(t, otherKey, r.catalog.Hash(), "BA", q1, 1000)
	_, forgedRel := makeRelease(t, otherKey, r.catalog.Hash(), "BA", q1, 1000)
	overRes, _ := r.release("AL", q1, 600_000) // 0.6 more on top of 0.6
	unknownCat, _ := makeRelease(t, r.keys["XK"], strings.Repeat("ab", 32), "XK", q1, 1000)
	_, reuse := r.release("AL", q1, 600_000)
	reuse.Release.Reservation = sr.Reservation.ID
	reuse.Release.Indicators[0].Cells[0].Value++ // a different release, not a replay
	reuse, _ = privacy.Sign(reuse.Release, r.keys["AL"])
	unregistered, _ := makeRelease(t, otherKey, r.catalog.Hash(), "ME", q1, 1000)

	cmds := []struct {
		name string
		cmd  Command
		want string // substring of the refusal
	}{
		{"forged reservation", NewReserve(forgedRes), "signature"},
		{"forged release", NewPublish(forgedRel), "signature"},
		{"over budget", NewReserve(overRes), "over budget"},
		{"unknown catalog", NewReserve(unknownCat), "unknown catalog"},
		{"reservation reused", NewPublish(reuse), "reservation"},
		{"unregistered partner", NewReserve(unregistered), "not registered"},
	}
	// Every partner co-signs the tree of one release once; after that the
	// refusals below must leave the state exactly as it is.
	waitCosignedByAll(t, nodes, 1)
	before := converge(t, nodes)
	bucketsBefore := bucketHashes(t, nodes[0].FSM())
	appliedBefore := nodes[0].FSM().AppliedIndex()
	for _, c := range cmds {
		b, err := c.cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, n := range nodes {
			res, err := n.Apply(ctx, b)
			if err != nil {
				t.Fatalf("%s via %s: %v", c.name, n.ID(), err)
			}
			if res.OK {
				t.Fatalf("%s via %s was admitted", c.name, n.ID())
			}
			reasons = append(reasons, res.Refusal)
		}
		if !strings.Contains(reasons[0], c.want) {
			t.Errorf("%s: refusal %q does not mention %q", c.name, reasons[0], c.want)
		}
		for i, why := range reasons[1:] {
			if why != reasons[0] {
				t.Errorf("%s: %s says %q, %s says %q", c.name, nodes[0].ID(), reasons[0], nodes[i+1].ID(), why)
			}
		}
	}
	// The exact replay is not a refusal but the existing entry, the same
	// through every node.
	for _, n := range nodes {
		res, err := n.Publish(ctx, s)
		if err != nil || !res.OK || !res.Existing || res.ReleaseID != s.ID {
			t.Fatalf("replay via %s = %+v, %v; want the existing entry", n.ID(), res, err)
		}
	}
	after := converge(t, nodes)
	if tree, _ := nodes[0].FSM().TreeHead(); tree.N != 1 {
		t.Fatalf("ledger has %d releases after refusals and a replay, want 1", tree.N)
	}
	// Refused and replayed commands are in the log but change no state.
	if nodes[0].FSM().AppliedIndex() <= appliedBefore {
		t.Fatal("applied index did not move: the commands never reached the log")
	}
	if before != after {
		t.Errorf("state hash moved from %s to %s: refused or replayed commands changed %v",
			before, after, changedBuckets(bucketsBefore, bucketHashes(t, nodes[0].FSM())))
	}
	for _, n := range nodes {
		for partner, want := range map[string]int64{"AL": 600_000, "BA": 0, "XK": 0} {
			spend, err := n.FSM().Spend(partner)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, q := range spend {
				total += q.SpentMicro
			}
			if total != want {
				t.Errorf("%s: %s spent %d, want %d: a refused command changed the budget", n.ID(), partner, total, want)
			}
		}
	}
}

// Nodes with a certificate from another CA, with a certificate for another
// identity, or for a partner that is not registered cannot join.
func TestSystemJoinRefused(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA")
	leader := leaderOf(t, nodes)

	t.Run("other CA", func(t *testing.T) {
		other, err := InitCA(t.TempDir(), "Impostor Region", testCAPass, keyseal.Minimum())
		if err != nil {
			t.Fatal(err)
		}
		cfg := r.config("XK", t.TempDir())
		cfg.TLS = issueTLS(t, other, "XK")
		cfg.Join = leader.Addr()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		n, err := Open(ctx, cfg)
		if err == nil {
			n.Close()
			t.Fatal("a node with another CA's certificate joined")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %q does not say the certificate is the problem", err)
		}
	})

	t.Run("identity differs from raft id", func(t *testing.T) {
		cfg := r.config("XK", t.TempDir())
		cfg.TLS = r.nodeTLS("RS")
		cfg.Join = leader.Addr()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if n, err := Open(ctx, cfg); err == nil {
			n.Close()
			t.Fatal("a node whose certificate names RS joined as XK")
		}
		// The leader checks too, for a client that skips the local check.
		fwd, err := NewForwarder(ForwarderConfig{TLS: r.nodeTLS("RS")})
		if err != nil {
			t.Fatal(err)
		}
		defer fwd.Close()
		req, _ := json.Marshal(joinRequest{ID: "XK", Addr: "127.0.0.1:1", Voter: true})
		_, err = fwd.Forward(ctx, raft.ServerAddress(leader.Addr()), append([]byte{fwdJoin}, req...))
		var re *RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Msg, `certificate presented is for "RS"`) {
			t.Fatalf("join as XK with RS's certificate: got %v", err)
		}
	})

	t.Run("unregistered", func(t *testing.T) {
		cfg := r.config("ME", t.TempDir())
		cfg.Join = nodes[1].Addr() // via a follower when BA follows
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := Open(ctx, cfg)
		if err == nil {
			n.Close()
			t.Fatal("an unregistered partner joined")
		}
		if !strings.Contains(err.Error(), "not a registered partner or replica") {
			t.Fatalf("error %q does not say ME is not registered", err)
		}
	})

	if got := len(leader.servers()); got != 2 {
		t.Fatalf("configuration has %d servers after refused joins, want 2", got)
	}
}

// A replica joins as a non-voter once registered, serves consistent reads,
// and a removed node leaves the configuration.
func TestSystemReplicaAndRemove(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.govern(ctx, nodes[1], governance.Action{Type: governance.AddReplica, ID: "replica-research"})
	cfg := r.config("replica-research", t.TempDir())
	cfg.Voter = false
	cfg.Join = nodes[2].Addr()
	rep := r.open(cfg)
	sr, s := r.release("XK", q1, 1000)
	if _, err := publishOne(ctx, rep, sr, s); err == nil || !strings.Contains(err.Error(), "read replica") {
		t.Fatalf("publish through the replica: got %v, want a refusal", err)
	}
	if _, err := publishOne(ctx, nodes[2], sr, s); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rep.FSM().Release(s.ID); err != nil {
		t.Fatalf("replica does not see the release after a consistent read: %v", err)
	}
	for _, srv := range nodes[0].servers() {
		if string(srv.ID) == "replica-research" && srv.Suffrage != raft.Nonvoter {
			t.Fatalf("replica has suffrage %v", srv.Suffrage)
		}
	}
	r.govern(ctx, nodes[0], governance.Action{Type: governance.RemoveNode, ID: "XK"})
	// The leader takes XK out because its registration is gone.
	waitOut(t, nodes[0], "XK")
	c, err := nodes[0].FSM().Consortium()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Voters(); strings.Join(got, ",") != "AL,BA,RS" {
		t.Fatalf("voters after removing XK: %v", got)
	}
}

// Partner nodes co-sign the tree head after releases land; once a majority
// of the registered partners signed the same head the checkpoint is
// regional, and it verifies offline with the partners' keys.
func TestSystemCosignedCheckpoint(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		sr, s := r.release(testPartnerIDs[i%4], q1, 1000)
		if _, err := publishOne(ctx, nodes[i%3], sr, s); err != nil {
			t.Fatal(err)
		}
	}
	var verifiers []note.Verifier
	for _, id := range testPartnerIDs {
		v, err := NewNoteVerifier(PartnerNoteName(id), r.keys[id].Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg, size, regional, err := nodes[2].FSM().Checkpoint()
		if err == nil && regional && size == 5 {
			_, tree, signedBy, err := OpenCheckpoint(msg, note.VerifierList(verifiers...))
			if err != nil {
				t.Fatalf("regional checkpoint does not verify: %v", err)
			}
			head, err := nodes[2].FSM().TreeHead()
			if err != nil {
				t.Fatal(err)
			}
			if tree != head {
				t.Fatalf("checkpoint tree %+v, ledger head %+v", tree, head)
			}
			want := []string{PartnerNoteName("AL"), PartnerNoteName("BA"), PartnerNoteName("XK")}
			if strings.Join(signedBy, ",") != strings.Join(want, ",") {
				t.Fatalf("signed by %v, want %v", signedBy, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no regional checkpoint at size 5: size %d regional %v err %v", size, regional, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	converge(t, nodes)
}

// A write acknowledged by one node is visible on every other node right
// after ConsistentRead, without waiting for replication by hand.
func TestSystemConsistentReadOnFollowers(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		writer, reader := nodes[i%3], nodes[(i+1)%3]
		sr, s := r.release("BA", aggregate.Period{Year: 2010 + i, Quarter: 2}, 1000)
		if _, err := publishOne(ctx, writer, sr, s); err != nil {
			t.Fatal(err)
		}
		idx, err := reader.ConsistentRead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if reader.FSM().AppliedIndex() < idx {
			t.Fatalf("ConsistentRead returned %d but %s has applied %d", idx, reader.ID(), reader.FSM().AppliedIndex())
		}
		if _, _, err := reader.FSM().Release(s.ID); err != nil {
			t.Fatalf("release %d written via %s not visible on %s after ConsistentRead: %v", i, writer.ID(), reader.ID(), err)
		}
	}
}

// When a majority is lost for good, an operator writes peers.json on the
// survivor; on restart it forms a cluster alone with all its data and
// accepts writes again.
func TestSystemRecoverLostQuorum(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sr, s := r.release("AL", q1, 1000)
	if _, err := publishOne(ctx, nodes[0], sr, s); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	survivor := nodes[2]
	nodes[0].crash()
	nodes[1].crash()
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	sr2, s2 := r.release("XK", q1, 1000)
	if _, err := publishOne(sctx, survivor, sr2, s2); err == nil {
		t.Fatal("a lone voter of three committed a write")
	}
	scancel()
	cfg := survivor.cfg
	cfg.RaftAddr = survivor.Addr()
	cfg.Join = ""
	if err := survivor.Close(); err != nil {
		t.Fatal(err)
	}
	peers := fmt.Sprintf(`[{"id": "XK", "address": %q, "non_voter": false}]`, cfg.RaftAddr)
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "raft", PeersFile), []byte(peers), 0o600); err != nil {
		t.Fatal(err)
	}
	n := r.open(cfg)
	if _, _, err := n.FSM().Release(s.ID); err != nil {
		t.Fatalf("release lost in recovery: %v", err)
	}
	if _, err := publishOne(ctx, n, sr2, s2); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if got := len(n.servers()); got != 1 {
		t.Fatalf("recovered configuration has %d servers, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft", PeersFile+".applied")); err != nil {
		t.Fatalf("peers file not marked applied: %v", err)
	}
}
