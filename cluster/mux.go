package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Protocol bytes: after the TLS handshake the dialing side writes one of these
// to say which service on the node it wants. One port keeps firewall rules
// between NGOs simple.
const (
	// ProtoRaft carries raft's NetworkTransport.
	ProtoRaft byte = 1
	// ProtoForward carries writes forwarded from followers to the leader.
	ProtoForward byte = 2
)

// ErrMuxClosed is returned by Accept on a sub-listener after it or its Mux
// has been closed.
// It wraps net.ErrClosed, so errors.Is(err, net.ErrClosed) holds.
var ErrMuxClosed = fmt.Errorf("cluster mux: %w", net.ErrClosed)

// MuxConfig configures a Mux.
type MuxConfig struct {
	// HandshakeTimeout bounds the TLS handshake and the protocol byte of
	// every inbound connection; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Logger receives refused connections; nil means slog.Default().
	Logger *slog.Logger
}

// Mux accepts mutual-TLS connections on one listener and hands each one, by
// its first byte, to the sub-listener registered for that protocol.
// Handshakes run concurrently so a slow or hostile peer cannot hold up others.
type Mux struct {
	ln      net.Listener
	tlsConf *tls.Config
	cfg     MuxConfig
	log     *slog.Logger

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	subs  map[byte]*subListener
	conns map[*muxConn]struct{} // handed-out conns, closed with the Mux
	// pending are conns still in handshake, closed with the Mux so their
	// goroutines end promptly.
	pending map[net.Conn]struct{}
}

// NewMux returns a Mux that will serve ln with node's server TLS config. It
// takes ownership of ln.
func NewMux(ln net.Listener, node *NodeTLS, cfg MuxConfig) *Mux {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Mux{
		ln:      ln,
		tlsConf: node.ServerConfig(),
		cfg:     cfg,
		log:     log.With("component", "cluster-mux"),
		done:    make(chan struct{}),
		subs:    make(map[byte]*subListener),
		conns:   make(map[*muxConn]struct{}),
		pending: make(map[net.Conn]struct{}),
	}
}

// Addr is the address the Mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Listen returns the sub-listener for proto. Calling it again for the same
// protocol returns the same listener unless that one was closed, in which case
// a fresh one replaces it (raft closes its stream layer on shutdown).
func (m *Mux) Listen(proto byte) net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.subs[proto]; ok {
		select {
		case <-s.done:
		default:
			return s
		}
	}
	s := &subListener{m: m, proto: proto, ch: make(chan net.Conn), done: make(chan struct{})}
	m.subs[proto] = s
	return s
}

// Serve accepts connections until ctx is done or the Mux is closed. It always
// closes the Mux before returning, so every goroutine it started has ended.
func (m *Mux) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { m.Close() })
	defer stop()
	defer m.Close()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("cluster mux: accept: %w", err)
		}
		if !m.track(conn) {
			conn.Close()
			return nil
		}
		go m.handle(conn)
	}
}

// track records a conn in handshake and counts its goroutine; false means the
// Mux is closing. The count is taken under the lock so Close cannot miss it.
func (m *Mux) track(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
		return false
	default:
	}
	m.pending[conn] = struct{}{}
	m.wg.Add(1)
	return true
}

func (m *Mux) untrack(conn net.Conn) {
	m.mu.Lock()
	delete(m.pending, conn)
	m.mu.Unlock()
}

func (m *Mux) handle(raw net.Conn) {
	defer m.wg.Done()
	defer m.untrack(raw)
	conn := tls.Server(raw, m.tlsConf)
	_ = conn.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if err := conn.Handshake(); err != nil {
		m.log.Debug("refused connection: TLS handshake", "remote", raw.RemoteAddr().String(), "error", err)
		raw.Close()
		return
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		m.log.Debug("refused connection: no protocol byte", "remote", raw.RemoteAddr().String(), "error", err)
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	m.mu.Lock()
	sub, ok := m.subs[b[0]]
	m.mu.Unlock()
	if !ok {
		m.log.Warn("refused connection: unknown protocol", "remote", raw.RemoteAddr().String(), "proto", b[0])
		conn.Close()
		return
	}
	mc := &muxConn{Conn: conn, m: m}
	if !m.adopt(mc) {
		conn.Close()
		return
	}
	select {
	case sub.ch <- mc:
	case <-sub.done:
		mc.Close()
	case <-m.done:
		mc.Close()
	}
}

func (m *Mux) adopt(c *muxConn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
		return false
	default:
	}
	m.conns[c] = struct{}{}
	return true
}

// Close stops the listener, closes every sub-listener and every connection the
// Mux accepted, and waits for its goroutines to end.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		close(m.done)
		err = m.ln.Close()
		for c := range m.pending {
			c.Close()
		}
		conns := make([]*muxConn, 0, len(m.conns))
		for c := range m.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		m.wg.Wait()
	})
	return err
}

// muxConn is a handed-out connection; it leaves the Mux's set when closed. It
// embeds *tls.Conn so ConnectionState (and so PeerID) keeps working.
type muxConn struct {
	*tls.Conn
	m    *Mux
	once sync.Once
}

func (c *muxConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// subListener yields the Mux's connections for one protocol.
type subListener struct {
	m     *Mux
	proto byte
	ch    chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ch:
		return c, nil
	case <-s.done:
		return nil, ErrMuxClosed
	case <-s.m.done:
		return nil, ErrMuxClosed
	}
}

func (s *subListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *subListener) Addr() net.Addr { return s.m.ln.Addr() }
