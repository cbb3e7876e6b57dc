package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// Roles a node id can have in the ledger's registry.
const (
	rolePartner = "partner"
	roleReplica = "replica"
)

// joinRequest asks the leader to add the sender to the raft configuration.
type joinRequest struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
	// Vouched is set by a member that checked the joiner's certificate
	// itself and is passing the request on to the leader.
	Vouched bool `json:"vouched,omitempty"`
}

// joinResponse names the members, so that the new node accepts raft
// connections from them before it has a configuration of its own.
type joinResponse struct {
	Members []member `json:"members"`
}

type member struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter,omitempty"`
}

// join asks the member at cfg.Join to admit this node, retrying transport
// failures and elections until ctx expires. A refusal ends it at once.
func (n *Node) join(ctx context.Context) error {
	req, err := json.Marshal(joinRequest{ID: n.cfg.ID, Addr: n.cfg.Advertise, Voter: n.cfg.Voter})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	// The leader starts replicating to this node as soon as it has added
	// it, which can be before the join's answer arrives; knowing the
	// members first spares that first call a refusal (and both sides a
	// warning). Best effort: the answer to the join names them again.
	if body, err := n.forward(ctx, raft.ServerAddress(n.cfg.Join), fwdMembers, nil); err == nil {
		var resp joinResponse
		if json.Unmarshal(body, &resp.Members) == nil {
			n.allowMembers(resp)
		}
	}
	wait := retryMin
	for {
		body, err := n.forward(ctx, raft.ServerAddress(n.cfg.Join), fwdJoin, req)
		if err == nil {
			var resp joinResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				return fmt.Errorf("join via %s: bad response: %w", n.cfg.Join, err)
			}
			n.allowMembers(resp)
			n.log.Info("joined", "via", n.cfg.Join, "members", len(resp.Members))
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("join via %s: %w", n.cfg.Join, err)
		}
		n.log.Debug("join will retry", "via", n.cfg.Join, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("join via %s: %w (last error: %v)", n.cfg.Join, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// allowMembers records the members a join's answer names: the peers a
// node without a configuration of its own accepts raft connections from.
func (n *Node) allowMembers(resp joinResponse) {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	for _, m := range resp.Members {
		n.joinAllow[raft.ServerAddress(m.Addr)] = m.ID
		if m.Voter {
			n.joinVoters[m.ID] = raft.ServerAddress(m.Addr)
		}
	}
}

// members is the raft configuration as a join's answer gives it.
func (n *Node) members() []member {
	var out []member
	for _, s := range n.servers() {
		out = append(out, member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// handleJoin admits a node that holds a certificate for a registered
// partner (as a voter) or replica (as a non-voter). A follower checks the
// certificate and passes the request to the leader, which checks again on
// its own: the voucher's word is never enough (see admit).
func (n *Node) handleJoin(ctx context.Context, peer string, body []byte) ([]byte, error) {
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%s: join request: %w", codeRefused, err)
	}
	switch {
	case req.Vouched && n.isVoter(peer):
		// A voting member passes the request on; the leader dials the
		// joiner itself before admitting it.
	case req.Vouched:
		return nil, fmt.Errorf("%s: join as %q vouched for by %q refused: only a voting member may pass a join on", codeRefused, req.ID, peer)
	case peer != req.ID:
		return nil, fmt.Errorf("%s: join as %q refused: the certificate presented is for %q", codeRefused, req.ID, peer)
	}
	if n.raft.State() != raft.Leader {
		if req.Vouched {
			return nil, fmt.Errorf("%s: %w", codeUnavailable, raft.ErrNotLeader) // one hop only
		}
		addr, id := n.raft.LeaderWithID()
		if id == "" {
			return nil, fmt.Errorf("%s: %w", codeUnavailable, errNoLeader)
		}
		req.Vouched = true
		b, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", codeRefused, err)
		}
		out, err := n.forward(ctx, addr, fwdJoin, b)
		if err != nil {
			return nil, remoteErr(err)
		}
		return out, nil
	}
	if err := n.admit(ctx, req); err != nil {
		return nil, remoteErr(err)
	}
	return json.Marshal(joinResponse{Members: n.members()})
}

// admit adds req's node to the configuration; this node is the leader.
// Membership follows the ledger: the id must be registered by signed
// governance (an active partner joins as a voter, a replica as a
// non-voter), not denied, at the address governance gave if it gave one;
// and the leader dials the address itself and checks that the certificate
// there names the id, so no member can vouch another node's id to an
// address it does not hold.
func (n *Node) admit(ctx context.Context, req joinRequest) error {
	reg := n.registration(req.ID)
	switch {
	case reg.role == "":
		return fmt.Errorf("%s: %s is not a registered partner or replica of the consortium; the coordinators must add it first", codeRefused, req.ID)
	case reg.denied != "":
		return fmt.Errorf("%s: %s may not join: %s", codeRefused, req.ID, reg.denied)
	case reg.role == rolePartner && !req.Voter:
		return fmt.Errorf("%s: %s is a registered partner and joins as a voter; start it as a voter", codeRefused, req.ID)
	case reg.role == roleReplica && req.Voter:
		return fmt.Errorf("%s: %s is a read replica and cannot vote; start it as a non-voter", codeRefused, req.ID)
	case reg.addr != "" && reg.addr != req.Addr:
		return fmt.Errorf("%s: %s is registered at %s, not %s", codeRefused, req.ID, reg.addr, req.Addr)
	}
	for _, s := range n.servers() {
		if string(s.ID) == req.ID && string(s.Address) == req.Addr {
			return nil // already a member: a retried join
		}
	}
	if err := n.dialCheck(ctx, req.ID, req.Addr); err != nil {
		return fmt.Errorf("%s: join as %s at %s refused: %v", codeRefused, req.ID, req.Addr, err)
	}
	var f raft.IndexFuture
	if reg.role == rolePartner {
		f = n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.cfg.ElectionTimeout*4)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.cfg.ElectionTimeout*4)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("add %s %s: %w", reg.role, req.ID, err)
	}
	n.log.Info("admitted node", "id", req.ID, "addr", req.Addr, "role", reg.role)
	return nil
}

// dialCheck connects to addr and checks that the certificate there names
// id: the TLS handshake proves the node at addr holds id's private key.
func (n *Node) dialCheck(ctx context.Context, id, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := dialTLS(ctx, n.tls, addr, ProtoForward, id, n.cfg.HandshakeTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Govern submits a statement signed by the coordinators. The leader checks
// it against the current state (consortium, sequence number, signatures)
// before it proposes it, so junk never reaches the raft log; the state
// machine checks it again on every node. A refusal is a result (OK false).
// A retry of a statement that is already in the ledger answers OK with
// Existing set, so a client may resend after a lost answer.
func (n *Node) Govern(ctx context.Context, s governance.Signed) (ApplyResult, error) {
	cmd, err := NewGovern(s).Encode()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("govern: %w", err)
	}
	// Attempts end at their deadline or on a leader change, as Apply's do.
	var res ApplyResult
	err = n.retry(ctx, "govern", func(actx context.Context, leader raft.ServerID) error {
		var err error
		res, err = n.governOnce(actx, leader, cmd)
		return err
	})
	if err != nil {
		return ApplyResult{}, err
	}
	if !res.OK && n.alreadyApplied(ctx, s) {
		return ApplyResult{OK: true, Existing: true, Seq: s.Statement.Seq}, nil
	}
	return res, nil
}

// alreadyApplied reports whether the ledger holds s at its number (a
// resent statement), catching up with the leader first if needed.
func (n *Node) alreadyApplied(ctx context.Context, s governance.Signed) bool {
	old, err := n.fsm.Statement(s.Statement.Seq)
	if errors.Is(err, ErrNotFound) {
		if _, rerr := n.ConsistentRead(ctx); rerr == nil {
			old, err = n.fsm.Statement(s.Statement.Seq)
		}
	}
	return err == nil && sameStatement(old, s)
}

func (n *Node) governOnce(ctx context.Context, id raft.ServerID, cmd []byte) (ApplyResult, error) {
	if n.raft.State() == raft.Leader {
		return n.governLocal(ctx, cmd)
	}
	addr, ok := n.leaderAddr(id)
	if id == "" || !ok {
		return ApplyResult{}, errNoLeader
	}
	body, err := n.forward(ctx, addr, fwdGovern, cmd)
	if err != nil {
		return ApplyResult{}, err
	}
	var res ApplyResult
	if err := json.Unmarshal(body, &res); err != nil {
		return ApplyResult{}, fmt.Errorf("govern result from leader %s: %w", id, err)
	}
	return res, nil
}

// governLocal pre-checks a govern command on the leader and proposes it.
func (n *Node) governLocal(ctx context.Context, cmd []byte) (ApplyResult, error) {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return ApplyResult{Refusal: err.Error()}, nil
	}
	if c.Type != CmdGovern {
		return ApplyResult{Refusal: fmt.Sprintf("a %s command is not governance", c.Type)}, nil
	}
	if err := n.fsm.CheckStatement(*c.Statement); err != nil {
		var ref *privacy.Refusal
		if errors.As(err, &ref) {
			return ApplyResult{Refusal: ref.Reason}, nil
		}
		return ApplyResult{}, err
	}
	return n.applyLocal(ctx, cmd)
}

func (n *Node) handleGovern(ctx context.Context, cmd []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, maxForwardedApply)
	defer cancel()
	if n.raft.State() != raft.Leader {
		return nil, fmt.Errorf("%s: %w", codeUnavailable, raft.ErrNotLeader)
	}
	res, err := n.governLocal(ctx, cmd)
	if err != nil {
		return nil, remoteErr(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("%s: encode result: %w", codeRefused, err)
	}
	return b, nil
}

// membershipLoop keeps raft's configuration in line with the ledger: while
// this node leads, every server whose registration signed governance has
// removed (or whose id or certificate is denied) is taken out. It is the
// only way a server leaves the configuration, apart from an operator's
// peers.json recovery; no request over the network can remove one.
func (n *Node) membershipLoop(ctx context.Context) {
	t := time.NewTicker(max(n.cfg.ElectionTimeout, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.fsm.GovernanceApplied():
		case <-t.C:
		}
		if n.raft.State() == raft.Leader && n.hasConsortium() {
			n.reconcile()
		}
	}
}

// reconcile removes unregistered servers, this node last (a leader that
// removes itself steps down).
func (n *Node) reconcile() {
	var self bool
	for _, s := range n.servers() {
		if reg := n.registration(string(s.ID)); reg.role != "" && reg.denied == "" {
			continue
		}
		if string(s.ID) == n.cfg.ID {
			self = true
			continue
		}
		n.removeServer(string(s.ID))
	}
	if self {
		n.removeServer(n.cfg.ID)
	}
}

func (n *Node) removeServer(id string) {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ElectionTimeout*4).Error(); err != nil {
		n.log.Warn("remove server the ledger no longer registers", "id", id, "error", err)
		return
	}
	n.log.Info("removed server: governance removed its registration", "id", id)
}

// ErrRefused marks a governance statement the ledger refused (a result
// every node agrees on), as opposed to a failure to reach the ledger.
var ErrRefused = errors.New("refused by the ledger")
