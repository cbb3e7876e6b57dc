// Command roundtable is the one binary of the roundtable statistics
// exchange: a partner's node, the coordinator's and researcher's tools, and
// a demo region. It is thin: flags in, package calls out.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"roundtable/node"
	"roundtable/node/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "roundtable:", explain(err))
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// explain is the error as printed: with what to do added where the
// error alone does not say it.
func explain(err error) string {
	if hint, ok := client.UntrustedCertificate(err); ok {
		return err.Error() + "\n" + hint
	}
	return err.Error()
}

// exitCoder lets a command choose its exit status.
type exitCoder interface{ ExitCode() int }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "roundtable",
		Short: "Privacy-preserving regional statistics exchange for anti-trafficking work",
		Long: `roundtable lets partner NGOs keep their case records local and encrypted, and
publish only differentially private, signed aggregates to a ledger that every
partner node replicates. Coordinators compare regional trends with error bars;
researchers pull the published numbers and verify they were never altered.

The passphrase of a node's store comes from ROUNDTABLE_PASSPHRASE or
--passphrase-file.`,
		Version:       node.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newInitCmd(), newSynthCmd(), newImportCmd(), newCasesCmd(), newRekeyCmd(),
	)
	root.AddCommand(extraCommands()...)
	root.AddCommand(newBackupCmd(), newRestoreCmd())
	return root
}
