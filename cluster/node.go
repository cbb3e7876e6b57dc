// Package cluster is the regional ledger: a hashicorp/raft cluster of
// partner nodes (voters) and read replicas over mutual TLS, whose state
// machine admits signed releases against the privacy budget and appends
// them to an RFC 6962 Merkle log with co-signed checkpoints.
//
// Node (node.go) wires the pieces together: the bbolt log store, the FSM,
// the TLS mux and transport; membership.go admits nodes; publish.go is the
// write path with forwarding and retries; reads.go gives linearizable
// reads; cosign.go co-signs checkpoints. See DESIGN.md and docs/cluster.md.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"

	"roundtable/cluster/governance"
)

// Default timeouts, sized for the region's 50–400 ms round trips between
// NGO offices: a heartbeat every 1.5 s tolerates a few slow round trips
// before a follower calls an election, and the lease stays below the
// heartbeat timeout as raft requires.
const (
	DefaultHeartbeatTimeout   = 1500 * time.Millisecond
	DefaultElectionTimeout    = 1500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 1000 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultCosignInterval     = 500 * time.Millisecond
)

// logCacheSize is how many recent log entries the leader serves from memory
// while replicating, so a follower a little behind never costs a disk read.
const logCacheSize = 512

// Config configures a ledger node.
type Config struct {
	// DataDir holds the raft log (raft/raft.db), snapshots (raft/snapshots)
	// and the ledger state (ledger/).
	DataDir string
	// ID is the node's raft server id; it must equal the identity on its
	// certificate: a partner code such as "RS" or a replica id.
	ID string
	// RaftAddr is the address to listen on for raft and forwarded requests
	// (one mutual-TLS port), e.g. "127.0.0.1:7000".
	RaftAddr string
	// Advertise is the address other nodes dial; empty means the address
	// actually listened on (so RaftAddr may use port 0 in tests).
	Advertise string
	// TLSDir holds node.crt, node.key and ca.crt (see LoadNodeTLS).
	TLSDir string
	// TLS, when set, is used instead of loading TLSDir.
	TLS *NodeTLS
	// Bootstrap is the genesis file (JSON, see docs/cluster.md). With it a
	// node that has no raft state starts a new one-node cluster and applies
	// the genesis command once it leads. A restart never re-bootstraps.
	Bootstrap []byte
	// Join is the address of any member; a node without raft state asks it
	// to be admitted. Ignored when the node already has state.
	Join string
	// Genesis is the consortium's genesis file, given to a joining node so
	// it knows which consortium it belongs to (serve --genesis); Consortium
	// is its id, for when only the id is at hand (serve --consortium). The
	// first start pins it (fsm_pin.go); later starts need neither, and a
	// different one is refused. Bootstrap pins its own genesis.
	Genesis    []byte
	Consortium string
	// Voter says whether this node expects to vote: partners vote, read
	// replicas do not. The leader decides from the registry; a mismatch is
	// refused so that an operator notices a wrong certificate early.
	Voter bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// TransportTimeout is the I/O deadline of one raft RPC.
	TransportTimeout time.Duration
	// HandshakeTimeout bounds TLS handshakes; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay after a snapshot; zero means
	// raft's default (10,240).
	TrailingLogs uint64

	// Signer is the partner's checkpoint signer; nil for replicas.
	Signer note.Signer
	// CosignInterval is the least time between two co-signatures; zero
	// means DefaultCosignInterval.
	CosignInterval time.Duration

	// Logger receives the node's and raft's log; nil means slog.Default().
	Logger *slog.Logger

	// plainRaftTransport (tests only) runs raft over the NetworkTransport
	// that believes RPC headers, so attack tests can show what the
	// identity transport prevents.
	plainRaftTransport bool
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.TransportTimeout, DefaultTransportTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.CosignInterval, DefaultCosignInterval)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return errors.New("data dir is empty")
	}
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	if c.RaftAddr == "" {
		return errors.New("raft address is empty")
	}
	if len(c.Bootstrap) > 0 && c.Join != "" {
		return errors.New("give either a genesis to bootstrap or an address to join, not both")
	}
	if len(c.Bootstrap) > 0 && !c.Voter {
		return errors.New("a bootstrapping node must be a voter")
	}
	if len(c.Bootstrap) > 0 {
		// Checked before raft is bootstrapped, so a bad file never leaves
		// a founded cluster without a consortium.
		g, err := ParseGenesis(c.Bootstrap)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(g.Partners, func(p governance.Partner) bool { return p.ID == c.ID }) {
			return fmt.Errorf("node %s founds the ledger but is not one of the genesis's partners", c.ID)
		}
	}
	if c.TLS == nil && c.TLSDir == "" {
		return errors.New("no TLS directory")
	}
	_, err := c.consortium()
	return err
}

