package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/privacy"
)

// Requests on the forward protocol start with one of these bytes; the rest
// is the payload (a command, a JSON join request, or nothing).
const (
	fwdApply     byte = 1
	fwdJoin      byte = 2
	fwdReadIndex byte = 3
	// fwdRemove was "remove this raft server" from any partner's node.
	// It is refused: servers leave only when signed governance removes
	// their registration (membershipLoop).
	fwdRemove byte = 4
	// fwdGovern carries a signed governance statement to the leader.
	fwdGovern byte = 5
	// fwdMembers asks a member for the raft configuration it knows, so a
	// joiner knows its future peers before the leader first calls.
	fwdMembers byte = 6
)

// Remote errors start with a code so the caller knows whether to retry
// elsewhere (unavailable: no leader, lost leadership, cut link) or give up
// (refused: the request itself is wrong).
const (
	codeUnavailable = "unavailable"
	codeRefused     = "refused"
)

// errNoLeader is returned while an election is in progress.
var errNoLeader = errors.New("no leader known yet")

// retry backoff: quick first retries for a leader change on a LAN, capped
// so a long outage does not turn into a busy loop.
const (
	retryMin = 10 * time.Millisecond
	retryMax = 500 * time.Millisecond
)

// maxForwardedApply bounds how long a leader works on a forwarded command
// whose caller gave no deadline over the wire.
const maxForwardedApply = time.Minute

// Apply submits cmd (an encoded Command) to the ledger from any node and
// returns its result once it is committed and applied. On a follower it is
// forwarded to the leader. Lost leadership, elections and transport errors
// are retried with the same bytes until ctx expires; the state machine is
// idempotent on reservation and release ids, so a retry never spends twice.
// A refusal (OK false) is a result, not an error, and is not retried.
//
// Each attempt has its own deadline and is abandoned as soon as this node
// learns of another leader, so a leader that froze (SIGSTOP, a stalled VM)
// with the request in its socket delays the caller only until the others
// have elected a new one: TCP stays open to a stopped process, so nothing
// but a deadline would end the wait.
func (n *Node) Apply(ctx context.Context, cmd []byte) (ApplyResult, error) {
	var res ApplyResult
	err := n.retry(ctx, "apply", func(ctx context.Context, leader raft.ServerID) error {
		var err error
		res, err = n.applyOnce(ctx, leader, cmd)
		return err
	})
	return res, err
}

// retry runs attempt until it succeeds, fails for good, or ctx ends. Each
// attempt gets the leader this node knows now and a context that ends at
// the attempt's deadline or when the leader this node knows changes; an
// attempt ended that way, or by a retryable error, is tried again after a
// short backoff. The attempt deadline doubles after each timeout, so a
// leader that is merely slow is not abandoned forever.
func (n *Node) retry(ctx context.Context, what string, attempt func(ctx context.Context, leader raft.ServerID) error) error {
	wait, limit := retryMin, n.attemptTimeout()
	for {
		_, leader := n.raft.LeaderWithID()
		actx, cancel := n.attemptContext(ctx, leader, limit)
		err := attempt(actx, leader)
		abandoned := context.Cause(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		switch {
		case errors.Is(abandoned, errLeaderChanged):
			n.log.Debug(what+": leader changed during the attempt; retrying", "was", leader, "error", err)
		case errors.Is(abandoned, errAttemptTimeout):
			n.log.Warn(what+": no answer in time; retrying with the same command", "leader", leader, "after", limit)
			limit = min(2*limit, maxForwardedApply)
		case !retryable(err):
			return fmt.Errorf("%s: %w", what, err)
		default:
			n.log.Debug(what+" will retry", "error", err, "wait", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

var (
	errLeaderChanged  = errors.New("the leader changed")
	errAttemptTimeout = errors.New("no answer within the attempt's deadline")
)

// leaderPoll is how often an attempt in flight looks for a new leader.
const leaderPoll = 25 * time.Millisecond

// attemptTimeout is the first attempt's deadline: long enough for a
// healthy leader under load, short against an election.
func (n *Node) attemptTimeout() time.Duration {
	return max(minAttemptTimeout, 4*(n.cfg.HeartbeatTimeout+n.cfg.ElectionTimeout))
}

// minAttemptTimeout keeps short test timeouts from abandoning a leader that
// is only slow on a loaded machine.
const minAttemptTimeout = 5 * time.Second

// attemptContext is ctx with a deadline limit from now that is also
// cancelled (cause errLeaderChanged) once this node's view of the leader
// is no longer leader.
func (n *Node) attemptContext(ctx context.Context, leader raft.ServerID, limit time.Duration) (context.Context, context.CancelFunc) {
	actx, cancelCause := context.WithCancelCause(ctx)
	tctx, cancelT := context.WithTimeoutCause(actx, limit, errAttemptTimeout)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(leaderPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-tctx.Done():
				return
			case <-t.C:
				if _, now := n.raft.LeaderWithID(); now != leader {
					cancelCause(errLeaderChanged)
					return
				}
			}
		}
	}()
	return tctx, func() {
		close(done)
		cancelT()
		cancelCause(context.Canceled)
	}
}

// Reserve asks the ledger to reserve budget for a release.
func (n *Node) Reserve(ctx context.Context, r privacy.SignedReservation) (ApplyResult, error) {
	cmd, err := NewReserve(r).Encode()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("reserve %s: %w", r.Reservation.ID, err)
	}
	return n.Apply(ctx, cmd)
}

// Publish appends a signed release to the ledger.
func (n *Node) Publish(ctx context.Context, s privacy.Signed) (ApplyResult, error) {
	cmd, err := NewPublish(s).Encode()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("publish %s: %w", s.ID, err)
	}
	return n.Apply(ctx, cmd)
}

func (n *Node) applyOnce(ctx context.Context, id raft.ServerID, cmd []byte) (ApplyResult, error) {
	if n.raft.State() == raft.Leader {
		return n.applyLocal(ctx, cmd)
	}
	if id == "" {
		return ApplyResult{}, errNoLeader
	}
	if string(id) == n.cfg.ID {
		return n.applyLocal(ctx, cmd)
	}
	addr, ok := n.leaderAddr(id)
	if !ok {
		return ApplyResult{}, errNoLeader
	}
	body, err := n.forward(ctx, addr, fwdApply, cmd)
	if err != nil {
		return ApplyResult{}, err
	}
	var res ApplyResult
	if err := json.Unmarshal(body, &res); err != nil {
		return ApplyResult{}, fmt.Errorf("apply result from leader %s: %w", id, err)
	}
	return res, nil
}

// leaderAddr is the address of id if it is still the leader this node knows.
func (n *Node) leaderAddr(id raft.ServerID) (raft.ServerAddress, bool) {
	addr, now := n.raft.LeaderWithID()
	return addr, now == id && addr != ""
}

// applyLocal applies cmd on this node, which must be the leader, and waits
// for commit and apply.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (ApplyResult, error) {
	timeout := maxForwardedApply
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(cmd, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case <-ctx.Done():
		// The command may still commit; the caller retries the same bytes
		// or gives up, and idempotence keeps both safe.
		return ApplyResult{}, ctx.Err()
	case err := <-done:
		if err != nil {
			return ApplyResult{}, err
		}
	}
	switch r := f.Response().(type) {
	case ApplyResult:
		return r, nil
	case *ApplyResult:
		return *r, nil
	case error:
		return ApplyResult{}, fmt.Errorf("state machine: %w", r)
	default:
		return ApplyResult{}, fmt.Errorf("state machine returned %T", r)
	}
}

