package cluster

import (
	"context"
	"encoding/binary"
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

// Wire format of ProtoForward, after the protocol byte, repeated on one
// connection for as many requests as the client likes, one at a time:
//
//	request:  uint32 big-endian length, payload
//	response: status byte, uint32 big-endian length, payload
//
// Status statusOK carries the handler's reply; statusRemoteError carries the
// handler's error text. One request at a time per connection keeps the
// protocol trivial; the client gets concurrency from its pool instead.
const (
	statusOK          byte = 0
	statusRemoteError byte = 1
)

// MaxFrameSize is the largest request or response payload, 16 MiB. A release
// is a few kilobytes; the cap keeps one bad peer from making a node allocate
// without bound.
const MaxFrameSize = 16 << 20

// ErrFrameTooLarge is returned for a request or response over MaxFrameSize.
var ErrFrameTooLarge = fmt.Errorf("forward: frame larger than %d bytes", MaxFrameSize)

// serverIdleTimeout is how long ServeForward keeps a silent connection. It is
// longer than DefaultForwardIdleTimeout so that the client, not the server,
// normally retires idle connections and never writes into a closing one.
const serverIdleTimeout = 2 * time.Minute

// serverWriteTimeout bounds writing one response to a peer that stopped reading.
const serverWriteTimeout = 30 * time.Second

// RemoteError is an error returned by the remote handler (for example "not
// the leader" or "budget exhausted"): the request arrived and was refused, so
// retrying the same request elsewhere will not help unless the cause changed.
// Any other error from Forward is a transport error and may be retried.
type RemoteError struct {
	// Msg is the handler's error text.
	Msg string
}

func (e *RemoteError) Error() string { return "forward: remote: " + e.Msg }

// ServeForward answers forwarded requests from l with h until ctx is done or l
// is closed. It closes l and every connection before returning. peerID is the
// identity from the caller's certificate; h decides whether that peer may
// make the request.
func ServeForward(ctx context.Context, l net.Listener, h func(ctx context.Context, peerID string, req []byte) ([]byte, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	defer func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	var backoff listener.Backoff
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Any other error passes (the mux's own accepts are guarded);
			// returning would leave the node unable to take forwarded
			// writes until restart.
			slog.Warn("forward: accept failed; retrying", "error", err)
			if !backoff.Wait(ctx.Done()) {
				return nil
			}
			continue
		}
		backoff.Reset()
		mu.Lock()
		conns[conn] = struct{}{}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			serveForwardConn(ctx, conn, h)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		}()
	}
}

func serveForwardConn(ctx context.Context, conn net.Conn, h func(context.Context, string, []byte) ([]byte, error)) {
	defer conn.Close()
	peer, err := PeerID(conn)
	if err != nil {
		slog.Warn("forward: refused connection", "remote", conn.RemoteAddr().String(), "error", err)
		return
	}
	for ctx.Err() == nil {
		_ = conn.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		req, err := readFrame(conn)
		if errors.Is(err, ErrFrameTooLarge) {
			// Answer so the client learns why, then drop the connection: the
			// oversized body is still in flight and not worth draining.
			_ = conn.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
			_ = writeResponse(conn, statusRemoteError, []byte(err.Error()))
			return
		}
		if err != nil {
			return // peer went away or idled out: normal end of a pooled conn
		}
		status, body := statusOK, []byte(nil)
		resp, herr := h(ctx, peer, req)
		switch {
		case herr != nil:
			status, body = statusRemoteError, []byte(herr.Error())
		case len(resp) > MaxFrameSize:
			status, body = statusRemoteError, []byte("response: "+ErrFrameTooLarge.Error())
		default:
			body = resp
		}
		_ = conn.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		if err := writeResponse(conn, status, body); err != nil {
			return
		}
	}
}

// readFrame reads a length-prefixed payload, refusing lengths over MaxFrameSize
// before allocating.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, ErrFrameTooLarge
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read %d-byte frame: %w", n, err)
	}
	return buf, nil
}

func writeRequest(w io.Writer, payload []byte) error {
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	_, err := w.Write(buf) // one write: one TLS record burst, no Nagle stall
	return err
}

func writeResponse(w io.Writer, status byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	buf[0] = status
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// DefaultForwardIdleTimeout is how long a Forwarder keeps an unused connection.
const DefaultForwardIdleTimeout = time.Minute

// DefaultForwardMaxIdle is how many idle connections a Forwarder keeps per
// address: enough for the expected 64 concurrent writers.
const DefaultForwardMaxIdle = 64

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// TLS is this node's certificate; required.
	TLS *NodeTLS
	// ExpectedID, when it knows addr, names the identity that must be on the
	// certificate there (as in StreamLayerConfig).
	ExpectedID func(addr raft.ServerAddress) (id string, ok bool)
	// HandshakeTimeout bounds the TLS handshake; zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxIdlePerAddr caps pooled idle connections per address; zero means
	// DefaultForwardMaxIdle.
	MaxIdlePerAddr int
	// IdleTimeout retires pooled connections unused for this long; zero means
	// DefaultForwardIdleTimeout.
	IdleTimeout time.Duration
}

