package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The hclog adapter's policy (the adapter itself is in tls.go): raft's
// values formatted as hclog would, raft's lines about normal operation
// below WARN, and repeated warnings about one peer rate-limited, so that a
// WARN or ERROR in a node's log is worth an operator's attention.

// hclogArgs formats the values hclog formats itself, which slog would
// print as their Go structure: hclog.Fmt("%+v", x) as the formatted text
// (raft logs its configuration so), and hclog's Hex, Octal, Binary and
// Quote as hclog writes them.
func hclogArgs(args []any) []any {
	var out []any
	for i, v := range args {
		var s string
		switch t := v.(type) {
		case hclog.Format:
			if len(t) == 0 {
				continue
			}
			if f, ok := t[0].(string); ok {
				s = fmt.Sprintf(f, t[1:]...)
			} else {
				s = fmt.Sprint(t...)
			}
		case hclog.Hex:
			s = "0x" + strconv.FormatUint(uint64(t), 16)
		case hclog.Octal:
			s = "0" + strconv.FormatUint(uint64(t), 8)
		case hclog.Binary:
			s = "0b" + strconv.FormatUint(uint64(t), 2)
		case hclog.Quote:
			s = strconv.Quote(string(t))
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = s
	}
	if out == nil {
		return args
	}
	return out
}

// raftLevel lowers raft's warnings about what a healthy cluster does:
// the first election of a new cluster (no leader was ever known), a new or
// restarted follower catching up from older entries, connections ending
// because this node is shutting down, and a leader stepping down when its
// peers stop (the region being shut down node by node does exactly that).
// A real outage still surfaces: a peer unreachable for longer than a brief
// episode is logged at WARN by the transport's rate limiter, and the
// election that follows a step-down by raft.
func raftLevel(level hclog.Level, msg string, args []any) hclog.Level {
	if level < hclog.Warn {
		return level
	}
	switch msg {
	case "heartbeat timeout reached, starting election":
		if v, _ := argValue(args, "last-leader-id"); fmt.Sprint(v) == "" {
			return hclog.Info
		}
	case "failed to get previous log", "appendEntries rejected, sending older logs",
		"failed to contact quorum of nodes, stepping down":
		return hclog.Info
	}
	if v, ok := argValue(args, "error"); ok {
		if err, isErr := v.(error); isErr && errors.Is(err, net.ErrClosed) ||
			strings.Contains(fmt.Sprint(v), "use of closed network connection") {
			return hclog.Debug
		}
	}
	return level
}

// argValue finds key among hclog's key/value arguments.
func argValue(args []any, key string) (any, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == key {
			return args[i+1], true
		}
	}
	return nil, false
}

// peerLogEvery is how often the same warning about the same peer is
// logged while it lasts (raft retries a peer that is down several times a
// second at first); a peer silent for longer starts a new episode.
const peerLogEvery = 30 * time.Second

// peerLogGrace is how long a peer may fail before it is a warning: a
// peer that restarts, or stops while the others run on, fails a few
// calls and is back (or gone for good) within it.
const peerLogGrace = 2 * time.Second

// peerLogLimit turns raft's warnings about one peer into what an operator
// needs: the first failure of an episode at INFO, a WARN or ERROR once the
// failures have lasted peerLogGrace, then one line per peerLogEvery with
// how many were held back.
type peerLogLimit struct {
	every, grace time.Duration
	mu           sync.Mutex
	seen         map[string]*peerLogEntry
}

type peerLogEntry struct {
	first, last, logged time.Time
	suppressed          uint64
}

func newPeerLogLimit(every, grace time.Duration) *peerLogLimit {
	return &peerLogLimit{every: every, grace: grace, seen: map[string]*peerLogEntry{}}
}

// allow says whether a warning of level may be logged now, at which level,
// and how many like it were held back since the last one. Lines that name
// no peer pass as they are.
func (l *peerLogLimit) allow(level hclog.Level, msg string, args []any) (hclog.Level, uint64, bool) {
	var peer any
	for _, k := range []string{"peer", "server-id", "id", "target"} {
		if v, ok := argValue(args, k); ok {
			peer = v
			break
		}
	}
	if peer == nil {
		return level, 0, true
	}
	key := msg + "\x00" + peerKey(peer)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	e := l.seen[key]
	if e == nil || now.Sub(e.last) > l.every {
		if len(l.seen) > 1024 { // bounded: forget old peers rather than grow
			clear(l.seen)
		}
		l.seen[key] = &peerLogEntry{first: now, last: now}
		return hclog.Info, 0, true // a new episode: maybe nothing yet
	}
	e.last = now
	if now.Sub(e.first) < l.grace || !e.logged.IsZero() && now.Sub(e.logged) < l.every {
		e.suppressed++
		return level, 0, false
	}
	n := e.suppressed
	e.logged, e.suppressed = now, 0
	return level, n, true
}

// peerKey names a peer by its id: raft passes a raft.Server on some lines
// and the bare id on others.
func peerKey(v any) string {
	if s, ok := v.(raft.Server); ok {
		return string(s.ID)
	}
	return fmt.Sprint(v)
}
