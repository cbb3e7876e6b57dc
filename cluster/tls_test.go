package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testNode issues a certificate for id from ca, in memory.
func testNode(t testing.TB, ca *CA, id string) *NodeTLS {
	t.Helper()
	certPEM, keyPEM, err := ca.IssuePEM(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNodeTLS(certPEM, keyPEM, ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startMux serves a Mux for node on 127.0.0.1 until the test ends.
func startMux(t testing.TB, node *NodeTLS) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, node, MuxConfig{HandshakeTimeout: 2 * time.Second, Logger: quietLogger()})
	served := make(chan error, 1)
	go func() { served <- m.Serve(context.Background()) }()
	t.Cleanup(func() {
		m.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return m
}

// acceptAsync reports conns accepted on l until l is closed.
func acceptAsync(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 16)
	go func() {
		defer close(ch)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ch
}

func TestMutualTLSHandshake(t *testing.T) {
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	m := startMux(t, rs)
	accepted := acceptAsync(m.Listen(ProtoForward))

	ctx := context.Background()
	conn, err := dialTLS(ctx, ba, m.Addr().String(), ProtoForward, "RS", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", st.Version)
	}
	if id, err := PeerID(conn); err != nil || id != "RS" {
		t.Errorf("client sees peer %q, %v", id, err)
	}
	select {
	case sc := <-accepted:
		defer sc.Close()
		if id, err := PeerID(sc); err != nil || id != "BA" {
			t.Errorf("server sees peer %q, %v", id, err)
		}
		if _, err := sc.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ok" {
			t.Errorf("read %q, %v", buf, err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("server never accepted the connection")
	}
}

func TestRefusedClients(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	rs := testNode(t, ca, "RS")
	foreign := testNode(t, other, "BA")
	m := startMux(t, rs)
	accepted := acceptAsync(m.Listen(ProtoRaft))

	trustRS := rs.ClientConfig().RootCAs
	tests := []struct {
		name string
		conf *tls.Config
	}{
		{"cert from another CA", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: trustRS, Certificates: foreign.ClientConfig().Certificates}},
		{"no client cert", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: trustRS}},
		{"TLS 1.2 only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, RootCAs: trustRS, Certificates: rs.ClientConfig().Certificates}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &tls.Dialer{Config: tt.conf}
			conn, err := d.DialContext(context.Background(), "tcp", m.Addr().String())
			if err == nil {
				// TLS 1.3 lets the client finish before the server has
				// checked its certificate; the refusal arrives on read.
				_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
				_, _ = conn.Write([]byte{ProtoRaft})
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil {
				t.Fatal("connection was not refused")
			}
			select {
			case c := <-accepted:
				c.Close()
				t.Fatal("refused client reached the raft listener")
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

func TestStreamLayerIdentity(t *testing.T) {
	ca := newTestCA(t)
	rs, ba := testNode(t, ca, "RS"), testNode(t, ca, "BA")
	server := NewStreamLayer(startMux(t, rs), rs, StreamLayerConfig{
		Authorize: func(id string) error {
			if id == "ME" {
				return errors.New("ME is not registered")
			}
			return nil
		},
		Logger: quietLogger(),
	})
	accepted := acceptAsync(server)
	addr := raft.ServerAddress(server.Addr().String())

	expect := func(id string) func(raft.ServerAddress) (string, bool) {
		return func(a raft.ServerAddress) (string, bool) { return id, a == addr }
	}
	t.Run("expected identity matches", func(t *testing.T) {
		client := NewStreamLayer(startMux(t, ba), ba, StreamLayerConfig{ExpectedID: expect("RS")})
		conn, err := client.Dial(addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		select {
		case c := <-accepted:
			if id, _ := PeerID(c); id != "BA" {
				t.Errorf("accepted peer %q, want BA", id)
			}
			c.Close()
		case <-time.After(3 * time.Second):
			t.Fatal("not accepted")
		}
	})
	t.Run("identity mismatch", func(t *testing.T) {
		client := NewStreamLayer(startMux(t, ba), ba, StreamLayerConfig{ExpectedID: expect("BA")})
		_, err := client.Dial(addr, time.Second)
		if err == nil || !strings.Contains(err.Error(), `identity is "RS", want "BA"`) {
			t.Fatalf("Dial err = %v, want identity mismatch", err)
		}
	})
	t.Run("authorize rejects", func(t *testing.T) {
		me := testNode(t, ca, "ME")
		client := NewStreamLayer(startMux(t, me), me, StreamLayerConfig{})
		conn, err := client.Dial(addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("read after rejection: %v, want EOF (server closed)", err)
		}
		select {
		case c := <-accepted:
			c.Close()
			t.Fatal("rejected peer was accepted")
		case <-time.After(100 * time.Millisecond):
		}
	})
	t.Run("outbound authorize when identity unknown", func(t *testing.T) {
		client := NewStreamLayer(startMux(t, ba), ba, StreamLayerConfig{
			Authorize: func(id string) error { return fmt.Errorf("%s unknown", id) },
		})
		if _, err := client.Dial(addr, time.Second); err == nil || !strings.Contains(err.Error(), "not authorized") {
			t.Fatalf("Dial err = %v, want not authorized", err)
		}
	})
}

func TestMuxUnknownProtocolClosed(t *testing.T) {
	ca := newTestCA(t)
	rs := testNode(t, ca, "RS")
	m := startMux(t, rs)
	m.Listen(ProtoRaft)
	conn, err := dialTLS(context.Background(), rs, m.Addr().String(), 9, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on unknown protocol: %v, want EOF", err)
	}
}

func TestMuxCloseStopsGoroutines(t *testing.T) {
	ca := newTestCA(t)
	rs := testNode(t, ca, "RS")
	before := runtime.NumGoroutine()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, rs, MuxConfig{Logger: quietLogger()})
	served := make(chan error, 1)
	go func() { served <- m.Serve(context.Background()) }()
	sub := m.Listen(ProtoRaft)
	accepted := acceptAsync(sub)

	// One conn handed out, one stuck before its handshake, one waiting in
	// the sub-listener's queue.
	c1, err := dialTLS(context.Background(), rs, m.Addr().String(), ProtoRaft, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	server1 := <-accepted
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if _, err := server1.Read(make([]byte, 1)); err == nil {
		t.Error("handed-out conn still open after Close")
	}
	if _, err := sub.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	c1.Close()
	raw.Close()
	waitGoroutines(t, before)
}

// waitGoroutines fails unless the goroutine count drops back to at most want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want <= %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a slog.Handler that keeps records for inspection.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) last(t *testing.T) (slog.Record, map[string]string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		t.Fatal("nothing logged")
	}
	rec := r.recs[len(r.recs)-1]
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	return rec, attrs
}

func TestHCLogAdapter(t *testing.T) {
	rec := &recorder{}
	l := NewHCLogAdapter(slog.New(rec), "raft")
	levels := []struct {
		log  func(string, ...any)
		want slog.Level
	}{
		{l.Trace, LevelTrace}, {l.Debug, slog.LevelDebug}, {l.Info, slog.LevelInfo},
		{l.Warn, slog.LevelWarn}, {l.Error, slog.LevelError},
	}
	for _, tt := range levels {
		tt.log("msg", "k", 1)
		r, attrs := rec.last(t)
		if r.Level != tt.want || r.Message != "msg" || attrs["k"] != "1" || attrs["logger"] != "raft" {
			t.Errorf("got level %v msg %q attrs %v, want level %v", r.Level, r.Message, attrs, tt.want)
		}
	}

	n := len(rec.recs)
	l.SetLevel(hclog.Warn)
	l.Info("dropped")
	if len(rec.recs) != n || l.IsInfo() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Error("SetLevel(Warn) did not filter Info")
	}
	l.SetLevel(hclog.Trace)

	named := l.Named("net").With("peer", "BA")
	named.Info("hello")
	if _, attrs := rec.last(t); attrs["logger"] != "raft.net" {
		t.Errorf("Named: logger = %q", attrs["logger"])
	}
	if args := named.ImpliedArgs(); len(args) != 2 || args[1] != "BA" {
		t.Errorf("ImpliedArgs = %v", args)
	}
	if got := l.ResetNamed("x").Name(); got != "x" {
		t.Errorf("ResetNamed: %q", got)
	}

	std := l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	std.Print("[WARN] disk slow")
	if r, _ := rec.last(t); r.Level != slog.LevelWarn || r.Message != "disk slow" {
		t.Errorf("inferred: level %v msg %q", r.Level, r.Message)
	}

	// The slog logger's own level still applies.
	quiet := NewHCLogAdapter(slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})), "q")
	if quiet.IsDebug() || !quiet.IsError() {
		t.Error("adapter ignores the slog handler's level")
	}
}

// listFSM records applied entries in order; it is the smallest FSM that lets
// the test see replication.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &listSnapshot{entries: append([]string(nil), f.entries...)}, nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = nil
	if len(b) > 0 {
		f.entries = strings.Split(string(b), "\n")
	}
	return nil
}

func (f *listFSM) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.entries...)
}