// forward sends one request to the node at addr.
func (n *Node) forward(ctx context.Context, addr raft.ServerAddress, kind byte, payload []byte) ([]byte, error) {
	if n.stream.isCutAddr(addr) {
		return nil, fmt.Errorf("forward to %s: %w", addr, errPartitioned)
	}
	req := make([]byte, 1+len(payload))
	req[0] = kind
	copy(req[1:], payload)
	return n.fwd.Forward(ctx, addr, req)
}

// retryable reports whether err may go away by itself: a leader change, an
// election, or a network failure. It is false for refusals, for a closed
// node and for certificates that will never verify.
func retryable(err error) bool {
	var re *RemoteError
	if errors.As(err, &re) {
		return strings.HasPrefix(re.Msg, codeUnavailable)
	}
	// A certificate the peer does not accept (an alert) or that we do not
	// accept (a verification error) will not start verifying by itself.
	var cv *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &cv), errors.As(err, &alert):
		return false
	}
	return true
}

// handleForward serves the forward protocol: requests from followers to
// the leader, and join requests from new nodes.
func (n *Node) handleForward(ctx context.Context, peer string, req []byte) ([]byte, error) {
	if len(req) == 0 {
		return nil, fmt.Errorf("%s: empty request", codeRefused)
	}
	kind, body := req[0], req[1:]
	if kind == fwdJoin {
		return n.handleJoin(ctx, peer, body)
	}
	if err := n.authorize(peer); err != nil {
		return nil, fmt.Errorf("%s: %w", codeRefused, err)
	}
	// Replicas are read-only: a researcher's node must not be able to
	// submit anything, even a correctly signed command it relays.
	if kind == fwdApply && n.registered(peer) == roleReplica {
		return nil, fmt.Errorf("%s: %s is a read replica and may not submit commands", codeRefused, peer)
	}
	switch kind {
	case fwdApply:
		return n.handleApply(ctx, body)
	case fwdReadIndex:
		idx, err := n.leaderReadIndex(ctx)
		if err != nil {
			return nil, remoteErr(err)
		}
		return binary.BigEndian.AppendUint64(nil, idx), nil
	case fwdGovern:
		// The statement carries its own authority (k coordinator
		// signatures); who relays it does not matter.
		return n.handleGovern(ctx, body)
	case fwdMembers:
		return json.Marshal(n.members())
	case fwdRemove:
		return nil, fmt.Errorf("%s: %s asked to remove raft server %q: servers are removed only by a signed governance statement (remove_node)", codeRefused, peer, body)
	default:
		return nil, fmt.Errorf("%s: unknown request kind %d", codeRefused, kind)
	}
}

func (n *Node) handleApply(ctx context.Context, cmd []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, maxForwardedApply)
	defer cancel()
	if n.raft.State() != raft.Leader {
		return nil, fmt.Errorf("%s: %w", codeUnavailable, raft.ErrNotLeader)
	}
	res, err := n.applyLocal(ctx, cmd)
	if err != nil {
		return nil, remoteErr(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("%s: encode result: %w", codeRefused, err)
	}
	return b, nil
}

// remoteErr labels err for the caller on the other side of the wire.
// Refusals are labelled where they are made; anything else here (lost
// leadership, a timeout, a shutdown) may pass, so the caller may retry.
func remoteErr(err error) error {
	var re *RemoteError
	if errors.As(err, &re) {
		return errors.New(re.Msg) // already labelled by the node we asked
	}
	if strings.HasPrefix(err.Error(), codeRefused) {
		return err
	}
	return fmt.Errorf("%s: %w", codeUnavailable, err)
}
