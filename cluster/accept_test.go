package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/listener/listenertest"
)

// Issue 10, item 4: after one burst of "too many open files" the cluster
// port's accept loop returned, and the node's Raft port stayed dead until
// restart. Every accept loop on the cluster port (the mux, the forward
// service, the identity transport) is shown here to outlive a burst of
// injected accept errors and serve the connection that follows.

// acceptErrnos are the errors injected: out of descriptors, process- and
// system-wide, and a connection aborted before it was accepted.
var acceptErrnos = []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED}

func TestMuxSurvivesAcceptErrors(t *testing.T) {
	ca := newTestCA(t)
	rs := testNode(t, ca, "RS")
	for _, errno := range acceptErrnos {
		t.Run(errno.Error(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fl := &listenertest.Failing{Listener: ln, Err: errno, N: 8}
			m := NewMux(fl, rs, MuxConfig{HandshakeTimeout: 2 * time.Second, Logger: quietLogger()})
			served := make(chan error, 1)
			go func() { served <- m.Serve(context.Background()) }()
			defer func() {
				m.Close()
				<-served
			}()
			accepted := acceptAsync(m.Listen(ProtoRaft))
			c, err := dialTLS(context.Background(), rs, ln.Addr().String(), ProtoRaft, "RS", 5*time.Second)
			if err != nil {
				t.Fatalf("dial after %d accept errors: %v", fl.N, err)
			}
			defer c.Close()
			select {
			case s := <-accepted:
				s.Close()
			case err := <-served:
				t.Fatalf("Serve returned %v after accept errors; the port is dead", err)
			case <-time.After(5 * time.Second):
				t.Fatal("connection not handed out after the accept errors")
			}
			if n := fl.Calls(); n <= fl.N {
				t.Errorf("%d accepts, want the %d failures and then more", n, fl.N)
			}
		})
	}
}

func TestServeForwardSurvivesAcceptErrors(t *testing.T) {
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	m := startMux(t, rs)
	fl := &listenertest.Failing{Listener: m.Listen(ProtoForward), Err: syscall.EMFILE, N: 8}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeForward(ctx, fl, testHandler) }()
	defer func() { cancel(); <-done }()
	f, err := NewForwarder(ForwarderConfig{TLS: ba, HandshakeTimeout: 2 * time.Second,
		ExpectedID: func(raft.ServerAddress) (string, bool) { return "RS", true }})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	resp, err := f.Forward(rctx, raft.ServerAddress(m.Addr().String()), []byte("x"))
	select {
	case err := <-done:
		t.Fatalf("ServeForward returned %v after accept errors", err)
	default:
	}
	if err != nil || string(resp) != "BA:x" {
		t.Fatalf("forward after %d accept errors: %q, %v; want \"BA:x\"", fl.N, resp, err)
	}
}

// failingStream is a raft stream layer whose Accept fails N times first.
type failingStream struct {
	raft.StreamLayer
	fl *listenertest.Failing
}

func (s *failingStream) Accept() (net.Conn, error) { return s.fl.Accept() }

// followerRaft is a LocalRaft that follows in term 1 with no leader.
type followerRaft struct{}

func (followerRaft) LeaderWithID() (raft.ServerAddress, raft.ServerID) { return "", "" }
func (followerRaft) State() raft.RaftState                             { return raft.Follower }
func (followerRaft) CurrentTerm() uint64                               { return 1 }

