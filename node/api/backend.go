package api

import (
	"context"
	"errors"
	"io"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// Backend is everything the HTTP API needs from a node. Package node
// implements it over the encrypted store and the ledger; apitest.Fake
// implements it in memory so the API, the dashboard and the browser tests
// run the real handlers over fake plumbing.
//
// Methods that can fail for a reason the caller should see return one of
// the sentinel errors below (wrapped); the server maps them to status codes.
type Backend interface {
	// Partner is this node's partner code, or "" for a read-only replica.
	Partner() string
	// AppliedIndex is the ledger index the node has applied. The server
	// caches the series view per applied index, so this must be cheap.
	AppliedIndex() uint64
	// Health reports the node's cluster state; it never fails.
	Health(ctx context.Context) Health
	// Catalog returns the current indicator catalog and its hash.
	Catalog(ctx context.Context) (*aggregate.Catalog, string, error)
	// Releases lists every published release in ledger order and the applied
	// index the list reflects. With consistent set the read is linearizable
	// (it waits until the node has applied everything the leader committed).
	// It decodes the whole ledger: for the derived views, not for listing.
	Releases(ctx context.Context, consistent bool) ([]ReleaseEntry, uint64, error)
	// ReleasePage returns one page of the releases in leaf order, as stored,
	// filled by a Pager for q, which bounds what it holds. consistent is as
	// for Releases.
	ReleasePage(ctx context.Context, consistent bool, q PageQuery) (ReleasePage, error)
	// Release returns one release with its inclusion proof against the
	// current tree; ErrNotFound if there is none with that id.
	Release(ctx context.Context, id string) (ReleaseEntry, Proof, error)
	// Checkpoint returns the newest checkpoint and its signatures.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// Consistency returns the RFC 6962 consistency proof between two tree
	// sizes (1 ≤ from ≤ to ≤ current size); ErrInvalid for other sizes.
	Consistency(ctx context.Context, from, to int64) ([][]byte, error)
	// Budget returns the consortium's policy and what partner has spent per
	// quarter; ErrNotFound for an unknown partner.
	Budget(ctx context.Context, partner string) (privacy.Policy, []privacy.QuarterSpend, error)
	// Partners lists the registered partner codes in ledger order.
	Partners(ctx context.Context) ([]string, error)
	// Cluster describes the raft configuration and consortium membership.
	Cluster(ctx context.Context) (ClusterInfo, error)

	// Import validates and stores case records for this node's own partner.
	// A file with invalid rows is refused whole (report.Imported false).
	Import(ctx context.Context, r io.Reader, filename, format string, src ImportSource) (ImportReport, error)
	// Plan reports the expected accuracy of a release at budget, or the
	// budget each indicator needs for a 95% half-width of target people
	// (budget 0), with warnings for budgets the ledger would refuse; no
	// data is read.
	Plan(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, target int64) (PlanAnswer, error)
	// CheckPublish checks a release's parameters as Publish does before
	// it reserves anything, and says what the release would spend. It
	// reserves nothing. Over budget is a *privacy.Refusal.
	CheckPublish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (privacy.Charge, error)
	// Publish reserves budget, noises, signs and appends a release for this
	// node's partner. Every parameter is checked (CheckPublish) before
	// anything is reserved. A refusal by the accountant is a
	// *privacy.Refusal.
	//
	// reservation, if not empty, is the reservation id to use. Once the
	// reservation is saved the node finishes the release whatever happens
	// to the caller; if ctx ends first, Publish returns a *PendingError
	// saying where the release stands.
	Publish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, reservation string) (PublishResult, error)
	// PendingReleases reports the release in flight, if any, and the latest
	// finished ones (operator only).
	PendingReleases(ctx context.Context) (PendingReport, error)

	// Governance returns the governance history: every admitted
	// coordinator-signed statement, and the number the next one must carry.
	Governance(ctx context.Context) (GovernanceHistory, error)
	// Govern submits a statement signed by the coordinators. The node
	// checks it before the ledger sees it; a refusal (bad or too few
	// signatures, wrong sequence number or consortium, an action the
	// ledger refuses) is ErrConflict with the reason.
	Govern(ctx context.Context, s governance.Signed) (GovernResult, error)
}

// GovernanceHistory is GET /v1/governance: what a coordinator needs to
// prepare the next statement and a verifier to replay the history from
// the genesis (governance.Replay).
type GovernanceHistory struct {
	Consortium   string                   `json:"consortium"` // the consortium id (genesis hash)
	Next         uint64                   `json:"next"`       // the next statement's sequence number
	Coordinators []governance.Coordinator `json:"coordinators"`
	Threshold    int                      `json:"threshold"`
	Statements   []governance.Signed      `json:"statements"` // in sequence order, from 1
}

// GovernResult is what an admitted statement did.
type GovernResult struct {
	Seq      uint64 `json:"seq"`
	Action   string `json:"action"`
	Existing bool   `json:"existing"` // the statement was already in the ledger, or changed nothing
}

// Errors a Backend returns (wrapped) so that the server can choose a status.
var (
	// ErrNotFound: no such release, partner or node (404).
	ErrNotFound = errors.New("not found")
	// ErrNotInCluster: the node has not joined or lost its leader (503).
	ErrNotInCluster = errors.New("node is not in a cluster")
	// ErrNotPartner: a write that needs a partner key on a replica (409).
	ErrNotPartner = errors.New("this node is a replica and holds no partner key")
	// ErrConflict: the request contradicts the ledger's state (409).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request's content is invalid (422).
	ErrInvalid = errors.New("invalid")
)