// consortium is the consortium id the configuration names (from Bootstrap,
// Genesis or Consortium, which must agree), or "" if it names none.
func (c *Config) consortium() (string, error) {
	var ids []string
	for _, g := range [][]byte{c.Bootstrap, c.Genesis} {
		if len(g) == 0 {
			continue
		}
		id, err := governance.IDOfFile(g)
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	if c.Consortium != "" {
		if err := ValidConsortiumID(c.Consortium); err != nil {
			return "", err
		}
		ids = append(ids, c.Consortium)
	}
	for _, id := range ids[min(1, len(ids)):] {
		if id != ids[0] {
			return "", fmt.Errorf("the genesis file and the consortium id name different consortia (%s and %s)", ids[0], id)
		}
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// Node is one member of the regional ledger: a raft server whose state
// machine is the FSM, reachable over one mutual-TLS port.
type Node struct {
	cfg Config
	log *slog.Logger
	tls *NodeTLS

	mux       *Mux
	stream    *filteredStream
	transport raftTransport
	fwd       *Forwarder
	logStore  *BoltStore
	snaps     *raft.FileSnapshotStore
	fsm       *FSM
	raft      *raft.Raft
	// raftPtr is raft for the transport's callbacks, which run before
	// NewRaft has returned.
	raftPtr atomic.Pointer[raft.Raft]

	// joinAllow holds the members named by a join response: a fresh node
	// accepts raft connections from them before it has a configuration.
	joinMu    sync.Mutex
	joinAllow map[raft.ServerAddress]string
	// joinVoters are the voters among them (id → address): whom a node
	// without a configuration accepts raft RPCs from.
	joinVoters map[string]raft.ServerAddress

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open starts a node: it opens the stores, listens on RaftAddr, starts raft
// and either bootstraps, joins, or resumes from existing state. It returns
// once the node is running; for a bootstrap, once genesis is applied, and
// for a join, once the leader admitted it.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), joinAllow: map[raft.ServerAddress]string{}, joinVoters: map[string]raft.ServerAddress{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.open(); err != nil {
		_ = n.shutdown(false) // the open error says more than any close error
		return nil, fmt.Errorf("open node %s: %w", cfg.ID, err)
	}
	if err := n.start(ctx); err != nil {
		_ = n.shutdown(false)
		return nil, fmt.Errorf("open node %s: %w", cfg.ID, err)
	}
	return n, nil
}

// open wires stores, TLS, mux, transport and raft.
func (n *Node) open() error {
	var err error
	n.tls = n.cfg.TLS
	if n.tls == nil {
		if n.tls, err = LoadNodeTLS(n.cfg.TLSDir); err != nil {
			return err
		}
	}
	if n.tls.ID() != n.cfg.ID {
		return fmt.Errorf("certificate identity %q differs from node id %q; raft id and certificate must name the same node", n.tls.ID(), n.cfg.ID)
	}
	if left := time.Until(n.tls.NotAfter()); left < RenewWithin {
		n.log.Warn("node certificate expires soon: renew it with 'roundtable ca issue --renew' at the CA, then restart this node",
			"expires", n.tls.NotAfter().UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
	}
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if n.logStore, err = NewBoltStore(filepath.Join(raftDir, "raft.db")); err != nil {
		return err
	}
	logs, err := raft.NewLogCache(logCacheSize, n.logStore)
	if err != nil {
		return fmt.Errorf("log cache: %w", err)
	}
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 2, NewHCLogAdapter(n.log, "raft-snap")); err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	if n.fsm, err = OpenFSM(filepath.Join(n.cfg.DataDir, "ledger"), n.log); err != nil {
		return err
	}
	// Removed partners and replicas and revoked certificates are refused
	// at the handshake, by every node, in both directions.
	n.tls.SetDenyList(n.fsm.Denied)
	want, err := n.cfg.consortium()
	if err != nil {
		return err
	}
	if _, err := n.fsm.PinConsortium(want); err != nil {
		return err
	}
	if err := n.checkStoredSnapshots(); err != nil {
		return err
	}
	if err := n.listen(); err != nil {
		return err
	}
	rc, err := n.raftConfig()
	if err != nil {
		return err
	}
	existing, err := raft.HasExistingState(logs, n.logStore, n.snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	if !existing && len(n.cfg.Bootstrap) > 0 {
		boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.Advertise)}}}
		if err := raft.BootstrapCluster(rc, logs, n.logStore, n.snaps, n.transport, boot); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if err := n.recoverFromPeersFile(rc, logs); err != nil {
		return err
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, n.snaps, n.transport); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raftPtr.Store(n.raft)
	return nil
}

