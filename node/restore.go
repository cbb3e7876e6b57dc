package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"roundtable/cluster"
	"roundtable/node/store"
)

// ErrBackupDamaged is returned when a backup file is not one Backup wrote
// in full: a part missing, extra, out of order, or whose hash or length
// differs from the manifest's.
var ErrBackupDamaged = errors.New("backup file is damaged or incomplete")

// VerifyBackup reads a whole backup and checks every part against the
// manifest. It needs no passphrase and checks nothing sealed.
func VerifyBackup(r io.Reader) (BackupManifest, error) {
	return readBackup(r, func(string) (io.Writer, error) { return io.Discard, nil })
}

// readBackup reads the archive, giving each part's bytes to the writer
// sink returns for it, and checks the parts against the manifest, which
// must come last.
func readBackup(r io.Reader, sink func(part string) (io.Writer, error)) (BackupManifest, error) {
	tr := tar.NewReader(r)
	type seen struct {
		bytes int64
		hash  string
	}
	got := map[string]seen{}
	var order []string
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return BackupManifest{}, fmt.Errorf("%w: %v", ErrBackupDamaged, err)
		}
		name := hdr.Name
		switch {
		case manifest != nil:
			return BackupManifest{}, fmt.Errorf("%w: %q after the manifest", ErrBackupDamaged, name)
		case hdr.Typeflag != tar.TypeReg:
			return BackupManifest{}, fmt.Errorf("%w: %q is not a regular file", ErrBackupDamaged, name)
		case name == partManifest:
			if manifest, err = io.ReadAll(io.LimitReader(tr, maxManifest+1)); err != nil || len(manifest) > maxManifest {
				return BackupManifest{}, fmt.Errorf("%w: manifest unreadable or over %d bytes (%v)", ErrBackupDamaged, maxManifest, err)
			}
			continue
		case !slices.Contains(backupParts, name):
			return BackupManifest{}, fmt.Errorf("%w: unexpected part %q", ErrBackupDamaged, name)
		case slices.Contains(order, name):
			return BackupManifest{}, fmt.Errorf("%w: part %q twice", ErrBackupDamaged, name)
		}
		w, err := sink(name)
		if err != nil {
			return BackupManifest{}, err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), tr)
		if err != nil {
			return BackupManifest{}, fmt.Errorf("%w: part %q: %v", ErrBackupDamaged, name, err)
		}
		got[name] = seen{n, hex.EncodeToString(h.Sum(nil))}
		order = append(order, name)
	}
	if manifest == nil {
		return BackupManifest{}, fmt.Errorf("%w: no manifest at the end (was the backup cut short?)", ErrBackupDamaged)
	}
	var m BackupManifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest: %v", ErrBackupDamaged, err)
	}
	if m.Format != BackupFormat {
		return m, fmt.Errorf("backup format %d is not supported by this roundtable (it reads format %d)", m.Format, BackupFormat)
	}
	if len(m.Parts) != len(order) {
		return m, fmt.Errorf("%w: the manifest lists %d parts, the file holds %d", ErrBackupDamaged, len(m.Parts), len(order))
	}
	for i, p := range m.Parts {
		g := got[p.Name]
		if order[i] != p.Name || g.bytes != p.Bytes || g.hash != p.SHA256 {
			return m, fmt.Errorf("%w: part %q: %d bytes with SHA-256 %s, the manifest says %d bytes with %s",
				ErrBackupDamaged, p.Name, g.bytes, g.hash, p.Bytes, p.SHA256)
		}
	}
	for _, need := range []string{partStore, partLedger} {
		if _, ok := got[need]; !ok {
			return m, fmt.Errorf("%w: no %s", ErrBackupDamaged, need)
		}
	}
	return m, nil
}

// backupParts are the names a backup may hold besides the manifest.
var backupParts = []string{partStore, partLedger, partCert, partCA, partKey, partTokens}

// Restore brings the backup read from r back into dir, which must be empty
// or not exist, for a node that will join its region again (serve --join
// ADDR --genesis FILE) and catch up. It checks every part against the
// manifest, opens the store with passphrase (store.ErrWrongPassphrase if it
// does not open it), unseals the TLS key, checks the certificate names the
// store's partner, and checks the ledger as a snapshot from a peer is
// checked. On any error it leaves dir as it found it (empty or absent).
func Restore(ctx context.Context, r io.Reader, dir string, passphrase []byte) (BackupManifest, error) {
	created, err := emptyDir(dir)
	if err != nil {
		return BackupManifest{}, err
	}
	stage := filepath.Join(dir, ".restore")
	m, err := restoreInto(ctx, r, stage, passphrase)
	if err == nil {
		err = moveAll(stage, dir)
	}
	if err != nil {
		// dir was empty: whatever is in it now is this restore's.
		if entries, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		if created {
			_ = os.Remove(dir)
		}
		return m, fmt.Errorf("restore into %s: %w", dir, err)
	}
	return m, nil
}

