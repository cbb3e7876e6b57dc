package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"roundtable/keyseal"
)

// DefaultHandshakeTimeout bounds a TLS handshake. The region has 50–400 ms
// round trips and TLS 1.3 needs one or two of them, so ten seconds leaves room
// for a congested link while still shedding a peer that stalls on purpose.
const DefaultHandshakeTimeout = 10 * time.Second

// NodeTLS is a node's certificate, key and the regional CA that it trusts, with
// the identity read from its own certificate.
type NodeTLS struct {
	id       string
	cert     tls.Certificate
	pool     *x509.CertPool
	notAfter time.Time

	// deny, when set, is consulted on every handshake in both directions;
	// refused counts the peers it turned away.
	deny    atomic.Pointer[DenyFunc]
	refused atomic.Uint64
}

// DenyFunc reports whether a peer certificate, named by its node identity
// and serial number, is refused, and why. The ledger's deny-list
// (FSM.Denied: removed partners and replicas, revoked serials) is one.
type DenyFunc func(id string, serial *big.Int) (bool, string)

// SetDenyList makes every later handshake, inbound and outbound, refuse a
// peer whose certificate f denies. The regional CA cannot un-issue a
// certificate; the ledger, which every node replicates, can refuse it.
func (n *NodeTLS) SetDenyList(f DenyFunc) { n.deny.Store(&f) }

// HandshakesRefused counts peers refused by the deny-list so far.
func (n *NodeTLS) HandshakesRefused() uint64 { return n.refused.Load() }

// verifyConnection runs after the chain is verified against the regional
// CA, inside the handshake, so a denied peer never gets a connection.
func (n *NodeTLS) verifyConnection(cs tls.ConnectionState) error {
	f := n.deny.Load()
	if f == nil || len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	if denied, why := (*f)(id, leaf.SerialNumber); denied {
		n.refused.Add(1)
		return fmt.Errorf("peer certificate (serial %s) is on the ledger's deny-list: %s", leaf.SerialNumber, why)
	}
	return nil
}

// LoadNodeTLS reads node.crt, node.key and ca.crt from dir and checks that the
// node certificate was issued by that CA and carries a valid identity.
func LoadNodeTLS(dir string) (*NodeTLS, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load node TLS: %w", err)
		}
		return b, nil
	}
	certPEM, err := read(NodeCertFile)
	if err != nil {
		return nil, err
	}
	// A node key that others can read must be treated as leaked; refuse to
	// start on it, with the chmod that fixes the file.
	if err := keyseal.CheckPrivate(filepath.Join(dir, NodeKeyFile)); err != nil {
		return nil, fmt.Errorf("load node TLS: %w", err)
	}
	keyPEM, err := read(NodeKeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	n, err := NewNodeTLS(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("load node TLS from %s: %w", dir, err)
	}
	return n, nil
}

// NewNodeTLS builds a NodeTLS from PEM data, with the same checks as LoadNodeTLS.
func NewNodeTLS(certPEM, keyPEM, caPEM []byte) (*NodeTLS, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate and key: %w", err)
	}
	caCert, err := parseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !caCert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("node certificate: %w", err)
		}
	}
	// Fail at start-up rather than at the first handshake with a peer.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("node certificate does not verify against the regional CA: %w", err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	return &NodeTLS{id: id, cert: cert, pool: pool, notAfter: leaf.NotAfter}, nil
}

// ID is the node identity from its certificate (a partner code or replica id).
func (n *NodeTLS) ID() string { return n.id }

// Certificate is the node's certificate and key, for serving its HTTP API
// over HTTPS under the regional CA (serve --tls-from-ca).
func (n *NodeTLS) Certificate() tls.Certificate { return n.cert }

// NotAfter is when the node's certificate expires.
func (n *NodeTLS) NotAfter() time.Time { return n.notAfter }

// ServerConfig is the TLS configuration for accepting peers: TLS 1.3 only, and
// a client certificate from the regional CA is required.
func (n *NodeTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{n.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    n.pool,
		// Runs after chain verification, on every handshake.
		VerifyConnection: n.verifyConnection,
	}
}

// ClientConfig is the TLS configuration for dialing peers: TLS 1.3 only, the
// regional CA as the only root, and this node's certificate as client
// certificate. Host names are still verified against the peer's SANs.
func (n *NodeTLS) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{n.cert},
		RootCAs:          n.pool,
		VerifyConnection: n.verifyConnection,
	}
}

