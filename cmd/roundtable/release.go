package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"roundtable/aggregate"
	"roundtable/node"
	"roundtable/node/client"
	"roundtable/privacy"
)

// localClient reaches the node serving dir through its operator socket.
func localClient(dir string) (*client.Client, error) {
	sock := filepath.Join(dir, node.AdminSock)
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("no node is serving %s: start it with 'roundtable serve --data-dir %s' first", dir, dir)
	}
	return client.NewLocal(sock), nil
}

func newPublishCmd() *cobra.Command {
	var dir, period string
	var indicators []string
	var epsilon float64
	c := &cobra.Command{
		Use:   "publish --data-dir DIR --period 2024-Q1 [--indicator NAME...] [--epsilon E]",
		Short: "Publish a noise-protected, signed release of this partner's records",
		Long: `publish asks the node serving DIR (roundtable serve) to release the catalog's
indicators for one quarter or year: it reserves the budget in the regional
ledger first, then tabulates the records, adds noise, signs the result and
appends it to the ledger. Nothing exact ever leaves the node.

The budget is ε under the consortium's pure-DP policy (ρ under zCDP). A year
spends it on each of its four quarters. Check accuracy first with
'roundtable plan'.`,
		Example: `  roundtable publish --data-dir ./rs --period 2024-Q1 --epsilon 0.5
  roundtable publish --data-dir ./rs --period 2024 --indicator victims --indicator exploitation --epsilon 0.25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := aggregate.ParsePeriod(period); err != nil {
				return err
			}
			cl, err := localClient(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "reserving budget, tabulating, noising and signing %s …\n", period)
			res, err := cl.Publish(cmd.Context(), period, indicators, epsilon)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published release %s\n  partner %s, period %s, leaf %d, spent %s per quarter\n  indicators: %s\n",
				res.ID, res.Partner, res.Period, res.Leaf, micro(res.SpentMicro), strings.Join(res.Indicators, ", "))
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the data directory of the running node")
	c.Flags().StringVar(&period, "period", "", "quarter (2024-Q1) or year (2024)")
	c.Flags().StringArrayVar(&indicators, "indicator", nil, "indicator to release (repeat; default: the whole catalog)")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "budget for this release: ε (pure DP) or ρ (zCDP)")
	mustRequire(c, "data-dir", "period")
	return c
}

func micro(m int64) string { return fmt.Sprintf("%.6g", float64(m)/privacy.Micro) }

func newPlanCmd() *cobra.Command {
	var dir, period, accounting string
	var indicators []string
	var epsilon float64
	var target int64
	c := &cobra.Command{
		Use:   "plan --data-dir DIR --period 2024-Q1 [--epsilon E | --target-ci N]",
		Short: "Show the expected 95% interval of each indicator at a budget, or the budget for a target",
		Long: `plan tells you, before you spend anything, how precise a release will be: for
each indicator, the expected half-width of one cell's 95% confidence interval
at the given ε, or the ε needed to reach --target-ci. It depends only on the
catalog and the budget, never on your records.

With a node serving DIR it uses the ledger's catalog and policy; otherwise it
uses the built-in v2 catalog (and --accounting).`,
		Example: `  roundtable plan --data-dir ./rs --period 2024-Q1 --epsilon 1
  roundtable plan --data-dir ./rs --period 2024 --target-ci 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := aggregate.ParsePeriod(period); err != nil {
				return err
			}
			if target > 0 && cmd.Flags().Changed("epsilon") {
				return errors.New("give --epsilon or --target-ci, not both")
			}
			var rows []privacy.PlanRow
			if cl, err := localClient(dir); err == nil && target == 0 {
				ans, err := cl.Plan(cmd.Context(), period, indicators, epsilon)
				if err != nil {
					return err
				}
				rows = ans.Rows
			} else {
				p := privacy.PlanParams{Accounting: accounting, TargetHalfWidth: target}
				if target == 0 {
					if accounting == privacy.ZCDP {
						p.Rho = epsilon
					} else {
						p.Epsilon = epsilon
					}
				}
				if rows, err = privacy.Plan(aggregate.CatalogV2(), indicators, p); err != nil {
					return err
				}
			}
			return writePlan(cmd.OutOrStdout(), period, rows)
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&period, "period", "", "quarter (2024-Q1) or year (2024)")
	c.Flags().StringArrayVar(&indicators, "indicator", nil, "indicator (repeat; default: the whole catalog)")
	c.Flags().Float64Var(&epsilon, "epsilon", 1, "budget of the release: ε (pure DP) or ρ (zCDP)")
	c.Flags().Int64Var(&target, "target-ci", 0, "instead: the 95% half-width wanted for one cell, in people")
	c.Flags().StringVar(&accounting, "accounting", privacy.PureDP, "pure or zcdp, when no node is serving")
	mustRequire(c, "period")
	return c
}

func writePlan(w io.Writer, period string, rows []privacy.PlanRow) error {
	fmt.Fprintf(w, "Expected accuracy for %s (depends only on the budget, not on the data)\n\n", period)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "indicator\tmechanism\trelease budget\tindicator budget\tnoise scale\t95% CI ±\t")
	for _, r := range rows {
		ci := fmt.Sprint(r.HalfWidth)
		if r.Yearly == nil { // quantiles: the error is in rank, not in people counted
			ci = fmt.Sprintf("rank ±%.0f people", r.RankError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%.3g\t%s\t\n", r.Indicator, r.Mechanism, r.Total, r.Budget, r.Scale, ci)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return privacy.WriteReadable(w, rows)
}
