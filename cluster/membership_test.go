package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/cluster/governance"
)

// forwardAs sends one forward-protocol request to addr with id's
// certificate, over real mutual TLS, as a program holding that certificate
// would.
func forwardAs(t *testing.T, r *testRegion, id, addr string, kind byte, body []byte) error {
	t.Helper()
	fwd, err := NewForwarder(ForwarderConfig{TLS: r.nodeTLS(id)})
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = fwd.Forward(ctx, raft.ServerAddress(addr), append([]byte{kind}, body...))
	return err
}

func configIDs(n *Node) string {
	var ids []string
	for _, s := range n.servers() {
		ids = append(ids, string(s.ID)+"@"+string(s.Address))
	}
	return strings.Join(ids, ",")
}

func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	var re *RemoteError
	if !errors.As(err, &re) || !strings.HasPrefix(re.Msg, codeRefused) || !strings.Contains(re.Msg, want) {
		t.Fatalf("got %v, want a refusal containing %q", err, want)
	}
}

// TestMembershipFollowsLedger: raft membership changes only follow signed
// ledger state. Before issue 8, BA's certificate alone removed a partner
// through the forward protocol (fwdRemove went straight to
// raft.RemoveServer), and any member could vouch a join for any id at any
// address (XK was moved to a dead address). Both are refused now, the
// configuration and every node's state are unchanged, and a signed
// remove_node does take a server out.
func TestMembershipFollowsLedger(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	config := configIDs(leader)
	hashes := stateHashes(t, nodes)

	// A partner's certificate asks the leader to remove XK.
	err := forwardAs(t, r, "BA", leader.Addr(), fwdRemove, []byte("XK"))
	wantRefused(t, err, "servers are removed only by a signed governance statement")

	// A member vouches a join for XK at an address XK does not hold
	// (here: a listener that is not a roundtable node; before, the leader
	// moved XK there without looking).
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer dead.Close()
	req, _ := json.Marshal(joinRequest{ID: "XK", Addr: dead.Addr().String(), Voter: true, Vouched: true})
	err = forwardAs(t, r, "BA", leader.Addr(), fwdJoin, req)
	wantRefused(t, err, "join as XK at "+dead.Addr().String()+" refused")

	// The same, at an address where another member (AL) answers: the
	// certificate there names AL, not XK.
	al := nodes[0]
	req, _ = json.Marshal(joinRequest{ID: "XK", Addr: al.Addr(), Voter: true, Vouched: true})
	err = forwardAs(t, r, "BA", leader.Addr(), fwdJoin, req)
	wantRefused(t, err, `peer certificate identity is "AL", want "XK"`)

	// A replica's certificate may not vouch at all.
	r.govern(ctx, leader, governance.Action{Type: governance.AddReplica, ID: "replica-r1"})
	hashes = stateHashes(t, nodes) // the replica's registration is honest governance
	req, _ = json.Marshal(joinRequest{ID: "XK", Addr: al.Addr(), Voter: true, Vouched: true})
	err = forwardAs(t, r, "replica-r1", leader.Addr(), fwdJoin, req)
	wantRefused(t, err, "only a voting member may pass a join on")

	// A join for an id governance never registered (RS is a genesis
	// partner but ME is not) is refused even with ME's own certificate.
	req, _ = json.Marshal(joinRequest{ID: "ME", Addr: "127.0.0.1:1", Voter: true})
	err = forwardAs(t, r, "ME", leader.Addr(), fwdJoin, req)
	wantRefused(t, err, "ME is not a registered partner or replica")

	if got := configIDs(leader); got != config {
		t.Fatalf("configuration changed by refused requests:\n%s\n%s", got, config)
	}
	if got := stateHashes(t, nodes); strings.Join(got, ",") != strings.Join(hashes, ",") {
		t.Fatal("state changed by refused requests")
	}

	// The signed way: remove_node, and the leader takes XK out; XK is then
	// on the deny-list of every node.
	r.govern(ctx, leader, governance.Action{Type: governance.RemoveNode, ID: "XK"})
	waitOut(t, leader, "XK")
	for _, n := range nodes {
		if n.ID() == "XK" {
			continue
		}
		if _, err := n.ConsistentRead(ctx); err != nil {
			t.Fatal(err)
		}
		if denied, _ := n.FSM().Denied("XK", nil); !denied {
			t.Errorf("%s does not deny XK after its removal", n.ID())
		}
	}
	// A removed partner's join is refused, now at the TLS handshake: its
	// id is on the deny-list every node consults there.
	refusedBefore := leader.HandshakesRefused()
	req, _ = json.Marshal(joinRequest{ID: "XK", Addr: nodes[2].Addr(), Voter: true})
	err = forwardAs(t, r, "XK", leader.Addr(), fwdJoin, req)
	// TLS 1.3 completes the client's side first, so the server's refusal
	// reaches the client as an alert or, if its request is already on the
	// way, as a reset or broken pipe; the leader's count says which it was.
	if err == nil || !(strings.Contains(err.Error(), "bad certificate") || strings.Contains(err.Error(), "broken pipe") ||
		strings.Contains(err.Error(), "connection reset")) {
		t.Errorf("removed partner's join: %v, want a refusal at the handshake", err)
	}
	if leader.HandshakesRefused() <= refusedBefore {
		t.Error("the leader did not count the refused handshake")
	}
}

func stateHashes(t *testing.T, nodes []*Node) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for _, n := range nodes {
		if _, err := n.ConsistentRead(ctx); err != nil {
			t.Fatal(err)
		}
		out = append(out, stateHash(t, n.FSM()))
	}
	return out
}

// TestGovernRefusedBeforeRaft: a node answers a bad statement with the
// reason before it proposes it, so nothing reaches the raft log; a resent
// admitted statement answers Existing.
func TestGovernRefusedBeforeRaft(t *testing.T) {
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	follower := nodes[0]
	if follower.State() == raft.Leader {
		follower = nodes[1]
	}
	h, _, err := follower.FSM().Governance()
	if err != nil {
		t.Fatal(err)
	}
	before := follower.raft.LastIndex()
	a := governance.Action{Type: governance.AddReplica, ID: "replica-r1"}
	res, err := follower.Govern(ctx, signStatement(t, h.Consortium, h.Next, a, "c1"))
	if err != nil || res.OK || !strings.Contains(res.Refusal, "threshold is 2 of 3") {
		t.Fatalf("under-threshold statement: %+v %v", res, err)
	}
	for _, n := range nodes { // other entries (co-signatures) may come; no govern may
		for i := before + 1; i <= n.raft.LastIndex(); i++ {
			var l raft.Log
			if err := n.logStore.GetLog(i, &l); err == nil && strings.Contains(string(l.Data), `"type":"govern"`) {
				t.Fatalf("a refused statement reached %s's raft log at %d", n.ID(), i)
			}
		}
	}
	good := signStatement(t, h.Consortium, h.Next, a, "c1", "c3")
	for i := range 2 {
		res, err := follower.Govern(ctx, good)
		if err != nil || !res.OK || res.Existing != (i == 1) || res.Seq != h.Next {
			t.Fatalf("attempt %d: %+v %v", i, res, err)
		}
	}
}
