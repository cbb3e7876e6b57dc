package listener

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"roundtable/listener/listenertest"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestBackoffSchedule(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for range 10 {
		got = append(got, b.Next())
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != MinDelay {
		t.Errorf("after Reset: %v, want %v", d, MinDelay)
	}
}

// TestGuardRetriesAcceptErrors: a listener that fails with EMFILE,
// ENFILE and ECONNABORTED does not end the accept loop; the guard backs
// off (six failures take at least 5+10+20+40+80+160 ms) and the next
// connection is served.
func TestGuardRetriesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			inner := listen(t)
			fl := &listenertest.Failing{Listener: inner, Err: errno, N: 6}
			g := Guard(fl, Config{Name: "test"})
			go func() {
				c, err := net.Dial("tcp", inner.Addr().String())
				if err == nil {
					c.Write([]byte("x"))
					c.Close()
				}
			}()
			start := time.Now()
			c, err := g.Accept()
			if err != nil {
				t.Fatalf("Accept returned %v; a guarded listener returns only connections until closed", err)
			}
			defer c.Close()
			if d := time.Since(start); d < 315*time.Millisecond {
				t.Errorf("six failures retried in %v: no back-off (want ≥ 315 ms)", d)
			}
			if n := fl.Calls(); n != 7 {
				t.Errorf("%d accepts, want 6 failures and a success", n)
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
				t.Errorf("read %q, %v from the connection after the failures", b, err)
			}
		})
	}
}

// TestGuardClose: Close ends an Accept that is backing off, with an error
// wrapping net.ErrClosed, promptly.
func TestGuardClose(t *testing.T) {
	fl := &listenertest.Failing{Listener: listen(t), Err: syscall.EMFILE, N: 1 << 30}
	g := Guard(fl, Config{})
	errc := make(chan error, 1)
	go func() { _, err := g.Accept(); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	g.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still backing off 2 s after Close")
	}
}

// TestGuardCapsConnections: with MaxConns 2, a third connection is not
// accepted while two are open, and is as soon as one closes.
func TestGuardCapsConnections(t *testing.T) {
	inner := listen(t)
	g := Guard(inner, Config{MaxConns: 2})
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := g.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer g.Close()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open (cap 2)")
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	// Slots: second still open, third closed: one free, not two.
	c4, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	c5, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c5.Close()
	<-accepted
	select {
	case <-accepted:
		t.Fatal("two slots freed by one connection closed twice")
	case <-time.After(300 * time.Millisecond):
	}
	second.Close()
	_ = clients
}