// connectionStater is satisfied by *tls.Conn and by the mux's tracked
// connections that wrap one.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// PeerID returns the identity of the peer on a TLS connection whose handshake
// has completed.
func PeerID(conn net.Conn) (string, error) {
	cs, ok := conn.(connectionStater)
	if !ok {
		return "", fmt.Errorf("peer identity: %T is not a TLS connection", conn)
	}
	state := cs.ConnectionState()
	if !state.HandshakeComplete || len(state.PeerCertificates) == 0 {
		return "", errors.New("peer identity: no verified peer certificate")
	}
	return IdentityOf(state.PeerCertificates[0])
}

// dialTLS connects to addr, completes a mutual TLS handshake within
// handshakeTimeout, checks the peer's identity and writes the protocol byte.
// The peer must be expectedID when that is known (non-empty).
func dialTLS(ctx context.Context, node *NodeTLS, addr string, proto byte, expectedID string, handshakeTimeout time.Duration) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	conf := node.ClientConfig()
	conf.ServerName = host // the peer's certificate must name the address we dialed
	conn := tls.Client(raw, conf)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	peer, err := PeerID(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if expectedID != "" && peer != expectedID {
		conn.Close()
		return nil, fmt.Errorf("dial %s: peer certificate identity is %q, want %q", addr, peer, expectedID)
	}
	if dl, ok := hctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: write protocol byte: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// StreamLayerConfig configures a StreamLayer.
type StreamLayerConfig struct {
	// ExpectedID maps a Raft address to the identity that must be on the
	// certificate found there. When it reports ok, a different identity
	// closes the connection: a node's certificate identity must equal its
	// Raft server id.
	ExpectedID func(addr raft.ServerAddress) (id string, ok bool)
	// Authorize is consulted for every inbound peer after the handshake, and
	// for outbound peers whose identity ExpectedID does not know. Nil allows
	// any holder of a certificate from the regional CA.
	Authorize func(peerID string) error
	// HandshakeTimeout bounds outbound handshakes; zero means
	// DefaultHandshakeTimeout. (Inbound handshakes are bounded by the Mux.)
	HandshakeTimeout time.Duration
	// Advertise is the address reported by Addr, for when the mux listens on
	// a wildcard address. Nil means the mux's listening address.
	Advertise net.Addr
	// Logger receives rejected connections; nil means slog.Default().
	Logger *slog.Logger
}

// StreamLayer is a raft.StreamLayer that carries Raft over mutual TLS 1.3
// through a Mux. Its Accept yields only authorized peers; its Dial checks the
// peer's identity before Raft sees the connection.
type StreamLayer struct {
	ln   net.Listener
	node *NodeTLS
	cfg  StreamLayerConfig
	log  *slog.Logger
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer takes the mux's ProtoRaft sub-listener and returns the stream
// layer for raft's NetworkTransport.
func NewStreamLayer(m *Mux, node *NodeTLS, cfg StreamLayerConfig) *StreamLayer {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &StreamLayer{ln: m.Listen(ProtoRaft), node: node, cfg: cfg, log: log.With("component", "raft-stream")}
}

// Accept returns the next inbound Raft connection from an authorized peer.
// Rejected peers are closed and logged here rather than returned as errors,
// because raft backs off on Accept errors and one bad peer must not slow the
// others.
func (s *StreamLayer) Accept() (net.Conn, error) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		peer, err := PeerID(conn)
		if err == nil && s.cfg.Authorize != nil {
			err = s.cfg.Authorize(peer)
		}
		if err != nil {
			s.log.Warn("rejected inbound raft connection", "remote", conn.RemoteAddr().String(), "peer", peer, "error", err)
			conn.Close()
			continue
		}
		return conn, nil
	}
}

// Close stops accepting Raft connections. It does not close the Mux, which
// may still serve other protocols.
func (s *StreamLayer) Close() error { return s.ln.Close() }

// Addr is the address other nodes use to reach this one.
func (s *StreamLayer) Addr() net.Addr {
	if s.cfg.Advertise != nil {
		return s.cfg.Advertise
	}
	return s.ln.Addr()
}

