package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// What Restore does with a snapshot that fails its content check
// (fsm_restore_check.go): it returns an error without touching the ledger
// file, so the node keeps its state; it keeps the snapshot as evidence
// beside the ledger (rejected-snapshot-<index>.db and .reason.txt); it logs
// the refusal at ERROR once per snapshot; and it remembers the refusal for
// /v1/health and /metrics (SnapshotRefusal). Raft v1.8.0 answers the
// leader's InstallSnapshot with the error and leaves its own state as it
// was; a malicious leader may send the same snapshot again and is refused
// again, and an honest leader later sends entries or a good snapshot.

// RejectedSnapshotPrefix starts the names of the evidence files of refused
// snapshots in the ledger's directory.
const RejectedSnapshotPrefix = "rejected-snapshot-"

// SnapshotRefusal describes the latest snapshot this node refused.
type SnapshotRefusal struct {
	Index    uint64 `json:"index"`    // the applied index the snapshot claimed
	Reason   string `json:"reason"`   // what the check found
	Evidence string `json:"evidence"` // the refused file, kept for inspection
	Count    uint64 `json:"count"`    // snapshots refused since this node started (or found as evidence at start)
}

// snapshotRefusals is the FSM's record of refusals.
type snapshotRefusals struct {
	mu     sync.Mutex
	latest *SnapshotRefusal
	logged map[string]bool // index+reason already logged at ERROR; lookups only
	signal chan struct{}   // see SnapshotRefused
}

// SnapshotRefused signals after Restore refused a snapshot, so the node
// can drop the copy raft keeps in its snapshot store. One signal may stand
// for several refusals.
func (f *FSM) SnapshotRefused() <-chan struct{} { return f.refusedSignal() }

func (f *FSM) refusedSignal() chan struct{} {
	f.refusals.mu.Lock()
	defer f.refusals.mu.Unlock()
	if f.refusals.signal == nil {
		f.refusals.signal = make(chan struct{}, 1)
	}
	return f.refusals.signal
}

// SnapshotRefusal returns the latest refused snapshot, or nil if this node
// has refused none (and no evidence of one is in its ledger directory).
func (f *FSM) SnapshotRefusal() *SnapshotRefusal {
	f.refusals.mu.Lock()
	defer f.refusals.mu.Unlock()
	if f.refusals.latest == nil {
		return nil
	}
	r := *f.refusals.latest
	return &r
}

// loadRefusals finds evidence of snapshots refused before a restart, so
// health keeps reporting them until the operator has looked at them and
// moved the files away.
func (f *FSM) loadRefusals() {
	matches, _ := filepath.Glob(filepath.Join(f.dir, RejectedSnapshotPrefix+"*.reason.txt"))
	if len(matches) == 0 {
		return
	}
	sort.Slice(matches, func(i, j int) bool { return refusalIndex(matches[i]) < refusalIndex(matches[j]) })
	last := matches[len(matches)-1]
	reason, _ := os.ReadFile(last)
	f.refusals.latest = &SnapshotRefusal{
		Index:    refusalIndex(last),
		Reason:   strings.TrimSpace(string(reason)),
		Evidence: strings.TrimSuffix(last, ".reason.txt") + ".db",
		Count:    uint64(len(matches)),
	}
}