type listSnapshot struct{ entries []string }

func (s *listSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte(strings.Join(s.entries, "\n"))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *listSnapshot) Release() {}

type raftNode struct {
	id    string
	addr  raft.ServerAddress
	trans *raft.NetworkTransport
	raft  *raft.Raft
	fsm   *listFSM
}

// startRaftNode starts raft for node over m, a StreamLayer and a transport.
// ids maps every member's address to its identity and must not change once
// raft runs. The node is shut down when the test ends.
func startRaftNode(t *testing.T, node *NodeTLS, m *Mux, ids map[raft.ServerAddress]string, bootstrap []raft.Server) *raftNode {
	t.Helper()
	stream := NewStreamLayer(m, node, StreamLayerConfig{
		ExpectedID: func(a raft.ServerAddress) (string, bool) { id, ok := ids[a]; return id, ok },
		Authorize: func(id string) error {
			for _, known := range ids {
				if known == id {
					return nil
				}
			}
			return fmt.Errorf("%s is not a member", id)
		},
		HandshakeTimeout: time.Second,
		Logger:           quietLogger(),
	})
	trans := NewTransport(stream, TransportConfig{Timeout: time.Second, Logger: quietLogger()})
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(node.ID())
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.Logger = NewHCLogAdapter(quietLogger(), "raft")
	logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
	if bootstrap != nil {
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, trans, raft.Configuration{Servers: bootstrap}); err != nil {
			t.Fatal(err)
		}
	}
	fsm := &listFSM{}
	r, err := raft.NewRaft(conf, fsm, logs, logs, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("raft shutdown %s: %v", node.ID(), err)
		}
		trans.Close()
		trans.CloseStreams()
	})
	return &raftNode{id: node.ID(), addr: trans.LocalAddr(), trans: trans, raft: r, fsm: fsm}
}

