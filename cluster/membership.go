package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

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
	wait := retryMin
	for {
		body, err := n.forward(ctx, raft.ServerAddress(n.cfg.Join), fwdJoin, req)
		if err == nil {
			var resp joinResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				return fmt.Errorf("join via %s: bad response: %w", n.cfg.Join, err)
			}
			n.joinMu.Lock()
			for _, m := range resp.Members {
				n.joinAllow[raft.ServerAddress(m.Addr)] = m.ID
				if m.Voter {
					n.joinVoters[m.ID] = raft.ServerAddress(m.Addr)
				}
			}
			n.joinMu.Unlock()
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

// handleJoin admits a node that holds a certificate for a registered
// partner (as a voter) or replica (as a non-voter). A follower checks the
// certificate and passes the request to the leader.
func (n *Node) handleJoin(ctx context.Context, peer string, body []byte) ([]byte, error) {
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%s: join request: %w", codeRefused, err)
	}
	switch {
	case req.Vouched && n.inConfiguration(peer):
		// A member checked the certificate; its own identity is checked by TLS.
	case peer != req.ID:
		return nil, fmt.Errorf("%s: join as %q refused: the certificate presented is for %q", codeRefused, req.ID, peer)
	}
	if n.raft.State() != raft.Leader {
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
	if err := n.admit(req); err != nil {
		return nil, remoteErr(err)
	}
	var resp joinResponse
	for _, s := range n.servers() {
		resp.Members = append(resp.Members, member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return json.Marshal(resp)
}

// admit adds req's node to the configuration; this node is the leader.
func (n *Node) admit(req joinRequest) error {
	role := n.registered(req.ID)
	switch {
	case role == "":
		return fmt.Errorf("%s: %s is not a registered partner or replica of the consortium; the coordinator must add it first", codeRefused, req.ID)
	case role == rolePartner && !req.Voter:
		return fmt.Errorf("%s: %s is a registered partner and joins as a voter; start it as a voter", codeRefused, req.ID)
	case role == roleReplica && req.Voter:
		return fmt.Errorf("%s: %s is a read replica and cannot vote; start it as a non-voter", codeRefused, req.ID)
	}
	for _, s := range n.servers() {
		if string(s.ID) == req.ID && string(s.Address) == req.Addr {
			return nil // already a member: a retried join
		}
	}
	var f raft.IndexFuture
	if role == rolePartner {
		f = n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.cfg.ElectionTimeout*4)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.cfg.ElectionTimeout*4)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("add %s %s: %w", role, req.ID, err)
	}
	n.log.Info("admitted node", "id", req.ID, "addr", req.Addr, "role", role)
	return nil
}

// AddPartner registers a partner with its release-signing key. The
// partner's node can then join as a voter.
func (n *Node) AddPartner(ctx context.Context, id, name string, pub ed25519.PublicKey) error {
	cmd, err := NewAddPartner(Partner{ID: id, Name: name, PublicKey: pub}).Encode()
	if err != nil {
		return fmt.Errorf("add partner %s: %w", id, err)
	}
	return n.applyAction(ctx, "add partner "+id, cmd)
}

// AddReplica registers a read-only replica; its node can then join as a
// non-voter.
func (n *Node) AddReplica(ctx context.Context, id string) error {
	cmd, err := NewAddReplica(id).Encode()
	if err != nil {
		return fmt.Errorf("add replica %s: %w", id, err)
	}
	return n.applyAction(ctx, "add replica "+id, cmd)
}

// SetCatalog installs a catalog version (its canonical JSON) as current.
func (n *Node) SetCatalog(ctx context.Context, catalogJSON []byte) error {
	cmd, err := NewSetCatalog(catalogJSON).Encode()
	if err != nil {
		return fmt.Errorf("set catalog: %w", err)
	}
	return n.applyAction(ctx, "set catalog", cmd)
}

// SetPolicy replaces the consortium's budget policy.
func (n *Node) SetPolicy(ctx context.Context, p privacy.Policy) error {
	cmd, err := NewSetPolicy(p).Encode()
	if err != nil {
		return fmt.Errorf("set policy: %w", err)
	}
	return n.applyAction(ctx, "set policy", cmd)
}

// RemoveNode takes a partner or replica out of the registry (so it cannot
// rejoin) and then out of the raft configuration.
func (n *Node) RemoveNode(ctx context.Context, id string) error {
	var cmd []byte
	var err error
	switch n.registered(id) {
	case rolePartner:
		cmd, err = NewRemovePartner(id).Encode()
	case roleReplica:
		cmd, err = NewRemoveReplica(id).Encode()
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if cmd != nil {
		if err := n.applyAction(ctx, "remove "+id, cmd); err != nil {
			return err
		}
	}
	wait := retryMin
	for {
		err := n.removeServer(ctx, id)
		if err == nil || !retryable(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("remove %s: %w (last error: %v)", id, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

func (n *Node) removeServer(ctx context.Context, id string) error {
	if n.raft.State() == raft.Leader {
		return n.removeServerLocal(ctx, id)
	}
	addr, lid := n.raft.LeaderWithID()
	if lid == "" {
		return errNoLeader
	}
	_, err := n.forward(ctx, addr, fwdRemove, []byte(id))
	return err
}

func (n *Node) removeServerLocal(_ context.Context, id string) error {
	if !n.inConfiguration(id) {
		return nil
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ElectionTimeout*4).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// applyAction applies a coordinator command and turns a refusal into an
// error, since for these the caller has nothing else to inspect.
func (n *Node) applyAction(ctx context.Context, what string, cmd []byte) error {
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !res.OK {
		return fmt.Errorf("%s: %w: %s", what, ErrRefused, res.Refusal)
	}
	return nil
}

// ErrRefused marks a coordinator action the ledger refused (a result every
// node agrees on), as opposed to a failure to reach the ledger.
var ErrRefused = errors.New("refused by the ledger")
