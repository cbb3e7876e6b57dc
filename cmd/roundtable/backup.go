package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"roundtable/node"
	"roundtable/node/client"
)

func newBackupCmd() *cobra.Command {
	var dir, out string
	c := &cobra.Command{
		Use:   "backup --data-dir DIR --out FILE",
		Short: "Write a consistent, encrypted backup of a node, while it serves or stopped",
		Long: `backup writes one file holding a consistent copy of the node's store (node.db,
still encrypted: it opens only with the store's passphrase), of its ledger state,
its node certificate, its TLS key (sealed under the store's key) and its API
token hashes, with a manifest of their SHA-256 hashes. The raft log is not in
it: a restored node joins its region again and catches up.

While the node serves, the backup is taken through its operator socket
(DIR/admin.sock) with bbolt's online copy, while imports and releases go on;
no passphrase is needed. A stopped node's files are opened read-only, which
needs the passphrase. The file is checked against its manifest before backup
reports success. Bring it back with 'roundtable restore' (docs/operator.md,
section 9).`,
		Example: `  roundtable backup --data-dir ./rs --out rs-2024-06-30.rtbackup`,
		Args:    cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&out, "out", "", "the backup file to write (must not exist)")
	mustRequire(c, "data-dir", "out")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s exists; backup never overwrites a file: choose another --out", out)
		}
		partial := out + ".partial"
		f, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		ok := false
		defer func() {
			if !ok {
				f.Close()
				os.Remove(partial)
			}
		}()
		how, err := writeBackup(cmd, dir, *pf, f)
		if err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		m, err := verifyFile(partial)
		if err != nil {
			return fmt.Errorf("the backup just written does not check out: %w", err)
		}
		if err := os.Rename(partial, out); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		ok = true
		fmt.Fprintf(cmd.OutOrStdout(), "backup of partner %s written to %s (%s)\n", m.Partner, out, how)
		printManifest(cmd.OutOrStdout(), m)
		fmt.Fprintln(cmd.OutOrStdout(), "it opens only with the store's passphrase: keep the passphrase somewhere else than the backup")
		return nil
	}
	return c
}

// writeBackup takes the backup through the running node's operator socket,
// or from the stopped node's files, and says which.
func writeBackup(cmd *cobra.Command, dir, passFile string, w io.Writer) (string, error) {
	sock := filepath.Join(dir, node.AdminSock)
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		conn.Close()
		if _, err := client.NewLocal(sock).Backup(cmd.Context(), w); err != nil {
			return "", err
		}
		return "online, from the running node", nil
	}
	pass, err := readPassphrase(passFile)
	if err != nil {
		return "", fmt.Errorf("no node is serving %s, so its files are read directly, which needs the passphrase: %w", dir, err)
	}
	if _, err := node.BackupStopped(cmd.Context(), dir, pass, w); err != nil {
		return "", err
	}
	return "from the stopped node's files", nil
}

func verifyFile(path string) (node.BackupManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return node.BackupManifest{}, err
	}
	defer f.Close()
	return node.VerifyBackup(f)
}

func printManifest(w io.Writer, m node.BackupManifest) {
	fmt.Fprintf(w, "  taken %s by roundtable %s\n", m.Created.Format(time.RFC3339), m.Version)
	fmt.Fprintf(w, "  store: %d cases", m.Cases)
	if slices.Contains(m.State, "pending-release") {
		fmt.Fprint(w, ", a release in flight (resumed when the restored node runs)")
	}
	fmt.Fprintf(w, "\n  ledger: consortium %s, applied index %d, tree size %d, root %s\n", m.Consortium, m.Applied, m.TreeSize, m.Root)
	for _, p := range m.Parts {
		fmt.Fprintf(w, "  %-22s %12d bytes  sha256 %s\n", p.Name, p.Bytes, p.SHA256)
	}
}

func newRestoreCmd() *cobra.Command {
	var dir, from string
	c := &cobra.Command{
		Use:   "restore --from FILE --data-dir NEWDIR",
		Short: "Bring a backup back into a new data directory, ready to rejoin the region",
		Long: `restore unpacks a backup made by 'roundtable backup' into NEWDIR, which must be
empty or not exist. It checks every part against the manifest's SHA-256,
opens the store with the passphrase ($ROUNDTABLE_PASSPHRASE or
--passphrase-file: the passphrase of the store when the backup was taken),
unseals the node's TLS key, checks that the certificate names the store's
partner, and checks the ledger state the way a snapshot from another node is
checked. If anything fails, NEWDIR is left as it was.

Then start the node with --join and --genesis, as a joining partner does: it
joins its region again with the same certificate and catches up from the
others. Never run the old node and the restored one at the same time.`,
		Example: `  roundtable restore --from rs-2024-06-30.rtbackup --data-dir /var/lib/roundtable/rs
  roundtable serve --data-dir /var/lib/roundtable/rs --raft 0.0.0.0:7000 --join al.example.org:7000 --genesis genesis.json`,
		Args: cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.Flags().StringVar(&from, "from", "", "the backup file")
	c.Flags().StringVar(&dir, "data-dir", "", "the new data directory (empty or absent)")
	mustRequire(c, "from", "data-dir")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		pass, err := readPassphrase(*pf)
		if err != nil {
			return err
		}
		f, err := os.Open(from)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		m, err := node.Restore(cmd.Context(), f, dir, pass)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "restored partner %s's node into %s\n", m.Partner, dir)
		printManifest(cmd.OutOrStdout(), m)
		if _, err := os.Stat(filepath.Join(dir, node.TLSDir)); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(cmd.OutOrStdout(), "the backup holds no node certificate: put node.crt, node.key and ca.crt in %s\n", filepath.Join(dir, node.TLSDir))
		}
		fmt.Fprintf(cmd.OutOrStdout(), "next: start it with --join (any member's raft address) and --genesis, and it catches up:\n"+
			"  roundtable serve --data-dir %s --raft ADDR --join MEMBER:PORT --genesis genesis.json\n", dir)
		return nil
	}
	return c
}
