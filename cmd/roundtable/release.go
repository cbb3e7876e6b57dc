package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"roundtable/aggregate"
	"roundtable/node"
	"roundtable/node/api"
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
	var budget privacy.Budget
	var dryRun, status bool
	var reconnect time.Duration
	c := &cobra.Command{
		Use:   "publish --data-dir DIR --period 2024 --epsilon E [--indicator NAME...] [--dry-run] | --status",
		Short: "Publish a noise-protected, signed release of this partner's records",
		Long: `publish asks the node serving DIR (roundtable serve) to release the catalog's
indicators for one year or one quarter. The node first checks everything
(period, indicators, the budget against the consortium's cap and what is left)
and says what the release will spend; then it reserves the budget in the
regional ledger, tabulates the records, adds noise, signs the result and
appends it to the ledger. Nothing exact ever leaves the node. A request
refused by those checks spends nothing.

--epsilon is required: the budget is ε under the consortium's pure-DP policy
(ρ under zCDP), a decimal with at most six places. It is charged to every
quarter of the period.

Publish a year once it has closed (--period 2024): a person counts in one
quarter per year, so a yearly release spends the same per person as four
quarterly releases at the same ε, and a year's totals come out about half as
wide. Quarterly releases (--period 2024-Q1) stay possible. Check accuracy
first with 'roundtable plan'.

Once the budget is reserved the node finishes the release whatever happens
to this command, and after a crash it finishes it when it starts again,
with the same reservation: it never spends twice. If the command loses its
connection to the node, it waits up to --reconnect-wait for the node to
answer and says what became of the release; --status lists the release in
flight (reserving, reserved, signed) and the latest finished ones.`,
		Example: `  roundtable publish --data-dir ./rs --period 2024 --epsilon 0.5
  roundtable publish --data-dir ./rs --status
  roundtable publish --data-dir ./rs --period 2024 --epsilon 0.5 --dry-run
  roundtable publish --data-dir ./rs --period 2025-Q1 --indicator victims --indicator exploitation --epsilon 0.25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status {
				return publishStatus(cmd, dir)
			}
			if period == "" {
				return errors.New("publish needs --period (a year like 2024 or a quarter like 2024-Q1), or --status")
			}
			if !cmd.Flags().Changed("epsilon") {
				return errors.New("publish needs --epsilon: the budget to spend on each quarter of the period (ε, or ρ under a zCDP policy), " +
					"e.g. --epsilon 0.5; 'roundtable plan' shows what a budget buys and what is left. Nothing was reserved")
			}
			if _, err := aggregate.ParsePeriod(period); err != nil {
				return err
			}
			cl, err := localClient(dir)
			if err != nil {
				return err
			}
			charge, err := cl.CheckPublish(cmd.Context(), period, indicators, budget)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n  indicators: %s\n", charge.Summary, strings.Join(charge.Indicators, ", "))
			if dryRun {
				fmt.Fprintln(cmd.OutOrStdout(), "dry run: nothing was reserved or published")
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "reserving budget, tabulating, noising and signing %s …\n", period)
			reservation, err := newReservationID()
			if err != nil {
				return err
			}
			res, err := cl.PublishReservation(cmd.Context(), period, indicators, budget, reservation)
			if err != nil {
				return publishInterrupted(cmd, dir, period, budget, reservation, reconnect, err)
			}
			printPublished(cmd.OutOrStdout(), res)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the data directory of the running node")
	c.Flags().StringVar(&period, "period", "", "year (2024, the default cadence) or quarter (2024-Q1)")
	c.Flags().StringArrayVar(&indicators, "indicator", nil, "indicator to release (repeat, any order; default: the whole catalog)")
	c.Flags().Var(&budget, "epsilon", "required: budget charged to each quarter of the period, ε (pure DP) or ρ (zCDP), at most 6 decimals")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check and say what the release would spend; reserve nothing")
	c.Flags().BoolVar(&status, "status", false, "list the release in flight and the latest finished ones; publish nothing")
	c.Flags().DurationVar(&reconnect, "reconnect-wait", 20*time.Second, "after a lost connection, how long to wait for the node to answer what became of the release")
	mustRequire(c, "data-dir")
	return c
}

func newPlanCmd() *cobra.Command {
	var dir, period, accounting string
	var indicators []string
	var budget privacy.Budget
	var target int64
	c := &cobra.Command{
		Use:   "plan --data-dir DIR --period 2024 (--epsilon E | --target-ci N)",
		Short: "Show the expected 95% interval of each indicator at a budget, or the budget for a target",
		Long: `plan tells you, before you spend anything, how precise a release will be: for
each indicator, the expected half-width of one cell's 95% confidence interval
at the given ε, or the ε needed to reach --target-ci. It depends only on the
catalog and the budget, never on your records. With --epsilon it also shows
the two cadences side by side at that ε: one yearly release against four
quarterly ones (the same cost per person).

With a node serving DIR it uses the ledger's catalog and policy, and warns
when a budget (given, or proposed for a target) is above the consortium's cap
per quarter or above what is left on the period's quarters; otherwise it uses
the built-in v2 catalog (and --accounting) and cannot check the budget.`,
		Example: `  roundtable plan --data-dir ./rs --period 2024 --epsilon 1
  roundtable plan --data-dir ./rs --period 2024 --target-ci 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := aggregate.ParsePeriod(period); err != nil {
				return err
			}
			given := cmd.Flags().Changed("epsilon")
			switch {
			case target < 0:
				return errors.New("--target-ci must be a positive number of people")
			case target > 0 && given:
				return errors.New("give --epsilon or --target-ci, not both")
			case target == 0 && !given:
				return errors.New("plan needs --epsilon E (the budget to plan for, e.g. 0.5) or --target-ci N (the 95% half-width wanted, in people)")
			}
			var ans api.PlanAnswer
			if cl, err := localClient(dir); err == nil {
				if ans, err = cl.Plan(cmd.Context(), period, indicators, budget, target); err != nil {
					return err
				}
			} else {
				p := privacy.PlanParams{Accounting: accounting, Budget: budget, TargetHalfWidth: target}
				rows, err := privacy.Plan(aggregate.CatalogV2(), indicators, p)
				if err != nil {
					return err
				}
				ans = api.PlanAnswer{Period: period, Accounting: accounting, Epsilon: budget, TargetCI: target,
					Rows: rows, Cadences: privacy.CompareCadences(rows)}
			}
			return writePlan(cmd.OutOrStdout(), ans)
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&period, "period", "", "year (2024) or quarter (2024-Q1)")
	c.Flags().StringArrayVar(&indicators, "indicator", nil, "indicator (repeat; default: the whole catalog)")
	c.Flags().Var(&budget, "epsilon", "budget of the release: ε (pure DP) or ρ (zCDP), at most 6 decimals")
	c.Flags().Int64Var(&target, "target-ci", 0, "instead: the 95% half-width wanted for one cell, in people")
	c.Flags().StringVar(&accounting, "accounting", privacy.PureDP, "pure or zcdp, when no node is serving")
	mustRequire(c, "period")
	return c
}