// listen opens the one TLS port and the services behind it.
func (n *Node) listen() error {
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if n.cfg.Advertise == "" {
		n.cfg.Advertise = ln.Addr().String()
	}
	n.mux = NewMux(ln, n.tls, MuxConfig{HandshakeTimeout: n.cfg.HandshakeTimeout, Logger: n.log})
	n.goRun(func(ctx context.Context) {
		if err := n.mux.Serve(ctx); err != nil {
			n.log.Error("cluster port stopped", "error", err)
		}
	})
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.Advertise)
	if err != nil {
		return fmt.Errorf("advertise address %q: %w", n.cfg.Advertise, err)
	}
	inner := NewStreamLayer(n.mux, n.tls, StreamLayerConfig{
		ExpectedID:       n.expectedID,
		Authorize:        n.authorize,
		HandshakeTimeout: n.cfg.HandshakeTimeout,
		Advertise:        adv,
		Logger:           n.log,
	})
	n.stream = newFilteredStream(inner, n.expectedID)
	if n.transport, err = n.raftTransport(); err != nil {
		return err
	}
	n.fwd, err = NewForwarder(ForwarderConfig{TLS: n.tls, ExpectedID: n.expectedID, HandshakeTimeout: n.cfg.HandshakeTimeout})
	if err != nil {
		return err
	}
	fl := n.mux.Listen(ProtoForward)
	n.goRun(func(ctx context.Context) {
		if err := ServeForward(ctx, fl, n.stream.filterForward(n.handleForward)); err != nil {
			n.log.Error("forward service stopped", "error", err)
		}
	})
	return nil
}

func (n *Node) raftConfig() (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	if n.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = n.cfg.TrailingLogs
	}
	// Batching lets many concurrent publishers share one disk sync and one
	// FSM transaction per batch.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.Logger = NewHCLogAdapter(n.log, "raft")
	rc.NoLegacyTelemetry = true
	// The FSM keeps its state (and the last applied index) durably, so a
	// restart need not re-read the newest snapshot when the state already
	// covers it: that is what makes restarting a large ledger fast.
	skip, err := n.stateCoversSnapshots()
	if err != nil {
		return nil, err
	}
	rc.NoSnapshotRestoreOnStart = skip
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	return rc, nil
}

// PeersFile is the name, inside DataDir/raft, of the file an operator
// writes to recover a cluster that lost its quorum (docs/cluster.md). Its
// format is raft's peers.json: [{"id": "RS", "address": "host:port",
// "non_voter": false}, ...].
const PeersFile = "peers.json"

// recoverFromPeersFile, when DataDir/raft/peers.json exists, forces the raft
// configuration to the servers it lists (raft.RecoverCluster) and renames
// the file so the recovery happens once. It is the manual way out when a
// majority of voters is gone for good; every surviving voter must be given
// the same file.
func (n *Node) recoverFromPeersFile(rc *raft.Config, logs raft.LogStore) error {
	path := filepath.Join(n.cfg.DataDir, "raft", PeersFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("recover from %s: %w", path, err)
	}
	n.log.Warn("recovering raft configuration from peers file", "path", path, "servers", len(conf.Servers))
	if err := raft.RecoverCluster(rc, recoveryFSM{n.fsm}, logs, n.logStore, n.snaps, n.transport, conf); err != nil {
		return fmt.Errorf("recover from %s: %w", path, err)
	}
	if err := os.Rename(path, path+".applied"); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	return nil
}

