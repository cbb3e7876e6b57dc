package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"roundtable/listener"
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

// Defaults of MuxConfig. A region has a few dozen members and replicas,
// each holding a handful of pooled raft and forward connections to a node,
// and a peer that restarts redials its pools at once (the forwarder keeps
// up to DefaultForwardMaxIdle). So one address may hold an eighth of the
// connections in handshake: a host that opens connections and never
// completes a handshake holds at most 64 of the 512 slots, and starving
// the port takes eight addresses at once.
const (
	DefaultMaxConns               = 512
	DefaultMaxHandshakesPerSource = 64
	DefaultConnWriteTimeout       = 30 * time.Second
)

// MuxConfig configures a Mux.
type MuxConfig struct {
	// HandshakeTimeout bounds the TLS handshake and the protocol byte of
	// every inbound connection; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxConns caps the connections open at once, in handshake or handed
	// out; more wait in the kernel's backlog (see listener.Guard). Zero
	// means DefaultMaxConns.
	MaxConns int
	// MaxHandshakesPerSource caps the handshakes in progress from one IP
	// address; a connection beyond it is closed at once, so one host
	// cannot take the cap's slots with connections that never finish a
	// handshake. Zero means DefaultMaxHandshakesPerSource.
	MaxHandshakesPerSource int
	// WriteTimeout bounds every write to a handed-out connection, so a
	// peer that stops reading cannot hold a raft or forward goroutine.
	// (Reads are not bounded here: raft keeps idle pooled connections and
	// cannot tell one the server cut; the forward service bounds its own.)
	// Zero means DefaultConnWriteTimeout.
	WriteTimeout time.Duration
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

	// busySource counts connections closed by MaxHandshakesPerSource.
	busySource atomic.Uint64

	mu    sync.Mutex
	subs  map[byte]*subListener
	conns map[*muxConn]struct{} // handed-out conns, closed with the Mux
	// pending are conns still in handshake, closed with the Mux so their
	// goroutines end promptly.
	pending map[net.Conn]struct{}
	// handshaking counts the pending conns per source IP.
	handshaking map[string]int
}

// NewMux returns a Mux that will serve ln with node's server TLS config. It
// takes ownership of ln.
func NewMux(ln net.Listener, node *NodeTLS, cfg MuxConfig) *Mux {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&cfg.WriteTimeout, DefaultConnWriteTimeout)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxHandshakesPerSource <= 0 {
		cfg.MaxHandshakesPerSource = DefaultMaxHandshakesPerSource
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "cluster-mux")
	return &Mux{
		// The guard retries accept errors (EMFILE and the like) with
		// back-off instead of handing them to Serve: one burst of them
		// used to end Serve and leave the port dead until restart.
		ln:      listener.Guard(ln, listener.Config{MaxConns: cfg.MaxConns, Name: "cluster", Logger: log}),
		tlsConf: node.ServerConfig(),
		cfg:     cfg,
		log:     log,
		done:    make(chan struct{}),
		subs:    make(map[byte]*subListener),
		conns:   make(map[*muxConn]struct{}),
		pending: make(map[net.Conn]struct{}),

		handshaking: make(map[string]int),
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
			// The guard returns only once the listener is closed.
			select {
			case <-m.done:
				return nil
			default:
			}
			return fmt.Errorf("cluster mux: accept: %w", err)
		}
		switch m.track(conn) {
		case tracked:
			go m.handle(conn)
		case sourceBusy:
			m.busySource.Add(1)
			m.log.Debug("refused connection: too many handshakes from its address", "remote", conn.RemoteAddr().String(),
				"max", m.cfg.MaxHandshakesPerSource)
			conn.Close()
		case muxClosing:
			conn.Close()
			return nil
		}
	}
}

// RefusedBusySource is the number of connections closed because their
// address already had MaxHandshakesPerSource handshakes in progress.
func (m *Mux) RefusedBusySource() uint64 { return m.busySource.Load() }

type trackResult int

const (
	tracked trackResult = iota
	sourceBusy
	muxClosing
)

// track records a conn in handshake and counts its goroutine, unless the
// Mux is closing or the conn's address has too many handshakes in
// progress. The count is taken under the lock so Close cannot miss it.
func (m *Mux) track(conn net.Conn) trackResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
		return muxClosing
	default:
	}
	src := sourceIP(conn)
	if m.handshaking[src] >= m.cfg.MaxHandshakesPerSource {
		return sourceBusy
	}
	m.handshaking[src]++
	m.pending[conn] = struct{}{}
	m.wg.Add(1)
	return tracked
}

func (m *Mux) untrack(conn net.Conn) {
	src := sourceIP(conn)
	m.mu.Lock()
	delete(m.pending, conn)
	if m.handshaking[src]--; m.handshaking[src] <= 0 {
		delete(m.handshaking, src)
	}
	m.mu.Unlock()
}

// sourceIP is the address a connection comes from, without its port.
func sourceIP(c net.Conn) string {
	a := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

func (m *Mux) handle(raw net.Conn) {
	defer m.wg.Done()
	conn := tls.Server(raw, m.tlsConf)
	proto, err := m.handshake(raw, conn)
	if err != nil {
		m.log.Debug("refused connection", "remote", raw.RemoteAddr().String(), "error", err)
		conn.Close()
		return
	}
	b := [1]byte{proto}
	m.mu.Lock()
	sub, ok := m.subs[b[0]]
	m.mu.Unlock()
	if !ok {
		m.log.Warn("refused connection: unknown protocol", "remote", raw.RemoteAddr().String(), "proto", b[0])
		conn.Close()
		return
	}
	mc := &muxConn{Conn: conn, m: m, writeTimeout: m.cfg.WriteTimeout}
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

// handshake runs the TLS handshake and reads the protocol byte within
// HandshakeTimeout; only this stage counts against the source's cap.
func (m *Mux) handshake(raw net.Conn, conn *tls.Conn) (byte, error) {
	defer m.untrack(raw)
	_ = conn.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout))
	if err := conn.Handshake(); err != nil {
		return 0, fmt.Errorf("TLS handshake: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("no protocol byte: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return b[0], nil
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
	m            *Mux
	writeTimeout time.Duration
	once         sync.Once
}

// Write bounds every write by the Mux's WriteTimeout.
func (c *muxConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.Conn.Write(b)
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
