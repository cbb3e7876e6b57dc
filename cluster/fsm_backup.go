package cluster

import (
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// Backups of the ledger. A node's ledger is a bbolt file that commits every
// batch, so a consistent copy is bbolt's online copy: one read transaction
// written out with Tx.WriteTo, exactly what a raft snapshot does, while
// applies go on. The raft log is not copied: a restored node joins again
// and catches up from the others (entries at or below the copy's applied
// index are skipped, a newer snapshot is checked before it is installed).

// LedgerCopy describes a copy of the ledger file.
type LedgerCopy struct {
	Bytes      int64  // the length of the copy
	Applied    uint64 // the raft index the copy is as of
	Consortium string // the consortium id it holds ("" before genesis)
	TreeSize   int64  // leaves in its Merkle log
	Root       string // hex RFC 6962 root of that tree
}

// CopyFunc is called inside one read transaction with a description of
// the ledger as that transaction sees it and a function that writes
// exactly c.Bytes bytes of it to w. The write function is valid only until
// the CopyFunc returns.
type CopyFunc func(c LedgerCopy, write func(w io.Writer) (int64, error)) error

// Copy takes a consistent copy of the running ledger: fn writes it while
// applies go on. Restore waits until it is done.
func (f *FSM) Copy(fn CopyFunc) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return fmt.Errorf("copy ledger: the ledger is closed")
	}
	return f.db.View(func(tx *bbolt.Tx) error { return copyLedger(tx, fn) })
}

// CopyLedgerFile takes a consistent copy of the ledger kept in dir (a
// node's ledger directory, DATA-DIR/ledger/ledger) by a node that is not
// running; the file is opened read-only.
func CopyLedgerFile(dir string, fn CopyFunc) error {
	db, err := bbolt.Open(filepath.Join(dir, LedgerFile), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("copy ledger %s: %w (is a node still running on it?)", dir, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error { return copyLedger(tx, fn) })
}

func copyLedger(tx *bbolt.Tx, fn CopyFunc) error {
	c, err := describeLedger(tx)
	if err != nil {
		return fmt.Errorf("copy ledger: %w", err)
	}
	return fn(c, tx.WriteTo)
}

func describeLedger(tx *bbolt.Tx) (LedgerCopy, error) {
	c := LedgerCopy{Bytes: tx.Size()}
	var err error
	if c.Applied, err = readApplied(tx); err != nil {
		return c, err
	}
	if m := bucket(tx, bucketMeta); m != nil {
		c.Consortium = string(m.Get([]byte(keyConsortiumID)))
	}
	head, err := TreeHead(tx)
	if err != nil {
		return c, err
	}
	c.TreeSize, c.Root = head.N, hex.EncodeToString(head.Hash[:])
	return c, nil
}

// CheckLedgerFile checks a ledger file brought back from a backup before a
// node uses it, as a snapshot from a peer is checked (DESIGN.md, "Snapshots
// are checked before they are installed"): it must belong to consortium,
// its governance must replay from the genesis it stores, and every
// reservation, release, spend, Merkle leaf and checkpoint must check out.
// A backup is the operator's own file, but it has been out of the node's
// hands. The file is opened read-only; the governance replay's scratch
// file goes beside it and is removed.
func CheckLedgerFile(path, consortium string) (LedgerCopy, error) {
	if err := ValidConsortiumID(consortium); err != nil {
		return LedgerCopy{}, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return LedgerCopy{}, fmt.Errorf("check ledger %s: %w", path, err)
	}
	defer db.Close()
	var c LedgerCopy
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		if c, err = describeLedger(tx); err != nil {
			return err
		}
		basis := restoreBasis{consortium: consortium, head: tlog.Tree{Hash: emptyTreeHash()}, scratchDir: filepath.Dir(path)}
		return checkSnapshot(tx, c.Applied, basis)
	})
	if err != nil {
		return c, fmt.Errorf("check ledger %s: %w", path, err)
	}
	return c, nil
}

// WritePin pins the ledger kept in dir to consortium, as the first start
// of a node does (PinConsortium); a restored node belongs to the
// consortium its backup did.
func WritePin(dir, consortium string) error {
	if err := ValidConsortiumID(consortium); err != nil {
		return err
	}
	return writePin(filepath.Join(dir, PinFile), consortium)
}