func TestRaftClusterOverMutualTLS(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, before) })

	ca, other := newTestCA(t), newTestCA(t)
	ids := []string{"RS", "BA", "ME"}
	// A node whose certificate comes from another consortium's CA, although
	// the members would otherwise authorize its id.
	intruder := testNode(t, other, "XK")
	intruderMux := startMux(t, intruder)

	addrIDs := map[raft.ServerAddress]string{raft.ServerAddress(intruderMux.Addr().String()): "XK"}
	nodes := make([]*NodeTLS, len(ids))
	muxes := make([]*Mux, len(ids))
	var servers []raft.Server
	for i, id := range ids {
		nodes[i] = testNode(t, ca, id)
		muxes[i] = startMux(t, nodes[i])
		addr := raft.ServerAddress(muxes[i].Addr().String())
		addrIDs[addr] = id
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: addr})
	}
	var cluster []*raftNode
	for i := range ids {
		var boot []raft.Server
		if i == 0 {
			boot = servers
		}
		cluster = append(cluster, startRaftNode(t, nodes[i], muxes[i], addrIDs, boot))
	}
	xk := startRaftNode(t, intruder, intruderMux, addrIDs, nil)

	leader := waitLeader(t, cluster)
	for i := 0; i < 5; i++ {
		if err := leader.raft.Apply([]byte(fmt.Sprintf("entry-%d", i)), time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	want := []string{"entry-0", "entry-1", "entry-2", "entry-3", "entry-4"}
	for _, n := range cluster {
		waitEntries(t, n, want)
	}

	// Adding the intruder to the configuration commits (the three members
	// form a quorum) but it never receives an entry: every connection
	// between it and a member fails the handshake.
	if err := leader.raft.AddNonvoter("XK", xk.addr, 0, time.Second).Error(); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	if err := leader.raft.Apply([]byte("entry-5"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want = append(want, "entry-5")
	for _, n := range cluster {
		waitEntries(t, n, want)
	}
	time.Sleep(500 * time.Millisecond)
	if got := xk.fsm.snapshot(); len(got) != 0 {
		t.Fatalf("node with a foreign certificate applied %v", got)
	}
	if idx := xk.raft.AppliedIndex(); idx != 0 {
		t.Fatalf("node with a foreign certificate has applied index %d", idx)
	}
}

func waitLeader(t *testing.T, nodes []*raftNode) *raftNode {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

func waitEntries(t *testing.T, n *raftNode, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := n.fsm.snapshot()
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s applied %v, want %v", n.id, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMuxHandshakeTimeout(t *testing.T) {
	ca := newTestCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, testNode(t, ca, "RS"), MuxConfig{HandshakeTimeout: 200 * time.Millisecond, Logger: quietLogger()})
	go m.Serve(context.Background())
	t.Cleanup(func() { m.Close() })

	// A peer that connects and says nothing is dropped after the timeout.
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("silent peer: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("silent peer dropped after %v, want about 200ms", d)
	}
}