// recoveryFSM releases the snapshot that raft.RecoverCluster takes: raft
// v1.8.0 persists it but never calls Release, and the ledger's snapshot
// holds a read transaction that would keep the file from closing.
type recoveryFSM struct{ *FSM }

func (f recoveryFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return releasingSnapshot{s}, nil
}

type releasingSnapshot struct{ raft.FSMSnapshot }

func (s releasingSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	return s.FSMSnapshot.Persist(sink)
}

// stateCoversSnapshots reports whether the FSM's durable state is at least
// as new as the newest snapshot.
func (n *Node) stateCoversSnapshots() (bool, error) {
	list, err := n.snaps.List()
	if err != nil {
		return false, fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return true, nil
	}
	return n.fsm.AppliedIndex() >= list[0].Index, nil
}

// start finishes bootstrap or join and starts the background work.
func (n *Node) start(ctx context.Context) error {
	if len(n.cfg.Bootstrap) > 0 {
		if err := n.applyGenesis(ctx); err != nil {
			return err
		}
	} else if n.cfg.Join != "" && !n.inConfiguration(n.cfg.ID) {
		if err := n.join(ctx); err != nil {
			return err
		}
	}
	if n.cfg.Signer != nil {
		n.goRun(n.cosignLoop)
	}
	n.goRun(n.refusedSnapshotLoop)
	n.goRun(n.membershipLoop)
	return nil
}

// applyGenesis applies the genesis command if the ledger has no consortium
// yet: on first start, or after a crash between bootstrap and genesis.
func (n *Node) applyGenesis(ctx context.Context) error {
	if n.hasConsortium() {
		return nil
	}
	cmd, err := genesisCommand(n.cfg.Bootstrap)
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if err := n.WaitForLeader(ctx); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("genesis refused: %s", res.Refusal)
	}
	return nil
}

// goRun runs f in a goroutine that Close waits for.
func (n *Node) goRun(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// Close leaves gracefully: a leader first hands leadership to another
// voter so the region does not wait an election timeout, then raft shuts
// down, the port closes and the stores are closed. Every goroutine the
// node started has ended when Close returns.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown(true) })
	return n.closeErr
}

// shutdown stops everything; transfer asks for a leadership transfer first.
func (n *Node) shutdown(transfer bool) error {
	var errs []error
	n.cancel()
	if n.raft != nil {
		if transfer && n.raft.State() == raft.Leader && n.voters() > 1 {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				// Not a failure of this node: the others elect a leader
				// themselves, one election timeout later.
				n.log.Info("closing without handing over leadership; the others will elect a leader", "reason", err)
			}
		}
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	if n.fwd != nil {
		errs = append(errs, n.fwd.Close())
	}
	if n.mux != nil {
		errs = append(errs, n.mux.Close())
	}
	n.wg.Wait()
	if n.fsm != nil {
		errs = append(errs, n.fsm.Close())
	}
	if n.logStore != nil {
		errs = append(errs, n.logStore.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close node %s: %w", n.cfg.ID, err)
	}
	return nil
}

// crash stops the node without a leadership transfer, as a power cut would
// from the others' point of view. Tests use it to kill a leader.
func (n *Node) crash() {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown(false) })
}

// ID is the node's server id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the address other nodes dial.
func (n *Node) Addr() string { return n.cfg.Advertise }

// FSM is the node's ledger state, for local (possibly stale) reads; see
// ConsistentRead for linearizable ones.
func (n *Node) FSM() *FSM { return n.fsm }

// Leader returns the current leader's id and address, empty if unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State is this node's raft state: Leader, Follower, Candidate or Shutdown.
func (n *Node) State() raft.RaftState { return n.raft.State() }

// Stats is raft's statistics plus the ledger's applied index, for health
// checks and metrics.
func (n *Node) Stats() map[string]string {
	s := n.raft.Stats()
	s["fsm_applied_index"] = fmt.Sprint(n.fsm.AppliedIndex())
	s["id"] = n.cfg.ID
	return s
}

// WaitForLeader blocks until a leader is known.
func (n *Node) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// CaughtUp reports whether this node is in touch with a leader (see
// LeaderInTouch) and has handed every entry it knows to be committed to its
// state machine. It is a health signal; use ConsistentRead when a read must
// be up to date.
func (n *Node) CaughtUp() bool {
	if !n.LeaderInTouch() {
		return false
	}
	ci := n.raft.CommitIndex()
	return ci > 0 && n.raft.AppliedIndex() >= ci
}