func TestIdentityTransportSurvivesAcceptErrors(t *testing.T) {
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	m := startMux(t, rs)
	inner := NewStreamLayer(m, rs, StreamLayerConfig{Logger: quietLogger()})
	stream := &failingStream{StreamLayer: inner, fl: &listenertest.Failing{Listener: inner, Err: syscall.EMFILE, N: 8}}
	const baAddr = "127.0.0.1:7001"
	tr, err := NewIdentityTransport(IdentityTransportConfig{
		Stream: stream, Timeout: 5 * time.Second, Logger: quietLogger(),
		Voter: func(id raft.ServerID) (raft.ServerAddress, bool) { return baAddr, id == "BA" },
		Local: func() LocalRaft { return followerRaft{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	go func() {
		for rpc := range tr.Consumer() {
			rpc.Respond(&raft.RequestVoteResponse{Term: 1}, nil)
		}
	}()
	a := newAttacker(t, ba)
	req := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("BA"), Addr: []byte(baAddr)}, Term: 1}
	var resp raft.RequestVoteResponse
	if err := a.RequestVote("RS", raft.ServerAddress(m.Addr().String()), req, &resp); err != nil {
		t.Fatalf("vote request after %d accept errors: %v", stream.fl.N, err)
	}
	if resp.Term != 1 {
		t.Errorf("response term %d, want 1 from the consumer", resp.Term)
	}
	if n := stream.fl.Calls(); n <= stream.fl.N {
		t.Errorf("%d accepts, want the %d failures and more", n, stream.fl.N)
	}
}

// dialFrom connects to addr from the loopback address src, so that tests
// can play several hosts.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestMuxHandshakesPerSource: a host that opens connections and never
// completes a handshake gets MaxHandshakesPerSource of them held (until
// the handshake timeout); the next is closed at once, and a peer from
// another address is served meanwhile.
func TestMuxHandshakesPerSource(t *testing.T) {
	ca := newTestCA(t)
	rs := testNode(t, ca, "RS")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const perSource = 3
	m := NewMux(ln, rs, MuxConfig{HandshakeTimeout: 10 * time.Second, MaxHandshakesPerSource: perSource, Logger: quietLogger()})
	go m.Serve(context.Background())
	defer m.Close()
	accepted := acceptAsync(m.Listen(ProtoRaft))
	addr := m.Addr().String()
	var held []net.Conn
	for range perSource {
		held = append(held, dialFrom(t, "127.0.0.2", addr))
	}
	waitFor(t, "the held handshakes", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.handshaking["127.0.0.2"] == perSource })
	extra := dialFrom(t, "127.0.0.2", addr)
	if !closedWithin(extra, 2*time.Second) {
		t.Fatalf("connection %d from one address not closed at once (cap %d)", perSource+1, perSource)
	}
	if n := m.RefusedBusySource(); n != 1 {
		t.Errorf("RefusedBusySource = %d, want 1", n)
	}
	for _, c := range held {
		if closedWithin(c, 50*time.Millisecond) {
			t.Error("a connection within the cap was closed before the handshake timeout")
		}
	}
	c, err := dialTLS(context.Background(), rs, addr, ProtoRaft, "RS", 5*time.Second)
	if err != nil {
		t.Fatalf("peer from another address refused while one address is at its cap: %v", err)
	}
	defer c.Close()
	(<-accepted).Close()
	// Once the held handshakes end, the address may connect again.
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "the handshakes to end", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.handshaking["127.0.0.2"] == 0 })
	again := dialFrom(t, "127.0.0.2", addr)
	if closedWithin(again, 200*time.Millisecond) {
		t.Error("address refused after its handshakes ended")
	}
}

// TestMuxConnectionCap: with MaxConns 2 held by silent connections from
// two hosts, a third peer's handshake waits, and completes once one of
// them goes away.
func TestMuxConnectionCap(t *testing.T) {
	ca := newTestCA(t)
	rs := testNode(t, ca, "RS")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, rs, MuxConfig{HandshakeTimeout: 10 * time.Second, MaxConns: 2, Logger: quietLogger()})
	go m.Serve(context.Background())
	defer m.Close()
	accepted := acceptAsync(m.Listen(ProtoRaft))
	addr := m.Addr().String()
	a, b := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.3", addr)
	waitFor(t, "two pending handshakes", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return len(m.pending) == 2 })
	dialed := make(chan error, 1)
	go func() {
		c, err := dialTLS(context.Background(), rs, addr, ProtoRaft, "RS", 8*time.Second)
		if err == nil {
			defer c.Close()
			select {
			case s := <-accepted:
				s.Close()
			case <-time.After(5 * time.Second):
				err = errors.New("not handed out")
			}
		}
		dialed <- err
	}()
	select {
	case err := <-dialed:
		t.Fatalf("third connection served while two were open (cap 2): %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("third connection after a slot freed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third connection still waiting after a slot freed")
	}
	_ = b
}
