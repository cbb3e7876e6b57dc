package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// raft v1.8.0 writes an InstallSnapshot into its snapshot store before it
// asks the FSM to restore it, and keeps it there when the FSM refuses. A
// refused snapshot left there would be the "latest" one: raft would try it
// first on every start (and, with nothing older, fail to start), and would
// send it to followers if this node led. So once the FSM has refused a
// snapshot and kept its own copy as evidence, the node deletes raft's.

// refusedSnapshotLoop purges refused snapshots from raft's store whenever
// the FSM refuses one.
func (n *Node) refusedSnapshotLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.fsm.SnapshotRefused():
			if err := n.purgeRefusedSnapshots(); err != nil {
				n.log.Error("could not remove a refused snapshot from raft's snapshot store", "err", err)
			}
		}
	}
}

// purgeRefusedSnapshots deletes from raft's snapshot store every snapshot
// that the FSM has refused: one newer than the ledger (so never installed)
// whose index has evidence of a refusal beside the ledger.
func (n *Node) purgeRefusedSnapshots() error {
	list, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	applied := n.fsm.AppliedIndex()
	for _, meta := range list {
		index, err := n.snapshotIndex(meta.ID)
		if err != nil || index <= applied {
			continue // unreadable ones are raft's to judge; older ones are fine
		}
		evidence := filepath.Join(n.fsm.dir, fmt.Sprintf("%s%d.db", RejectedSnapshotPrefix, index))
		if _, err := os.Stat(evidence); err != nil {
			continue
		}
		// FileSnapshotStore keeps each snapshot in snapshots/<id>; it has
		// no delete of its own.
		dir := filepath.Join(n.cfg.DataDir, "raft", "snapshots", meta.ID)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove refused snapshot %s: %w", meta.ID, err)
		}
		n.log.Warn("removed a refused snapshot from raft's snapshot store", "id", meta.ID, "snapshot_index", index, "evidence", evidence)
	}
	return nil
}

// checkStoredSnapshots checks, before raft starts, every stored snapshot
// newer than the ledger (raft restores the newest at start) and purges the
// refused ones, so a refused snapshot can never keep the node from
// starting: with nothing older to fall back on, raft v1.8.0 would fail to
// start at all.
func (n *Node) checkStoredSnapshots() error {
	list, err := n.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, meta := range list {
		if index, err := n.snapshotIndex(meta.ID); err != nil || index <= n.fsm.AppliedIndex() {
			continue
		}
		_, rc, err := n.snaps.Open(meta.ID)
		if err != nil {
			continue
		}
		if err := n.fsm.CheckSnapshot(rc); err != nil {
			n.log.Error("a stored snapshot was refused before start", "id", meta.ID, "err", err)
		}
	}
	return n.purgeRefusedSnapshots()
}

// snapshotIndex reads the applied index from a stored snapshot's header.
func (n *Node) snapshotIndex(id string) (uint64, error) {
	_, rc, err := n.snaps.Open(id)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var header [24]byte
	if _, err := io.ReadFull(rc, header[:]); err != nil {
		return 0, err
	}
	if string(header[:8]) != snapshotMagic {
		return 0, errors.New("not a ledger snapshot")
	}
	return binary.BigEndian.Uint64(header[8:16]), nil
}
