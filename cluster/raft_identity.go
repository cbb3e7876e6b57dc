package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/listener"
)

// This file is the identity-checking raft transport (issue 8, item 1). Raft
// takes the sender of an RPC from the RPC header, which the sender writes;
// the TLS certificate on the connection is the only identity we can trust.
// IdentityTransport binds the two: every inbound RPC must name the
// certificate's own id and that voter's configured address, and the sender
// must be a voter. It depends only on raft and the TLS helpers (PeerID,
// NewTransport), so it can move to a cluster/transport package with them.

// Reasons an inbound raft RPC is refused; they label the refusal counter.
const (
	// RefusedIDMismatch: the RPC header names someone other than the
	// certificate on the connection (impersonation).
	RefusedIDMismatch = "id_mismatch"
	// RefusedNotVoter: the certificate's id is not a voter in this node's
	// configuration: a replica, a removed or not yet joined partner.
	// Replicas and non-members only receive.
	RefusedNotVoter = "not_voter"
	// RefusedAddrMismatch: the header's address is not the one the
	// configuration gives for that voter, so raft would record a wrong
	// leader address.
	RefusedAddrMismatch = "addr_mismatch"
	// RefusedNotLeader: TimeoutNow (which makes a node start an election at
	// once, with no term check in raft) from a voter that is not this node's
	// leader.
	RefusedNotLeader = "not_leader"
	// RefusedMalformed: a command without an RPC header.
	RefusedMalformed = "malformed"
)

// RefusalReasons lists every refusal reason, for exporting zero counters.
func RefusalReasons() []string {
	return []string{RefusedIDMismatch, RefusedNotVoter, RefusedAddrMismatch, RefusedNotLeader, RefusedMalformed}
}

// LocalRaft is what the transport reads from the raft server it serves.
// *raft.Raft satisfies it.
type LocalRaft interface {
	LeaderWithID() (raft.ServerAddress, raft.ServerID)
	State() raft.RaftState
	CurrentTerm() uint64
}

// IdentityTransportConfig configures NewIdentityTransport.
type IdentityTransportConfig struct {
	// Stream carries raft over mutual TLS: Accept yields connections whose
	// peer certificate has been verified (PeerID works on them), Dial
	// connects to a peer. The transport closes it.
	Stream raft.StreamLayer
	// Voter returns the configured address of id when id is a voter in this
	// node's current raft configuration (or, for a node that has no
	// configuration yet, a voter its join response named).
	Voter func(id raft.ServerID) (raft.ServerAddress, bool)
	// Local returns the raft server once it is running, nil before. Inbound
	// RPCs wait for it: raft cannot consume them earlier anyway, and the
	// check needs its configuration.
	Local func() LocalRaft
	// MaxPool and Timeout are as in TransportConfig.
	MaxPool int
	Timeout time.Duration
	// LogEvery is the least time between two log lines about one peer and
	// reason; zero means one minute. Refusals in between are counted and
	// reported with the next line.
	LogEvery time.Duration
	// Logger receives refusals and the transports' logs; nil means
	// slog.Default().
	Logger *slog.Logger
}

// IdentityTransport is a raft.Transport whose inbound RPCs are bound to the
// TLS identity of their connection. Accepted connections are demultiplexed
// by peer certificate id into one raft.NetworkTransport per peer, so each
// RPC is known to come from that peer; a goroutine per peer checks the
// RPC's header before handing it (with its response channel) to raft.
// Heartbeats, which NetworkTransport hands to a fast-path handler instead
// of its consumer channel, are checked the same way. Outbound RPCs go
// through one ordinary NetworkTransport.
type IdentityTransport struct {
	cfg     IdentityTransportConfig
	log     *slog.Logger
	out     *raft.NetworkTransport
	consume chan raft.RPC

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peerInbound
	hb    func(raft.RPC) // raft's heartbeat fast path

	refused refusalLog
}

var (
	_ raft.Transport   = (*IdentityTransport)(nil)
	_ raft.WithClose   = (*IdentityTransport)(nil)
	_ raft.WithPreVote = (*IdentityTransport)(nil)
)

