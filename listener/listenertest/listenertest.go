// Package listenertest injects accept errors into a listener, so a test
// can show that an accept loop survives them (see package listener).
package listenertest

import (
	"net"
	"sync/atomic"
)

// Failing returns err, wrapped in a *net.OpError as the net package does,
// from its first N Accepts, then accepts from Listener: the accept errors
// of a process out of file descriptors (EMFILE) or of a connection reset
// before it was accepted (ECONNABORTED).
type Failing struct {
	net.Listener
	Err error
	N   int32

	calls atomic.Int32
}

// Accept fails N times, then accepts.
func (l *Failing) Accept() (net.Conn, error) {
	if l.calls.Add(1) <= l.N {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Listener.Addr(), Err: l.Err}
	}
	return l.Listener.Accept()
}

// Calls is how many times Accept was called.
func (l *Failing) Calls() int32 { return l.calls.Load() }
