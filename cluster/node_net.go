package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errPartitioned is what a cut link looks like to the node: a transport
// failure, so callers retry exactly as they would after a real outage.
var errPartitioned = errors.New("link to peer is cut")

// filteredStream wraps the mutual-TLS stream layer with a switch that cuts
// this node off from chosen peers. It exists so system tests can partition
// a real cluster without touching the kernel; in production the set of cut
// peers is always empty and the wrapper only tracks connections.
type filteredStream struct {
	inner      raft.StreamLayer
	expectedID func(raft.ServerAddress) (string, bool)

	mu    sync.Mutex
	cut   map[string]bool
	conns map[*trackedConn]struct{}
	// thaw, while non-nil, holds every forwarded request until it is
	// closed, as a stopped process would (tests only: setFrozen).
	thaw chan struct{}
}

func newFilteredStream(inner raft.StreamLayer, expectedID func(raft.ServerAddress) (string, bool)) *filteredStream {
	return &filteredStream{inner: inner, expectedID: expectedID, cut: map[string]bool{}, conns: map[*trackedConn]struct{}{}}
}

// isCut reports whether the link to peer is cut.
func (s *filteredStream) isCut(peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut[peer]
}

// isCutAddr reports whether the link to whoever is at addr is cut.
func (s *filteredStream) isCutAddr(addr raft.ServerAddress) bool {
	id, ok := s.expectedID(addr)
	return ok && s.isCut(id)
}

// setCut cuts (or, with cut false, restores) the links to peers, closing
// the open connections to them so in-flight RPCs fail at once.
func (s *filteredStream) setCut(cut bool, peers ...string) {
	s.mu.Lock()
	var doomed []*trackedConn
	for _, p := range peers {
		if cut {
			s.cut[p] = true
		} else {
			delete(s.cut, p)
		}
	}
	if cut {
		for c := range s.conns {
			if s.cut[c.peer] {
				doomed = append(doomed, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// setFrozen makes forwarded requests wait without an answer (frozen) or
// releases them. With every raft link cut too, the node looks to the others
// like a SIGSTOPped process: the connection is open and nothing answers.
func (s *filteredStream) setFrozen(frozen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case frozen && s.thaw == nil:
		s.thaw = make(chan struct{})
	case !frozen && s.thaw != nil:
		close(s.thaw)
		s.thaw = nil
	}
}

func (s *filteredStream) track(c net.Conn, peer string) net.Conn {
	tc := &trackedConn{Conn: c, peer: peer, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut[peer] {
		c.Close()
		return nil
	}
	s.conns[tc] = struct{}{}
	return tc
}

// Accept implements raft.StreamLayer.
func (s *filteredStream) Accept() (net.Conn, error) {
	for {
		c, err := s.inner.Accept()
		if err != nil {
			return nil, err
		}
		peer, _ := PeerID(c) // the inner layer already authorized it
		if tc := s.track(c, peer); tc != nil {
			return tc, nil
		}
	}
}

// Dial implements raft.StreamLayer.
func (s *filteredStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.isCutAddr(addr) {
		return nil, fmt.Errorf("raft stream: dial %s: %w", addr, errPartitioned)
	}
	c, err := s.inner.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	peer, _ := PeerID(c)
	tc := s.track(c, peer)
	if tc == nil {
		return nil, fmt.Errorf("raft stream: dial %s: %w", addr, errPartitioned)
	}
	return tc, nil
}

// Close implements raft.StreamLayer.
func (s *filteredStream) Close() error { return s.inner.Close() }

// Addr implements raft.StreamLayer.
func (s *filteredStream) Addr() net.Addr { return s.inner.Addr() }

// filterForward drops forwarded requests from cut peers. The request is
// answered with an error rather than a silent close because the forward
// server owns the connection; callers treat it as a transport failure.
func (s *filteredStream) filterForward(h func(context.Context, string, []byte) ([]byte, error)) func(context.Context, string, []byte) ([]byte, error) {
	return func(ctx context.Context, peer string, req []byte) ([]byte, error) {
		s.mu.Lock()
		thaw := s.thaw
		s.mu.Unlock()
		if thaw != nil {
			select {
			case <-thaw:
			case <-ctx.Done():
			}
		}
		if s.isCut(peer) {
			return nil, fmt.Errorf("%s: %w", codeUnavailable, errPartitioned)
		}
		return h(ctx, peer, req)
	}
}

// trackedConn leaves the stream's set when closed.
type trackedConn struct {
	net.Conn
	peer string
	s    *filteredStream
	once sync.Once
}

// ConnectionState passes the TLS state through, so PeerID works on a
// tracked connection.
func (c *trackedConn) ConnectionState() tls.ConnectionState {
	if cs, ok := c.Conn.(connectionStater); ok {
		return cs.ConnectionState()
	}
	return tls.ConnectionState{}
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
