package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// logLines is a slog handler that keeps every record as one text line, for
// tests that assert on what an operator would read.
type logLines struct {
	mu    *sync.Mutex
	buf   *bytes.Buffer
	inner slog.Handler
}

func newLogLines() *logLines {
	l := &logLines{mu: new(sync.Mutex), buf: new(bytes.Buffer)}
	l.inner = slog.NewTextHandler(l.buf, &slog.HandlerOptions{Level: LevelTrace})
	return l
}

func (l *logLines) Enabled(ctx context.Context, lv slog.Level) bool { return true }
func (l *logLines) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner.Handle(ctx, r)
}
func (l *logLines) WithAttrs(as []slog.Attr) slog.Handler {
	c := *l
	c.inner = l.inner.WithAttrs(as)
	return &c
}
func (l *logLines) WithGroup(g string) slog.Handler {
	c := *l
	c.inner = l.inner.WithGroup(g)
	return &c
}

func (l *logLines) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the lines at level or above.
func (l *logLines) lines(min slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ln := range strings.Split(l.buf.String(), "\n") {
		for _, lv := range []slog.Level{slog.LevelWarn, slog.LevelError} {
			if lv >= min && strings.Contains(ln, " level="+lv.String()+" ") {
				out = append(out, ln)
			}
		}
	}
	return out
}

// TestQuietNormalLifecycle: a region that starts, takes two joins,
// publishes and shuts down cleanly logs no WARN or ERROR line on any node
// (an operator reads those as failures).
func TestQuietNormalLifecycle(t *testing.T) {
	logs := newLogLines()
	r := newTestRegion(t)
	r.logger = slog.New(logs)
	nodes := r.startCluster("AL", "BA", "XK")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sr, s := r.release("BA", q1, 1000)
	if _, err := publishOne(ctx, nodes[1], sr, s); err != nil {
		t.Fatal(err)
	}
	converge(t, nodes)
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	if bad := logs.lines(slog.LevelWarn); len(bad) > 0 {
		t.Errorf("%d WARN/ERROR lines from a normal start, join, publish and shutdown:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	if !strings.Contains(logs.all(), `msg=joined`) {
		t.Error("the capture holds no join: the test did not see the nodes' logs")
	}
}

// TestPeerDownLogsRateLimited: with one voter stopped for a few seconds,
// the leader reports it, but its WARN/ERROR lines about the peer stay
// under a small bound instead of several a second.
func TestPeerDownLogsRateLimited(t *testing.T) {
	logs := newLogLines()
	r := newTestRegion(t)
	r.logger = slog.New(logs)
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(t, nodes)
	var down *Node
	for _, n := range nodes {
		if n != leader {
			down = n
			break
		}
	}
	down.crash()
	logs.reset()
	time.Sleep(4 * time.Second)
	var about []string
	for _, l := range logs.lines(slog.LevelWarn) {
		if strings.Contains(l, "test_node="+leader.ID()+" ") && strings.Contains(l, down.ID()) {
			about = append(about, l)
		}
	}
	t.Logf("%d leader WARN/ERROR lines about %s in 4 s:\n%s", len(about), down.ID(), strings.Join(about, "\n"))
	if len(about) == 0 {
		t.Error("the leader said nothing about a peer that is down")
	}
	if len(about) > 4 {
		t.Errorf("%d WARN/ERROR lines about one peer in 4 s; want at most 4", len(about))
	}
}

// TestHCLogAdapterFormats: raft's hclog values come out as hclog writes
// them, not as Go structures ("servers=[%+v …" was a raft line before).
func TestHCLogAdapterFormats(t *testing.T) {
	logs := newLogLines()
	l := NewHCLogAdapter(slog.New(logs), "raft")
	servers := []raft.Server{{Suffrage: raft.Voter, ID: "AL", Address: "10.0.0.1:7000"}}
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", servers))
	l.With("conf", hclog.Fmt("%d voters", 3)).Info("derived", "mask", hclog.Hex(255), "mode", hclog.Octal(8),
		"bits", hclog.Binary(5), "name", hclog.Quote("a b"))
	out := logs.all()
	for _, want := range []string{
		`servers="[{Suffrage:Voter ID:AL Address:10.0.0.1:7000}]"`,
		`conf="3 voters"`, `mask=0xff`, `mode=010`, `bits=0b101`, `name="\"a b\""`, `logger=raft`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "%") {
		t.Errorf("a format verb reached the log:\n%s", out)
	}
}

// TestHCLogAdapterLevels: raft's lines about normal operation are not
// warnings, and a peer's failures are INFO at first, then one warning
// with the count of those held back.
func TestHCLogAdapterLevels(t *testing.T) {
	tests := []struct {
		level hclog.Level
		msg   string
		args  []any
		want  hclog.Level
	}{
		{hclog.Warn, "heartbeat timeout reached, starting election", []any{"last-leader-addr", "", "last-leader-id", ""}, hclog.Info},
		{hclog.Warn, "heartbeat timeout reached, starting election", []any{"last-leader-id", "AL"}, hclog.Warn},
		{hclog.Warn, "failed to get previous log", []any{"previous-index", 4}, hclog.Info},
		{hclog.Error, "failed to decode incoming command", []any{"error", fmt.Errorf("read: %w", net.ErrClosed)}, hclog.Debug},
		{hclog.Error, "failed to appendEntries to", []any{"error", errors.New("connection refused")}, hclog.Error},
	}
	for _, tc := range tests {
		if got := raftLevel(tc.level, tc.msg, tc.args); got != tc.want {
			t.Errorf("%q %v: level %v, want %v", tc.msg, tc.args, got, tc.want)
		}
	}
	lim := newPeerLogLimit(time.Hour, 50*time.Millisecond)
	peer := raft.Server{ID: "BA", Address: "x"}
	args := []any{"peer", peer, "error", "refused"}
	if lv, _, ok := lim.allow(hclog.Error, "failed to appendEntries to", args); !ok || lv != hclog.Info {
		t.Fatalf("first failure: %v %v, want logged at INFO", lv, ok)
	}
	for range 5 {
		if _, _, ok := lim.allow(hclog.Error, "failed to appendEntries to", args); ok {
			t.Fatal("a failure within the grace period was logged")
		}
	}
	time.Sleep(60 * time.Millisecond)
	lv, n, ok := lim.allow(hclog.Error, "failed to appendEntries to", []any{"peer", raft.Server{ID: "BA", Address: "y"}})
	if !ok || lv != hclog.Error || n != 5 {
		t.Fatalf("failures past the grace period: %v %d %v, want ERROR with 5 held back", lv, n, ok)
	}
	if _, _, ok := lim.allow(hclog.Error, "failed to appendEntries to", args); ok {
		t.Fatal("a second warning within the interval was logged")
	}
	if _, _, ok := lim.allow(hclog.Error, "some line without a peer", nil); !ok {
		t.Fatal("a line naming no peer was held back")
	}
}
