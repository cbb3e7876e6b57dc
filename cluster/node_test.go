package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/aggregate"
)

func TestConfigValidate(t *testing.T) {
	tls := &NodeTLS{}
	genesis := []byte(`{"name":"R",` + testCoordJSON + `"partners":[{"id":"RS","name":"x","public_key":"AAAA"}],"policy":{"accounting":"pure","cap_micro":1},"catalog":{}}`)
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for none
	}{
		{"ok bootstrap", Config{DataDir: "d", ID: "RS", RaftAddr: "a", TLS: tls, Bootstrap: genesis, Voter: true}, ""},
		{"bad genesis", Config{DataDir: "d", ID: "RS", RaftAddr: "a", TLS: tls, Bootstrap: []byte(`{"name":""}`), Voter: true}, `"name" is empty`},
		{"ok join replica", Config{DataDir: "d", ID: "replica-r1", RaftAddr: "a", TLSDir: "t", Join: "x"}, ""},
		{"no data dir", Config{ID: "RS", RaftAddr: "a", TLS: tls}, "data dir"},
		{"bad id", Config{DataDir: "d", ID: "rs", RaftAddr: "a", TLS: tls}, "invalid node id"},
		{"no addr", Config{DataDir: "d", ID: "RS", TLS: tls}, "raft address"},
		{"both", Config{DataDir: "d", ID: "RS", RaftAddr: "a", TLS: tls, Bootstrap: genesis, Join: "x", Voter: true}, "not both"},
		{"non-voter bootstrap", Config{DataDir: "d", ID: "RS", RaftAddr: "a", TLS: tls, Bootstrap: genesis}, "must be a voter"},
		{"founder not in genesis", Config{DataDir: "d", ID: "AL", RaftAddr: "a", TLS: tls, Bootstrap: genesis, Voter: true}, "not one of the genesis's partners"},
		{"no tls", Config{DataDir: "d", ID: "RS", RaftAddr: "a"}, "TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate: got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// testCoordJSON is a genesis's governance fields: one coordinator (an
// all-zero key), threshold 1, a ceiling of 5 micro.
const testCoordJSON = `"coordinators":[{"name":"c1","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"threshold":1,"max_cap_micro":5,`

func TestParseGenesis(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"ok", `{"name":"R",` + testCoordJSON + `"partners":[{"id":"RS","name":"x","public_key":"AAAA"}],"policy":{"accounting":"pure","cap_micro":1},"catalog":{}}`, ""},
		{"no coordinators", `{"name":"R","partners":[{"id":"RS","name":"x","public_key":"AAAA"}],"policy":{"accounting":"pure","cap_micro":1},"catalog":{}}`, "no coordinators"},
		{"cap above ceiling", `{"name":"R",` + testCoordJSON + `"partners":[{"id":"RS","name":"x","public_key":"AAAA"}],"policy":{"accounting":"pure","cap_micro":6},"catalog":{}}`, "above the genesis ceiling"},
		{"unknown field", `{"name":"R","partnerz":[]}`, "unknown field"},
		{"no name", `{"partners":[{"id":"RS"}]}`, `"name" is empty`},
		{"no partners", `{"name":"R"}`, `"partners" is empty`},
		{"not json", `name: R`, "genesis file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGenesis([]byte(tt.in))
			if tt.want == "" {
				if err != nil || g.Name != "R" || len(g.Partners) != 1 || g.Partners[0].ID != "RS" {
					t.Fatalf("ParseGenesis = %+v, %v", g, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseGenesis: got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{raft.ErrNotLeader, true},
		{raft.ErrLeadershipLost, true},
		{fmt.Errorf("wrapped: %w", raft.ErrEnqueueTimeout), true},
		{errNoLeader, true},
		{errPartitioned, true},
		{errors.New("dial tcp: connection refused"), true},
		{&RemoteError{Msg: codeUnavailable + ": node is not the leader"}, true},
		{&RemoteError{Msg: codeRefused + ": not registered"}, false},
		{raft.ErrRaftShutdown, false},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{fmt.Errorf("handshake: %w", tls.AlertError(48)), false}, // unknown CA
		{&tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A single node bootstraps, applies genesis, accepts a release, and after a
// restart comes back with the same state and without bootstrapping again.
func TestNodeBootstrapRestart(t *testing.T) {
	r := newTestRegion(t)
	dir := t.TempDir()
	cfg := r.config("AL", dir)
	cfg.Bootstrap = r.genesis
	n := r.open(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sr, s := r.release("AL", aggregate.Period{Year: 2024, Quarter: 1}, 100_000)
	id, err := publishOne(ctx, n, sr, s)
	if err != nil {
		t.Fatal(err)
	}
	if id != s.ID {
		t.Fatalf("release id %q, want %q", id, s.ID)
	}
	if got, want := n.State(), raft.Leader; got != want {
		t.Fatalf("state %v, want %v", got, want)
	}
	lid, laddr := n.Leader()
	if lid != "AL" || laddr != n.Addr() {
		t.Fatalf("Leader() = %q %q, want AL %s", lid, laddr, n.Addr())
	}
	hash, err := n.FSM().StateHash()
	if err != nil {
		t.Fatal(err)
	}
	applied := n.FSM().AppliedIndex()
	addr := n.Addr()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Same directory and address, and the genesis still in the config: it
	// must not be applied again (that would be refused and fail Open).
	cfg.RaftAddr = addr
	n2 := r.open(cfg)
	if _, err := n2.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n2.FSM().AppliedIndex(); got < applied {
		t.Fatalf("applied index after restart %d, want ≥ %d", got, applied)
	}
	hash2, err := n2.FSM().StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if hash2 != hash {
		// A co-signature may have landed after we read the hash; the
		// release must be there in any case.
		if _, _, err := n2.FSM().Release(s.ID); err != nil {
			t.Fatalf("release lost across restart: %v", err)
		}
	}
	res, err := n2.Publish(ctx, s)
	if err != nil || !res.OK || !res.Existing {
		t.Fatalf("republish after restart = %+v, %v; want OK and Existing", res, err)
	}
}

// Close stops every goroutine the nodes started: raft, transport, mux,
// forward service and co-signing.
func TestNodeCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	r := newTestRegion(t)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sr, s := r.release("AL", aggregate.Period{Year: 2024, Quarter: 1}, 1000)
	if _, err := publishOne(ctx, nodes[1], sr, s); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatalf("close %s: %v", n.ID(), err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