// Forwarder sends requests to another node's ServeForward over mutual TLS,
// reusing connections. It is safe for concurrent use.
type Forwarder struct {
	cfg ForwarderConfig

	mu     sync.Mutex
	idle   map[raft.ServerAddress][]idleConn // oldest first
	closed bool
}

type idleConn struct {
	conn  net.Conn
	since time.Time
}

// NewForwarder checks cfg and returns a Forwarder.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.TLS == nil {
		return nil, errors.New("new forwarder: TLS is required")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxIdlePerAddr <= 0 {
		cfg.MaxIdlePerAddr = DefaultForwardMaxIdle
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultForwardIdleTimeout
	}
	return &Forwarder{cfg: cfg, idle: make(map[raft.ServerAddress][]idleConn)}, nil
}

// Forward sends req to the node at addr and returns its reply. A refusal by the
// remote handler is a *RemoteError; anything else is a transport error (the
// request may or may not have been handled, so retries must be idempotent).
// ctx's deadline and cancellation apply to dialing and to the exchange.
func (f *Forwarder) Forward(ctx context.Context, addr raft.ServerAddress, req []byte) ([]byte, error) {
	if len(req) > MaxFrameSize {
		return nil, fmt.Errorf("forward to %s: request of %d bytes: %w", addr, len(req), ErrFrameTooLarge)
	}
	conn, reused, err := f.get(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("forward to %s: %w", addr, contextCause(ctx, err))
	}
	status, body, err := exchange(ctx, conn, req)
	if err != nil {
		conn.Close()
		if reused {
			// The peer probably restarted or lost leadership and closed
			// everything; the other idle conns are as stale as this one.
			f.drop(addr)
		}
		return nil, fmt.Errorf("forward to %s: %w", addr, contextCause(ctx, err))
	}
	f.put(addr, conn)
	if status == statusRemoteError {
		return nil, &RemoteError{Msg: string(body)}
	}
	if status != statusOK {
		return nil, fmt.Errorf("forward to %s: unknown response status %d", addr, status)
	}
	return body, nil
}

// contextCause reports err as ctx's error when ctx caused it, so callers can
// test errors.Is(err, context.DeadlineExceeded). The conn deadline equals the
// ctx deadline, so an I/O timeout may surface a moment before ctx.Err() is set.
func contextCause(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// exchange writes one request and reads its response on conn, honouring ctx.
// On error the conn's state is unknown and it must be closed.
func exchange(ctx context.Context, conn net.Conn, req []byte) (byte, []byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation without a deadline: force blocked I/O to return now.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	status, body, err := roundTrip(conn, req)
	if !stop() {
		return 0, nil, ctx.Err()
	}
	if err != nil {
		return 0, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return status, body, nil
}

func roundTrip(conn net.Conn, req []byte) (byte, []byte, error) {
	if err := writeRequest(conn, req); err != nil {
		return 0, nil, fmt.Errorf("write request: %w", err)
	}
	var status [1]byte
	if _, err := io.ReadFull(conn, status[:]); err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	body, err := readFrame(conn)
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return status[0], body, nil
}

func (f *Forwarder) get(ctx context.Context, addr raft.ServerAddress) (net.Conn, bool, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, false, errors.New("forwarder closed")
	}
	pool := f.idle[addr]
	if n := len(pool); n > 0 {
		c := pool[n-1]
		f.idle[addr] = pool[:n-1]
		if time.Since(c.since) < f.cfg.IdleTimeout {
			f.mu.Unlock()
			return c.conn, true, nil
		}
		// Newest is stale, so all are.
		stale := append(pool[:n-1:n-1], c)
		delete(f.idle, addr)
		f.mu.Unlock()
		for _, s := range stale {
			s.conn.Close()
		}
	} else {
		f.mu.Unlock()
	}
	expected := ""
	if f.cfg.ExpectedID != nil {
		if id, ok := f.cfg.ExpectedID(addr); ok {
			expected = id
		}
	}
	conn, err := dialTLS(ctx, f.cfg.TLS, string(addr), ProtoForward, expected, f.cfg.HandshakeTimeout)
	if err != nil {
		return nil, false, err
	}
	return conn, false, nil
}

func (f *Forwarder) put(addr raft.ServerAddress, conn net.Conn) {
	f.mu.Lock()
	if f.closed || len(f.idle[addr]) >= f.cfg.MaxIdlePerAddr {
		f.mu.Unlock()
		conn.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], idleConn{conn: conn, since: time.Now()})
	f.mu.Unlock()
}

func (f *Forwarder) drop(addr raft.ServerAddress) {
	f.mu.Lock()
	pool := f.idle[addr]
	delete(f.idle, addr)
	f.mu.Unlock()
	for _, c := range pool {
		c.conn.Close()
	}
}

// Close closes idle connections; later calls to Forward fail. Requests in
// flight finish and their connections are then closed.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	idle := f.idle
	f.idle = make(map[raft.ServerAddress][]idleConn)
	f.mu.Unlock()
	for _, pool := range idle {
		for _, c := range pool {
			c.conn.Close()
		}
	}
	return nil
}