func refusalIndex(path string) uint64 {
	s := strings.TrimPrefix(filepath.Base(path), RejectedSnapshotPrefix)
	s, _, _ = strings.Cut(s, ".")
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// checkRestoreFile checks the written snapshot file at path against what
// this node holds. It opens the file read-only and does not change it.
func (f *FSM) checkRestoreFile(path string, snapIndex uint64) error {
	basis, err := f.restoreBasis()
	if err != nil {
		return err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("snapshot is not a bbolt file: %w", err)
	}
	defer db.Close()
	start := time.Now()
	err = db.View(func(tx *bbolt.Tx) error { return checkSnapshot(tx, snapIndex, basis) })
	if err == nil {
		f.logger.Info("snapshot checked", "snapshot_index", snapIndex, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// restoreBasis gathers what this node trusts: its pinned consortium (or,
// unpinned, its own ledger's), applied index, tree head and checkpoints.
func (f *FSM) restoreBasis() (restoreBasis, error) {
	b := restoreBasis{consortium: f.Pinned(), applied: f.applied.Load(), scratchDir: f.dir}
	err := f.view(func(tx *bbolt.Tx) error {
		if b.consortium == "" {
			b.consortium = string(bucket(tx, bucketMeta).Get([]byte(keyConsortiumID)))
		}
		var err error
		if b.head, err = TreeHead(tx); err != nil {
			return err
		}
		return bucket(tx, bucketCheckpoints).ForEach(func(k, _ []byte) error {
			cp := bucket(tx, bucketCheckpoints).Bucket(k)
			if cp == nil || len(k) != 8 {
				return fmt.Errorf("ledger corrupt: checkpoint key %x", k)
			}
			_, tree, err := parseCheckpoint(cp.Get([]byte(keyText)))
			if err != nil {
				return fmt.Errorf("ledger corrupt: checkpoint %d: %w", binary.BigEndian.Uint64(k), err)
			}
			b.checkpoints = append(b.checkpoints, tree)
			return nil
		})
	})
	if err != nil && f.Err() != nil {
		// A failed ledger may not be readable; what it saw cannot be
		// trusted either. The pinned consortium still must match.
		return restoreBasis{consortium: f.Pinned(), scratchDir: f.dir, head: tlog.Tree{Hash: tlog.Hash(emptyTreeHash())}}, nil
	}
	if err != nil {
		return b, fmt.Errorf("restore ledger: read this node's state: %w", err)
	}
	return b, nil
}

// emptyTreeHash is RFC 6962's hash of the empty tree, SHA-256("").
func emptyTreeHash() tlog.Hash {
	h, _ := tlog.TreeHash(0, memHashes(nil))
	return h
}

// refuseSnapshot keeps the refused file at tmp as evidence, records the
// refusal and logs it, once per (index, reason), at ERROR.
func (f *FSM) refuseSnapshot(tmp string, snapIndex uint64, reason error) error {
	base := filepath.Join(f.dir, fmt.Sprintf("%s%d", RejectedSnapshotPrefix, snapIndex))
	evidence := base + ".db"
	if _, err := os.Stat(evidence); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, evidence); err != nil {
			f.logger.Error("could not keep the refused snapshot as evidence", "path", tmp, "err", err)
			evidence = ""
		} else {
			_ = os.WriteFile(base+".reason.txt", []byte(reason.Error()+"\n"), 0o600)
		}
	} // else: the same index was refused before and its first copy is kept
	key := fmt.Sprintf("%d %s", snapIndex, reason)
	f.refusals.mu.Lock()
	count := uint64(1)
	if f.refusals.latest != nil {
		count = f.refusals.latest.Count + 1
	}
	f.refusals.latest = &SnapshotRefusal{Index: snapIndex, Reason: reason.Error(), Evidence: evidence, Count: count}
	first := !f.refusals.logged[key]
	if f.refusals.logged == nil {
		f.refusals.logged = map[string]bool{}
	}
	f.refusals.logged[key] = true
	f.refusals.mu.Unlock()
	select {
	case f.refusedSignal() <- struct{}{}:
	default:
	}
	if first {
		f.logger.Error("snapshot REFUSED: its content does not check out; the ledger is unchanged and the file is kept as evidence",
			"snapshot_index", snapIndex, "reason", reason, "evidence", evidence)
	} else {
		f.logger.Warn("snapshot refused again", "snapshot_index", snapIndex)
	}
	return fmt.Errorf("restore ledger: snapshot at index %d refused: %w", snapIndex, reason)
}