// emptyDir creates dir, or checks that an existing one is empty; created
// says whether it made it.
func emptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("restore: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return false, fmt.Errorf("restore: %s is not empty (it holds %s): restore into a new directory, never over a node's data", dir, entries[0].Name())
	}
	return false, nil
}

// restoreInto writes and checks the backup's files in stage, laid out as
// a data dir.
func restoreInto(ctx context.Context, r io.Reader, stage string, passphrase []byte) (BackupManifest, error) {
	if err := os.MkdirAll(filepath.Join(stage, TLSDir), 0o700); err != nil {
		return BackupManifest{}, err
	}
	var open []*os.File
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	m, err := readBackup(r, func(part string) (io.Writer, error) {
		f, err := os.OpenFile(filepath.Join(stage, filepath.FromSlash(part)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		open = append(open, f)
		return f, nil
	})
	if err != nil {
		return m, err
	}
	for _, f := range open {
		if err := f.Sync(); err != nil {
			return m, err
		}
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if err := restoreStore(stage, m, passphrase); err != nil {
		return m, err
	}
	if err := checkRestoredTLS(stage, m); err != nil {
		return m, err
	}
	return m, restoreLedger(stage, m)
}

// restoreStore opens the restored store with the passphrase and unseals
// the TLS key beside it.
func restoreStore(stage string, m BackupManifest, passphrase []byte) error {
	st, err := store.Open(stage, passphrase)
	if errors.Is(err, store.ErrWrongPassphrase) {
		return fmt.Errorf("the backup's store does not open with this passphrase (the store's passphrase when the backup was taken): %w", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Partner() != m.Partner {
		return fmt.Errorf("%w: the store is partner %s's, the manifest says %s", ErrBackupDamaged, st.Partner(), m.Partner)
	}
	if n, err := st.Count(); err != nil || n != m.Cases {
		return fmt.Errorf("%w: the store holds %d cases, the manifest says %d (%v)", ErrBackupDamaged, n, m.Cases, err)
	}
	sealedPath := filepath.Join(stage, filepath.FromSlash(partKey))
	sealed, err := os.ReadFile(sealedPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	key, err := st.OpenAside(keyAside, sealed)
	if err != nil {
		return fmt.Errorf("%w: TLS key: %v", ErrBackupDamaged, err)
	}
	if err := writeSynced(filepath.Join(stage, TLSDir, cluster.NodeKeyFile), key); err != nil {
		return err
	}
	return os.Remove(sealedPath)
}

// checkRestoredTLS checks that the certificate, if the backup has one,
// loads with its key and names the store's partner.
func checkRestoredTLS(stage string, m BackupManifest) error {
	if _, err := os.Stat(filepath.Join(stage, TLSDir, cluster.NodeCertFile)); errors.Is(err, os.ErrNotExist) {
		return os.Remove(filepath.Join(stage, TLSDir))
	}
	t, err := cluster.LoadNodeTLS(filepath.Join(stage, TLSDir))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBackupDamaged, err)
	}
	if t.ID() != m.Partner {
		return fmt.Errorf("%w: the node certificate is for %s, the store is partner %s's", ErrBackupDamaged, t.ID(), m.Partner)
	}
	return nil
}

// restoreLedger puts the ledger copy where the node keeps it, checks it
// and pins the node to the backup's consortium.
func restoreLedger(stage string, m BackupManifest) error {
	if m.Consortium == "" {
		// Taken before the node first joined: the ledger is empty, and
		// the node receives it when it joins.
		return os.Remove(filepath.Join(stage, partLedger))
	}
	dir := ledgerDir(stage)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, cluster.LedgerFile)
	if err := os.Rename(filepath.Join(stage, partLedger), path); err != nil {
		return err
	}
	c, err := cluster.CheckLedgerFile(path, m.Consortium)
	if err != nil {
		return err
	}
	if c.Applied != m.Applied || c.Root != m.Root || c.TreeSize != m.TreeSize {
		return fmt.Errorf("%w: the ledger is at index %d with tree %d/%s, the manifest says %d with %d/%s",
			ErrBackupDamaged, c.Applied, c.TreeSize, c.Root, m.Applied, m.TreeSize, m.Root)
	}
	return cluster.WritePin(dir, m.Consortium)
}

// moveAll moves stage's entries into dir and removes stage.
func moveAll(stage, dir string) error {
	entries, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(stage); err != nil {
		return err
	}
	return syncPath(dir)
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
