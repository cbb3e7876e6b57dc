// Package node is a partner's node: the encrypted case store, the release
// workflow (tabulate, reserve, noise, sign, publish), the ledger member and
// the HTTP API with its dashboard, put together. Subpackages hold each
// part; this package is the one place that knows all of them, so the parts
// stay ignorant of one another (cluster never sees a case record).
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/node/store"
)

// Files and directories inside a node's data dir.
const (
	TLSDir    = "tls"        // node.crt, node.key, ca.crt
	ServeFile = "serve.json" // where a running serve listens
	AdminSock = "admin.sock" // the operator's local socket (see api.Server.ServeLocal)
	CacheDir  = "cache"      // files derived from the ledger, rebuilt if lost (api.Config.CacheDir)
)

// Config configures a node.
type Config struct {
	DataDir string
	// Passphrase opens the partner's store; nil for a read replica, which
	// holds no records and no signing key.
	Passphrase []byte
	// HTTPAddr is the API and dashboard address, e.g. 127.0.0.1:8080.
	HTTPAddr string
	// RaftAddr is the mutual-TLS ledger port; Advertise the address peers dial.
	RaftAddr, Advertise string
	// Genesis founds a new consortium (serve --bootstrap); Join is any
	// member's raft address (serve --join). A restart needs neither.
	Genesis []byte
	Join    string
	// JoinGenesis (serve --genesis FILE) or Consortium (serve --consortium
	// ID) names the consortium a joining node belongs to; the first start
	// pins it and every later start checks it (cluster.Config.Genesis).
	JoinGenesis []byte
	Consortium  string
	// PublicReads lets anyone read published aggregates without a token.
	PublicReads bool
	// TLSCert and TLSKey are PEM files the API serves HTTPS with (serve
	// --tls-cert, --tls-key), reloaded when they change; TLSFromCA serves
	// it with the node's own certificate from the regional CA instead.
	TLSCert, TLSKey string
	TLSFromCA       bool
	// InsecureHTTP allows plain HTTP on an address other machines can
	// reach (serve --insecure-http); without it Open refuses.
	InsecureHTTP bool
	// HTTPLimits bound the API's and the operator socket's connections;
	// zero fields take api.DefaultLimits.
	HTTPLimits api.Limits
	// Timing sizes raft for the network; zero values take cluster defaults
	// (sized for 50–400 ms round trips).
	Timing Timing
	Logger *slog.Logger
	// PublishStep, if set, is called as the release workflow reaches each
	// step (api.StepReserved, StepSigned, StepPublished). Tests use it to
	// stop a node at a chosen point; production nodes leave it nil.
	PublishStep func(step string)
}

// Timing holds the ledger's timeouts.
type Timing struct {
	Heartbeat, Election, LeaderLease, Commit, Transport time.Duration
	SnapshotThreshold                                   uint64
	CosignInterval                                      time.Duration
}

// Node is a running node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store // nil on a replica
	ledger *cluster.Node
	tokens *api.TokenStore
	api    *api.Server
	httpLn net.Listener
	sockLn net.Listener // admin socket; nil on a replica
	https  bool         // the API speaks HTTPS

	// publishSlot holds one token while a release workflow runs: pending
	// state is per node, so one at a time.
	publishSlot chan struct{}
	wg          sync.WaitGroup
	// bg is the node's own context, for work that outlives a request (a
	// release the caller stopped waiting for); Close cancels it.
	bg     context.Context
	cancel context.CancelFunc
	// pagedBytes counts the ledger bytes pages have read since the mapped
	// pages were last given back (backend.ReleasePage).
	pagedBytes atomic.Int64
}

