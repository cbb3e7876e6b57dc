package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Reads come in two strengths. Local reads (n.FSM()...) are fast and may be
// stale; the FSM reports the raft index they reflect (AppliedIndex). A
// ConsistentRead first makes the local state at least as new as every write
// acknowledged anywhere before it started, with the read-index method of the
// Raft thesis (§6.4): the leader confirms it still leads, names the index its
// state has reached, and the reader waits until it has applied that far.

// appliedPoll is how often a waiting reader looks at the applied index. The
// FSM applies in batches, so a millisecond-scale poll adds little latency.
const appliedPoll = 2 * time.Millisecond

// ConsistentRead waits until this node's ledger state reflects every write
// committed before the call, and returns the applied index it waited for.
// Reads from n.FSM() right after it are linearizable. It retries through
// elections until ctx expires.
func (n *Node) ConsistentRead(ctx context.Context) (uint64, error) {
	var idx uint64
	err := n.retry(ctx, "consistent read", func(actx context.Context, leader raft.ServerID) error {
		var err error
		idx, err = n.readIndex(actx, leader)
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := n.waitApplied(ctx, idx); err != nil {
		return 0, fmt.Errorf("consistent read: %w", err)
	}
	return idx, nil
}

func (n *Node) readIndex(ctx context.Context, id raft.ServerID) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderReadIndex(ctx)
	}
	if id == "" {
		return 0, errNoLeader
	}
	addr, ok := n.leaderAddr(id)
	if !ok {
		return 0, errNoLeader
	}
	body, err := n.forward(ctx, addr, fwdReadIndex, nil)
	if err != nil {
		return 0, err
	}
	if len(body) != 8 {
		return 0, fmt.Errorf("read index from %s: %d bytes, want 8", id, len(body))
	}
	return binary.BigEndian.Uint64(body), nil
}

// leaderReadIndex is the leader's side. A barrier commits through a quorum
// (so this node still leads) and returns once the leader's ledger state has
// applied everything before it, including what an earlier leader may have
// acknowledged. The index returned is the state's applied index, not the
// commit index, because no-op and barrier entries never reach the state
// machine: a reader waiting for one of those would wait forever.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, raft.ErrNotLeader
	}
	if err := waitFuture(ctx, n.raft.Barrier(n.cfg.ElectionTimeout*4)); err != nil {
		return 0, fmt.Errorf("barrier: %w", err)
	}
	return n.fsm.AppliedIndex(), nil
}

// waitApplied blocks until the ledger state has applied idx.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	if n.fsm.AppliedIndex() >= idx {
		return nil
	}
	t := time.NewTicker(appliedPoll)
	defer t.Stop()
	for n.fsm.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", idx, n.fsm.AppliedIndex(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// waitFuture waits for f or ctx, whichever ends first.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		return err
	}
}
