package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countingListener counts accepted connections, to show the client reuses them.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// testHandler echoes "<peer>:<req>", refuses "fail", and blocks on "slow"
// until its context ends.
func testHandler(ctx context.Context, peer string, req []byte) ([]byte, error) {
	switch string(req) {
	case "fail":
		return nil, errors.New("not the leader")
	case "slow":
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return []byte("late"), nil
	}
	return append([]byte(peer+":"), req...), nil
}

type forwardFixture struct {
	addr     raft.ServerAddress
	accepted *countingListener
	client   *Forwarder
	node     *NodeTLS
}

// startForward serves testHandler on an RS node and returns a BA client.
func startForward(t testing.TB) *forwardFixture {
	t.Helper()
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	m := startMux(t, rs)
	cl := &countingListener{Listener: m.Listen(ProtoForward)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeForward(ctx, cl, testHandler) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeForward: %v", err)
		}
	})
	addr := raft.ServerAddress(m.Addr().String())
	f, err := NewForwarder(ForwarderConfig{
		TLS:              ba,
		ExpectedID:       func(a raft.ServerAddress) (string, bool) { return "RS", a == addr },
		HandshakeTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &forwardFixture{addr: addr, accepted: cl, client: f, node: ba}
}

func TestForwardRoundTrip(t *testing.T) {
	fx := startForward(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		resp, err := fx.client.Forward(ctx, fx.addr, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp) != "BA:hello" {
			t.Fatalf("response %q, want BA:hello", resp)
		}
	}
	if n := fx.accepted.n.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential requests, want 1", n)
	}
	resp, err := fx.client.Forward(ctx, fx.addr, nil)
	if err != nil || string(resp) != "BA:" {
		t.Errorf("empty request: %q, %v", resp, err)
	}
}

func TestForwardErrors(t *testing.T) {
	fx := startForward(t)
	ctx := context.Background()

	_, err := fx.client.Forward(ctx, fx.addr, []byte("fail"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "not the leader" {
		t.Fatalf("handler error came back as %v, want RemoteError{not the leader}", err)
	}
	// The connection survives a remote error.
	if resp, err := fx.client.Forward(ctx, fx.addr, []byte("x")); err != nil || string(resp) != "BA:x" {
		t.Fatalf("after remote error: %q, %v", resp, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := raft.ServerAddress(ln.Addr().String())
	ln.Close()
	if _, err := fx.client.Forward(ctx, dead, []byte("x")); err == nil || errors.As(err, &re) {
		t.Fatalf("nobody listening: err = %v, want a transport error", err)
	}

	wrongID, err := NewForwarder(ForwarderConfig{
		TLS:        fx.node,
		ExpectedID: func(raft.ServerAddress) (string, bool) { return "ME", true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wrongID.Close()
	if _, err := wrongID.Forward(ctx, fx.addr, []byte("x")); err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), `want "ME"`) {
		t.Fatalf("wrong identity: err = %v, want a transport error about identity", err)
	}
}

func TestForwardOversized(t *testing.T) {
	fx := startForward(t)
	big := make([]byte, MaxFrameSize+1)
	if _, err := fx.client.Forward(context.Background(), fx.addr, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("client sent an oversized request: %v", err)
	}
	if n := fx.accepted.n.Load(); n != 0 {
		t.Errorf("oversized request opened %d connections", n)
	}

	// A peer that ignores the limit is told why and disconnected, without the
	// server allocating the claimed size.
	conn, err := dialTLS(context.Background(), fx.node, string(fx.addr), ProtoForward, "RS", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrameSize+1)
	if _, err := conn.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	var status [1]byte
	if _, err := io.ReadFull(conn, status[:]); err != nil || status[0] != statusRemoteError {
		t.Fatalf("status %d, %v; want remote error", status[0], err)
	}
	msg, err := readFrame(conn)
	if err != nil || !bytes.Contains(msg, []byte("larger than")) {
		t.Fatalf("message %q, %v", msg, err)
	}
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection left open after oversized frame: %v", err)
	}
}

func TestForwardConcurrent(t *testing.T) {
	fx := startForward(t)
	const workers, perWorker = 64, 30
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				req := fmt.Sprintf("w%d-%d", w, i)
				resp, err := fx.client.Forward(context.Background(), fx.addr, []byte(req))
				if err != nil {
					errs <- err
					return
				}
				if string(resp) != "BA:"+req {
					errs <- fmt.Errorf("request %s got %q", req, resp)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fx.accepted.n.Load(); n > workers {
		t.Errorf("%d connections for %d workers: pool not reused", n, workers)
	}
}

func TestForwardContext(t *testing.T) {
	fx := startForward(t)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := fx.client.Forward(ctx, fx.addr, []byte("slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("deadline of 100ms honoured after %v", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = fx.client.Forward(ctx, fx.addr, []byte("slow"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancellation honoured after %v", d)
	}

	// Poisoned connections were dropped; the client still works.
	resp, err := fx.client.Forward(context.Background(), fx.addr, []byte("ok"))
	if err != nil || string(resp) != "BA:ok" {
		t.Fatalf("after cancellation: %q, %v", resp, err)
	}
}

func TestForwardRecoversFromDroppedConns(t *testing.T) {
	// When the server drops every connection (restart, lost leadership), the
	// pooled connection fails once at most and the next call dials afresh.
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	m := startMux(t, rs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeForward(ctx, m.Listen(ProtoForward), testHandler) }()
	addr := raft.ServerAddress(m.Addr().String())
	f, err := NewForwarder(ForwarderConfig{TLS: ba})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Forward(context.Background(), addr, []byte("a")); err != nil {
		t.Fatal(err)
	}
	cancel() // stops ServeForward and closes its connections
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- ServeForward(ctx2, m.Listen(ProtoForward), testHandler) }()
	t.Cleanup(func() { cancel2(); <-done2 })

	_, _ = f.Forward(context.Background(), addr, []byte("b")) // may meet the dead conn
	if resp, err := f.Forward(context.Background(), addr, []byte("c")); err != nil || string(resp) != "BA:c" {
		t.Fatalf("after the server dropped its connections: %q, %v", resp, err)
	}
}

func BenchmarkForward(b *testing.B) {
	fx := startForward(b)
	req := make([]byte, 2048) // about one signed release
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := fx.client.Forward(context.Background(), fx.addr, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