// Health is the node's view of its cluster.
type Health struct {
	Partner      string `json:"partner"`       // "" on a replica
	ConsortiumID string `json:"consortium_id"` // the genesis hash; "" before genesis
	InCluster    bool   `json:"in_cluster"`    // a leader is known and was heard from within the election timeout
	CaughtUp     bool   `json:"caught_up"`     // in cluster, and the applied index is at the commit index
	RaftState    string `json:"raft_state"`    // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader"`        // leader's server id, "" if none
	AppliedIndex uint64 `json:"applied_index"` //
	CommitIndex  uint64 `json:"commit_index"`  //
	LastContact  string `json:"last_contact"`  // time since the leader was heard, as a Go duration
	Version      string `json:"version"`       // binary version
	Releases     int    `json:"releases"`      // releases in the ledger
	TreeSize     int64  `json:"tree_size"`     // leaves in the Merkle log
	// RaftRPCRefused counts inbound raft RPCs the node refused because
	// their sender was not the TLS peer or not a voter, by reason.
	RaftRPCRefused map[string]uint64 `json:"raft_rpc_refused,omitempty"`
	// HandshakesRefused counts peers refused at the TLS handshake because
	// the ledger's deny-list names their certificate (a removed partner or
	// replica, or a revoked serial).
	HandshakesRefused uint64 `json:"handshakes_refused,omitempty"`
	// Status is "ok", or what needs the operator: "snapshot_refused" when
	// the node refused a snapshot whose content did not check out (see
	// SnapshotRefused), "ledger_failed" when the ledger file failed.
	Status string `json:"status"`
	// SnapshotRefused is the latest snapshot this node refused, if any.
	SnapshotRefused *SnapshotRefusal `json:"snapshot_refused,omitempty"`
}

// Health statuses.
const (
	StatusOK              = "ok"
	StatusSnapshotRefused = "snapshot_refused"
	StatusLedgerFailed    = "ledger_failed"
)

// SnapshotRefusal is a snapshot the node refused to install: a leader sent
// a state that does not re-derive from the pinned genesis. The node kept
// its own state; the file is kept as evidence.
type SnapshotRefusal struct {
	Index    uint64 `json:"index"`    // the raft index the snapshot claimed
	Reason   string `json:"reason"`   // what disagreed
	Evidence string `json:"evidence"` // the refused file on the node's disk
	Count    uint64 `json:"count"`    // refusals (since start, or evidence files found at start)
}

// ReleaseEntry is a signed release and its leaf index in the Merkle log.
type ReleaseEntry struct {
	Signed privacy.Signed `json:"signed"`
	Leaf   int64          `json:"leaf"`
	// Verified says the ledger checked the signature against the partner's
	// registered key when it admitted the release (it admits no other), so
	// a browser without Ed25519 WebCrypto can still show a status (and say
	// that it is the server's).
	Verified bool `json:"verified"`
	// PublicKey is the partner's ed25519 key (base64 via []byte), so a
	// reader can verify the signature itself.
	PublicKey []byte `json:"public_key"`
}

// Proof is an RFC 6962 inclusion proof of a release's leaf in the tree
// the checkpoint names. Hashes are base64 (via []byte).
type Proof struct {
	Leaf     int64    `json:"leaf"`
	TreeSize int64    `json:"tree_size"`
	Root     []byte   `json:"root"`
	LeafHash []byte   `json:"leaf_hash"`
	Hashes   [][]byte `json:"hashes"`
}

// Checkpoint is the signed tree head: the note text with its signature
// lines, and what it says.
type Checkpoint struct {
	Note     string   `json:"note"`     // signed note text (C2SP tlog-checkpoint)
	Origin   string   `json:"origin"`   //
	Size     int64    `json:"size"`     //
	Root     []byte   `json:"root"`     //
	Signers  []string `json:"signers"`  // partner codes whose signatures verify
	Regional bool     `json:"regional"` // a strict majority of partners signed
}

// ClusterInfo is the raft configuration and the consortium's membership.
type ClusterInfo struct {
	Consortium   string       `json:"consortium"`
	ConsortiumID string       `json:"consortium_id"` // the genesis hash
	Servers      []ServerInfo `json:"servers"`
	Partners     []string     `json:"partners"`
	Replicas     []string     `json:"replicas"`
}

// ServerInfo is one raft server.
type ServerInfo struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// ImportReport is what an import read and did. Errors name file, line and
// field, as invariant 7 asks.
type ImportReport struct {
	Files    []string    `json:"files"`
	Rows     int         `json:"rows"`
	Invalid  int         `json:"invalid"`
	Errors   []LineError `json:"errors"`
	Imported bool        `json:"imported"` // the import committed
	Stored   int         `json:"stored"`   // cases written
	Removed  int         `json:"removed"`  // cases of the replaced source no longer in the file
	Foreign  int         `json:"foreign"`  // valid rows identified in another country than the partner
}

// ImportSource names where an import's records come from and what the
// import may do; every field is optional
// (?source=NAME&replace=true&allow_foreign=true).
type ImportSource struct {
	Name    string // stored with every record
	Replace bool   // the upload is the whole of Name: its records not in it are removed
	// AllowForeign stores records identified in another country than this
	// node's partner, which otherwise refuse the whole upload.
	AllowForeign bool
}

// LineError is one invalid row.
type LineError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// PublishResult is what a publish appended.
type PublishResult struct {
	ID           string   `json:"id"`
	Leaf         int64    `json:"leaf"`
	Partner      string   `json:"partner"`
	Period       string   `json:"period"`
	Indicators   []string `json:"indicators"`
	SpentMicro   int64    `json:"spent_micro"`
	AppliedIndex uint64   `json:"applied_index"`
}
