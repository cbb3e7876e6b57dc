package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestScratchLogs(t *testing.T) {
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
	for _, l := range logs.lines(slog.LevelWarn) {
		t.Log(l)
	}
}
