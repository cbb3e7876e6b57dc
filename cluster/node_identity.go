package cluster

import (
	"github.com/hashicorp/raft"
)

// The node's side of the identity transport (raft_identity.go): who is a
// voter, and the raft server the transport serves.

// raftTransport is what the node needs of its raft transport.
type raftTransport interface {
	raft.Transport
	raft.WithClose
}

// raftTransport builds the transport over n.stream.
func (n *Node) raftTransport() (raftTransport, error) {
	if n.cfg.plainRaftTransport {
		return NewTransport(n.stream, TransportConfig{Timeout: n.cfg.TransportTimeout, MaxPool: 8, Logger: n.log}), nil
	}
	return NewIdentityTransport(IdentityTransportConfig{
		Stream:  n.stream,
		Voter:   n.voterAddr,
		Local:   n.localRaft,
		MaxPool: 8,
		Timeout: n.cfg.TransportTimeout,
		Logger:  n.log,
	})
}

// voterAddr returns id's address if id is a voter in the latest raft
// configuration. A node with no configuration yet (a fresh joiner) trusts
// the voters its join response named, and nobody else.
func (n *Node) voterAddr(id raft.ServerID) (raft.ServerAddress, bool) {
	if servers := n.servers(); len(servers) > 0 {
		for _, s := range servers {
			if s.ID == id {
				return s.Address, s.Suffrage == raft.Voter
			}
		}
		return "", false
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	addr, ok := n.joinVoters[string(id)]
	return addr, ok
}

// localRaft is the running raft server, nil before Open has started it.
func (n *Node) localRaft() LocalRaft {
	if r := n.raftPtr.Load(); r != nil {
		return r
	}
	return nil
}

// HandshakesRefused counts the peers this node turned away at the TLS
// handshake because the ledger's deny-list names their certificate.
func (n *Node) HandshakesRefused() uint64 { return n.tls.HandshakesRefused() }

// RaftRPCRefusals counts the inbound raft RPCs this node refused, by
// reason (see RefusalReasons); nil when the identity transport is off.
func (n *Node) RaftRPCRefusals() map[string]uint64 {
	if t, ok := n.transport.(*IdentityTransport); ok {
		return t.Refusals()
	}
	return nil
}