// NewIdentityTransport starts accepting on cfg.Stream.
func NewIdentityTransport(cfg IdentityTransportConfig) (*IdentityTransport, error) {
	if cfg.Stream == nil || cfg.Voter == nil || cfg.Local == nil {
		return nil, errors.New("identity transport: Stream, Voter and Local are required")
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = time.Minute
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	cfg.Logger = l
	t := &IdentityTransport{
		cfg:     cfg,
		log:     l.With("component", "raft-identity"),
		consume: make(chan raft.RPC),
		done:    make(chan struct{}),
		peers:   map[string]*peerInbound{},
		refused: refusalLog{every: cfg.LogEvery, count: map[string]uint64{}, peers: map[refusalKey]*refusalEntry{}},
	}
	t.out = NewTransport(&dialOnlyStream{StreamLayer: cfg.Stream, done: make(chan struct{})},
		TransportConfig{MaxPool: cfg.MaxPool, Timeout: cfg.Timeout, Logger: l})
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// accept hands each inbound connection to its peer's transport.
func (t *IdentityTransport) accept() {
	defer t.wg.Done()
	var backoff listener.Backoff
	for {
		conn, err := t.cfg.Stream.Accept()
		if err != nil {
			// A closed listener is the node shutting down (the mux may
			// close before this transport), not a failure to report.
			if t.closed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Back off as NetworkTransport does, so a broken listener
			// does not spin; never return, or the port is dead.
			t.log.Error("accept raft connection", "error", err)
			if !backoff.Wait(t.done) {
				return
			}
			continue
		}
		backoff.Reset()
		peer, err := PeerID(conn)
		if err != nil {
			t.log.Warn("raft connection without a peer identity", "remote", conn.RemoteAddr().String(), "error", err)
			conn.Close()
			continue
		}
		p := t.peer(peer)
		if p == nil {
			conn.Close()
			return
		}
		select {
		case p.conns <- conn:
		case <-t.done:
			conn.Close()
			return
		}
	}
}

// peer returns the inbound transport for id, starting it on first use; nil
// once the transport is closed. Ids are bounded by the stream layer, which
// admits only certificates of members and registered nodes.
func (t *IdentityTransport) peer(id string) *peerInbound {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed() {
		return nil
	}
	if p, ok := t.peers[id]; ok {
		return p
	}
	p := &peerInbound{id: id, addr: t.cfg.Stream.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), open: map[net.Conn]struct{}{}}
	p.trans = NewTransport(p, TransportConfig{MaxPool: 1, Timeout: t.cfg.Timeout, Logger: t.cfg.Logger.With("peer", id)})
	p.trans.SetHeartbeatHandler(func(rpc raft.RPC) { t.heartbeat(id, rpc) })
	t.peers[id] = p
	t.wg.Add(1)
	go t.serve(p)
	return p
}

// serve checks every RPC from p before raft sees it.
func (t *IdentityTransport) serve(p *peerInbound) {
	defer t.wg.Done()
	for {
		select {
		case rpc := <-p.trans.Consumer():
			if t.admit(p.id, rpc) {
				t.forward(rpc)
			}
		case <-t.done:
			return
		}
	}
}

// heartbeat is the fast path for heartbeats from peer. Raft v1.8.0 runs a
// heartbeat on the transport's goroutine, concurrently with its main loop,
// and a heartbeat that carries a newer term changes the term and the state
// there without synchronisation (hashicorp/raft#695). So the fast path
// takes only heartbeats that cannot change either: this node follows and
// the heartbeat's term is its current term. Any other heartbeat goes
// through the main loop like an ordinary AppendEntries.
func (t *IdentityTransport) heartbeat(peer string, rpc raft.RPC) {
	if !t.admit(peer, rpc) {
		return
	}
	t.mu.Lock()
	fn := t.hb
	t.mu.Unlock()
	req, _ := rpc.Command.(*raft.AppendEntriesRequest)
	if fn != nil && req != nil && fastPathSafe(t.cfg.Local(), req.Term) {
		fn(rpc)
		return
	}
	t.forward(rpc)
}

// fastPathSafe reports whether r follows in term. The term is read on both
// sides of the state: if it did not move, r was a follower in that term,
// and any move out of follower raises the term, after which raft ignores
// the heartbeat as stale.
func fastPathSafe(r LocalRaft, term uint64) bool {
	return r != nil && r.CurrentTerm() == term && r.State() == raft.Follower && r.CurrentTerm() == term
}

// forward hands an admitted RPC to raft.
func (t *IdentityTransport) forward(rpc raft.RPC) {
	select {
	case t.consume <- rpc:
	case <-t.done:
		rpc.Respond(nil, raft.ErrTransportShutdown)
	}
}

// admit checks rpc from peer and, if it is refused, answers it with the
// reason so the sender's raft logs a failure instead of waiting.
func (t *IdentityTransport) admit(peer string, rpc raft.RPC) bool {
	r := t.waitLocal()
	if r == nil {
		rpc.Respond(nil, raft.ErrTransportShutdown)
		return false
	}
	reason, err := t.check(peer, rpc.Command, r)
	if err == nil {
		return true
	}
	t.refused.note(t.log, peer, reason, err)
	if rpc.Reader != nil {
		// Keep the stream in step so the sender reads our answer, as
		// raft's own installSnapshot does for snapshots it refuses.
		_, _ = io.Copy(io.Discard, rpc.Reader)
	}
	rpc.Respond(nil, fmt.Errorf("raft RPC refused (%s): %w", reason, err))
	return false
}

// waitLocal waits until raft runs; nil if the transport closes first.
func (t *IdentityTransport) waitLocal() LocalRaft {
	for {
		if r := t.cfg.Local(); r != nil {
			return r
		}
		select {
		case <-t.done:
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// check is the rule: the header names the certificate's own id and that
// voter's configured address, and TimeoutNow comes from our leader.
func (t *IdentityTransport) check(peer string, cmd any, r LocalRaft) (string, error) {
	h, ok := cmd.(raft.WithRPCHeader)
	if !ok {
		return RefusedMalformed, fmt.Errorf("%T from %s has no RPC header", cmd, peer)
	}
	hdr := h.GetRPCHeader()
	if string(hdr.ID) != peer {
		return RefusedIDMismatch, fmt.Errorf("%s names sender %q but the connection's certificate is %q", rpcName(cmd), hdr.ID, peer)
	}
	addr, ok := t.cfg.Voter(raft.ServerID(peer))
	if !ok {
		return RefusedNotVoter, fmt.Errorf("%s from %s: not a voter in this node's configuration; replicas and non-members only receive", rpcName(cmd), peer)
	}
	if got := t.out.DecodePeer(hdr.Addr); got != addr || addr == "" {
		return RefusedAddrMismatch, fmt.Errorf("%s from %s gives address %q, configured is %q", rpcName(cmd), peer, got, addr)
	}
	if _, ok := cmd.(*raft.TimeoutNowRequest); ok {
		if _, leader := r.LeaderWithID(); string(leader) != peer {
			return RefusedNotLeader, fmt.Errorf("TimeoutNow from %s, which is not this node's leader (%q)", peer, leader)
		}
	}
	return "", nil
}

func rpcName(cmd any) string {
	switch cmd.(type) {
	case *raft.AppendEntriesRequest:
		return "AppendEntries"
	case *raft.RequestVoteRequest:
		return "RequestVote"
	case *raft.RequestPreVoteRequest:
		return "RequestPreVote"
	case *raft.InstallSnapshotRequest:
		return "InstallSnapshot"
	case *raft.TimeoutNowRequest:
		return "TimeoutNow"
	}
	return fmt.Sprintf("%T", cmd)
}

// Refusals returns how many inbound RPCs were refused, by reason (every
// reason is present, zero or not).
func (t *IdentityTransport) Refusals() map[string]uint64 { return t.refused.counts() }

func (t *IdentityTransport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// Close stops accepting, closes every peer's transport and the outbound
// one, and waits for the transport's goroutines. Raft closes its transport
// on shutdown and the node closes it again, so Close may be called twice.
func (t *IdentityTransport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		close(t.done)
		peers := make([]*peerInbound, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		t.mu.Unlock()
		_ = t.cfg.Stream.Close()
		_ = t.out.Close()
		for _, p := range peers {
			_ = p.trans.Close()
		}
		t.wg.Wait()
	})
	return nil
}

// Consumer implements raft.Transport: only admitted RPCs arrive here.
func (t *IdentityTransport) Consumer() <-chan raft.RPC { return t.consume }

// SetHeartbeatHandler implements raft.Transport.
func (t *IdentityTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.mu.Lock()
	t.hb = cb
	t.mu.Unlock()
}

// LocalAddr implements raft.Transport.
func (t *IdentityTransport) LocalAddr() raft.ServerAddress { return t.out.LocalAddr() }

// AppendEntriesPipeline implements raft.Transport.
func (t *IdentityTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	return t.out.AppendEntriesPipeline(id, target)
}

// AppendEntries implements raft.Transport.
func (t *IdentityTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.out.AppendEntries(id, target, args, resp)
}

// RequestVote implements raft.Transport.
func (t *IdentityTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.out.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t *IdentityTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.out.RequestPreVote(id, target, args, resp)
}

// InstallSnapshot implements raft.Transport.
func (t *IdentityTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.out.InstallSnapshot(id, target, args, resp, data)
}

// TimeoutNow implements raft.Transport.
func (t *IdentityTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.out.TimeoutNow(id, target, args, resp)
}

// EncodePeer implements raft.Transport.
func (t *IdentityTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return t.out.EncodePeer(id, addr)
}

// DecodePeer implements raft.Transport.
func (t *IdentityTransport) DecodePeer(b []byte) raft.ServerAddress { return t.out.DecodePeer(b) }

// peerInbound is the raft.StreamLayer of one peer's inbound transport: it
// yields the connections the accept loop routed to that peer, and never
// dials.
type peerInbound struct {
	id    string
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	trans *raft.NetworkTransport

	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (p *peerInbound) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-p.done:
			c.Close()
			return nil, net.ErrClosed
		default:
		}
		p.open[c] = struct{}{}
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Close also closes the connections handed out, so their handlers end.
func (p *peerInbound) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		close(p.done)
		for c := range p.open {
			c.Close()
		}
		p.open = nil
		p.mu.Unlock()
	})
	return nil
}

func (p *peerInbound) Addr() net.Addr { return p.addr }

func (p *peerInbound) Dial(address raft.ServerAddress, _ time.Duration) (net.Conn, error) {
	return nil, fmt.Errorf("raft stream: inbound transport of %s does not dial %s", p.id, address)
}

// dialOnlyStream is the outbound transport's stream layer: it dials through
// the shared stream and never accepts (the identity transport does).
type dialOnlyStream struct {
	raft.StreamLayer
	done chan struct{}
	once sync.Once
}

func (s *dialOnlyStream) Accept() (net.Conn, error) {
	<-s.done
	return nil, net.ErrClosed
}

// Close leaves the shared stream open; the identity transport closes it.
func (s *dialOnlyStream) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// refusalLog counts refusals by reason and logs them at most once per
// LogEvery for each peer and reason, so a peer that keeps trying cannot
// flood the log.
type refusalLog struct {
	every time.Duration

	mu    sync.Mutex
	count map[string]uint64
	peers map[refusalKey]*refusalEntry
}

type refusalKey struct{ peer, reason string }

type refusalEntry struct {
	logged     time.Time
	suppressed uint64
}

func (l *refusalLog) note(log *slog.Logger, peer, reason string, err error) {
	l.mu.Lock()
	l.count[reason]++
	k := refusalKey{peer, reason}
	e := l.peers[k]
	if e == nil {
		e = &refusalEntry{}
		l.peers[k] = e
	}
	now := time.Now()
	if !e.logged.IsZero() && now.Sub(e.logged) < l.every {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.logged, e.suppressed = now, 0
	l.mu.Unlock()
	log.Warn("refused raft RPC", "peer", peer, "reason", reason, "error", err, "refused_since_last_log", suppressed)
}

func (l *refusalLog) counts() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range RefusalReasons() {
		out[r] = l.count[r]
	}
	return out
}