// LeaderInTouch reports whether a leader is known and heard from: this node
// leads (raft steps a leader down once it has not reached a quorum for
// LeaderLeaseTimeout), or it heard from the leader within the election
// timeout. A follower keeps naming its old leader until it starts an
// election, so the name alone would call a node in touch with a leader that
// froze or was cut off.
func (n *Node) LeaderInTouch() bool {
	if _, id := n.raft.LeaderWithID(); id == "" {
		return false
	}
	if n.raft.State() == raft.Leader {
		return true
	}
	last := n.raft.LastContact()
	return !last.IsZero() && time.Since(last) <= n.cfg.ElectionTimeout
}

// voters counts voters in the latest configuration.
func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// servers is the latest raft configuration, or nil before raft starts.
// Server is one member of the raft configuration.
type Server struct {
	ID, Address string
	Voter       bool
}

// Servers lists the current raft configuration.
func (n *Node) Servers() []Server {
	var out []Server
	for _, s := range n.servers() {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

func (n *Node) servers() []raft.Server {
	r := n.raftPtr.Load()
	if r == nil {
		return nil
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

func (n *Node) inConfiguration(id string) bool {
	for _, s := range n.servers() {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// expectedID names the identity that must be on the certificate at addr:
// the raft id configured for that address, or one a join response named.
func (n *Node) expectedID(addr raft.ServerAddress) (string, bool) {
	for _, s := range n.servers() {
		if s.Address == addr {
			return string(s.ID), true
		}
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	id, ok := n.joinAllow[addr]
	return id, ok
}

// authorize admits raft peers that are in the configuration, registered in
// the ledger as partners or replicas, or named by our join response.
func (n *Node) authorize(peer string) error {
	if n.inConfiguration(peer) || n.registered(peer) != "" {
		return nil
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	for _, id := range n.joinAllow {
		if id == peer {
			return nil
		}
	}
	return fmt.Errorf("%s is neither a cluster member nor a registered partner or replica", peer)
}

// registered returns rolePartner or roleReplica if the ledger registers id
// as an active partner or a replica and does not deny it, and "" otherwise.
func (n *Node) registered(id string) string {
	if reg := n.registration(id); reg.denied == "" {
		return reg.role
	}
	return ""
}

// registration is what the ledger says about a node id.
type registration struct {
	role   string // rolePartner, roleReplica or ""
	addr   string // the address governance registered, if any
	denied string // why the id is on the deny-list, if it is
}

func (n *Node) registration(id string) registration {
	var reg registration
	c, err := n.fsm.Consortium()
	if err != nil {
		return reg
	}
	for _, p := range c.Partners {
		if p.ID == id && p.Role != RoleRemoved {
			reg.role, reg.addr = rolePartner, p.Address
		}
	}
	for _, r := range c.Replicas {
		if r == id {
			reg.role, reg.addr = roleReplica, c.ReplicaAddrs[id]
		}
	}
	if denied, why := n.fsm.Denied(id, nil); denied {
		reg.denied = why
	}
	return reg
}

// isVoter reports whether id is a voter in the current configuration.
func (n *Node) isVoter(id string) bool {
	for _, s := range n.servers() {
		if string(s.ID) == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

// hasConsortium reports whether genesis has been applied.
func (n *Node) hasConsortium() bool {
	c, err := n.fsm.Consortium()
	return err == nil && c.Name != ""
}

// checkpointOrigin is the origin line of this ledger's checkpoints.
func (n *Node) checkpointOrigin() (string, bool) {
	c, err := n.fsm.Consortium()
	if err != nil || c.Name == "" || c.ID == "" {
		return "", false
	}
	return CheckpointOrigin(c.Name, c.ID), true
}

// ParseGenesis reads a genesis file: the JSON form of Genesis (see
// docs/cluster.md and governance.ParseGenesis). Unknown fields are refused
// so a typo is not silently dropped from the founding record.
func ParseGenesis(data []byte) (Genesis, error) { return governance.ParseGenesis(data) }

func genesisCommand(data []byte) ([]byte, error) {
	g, err := ParseGenesis(data)
	if err != nil {
		return nil, err
	}
	return NewGenesis(g).Encode()
}