// Open starts a node: opens the store (checking the passphrase before
// anything else), joins or founds the ledger, and binds the HTTP API. Call
// Serve to answer requests and Close to stop.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Logger, publishSlot: make(chan struct{}, 1)}
	n.bg, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	https := cfg.TLSFromCA || cfg.TLSCert != "" || cfg.TLSKey != ""
	if err := checkHTTPExposure(cfg.HTTPAddr, https, cfg.InsecureHTTP); err != nil {
		return nil, err
	}
	tlsCfg, err := cluster.LoadNodeTLS(filepath.Join(cfg.DataDir, TLSDir))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w (ask your regional coordinator for this node's certificate "+
			"and put node.crt, node.key and ca.crt in %s: docs/operator.md, section 3)", err, filepath.Join(cfg.DataDir, TLSDir))
	}
	httpsCfg, err := httpsConfig(cfg, tlsCfg, cfg.Logger.With("component", "api"))
	if err != nil {
		return nil, err
	}
	n.https = httpsCfg != nil
	cc := cluster.Config{
		DataDir: filepath.Join(cfg.DataDir, "ledger"), ID: tlsCfg.ID(), TLS: tlsCfg,
		RaftAddr: cfg.RaftAddr, Advertise: cfg.Advertise, Bootstrap: cfg.Genesis, Join: cfg.Join,
		Genesis: cfg.JoinGenesis, Consortium: cfg.Consortium,
		HeartbeatTimeout: cfg.Timing.Heartbeat, ElectionTimeout: cfg.Timing.Election,
		LeaderLeaseTimeout: cfg.Timing.LeaderLease, CommitTimeout: cfg.Timing.Commit,
		TransportTimeout: cfg.Timing.Transport, SnapshotThreshold: cfg.Timing.SnapshotThreshold,
		CosignInterval: cfg.Timing.CosignInterval, Logger: cfg.Logger.With("component", "ledger"),
	}
	if cfg.Passphrase != nil {
		if n.st, err = store.Open(cfg.DataDir, cfg.Passphrase); err != nil {
			return nil, err
		}
		if n.st.Partner() != tlsCfg.ID() {
			return nil, fmt.Errorf("the store belongs to partner %s but the node certificate is for %s", n.st.Partner(), tlsCfg.ID())
		}
		cc.Voter = true
		if cc.Signer, err = cluster.NewNoteSigner(cluster.PartnerNoteName(n.st.Partner()), n.st.SigningKey()); err != nil {
			return nil, err
		}
	}
	if n.tokens, err = api.OpenTokenStore(filepath.Join(cfg.DataDir, api.TokenFile)); err != nil {
		return nil, err
	}
	if n.ledger, err = cluster.Open(ctx, cc); err != nil {
		return nil, err
	}
	if n.api, err = api.New(api.Config{Backend: (*backend)(n), Tokens: n.tokens, PublicReads: cfg.PublicReads,
		TLS: httpsCfg, Limits: cfg.HTTPLimits, Logger: cfg.Logger.With("component", "api"), Local: n.localHandler(),
		CacheDir: filepath.Join(cfg.DataDir, CacheDir)}); err != nil {
		return nil, err
	}
	if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("http listen %s: %w (another program may be using it; choose another address with --http)", cfg.HTTPAddr, err)
	}
	if n.st != nil {
		if n.sockLn, err = listenAdmin(filepath.Join(cfg.DataDir, AdminSock)); err != nil {
			return nil, err
		}
	}
	if n.st != nil {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.resumePending(n.bg) }()
	}
	ok = true
	return n, nil
}

// HTTPAddr is the address the API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// HTTPURL is the API's base URL, https:// when it serves TLS.
func (n *Node) HTTPURL() string {
	if n.https {
		return "https://" + n.HTTPAddr()
	}
	return "http://" + n.HTTPAddr()
}

// RaftAddr is the ledger address peers dial.
func (n *Node) RaftAddr() string { return n.ledger.Addr() }

// ID is the node's raft server id.
func (n *Node) ID() string { return n.ledger.ID() }

// Ledger is the node's ledger member.
func (n *Node) Ledger() *cluster.Node { return n.ledger }

// Tokens is the node's API token store.
func (n *Node) Tokens() *api.TokenStore { return n.tokens }

// Serve answers HTTP requests until ctx is done, then shuts the server
// down gracefully.
func (n *Node) Serve(ctx context.Context) error {
	if n.sockLn == nil {
		return n.api.Serve(ctx, n.httpLn)
	}
	errc := make(chan error, 1)
	go func() { errc <- n.api.ServeLocal(ctx, n.sockLn) }()
	err := n.api.Serve(ctx, n.httpLn)
	return errors.Join(err, <-errc)
}

// listenAdmin opens the operator's socket, readable by this OS user only.
// A socket left by a crashed process is replaced; one still answered by a
// running node is not.
func listenAdmin(path string) (net.Listener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another roundtable node is serving this data directory (%s answers)", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// Connecting needs write permission on the socket; the default umask
	// already withholds it from others, and this makes it explicit.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Close stops the node: background work, the ledger (handing leadership
// over if it leads) and the store.
func (n *Node) Close() error {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	var errs []error
	if n.sockLn != nil {
		if err := n.sockLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if n.httpLn != nil {
		if err := n.httpLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if n.ledger != nil {
		errs = append(errs, n.ledger.Close())
	}
	if n.st != nil {
		errs = append(errs, n.st.Close())
	}
	return errors.Join(errs...)
}

// WriteServeFile records where this node listens so that local commands
// (roundtable publish) can find it.
func (n *Node) WriteServeFile() error {
	b := fmt.Appendf(nil, "{\"http\":%q,\"url\":%q,\"raft\":%q,\"pid\":%d}\n", n.HTTPAddr(), n.HTTPURL(), n.RaftAddr(), os.Getpid())
	return os.WriteFile(filepath.Join(n.cfg.DataDir, ServeFile), b, 0o600)
}
