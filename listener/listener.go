// Package listener holds what every listening socket of a node needs to
// keep serving under resource exhaustion and hostile clients: accept loops
// that back off and retry instead of giving up, and a cap on connections
// open at once. It imports nothing of the project, so the ledger's port
// (cluster), the HTTP API and the operator's socket (node/api) share it.
//
// An accept loop that returns on an error other than "closed" leaves its
// port dead until restart: one burst of "too many open files" (EMFILE)
// was enough to silence a node's Raft port (issue 10). net/http's Server
// retries temporary errors after 5 ms, doubling to 1 s; Backoff is that
// schedule, and Guard applies it to every error but a closed listener,
// since an accept error names a passing condition of the process or the
// kernel far more often than a broken socket, and a broken socket costs
// one log line a second, not a node.
package listener

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Delays of Backoff, as net/http's Server uses them.
const (
	MinDelay = 5 * time.Millisecond
	MaxDelay = time.Second
)

// Backoff is the wait between failed accepts: MinDelay, doubling up to
// MaxDelay, back to MinDelay after a success (Reset). The zero value is
// ready to use.
type Backoff struct{ d time.Duration }

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	b.d = min(max(2*b.d, MinDelay), MaxDelay)
	return b.d
}

// Reset starts the schedule again, after an accept succeeded.
func (b *Backoff) Reset() { b.d = 0 }

// Wait sleeps the next delay and reports true, or false as soon as done
// is closed.
func (b *Backoff) Wait(done <-chan struct{}) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Config configures Guard.
type Config struct {
	// MaxConns caps the connections accepted and not yet closed; Accept
	// waits for one to close before taking another, leaving the rest in
	// the kernel's backlog. Zero or less means no cap.
	MaxConns int
	// Name labels log lines ("http", "cluster").
	Name string
	// Logger receives accept errors: the first of a burst at WARN, the
	// rest at DEBUG. Nil means slog.Default().
	Logger *slog.Logger
}

// Guard wraps ln so that its Accept returns only connections or, once ln
// is closed, an error wrapping net.ErrClosed: any other accept error is
// logged and retried after Backoff's delay. Connections it returns count
// against cfg.MaxConns until closed. Closing the guard closes ln.
func Guard(ln net.Listener, cfg Config) net.Listener {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &guarded{Listener: ln, cfg: cfg, done: make(chan struct{})}
	if cfg.MaxConns > 0 {
		g.slots = make(chan struct{}, cfg.MaxConns)
	}
	return g
}

type guarded struct {
	net.Listener
	cfg   Config
	slots chan struct{} // nil: no cap
	done  chan struct{}
	once  sync.Once
}

func (g *guarded) Accept() (net.Conn, error) {
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		case <-g.done:
			return nil, net.ErrClosed
		}
	}
	var b Backoff
	for {
		c, err := g.Listener.Accept()
		if err == nil {
			if g.slots == nil {
				return c, nil
			}
			return &slotConn{Conn: c, slots: g.slots}, nil
		}
		if g.closed() || errors.Is(err, net.ErrClosed) {
			g.release()
			return nil, err
		}
		lvl := slog.LevelDebug
		if b.d == 0 {
			lvl = slog.LevelWarn
		}
		g.cfg.Logger.Log(context.Background(), lvl, "accept failed; retrying", "listener", g.cfg.Name, "error", err, "retry_in", min(max(2*b.d, MinDelay), MaxDelay))
		if !b.Wait(g.done) {
			g.release()
			return nil, net.ErrClosed
		}
	}
}

func (g *guarded) release() {
	if g.slots != nil {
		<-g.slots
	}
}

func (g *guarded) closed() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *guarded) Close() error {
	g.once.Do(func() { close(g.done) })
	return g.Listener.Close()
}

// slotConn gives its slot back when closed, once.
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() { <-c.slots })
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection, as net/http does before closing
// one it refused.
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
