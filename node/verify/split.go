package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"roundtable/cluster"
)

// A server that shows one researcher a different ledger from everyone else
// (a split view) passes every check a single-server run can make: its
// checkpoint is signed, its proofs verify. Certificate Transparency's answer
// is gossip: compare what several servers (witnesses) show. RunAll verifies
// each server on its own and then requires every pair of their checkpoints
// to lie on one history: equal roots at equal sizes, and a consistency
// proof from the smaller tree to the larger one, asked of the server that
// shows the larger tree.

// RunAll verifies every server in servers with opts (each with its own state
// file unless opts.StateFile is set, when the server's host is added to its
// name) and then compares their checkpoints pairwise. Reports are returned
// in the order of servers. A split view is fatal: the error wraps
// ErrSplitView, and both signed notes are written beside the first state
// file as evidence.
func RunAll(ctx context.Context, opts Options, servers []string) ([]Report, error) {
	if len(servers) == 0 {
		return nil, fmt.Errorf("verify: no server given")
	}
	reports := make([]Report, len(servers))
	seen := make([]SavedCheckpoint, len(servers))
	clients := make([]*client, len(servers))
	for i, s := range servers {
		o := opts
		o.Server = s
		if opts.StateFile != "" && len(servers) > 1 {
			o.StateFile = perServerState(opts.StateFile, s)
		}
		rep, cp, _, err := run(ctx, o, false)
		if err != nil && !slices.Contains(rep.Failures, err.Error()) {
			rep.Failures = append(rep.Failures, err.Error()) // so its report reads FAILED
		}
		reports[i] = rep
		if err != nil {
			return reports, fmt.Errorf("server %s: %w", s, err)
		}
		seen[i] = cp
		hc := o.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: defaultTimeout}
		}
		clients[i] = &client{base: strings.TrimSuffix(s, "/"), token: o.Token, http: hc, progress: o.Progress}
	}
	for i := range servers {
		for j := i + 1; j < len(servers); j++ {
			if err := compareViews(ctx, seen[i], seen[j], clients[i], clients[j]); err != nil {
				ev := writeSplitEvidence(opts.StateFile, servers[i], servers[j], seen[i], seen[j], err)
				if ev != "" {
					err = fmt.Errorf("%w; both signed notes are saved in %s", err, ev)
				}
				return reports, err
			}
		}
	}
	return reports, nil
}

// compareViews checks that checkpoints a (from ca's server) and b (from
// cb's) lie on one history.
func compareViews(ctx context.Context, a, b SavedCheckpoint, ca, cb *client) error {
	if a.Origin != b.Origin {
		return fmt.Errorf("%w: %s serves ledger %q, %s serves %q", ErrSplitView, ca.base, a.Origin, cb.base, b.Origin)
	}
	if a.Size > b.Size {
		a, b, ca, cb = b, a, cb, ca
	}
	if a.Size == b.Size {
		if a.root() != b.root() {
			return fmt.Errorf("%w: %s and %s both show a regional checkpoint of size %d, with roots %s and %s: the ledger has two histories",
				ErrSplitView, ca.base, cb.base, a.Size, a.rootB64(), b.rootB64())
		}
		return nil
	}
	p, err := cb.consistency(ctx, a.Size, b.Size)
	if err != nil {
		return fmt.Errorf("compare %s with %s: %w", ca.base, cb.base, err)
	}
	if err := cluster.VerifyConsistency(toHashes(p.Hashes), a.Size, a.root(), b.Size, b.root()); err != nil {
		return fmt.Errorf("%w: %s's checkpoint of size %d (root %s) is not extended by %s's checkpoint of size %d (root %s): %v",
			ErrSplitView, ca.base, a.Size, a.rootB64(), cb.base, b.Size, b.rootB64(), err)
	}
	return nil
}

// perServerState names a per-server state file next to base.
func perServerState(base, server string) string {
	host := strings.NewReplacer("http://", "", "https://", "", ":", "_", "/", "_").Replace(server)
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-" + host + ext
}

// writeSplitEvidence keeps both signed notes, which together prove the
// split; it returns "" if nothing could be written.
func writeSplitEvidence(statePath, s1, s2 string, a, b SavedCheckpoint, reason error) string {
	dir := filepath.Dir(statePath)
	if statePath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config", "roundtable")
	}
	ev := filepath.Join(dir, "split-view-evidence.json")
	data, err := json.MarshalIndent(map[string]any{
		"reason": reason.Error(),
		"views":  []map[string]any{{"server": s1, "checkpoint": a}, {"server": s2, "checkpoint": b}},
	}, "", "  ")
	if err != nil || os.MkdirAll(dir, 0o700) != nil || writeAtomic(ev, data) != nil {
		return ""
	}
	return ev
}

// WriteComparison prints the report of every server that verified, then
// one line for the comparison and the overall result: FAILED if err (from
// RunAll) is non-nil, OK otherwise.
func WriteComparison(w io.Writer, reps []Report, servers []string, err error) error {
	for _, r := range reps {
		if r.Server == "" || r.Root == "" {
			continue
		}
		if werr := r.Write(w, nil); werr != nil {
			return werr
		}
		if _, werr := io.WriteString(w, "\n"); werr != nil {
			return werr
		}
	}
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "FAILED:      %s\nresult:      FAILED (%d servers compared)\n", err, len(servers))
	} else {
		fmt.Fprintf(&b, "views:       %d servers show one history\nresult:      OK\n", len(servers))
	}
	_, werr := io.WriteString(w, b.String())
	return werr
}
