package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"roundtable/node/demo"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	c := &cobra.Command{
		Use:   "demo [--http ADDR] [--check]",
		Short: "Run a whole region on this machine: four partners, a researcher replica, the dashboard",
		Long: `demo makes a regional CA and certificates, starts partner nodes for AL, BA, XK
and RS and a researcher read replica on loopback, fills each partner's store
with synthetic records for 2019–2024, publishes one release per partner and year
(the default cadence) through the ledger, and serves the dashboard. It prints the URLs and one token per role,
and stops cleanly on Ctrl-C.

With --check it does the same without waiting: it verifies the ledger as a
researcher would (from the genesis, running the 'roundtable verify --genesis'
command it prints), queries a regional series, prints a summary and exits 0,
or non-zero with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			o.RunCLI = func(ctx context.Context, args []string, out io.Writer) error {
				root := newRoot()
				root.SetArgs(args)
				root.SetOut(out)
				root.SetErr(io.Discard) // progress lines; the report goes to out
				return root.ExecuteContext(ctx)
			}
			return demo.Run(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.HTTPAddr, "http", "127.0.0.1:8080", "dashboard address (the Serbian partner node, with operator functions)")
	c.Flags().BoolVar(&o.Check, "check", false, "run headless, verify and exit")
	c.Flags().StringVar(&o.Dir, "dir", "", "keep the region's files here (default: a temporary directory, removed on exit)")
	c.Flags().IntVar(&o.From, "from", 2019, "first year of synthetic data")
	c.Flags().IntVar(&o.To, "to", 2024, "last year of synthetic data")
	return c
}