// Dial opens a Raft connection to address, allowing timeout for the TCP
// connection and the stream layer's handshake timeout for TLS.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	expected := ""
	if s.cfg.ExpectedID != nil {
		if id, ok := s.cfg.ExpectedID(address); ok {
			expected = id
		}
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+s.cfg.HandshakeTimeout)
		defer cancel()
	}
	conn, err := dialTLS(ctx, s.node, string(address), ProtoRaft, expected, s.cfg.HandshakeTimeout)
	if err != nil {
		return nil, fmt.Errorf("raft stream: %w", err)
	}
	if expected == "" && s.cfg.Authorize != nil {
		peer, _ := PeerID(conn) // dialTLS already verified it parses
		if err := s.cfg.Authorize(peer); err != nil {
			conn.Close()
			return nil, fmt.Errorf("raft stream: dial %s: peer %q not authorized: %w", address, peer, err)
		}
	}
	return conn, nil
}

// DefaultTransportTimeout is the I/O deadline for Raft RPCs; see TransportConfig.
const DefaultTransportTimeout = 10 * time.Second

// TransportConfig configures NewTransport.
type TransportConfig struct {
	// MaxPool is how many idle connections to keep per peer; zero means 3.
	MaxPool int
	// Timeout is the I/O deadline for an RPC; zero means
	// DefaultTransportTimeout.
	Timeout time.Duration
	// Logger receives the transport's log, adapted from hclog; nil means
	// slog.Default().
	Logger *slog.Logger
}

// NewTransport returns raft's NetworkTransport over stream.
func NewTransport(stream raft.StreamLayer, cfg TransportConfig) *raft.NetworkTransport {
	if cfg.MaxPool <= 0 {
		cfg.MaxPool = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTransportTimeout
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: cfg.MaxPool,
		Timeout: cfg.Timeout,
		Logger:  NewHCLogAdapter(l, "raft-net"),
	})
}

// hclogAdapter sends hclog output (from raft) to log/slog so that the whole
// binary has one log stream with one format and one level setting.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []any
	// level is shared with loggers derived by With/Named, as in hclog.
	level *atomic.Int32
	// limit is shared too: repeated warnings about one peer are one line
	// per peerLogEvery, however many loggers raft derived.
	limit *peerLogLimit
}

// NewHCLogAdapter returns an hclog.Logger that writes to l. hclog levels map
// to slog as Trace→Debug-4, Debug→Debug, Info→Info, Warn→Warn, Error→Error;
// the adapter's own level (SetLevel, default Trace) filters before l does.
func NewHCLogAdapter(l *slog.Logger, name string) hclog.Logger {
	if l == nil {
		l = slog.Default()
	}
	lv := new(atomic.Int32)
	lv.Store(int32(hclog.Trace))
	return &hclogAdapter{l: l, name: name, level: lv, limit: newPeerLogLimit(peerLogEvery, peerLogGrace)}
}

// LevelTrace is the slog level used for hclog's Trace, below slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info and NoLevel
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	if level == hclog.Off {
		return false
	}
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	min := hclog.Level(a.level.Load())
	if min == hclog.Off || level < min {
		return false
	}
	return a.l.Enabled(context.Background(), slogLevel(level))
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	level = raftLevel(level, msg, args)
	if !a.enabled(level) {
		return
	}
	if level >= hclog.Warn {
		lv, suppressed, ok := a.limit.allow(level, msg, args)
		if !ok {
			return
		}
		level = lv
		if suppressed > 0 {
			args = append(args, "suppressed_since_last", suppressed)
		}
	}
	args = hclogArgs(args)
	if a.name != "" {
		args = append([]any{"logger", a.name}, args...)
	}
	a.l.Log(context.Background(), slogLevel(level), msg, args...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.l = a.l.With(hclogArgs(args)...)
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if a.name != "" {
		c.name = a.name + "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }
func (a *hclogAdapter) GetLevel() hclog.Level      { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &hclogWriter{a: a, opts: *opts}
}

// hclogWriter turns lines written through the standard library logger into
// log records, reading "[LEVEL]" prefixes when asked to, as hclog does.
type hclogWriter struct {
	a    *hclogAdapter
	opts hclog.StandardLoggerOptions
}

func (w *hclogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	level := hclog.Info
	if w.opts.ForceLevel != hclog.NoLevel {
		level = w.opts.ForceLevel
	} else if w.opts.InferLevels || w.opts.InferLevelsWithTimestamp {
		level, msg = inferLevel(msg)
	}
	w.a.Log(level, msg)
	return len(p), nil
}

func inferLevel(msg string) (hclog.Level, string) {
	prefixes := []struct {
		tag   string
		level hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error},
	}
	for _, p := range prefixes {
		if i := strings.Index(msg, p.tag); i >= 0 {
			return p.level, strings.TrimSpace(msg[i+len(p.tag):])
		}
	}
	return hclog.Info, msg
}
