package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// freeze makes n look like a stopped process to the others: every raft
// link cut and forwarded requests held without an answer. Undone by thaw.
func freeze(n *Node, others []*Node) {
	n.stream.setFrozen(true)
	for _, o := range others {
		n.stream.setCut(true, o.ID())
	}
}

func thaw(n *Node, others []*Node) {
	for _, o := range others {
		n.stream.setCut(false, o.ID())
	}
	n.stream.setFrozen(false)
}

// A publish forwarded to a leader that then stops answering moves to the
// new leader as soon as the follower learns of it, well before the
// attempt's own deadline (minAttemptTimeout), with the same reservation and
// release: exactly one release and one charge. Before attempts were
// abandoned on a leader change, the forward waited for the frozen leader.
func TestFrozenLeaderPublishMovesToNewLeader(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	old := leaderOf(t, nodes)
	var rest []*Node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	via := rest[0]
	sr, s := r.release("BA", q1, 200_000)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	freeze(old, rest)
	t.Cleanup(func() { thaw(old, rest) })
	start := time.Now()
	id, err := publishOne(ctx, via, sr, s)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("publish through %s with leader %s frozen: %v", via.ID(), old.ID(), err)
	}
	if took >= minAttemptTimeout {
		t.Fatalf("publish took %v: it waited for an attempt deadline (%v) instead of moving to the new leader", took, minAttemptTimeout)
	}
	t.Logf("published %s through %s in %v with the leader %s frozen", id, via.ID(), took, old.ID())
	if lid, _ := via.Leader(); lid == old.ID() || lid == "" {
		t.Fatalf("%s names leader %q, want a new one", via.ID(), lid)
	}

	// The frozen leader, cut off from the quorum, stepped down (raft's
	// lease check) and its health no longer says it is in touch.
	if st := old.State(); st == raft.Leader {
		t.Errorf("%s is still leader after %v cut off (lease %v)", old.ID(), took, old.cfg.LeaderLeaseTimeout)
	}
	if old.LeaderInTouch() || old.CaughtUp() {
		t.Errorf("%s cut off for %v: LeaderInTouch=%v CaughtUp=%v, want both false", old.ID(), took, old.LeaderInTouch(), old.CaughtUp())
	}
	if !via.LeaderInTouch() {
		t.Errorf("%s is in the majority but not in touch with its leader", via.ID())
	}

	thaw(old, rest)
	converge(t, nodes)
	for _, n := range nodes {
		if _, _, err := n.FSM().Release(id); err != nil {
			t.Errorf("%s: release %s missing: %v", n.ID(), id, err)
		}
		spend, err := n.FSM().Spend("BA")
		if err != nil {
			t.Fatal(err)
		}
		if len(spend) != 1 || spend[0].SpentMicro != 200_000 {
			t.Errorf("%s: BA spent %+v, want exactly 200000 µε on one quarter (charged once)", n.ID(), spend)
		}
	}
}

// A leader cut off from every voter steps down within a bounded time (the
// lease), and a follower that stops hearing from its leader stops calling
// itself caught up once the election timeout has passed.
func TestCutOffLeaderStepsDown(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	old := leaderOf(t, nodes)
	var rest []*Node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	cfg := old.cfg
	cut([]*Node{old}, rest, true)
	start := time.Now()
	bound := cfg.LeaderLeaseTimeout + cfg.HeartbeatTimeout + time.Second // lease plus slack for a loaded machine
	for old.State() == raft.Leader {
		if time.Since(start) > bound {
			t.Fatalf("%s still leads %v after being cut off (lease %v)", old.ID(), bound, cfg.LeaderLeaseTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s stepped down %v after being cut off (lease %v)", old.ID(), time.Since(start), cfg.LeaderLeaseTimeout)
	deadline := time.Now().Add(cfg.ElectionTimeout + time.Second)
	for old.LeaderInTouch() || old.CaughtUp() {
		if time.Now().After(deadline) {
			t.Fatalf("%s cut off but LeaderInTouch=%v CaughtUp=%v", old.ID(), old.LeaderInTouch(), old.CaughtUp())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cut([]*Node{old}, rest, false)
	converge(t, nodes)
}

// A forward to a process that accepted the TCP connection but answers
// nothing (as a SIGSTOPped one does: the kernel completes the handshake)
// ends at the caller's deadline.
func TestForwardToSilentPeerEndsAtDeadline(t *testing.T) {
	fx := startForward(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never accepted: the kernel's backlog holds the connection
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = fx.client.Forward(ctx, raft.ServerAddress(ln.Addr().String()), []byte("ok"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forward to a silent peer: err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline of 300ms honoured after %v", d)
	}
}