func writePlan(w io.Writer, a api.PlanAnswer) error {
	u := "ε"
	if a.Accounting == privacy.ZCDP {
		u = "ρ"
	}
	fmt.Fprintf(w, "Expected accuracy for %s (depends only on the budget, not on the data)\n\n", a.Period)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "indicator\tmechanism\trelease budget\tindicator budget\tnoise scale\t95% CI ±\t")
	for _, r := range a.Rows {
		ci := fmt.Sprint(r.HalfWidth)
		if r.Yearly == nil { // quantiles: the error is in rank, not in people counted
			ci = fmt.Sprintf("rank ±%.0f people", r.RankError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.4g\t%.3g\t%s\t\n", r.Indicator, r.Mechanism, r.Total, r.Budget, r.Scale, ci)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a.Epsilon > 0 && len(a.Cadences) > 0 {
		fmt.Fprintf(w, "\nYearly or quarterly, at %s %s per quarter (the same cost per person: one quarter per year)\n", u, a.Epsilon)
		fmt.Fprintln(w, "95% ± of one cell of a year, in people:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "indicator\tone yearly release\tfour quarterly releases, summed\t(each quarter)\t")
		for _, r := range a.Cadences {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", r.Indicator, r.Yearly, r.QuarterlyYear, r.Quarter)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := privacy.WriteReadable(w, a.Rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	switch {
	case a.Cap == 0:
		fmt.Fprintln(w, "No node is serving --data-dir: the consortium's cap and what is left were not checked.")
	case a.Left != nil:
		fmt.Fprintf(w, "Budget: cap %s %s per quarter; %s left on the most-spent quarter of %s.\n", u, a.Cap, *a.Left, a.Period)
	default:
		fmt.Fprintf(w, "Budget: cap %s %s per quarter.\n", u, a.Cap)
	}
	for _, warn := range a.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	return nil
}
