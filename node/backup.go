package node

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/node/store"
)

// A backup is one tar file: consistent copies of the store (node.db, still
// sealed) and of the ledger (ledger.db), the node's certificate and CA
// certificate, its TLS key sealed under the store's data key, the API
// token hashes, and last a manifest with the SHA-256 of every part. The
// copies are bbolt's online copies (one read transaction each), so a
// running node takes them through its operator socket while it imports and
// publishes. The raft log is left out: a restored node joins again and
// catches up. See docs/operator.md, "Backups".

// BackupFormat is the archive's format version; Restore refuses others.
const BackupFormat = 1

// The parts of a backup, in the order they are written. The manifest is
// last because it holds the others' hashes.
const (
	partStore    = "node.db"
	partLedger   = "ledger.db"
	partCert     = "tls/" + cluster.NodeCertFile
	partCA       = "tls/" + cluster.CACertFile
	partKey      = "tls/" + cluster.NodeKeyFile + ".sealed"
	partTokens   = api.TokenFile
	partManifest = "MANIFEST.json"
)

// keyAside names the TLS key sealed under the store's data key.
const keyAside = "backup tls node key"

// maxManifest bounds the manifest Restore reads.
const maxManifest = 1 << 20

// BackupManifest describes a backup: whose, as of when, and the length and
// SHA-256 of every part.
type BackupManifest struct {
	Format     int       `json:"format"`
	Created    time.Time `json:"created"`
	Version    string    `json:"roundtable_version"`
	Partner    string    `json:"partner"`
	Consortium string    `json:"consortium_id"`
	// Applied, TreeSize and Root describe the ledger copy.
	Applied  uint64 `json:"applied_index"`
	TreeSize int64  `json:"tree_size"`
	Root     string `json:"root"`
	// Cases is the number of cases in the store copy; State the names in
	// its key/value area (pending-release: a release in flight).
	Cases int          `json:"cases"`
	State []string     `json:"state,omitempty"`
	Parts []BackupPart `json:"parts"`
}

// BackupPart is one file of a backup.
type BackupPart struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Backup writes a backup of this running node to w. A read replica holds
// nothing that the ledger does not: start a new one instead.
func (n *Node) Backup(ctx context.Context, w io.Writer) (BackupManifest, error) {
	if n.st == nil {
		return BackupManifest{}, fmt.Errorf("%w: a read replica holds no records and nothing the other nodes lack; start a new replica instead of restoring one", api.ErrNotPartner)
	}
	return writeBackup(ctx, w, n.cfg.DataDir, n.st, n.ledger.FSM().Copy)
}

// BackupStopped writes a backup of the node in dir, which must not be
// running: its store and ledger are opened read-only.
func BackupStopped(ctx context.Context, dir string, passphrase []byte, w io.Writer) (BackupManifest, error) {
	st, err := store.OpenReadOnly(dir, passphrase)
	if err != nil {
		return BackupManifest{}, err
	}
	defer st.Close()
	copyLedger := func(fn cluster.CopyFunc) error { return cluster.CopyLedgerFile(ledgerDir(dir), fn) }
	return writeBackup(ctx, w, dir, st, copyLedger)
}

// ledgerDir is where the ledger's state and pin live in a data dir.
func ledgerDir(dataDir string) string { return filepath.Join(dataDir, "ledger", "ledger") }

// writeBackup writes the archive: the store first (what cannot be had from
// anywhere else), then the ledger, the TLS files, the tokens and the
// manifest.
func writeBackup(ctx context.Context, w io.Writer, dir string, st *store.Store, copyLedger func(cluster.CopyFunc) error) (BackupManifest, error) {
	b := &backupWriter{tw: tar.NewWriter(w), now: time.Now().UTC()}
	b.m = BackupManifest{Format: BackupFormat, Created: b.now, Version: Version(), Partner: st.Partner()}
	err := st.Copy(func(info store.CopyInfo, write func(io.Writer) (int64, error)) error {
		b.m.Cases, b.m.State = info.Cases, info.State
		return b.part(partStore, info.Bytes, write)
	})
	if err != nil {
		return b.m, err
	}
	if err := ctx.Err(); err != nil {
		return b.m, err
	}
	err = copyLedger(func(c cluster.LedgerCopy, write func(io.Writer) (int64, error)) error {
		b.m.Consortium, b.m.Applied, b.m.TreeSize, b.m.Root = c.Consortium, c.Applied, c.TreeSize, c.Root
		return b.part(partLedger, c.Bytes, write)
	})
	if err != nil {
		return b.m, err
	}
	if err := b.files(dir, st); err != nil {
		return b.m, err
	}
	manifest, err := json.MarshalIndent(b.m, "", "  ")
	if err != nil {
		return b.m, err
	}
	if err := b.bytes(partManifest, manifest); err != nil {
		return b.m, err
	}
	if err := b.tw.Close(); err != nil {
		return b.m, fmt.Errorf("backup: %w", err)
	}
	return b.m, nil
}

// files adds the node's certificate files and token hashes, those that
// exist; the TLS key is sealed under the store's data key.
func (b *backupWriter) files(dir string, st *store.Store) error {
	for _, f := range []struct{ part, path string }{
		{partCert, filepath.Join(dir, TLSDir, cluster.NodeCertFile)},
		{partCA, filepath.Join(dir, TLSDir, cluster.CACertFile)},
		{partKey, filepath.Join(dir, TLSDir, cluster.NodeKeyFile)},
		{partTokens, filepath.Join(dir, api.TokenFile)},
	} {
		data, err := os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if f.part == partKey {
			if data, err = st.SealAside(keyAside, data); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
		}
		if err := b.bytes(f.part, data); err != nil {
			return err
		}
	}
	return nil
}

type backupWriter struct {
	tw  *tar.Writer
	now time.Time
	m   BackupManifest
}

// part writes one part of size bytes and records its hash.
func (b *backupWriter) part(name string, size int64, write func(io.Writer) (int64, error)) error {
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o600, ModTime: b.now, Format: tar.FormatPAX}
	if err := b.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup %s: %w", name, err)
	}
	h := sha256.New()
	n, err := write(io.MultiWriter(b.tw, h))
	if err != nil {
		return fmt.Errorf("backup %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("backup %s: wrote %d bytes, expected %d", name, n, size)
	}
	b.m.Parts = append(b.m.Parts, BackupPart{Name: name, Bytes: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

func (b *backupWriter) bytes(name string, data []byte) error {
	return b.part(name, int64(len(data)), func(w io.Writer) (int64, error) {
		n, err := w.Write(data)
		return int64(n), err
	})
}

// BackupPath is where the operator socket serves a backup (GET).
const BackupPath = "/local/backup"

// localHandler serves the node's maintenance on the operator socket only.
func (n *Node) localHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BackupPath, func(w http.ResponseWriter, r *http.Request) {
		lw := &lazyWriter{w: w}
		m, err := n.Backup(r.Context(), lw)
		if err != nil {
			n.log.Error("backup failed", "err", err)
			if !lw.started {
				status := http.StatusInternalServerError
				if errors.Is(err, api.ErrNotPartner) {
					status = http.StatusConflict
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: "backup failed", Detail: err.Error()})
				return
			}
			// Half an archive was sent: cut the connection so the client
			// sees a truncated file, never a complete-looking one.
			panic(http.ErrAbortHandler)
		}
		n.log.Info("backup taken", "cases", m.Cases, "applied_index", m.Applied, "tree_size", m.TreeSize)
	})
	return mux
}

// lazyWriter sets the archive's headers on the first write, so an error
// before any byte can still be answered as JSON.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/x-tar")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}
