package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"roundtable/node/api"
	"roundtable/node/client"
	"roundtable/node/verify"
)

func newQueryCmd() *cobra.Command {
	var server, token, caCert, indicator, from, to, format string
	var by, partners, rollup []string
	var pool int
	c := &cobra.Command{
		Use:   "query --server URL --indicator NAME [--by DIM,...] [--partner P,...] [--from P --to P] [--rollup year,region] [--pool N] [--format table|csv|json]",
		Short: "Print published estimates with their 95% intervals and year-over-year changes",
		Long: `query fetches combined estimates from any node: the consistent (post-processed,
non-negative, whole) estimate with its 95% interval; the direct measurement of
the same quantity ("raw": the published total for a total, the published margin
for a breakdown; "-" when no release measures it directly); and the change
from the same period a year earlier with its interval, which reads "not
distinguishable from no change" when that interval covers 0. A value whose
interval's half-width is larger than the value itself is flagged "too
uncertain to read". --rollup year adds quarters up to years; --rollup region
adds partners up to the region; --pool 3 sums blocks of three years (counted
back from the latest year), for partners too small to read year by year.`,
		Example: `  roundtable query --server http://127.0.0.1:8080 --indicator victims --by sex --rollup region,year
  roundtable query --server http://127.0.0.1:8080 --indicator victims --partner ME --pool 3
  roundtable query --server http://127.0.0.1:8080 --indicator corridors --partner RS --from 2023-Q1 --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"indicator": {indicator}}
			set := func(k string, v []string) {
				if len(v) > 0 {
					q.Set(k, strings.Join(v, ","))
				}
			}
			set("by", by)
			set("partner", partners)
			set("rollup", rollup)
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			if pool > 1 {
				q.Set("pool", strconv.Itoa(pool))
			}
			cl, err := nodeClient(server, token, caCert)
			if err != nil {
				return err
			}
			res, err := cl.Series(cmd.Context(), q)
			if err != nil {
				return err
			}
			return writeSeries(cmd.OutOrStdout(), format, res)
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:8080", "a node's base URL")
	f.StringVar(&token, "token", os.Getenv("ROUNDTABLE_TOKEN"), "API token if the node requires one (default $ROUNDTABLE_TOKEN)")
	caCertFlag(f, &caCert)
	f.StringVar(&indicator, "indicator", "", "indicator name (see GET /v1/catalog)")
	f.StringSliceVar(&by, "by", nil, "dimensions to break down by (others are summed)")
	f.StringSliceVar(&partners, "partner", nil, "partners to include (default all)")
	f.StringVar(&from, "from", "", "first period, e.g. 2019-Q1")
	f.StringVar(&to, "to", "", "last period, e.g. 2024-Q4")
	f.StringSliceVar(&rollup, "rollup", nil, "year, region, or both")
	f.IntVar(&pool, "pool", 0, "sum blocks of this many years (2–5; implies --rollup year)")
	f.StringVar(&format, "format", "table", "table, csv or json")
	mustRequire(c, "indicator")
	return c
}

func writeSeries(w io.Writer, format string, res api.SeriesResponse) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "csv":
		return writeSeriesCSV(w, res)
	case "table":
		return writeSeriesTable(w, res)
	}
	return fmt.Errorf("--format %q: want table, csv or json", format)
}

func writeSeriesCSV(w io.Writer, res api.SeriesResponse) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"indicator", "partner", "period", "key", "estimate", "ci_low", "ci_high", "raw", "raw_ci_low", "raw_ci_high",
		"too_uncertain", "small", "change_from", "change", "change_ci_low", "change_ci_high", "change_reading"})
	for _, s := range res.Series {
		for _, p := range s.Points {
			row := []string{s.Indicator, p.Partner, p.Period, strings.Join(p.Key, "|")}
			row = append(row, estimateCells(p.Estimate)...)
			row = append(row, estimateCells(p.Raw)...)
			row = append(row, strconv.FormatBool(p.TooUncertain), strconv.FormatBool(p.Small))
			if c := p.Change; c != nil {
				row = append(row, c.From, num(c.Value), num(c.CILow), num(c.CIHigh), c.Reading)
			} else {
				row = append(row, "", "", "", "", "")
			}
			cw.Write(row)
		}
	}
	cw.Flush()
	return cw.Error()
}

// estimateCells is value, low, high rounded for CSV; empty when absent.
func estimateCells(e *api.Estimate) []string {
	if e == nil {
		return []string{"", "", ""}
	}
	return []string{num(e.Value), num(e.CILow), num(e.CIHigh)}
}

// writeSeriesTable prints what a reader needs: whole counts, intervals
// rounded to a whole number (one decimal when narrower than ±10), the
// change with its reading, and a note for values too uncertain to read.
func writeSeriesTable(w io.Writer, res api.SeriesResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range res.Series {
		title := fmt.Sprintf("%s — %s", s.Indicator, s.Title)
		if len(s.By) > 0 {
			title += " (by " + strings.Join(s.By, ", ") + ")"
		}
		if s.Pool > 1 {
			title += fmt.Sprintf(", %d-year blocks", s.Pool)
		}
		fmt.Fprintln(tw, title)
		fmt.Fprintln(tw, "partner\tperiod\tkey\testimate\t95% interval\traw (direct)\tchange (95% interval)\tnote")
		for _, p := range s.Points {
			key := strings.Join(p.Key, "|")
			if key == "" {
				key = "total"
			}
			est, ci := "?", "unknown"
			if e := p.Estimate; e != nil {
				est = fmt.Sprintf("%.0f ± %s", e.Value, halfWidth(e))
				ci = fmt.Sprintf("[%s, %s]", round(e.CILow, e), round(e.CIHigh, e))
			}
			raw := "-"
			if r := p.Raw; r != nil {
				raw = fmt.Sprintf("%.0f ± %s", r.Value, halfWidth(r))
			}
			change := ""
			if c := p.Change; c != nil {
				e := &api.Estimate{Value: c.Value, CILow: c.CILow, CIHigh: c.CIHigh}
				change = fmt.Sprintf("%+.0f [%s, %s] since %s: %s", c.Value, round(c.CILow, e), round(c.CIHigh, e), c.From, c.Reading)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Partner, p.Period, key, est, ci, raw, change, note(p))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func note(p api.SeriesPoint) string {
	switch {
	case !p.Determined:
		return "not determined by the published numbers"
	case p.TooUncertain:
		return "too uncertain to read"
	case p.Small:
		return "fewer than 5"
	}
	return ""
}

// halfWidth is e's interval half-width as a reader needs it.
func halfWidth(e *api.Estimate) string {
	hw := (e.CIHigh - e.CILow) / 2
	if hw < 10 {
		return strconv.FormatFloat(hw, 'f', 1, 64)
	}
	return strconv.FormatFloat(hw, 'f', 0, 64)
}

// round writes an interval end with the precision of its interval.
func round(x float64, e *api.Estimate) string {
	if (e.CIHigh-e.CILow)/2 < 10 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// num is a CSV number: one decimal is more than the noise allows.
func num(x float64) string {
	return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
}

func newVerifyCmd() *cobra.Command {
	var o verify.Options
	var servers []string
	var bundle, offline, export, caCert string
	c := &cobra.Command{
		Use:   "verify --server URL [--server URL...] --genesis FILE [--consortium ID] [--release ID] [--state FILE] [--bundle OUT] | --offline BUNDLE [--genesis FILE | --consortium ID] [--export CSV]",
		Short: "Check every release's signature, inclusion and the ledger's consistency",
		Long: `verify proves that the published numbers were signed by their partners and
never altered: it checks the regional checkpoint (signed by a majority of
partners), every release's ed25519 signature, its inclusion in the Merkle log,
and that the log extends the checkpoint saved on the last run. A fork (two
different histories) is a fatal error: keep both checkpoints as evidence.

Give --server more than once to compare what several nodes show: their
checkpoints must lie on one history (same root at the same size, and a
consistency proof between different sizes). A split view is fatal.

The trust root is the consortium's genesis file (--genesis FILE): its hash is
the consortium id, which the coordinators publish (--consortium ID checks the
file against it). verify replays the server's governance history from the
genesis (every statement signed by the threshold of coordinators) and takes
partner keys only from that replay: a server that shows other keys, another
consortium's checkpoint, or a partner governance never added, fails.

Alternatives: --keys FILE trusts partner keys from a file (and so whoever
wrote it); a later run reuses the keys pinned in its state file; --tofu
trusts the server's keys on first use, with a warning: a fake server could
then show you anything.

--bundle writes everything needed to check again offline (with --genesis: the
genesis and the governance history too); --offline checks such a bundle, and
--export a CSV pulled from /v1/export.csv against it, with no network. The
last line is "result: OK" or "result: FAILED"; the exit status is non-zero
on FAILED.`,
		Example: `  roundtable verify --genesis genesis.json --server http://127.0.0.1:8090
  roundtable verify --genesis genesis.json --server http://127.0.0.1:8080 --server http://127.0.0.1:8081
  roundtable verify --genesis genesis.json --server http://127.0.0.1:8090 --bundle ledger-2024.json
  roundtable verify --offline ledger-2024.json --consortium 3f9c… --export export.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep verify.Report
			var err error
			if offline == "" {
				if o.HTTPClient, err = client.HTTPClient(caCert, verify.RequestTimeout); err != nil {
					return err
				}
			}
			switch {
			case offline != "":
				oo := verify.OfflineOptions{Bundle: offline, Export: export, Genesis: o.Genesis, Consortium: o.Consortium}
				if o.Keys != "" {
					if oo.Keys, err = verify.LoadKeys(o.Keys); err != nil {
						return err
					}
				}
				rep, err = verify.Offline(oo)
			case len(servers) == 0:
				return fmt.Errorf("give --server URL, or --offline BUNDLE")
			case len(servers) > 1:
				if bundle != "" {
					return fmt.Errorf("--bundle takes one --server")
				}
				o.Progress = cmd.ErrOrStderr()
				reps, err := verify.RunAll(cmd.Context(), o, servers)
				if werr := verify.WriteComparison(cmd.OutOrStdout(), reps, servers, err); werr != nil && err == nil {
					err = werr
				}
				return err
			case bundle != "":
				o.Server = servers[0]
				rep, err = verify.Bundle(cmd.Context(), o, bundle)
			default:
				o.Server = servers[0]
				o.Progress = cmd.ErrOrStderr()
				rep, err = verify.Run(cmd.Context(), o)
			}
			if werr := rep.Write(cmd.OutOrStdout(), err); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	f := c.Flags()
	f.StringArrayVar(&servers, "server", nil, "a node's base URL; repeat to compare several nodes' checkpoints")
	caCertFlag(f, &caCert)
	f.StringVar(&o.Genesis, "genesis", "", "the consortium's genesis file: the trust root (partner keys come only from governance replayed from it)")
	f.StringVar(&o.Consortium, "consortium", "", "the consortium id the coordinators publish: the genesis must hash to it")
	f.BoolVar(&o.TOFU, "tofu", false, "trust the server's partner keys on first use (prints a warning; prefer --genesis)")
	f.StringVar(&o.Token, "token", os.Getenv("ROUNDTABLE_TOKEN"), "API token if the node requires one to read (default $ROUNDTABLE_TOKEN)")
	f.StringVar(&o.ReleaseID, "release", "", "verify only this release")
	f.StringVar(&o.Keys, "keys", "", `trusted partner keys, JSON {"RS": "<base64>", ...} (trusts whoever wrote the file; prefer --genesis)`)
	f.StringVar(&o.StateFile, "state", "", "where the last verified checkpoint is kept (default ~/.config/roundtable/verify-HOST.json)")
	f.StringVar(&bundle, "bundle", "", "after verifying, write an offline bundle here")
	f.StringVar(&offline, "offline", "", "verify this bundle without network")
	f.StringVar(&export, "export", "", "with --offline: check this export CSV against the bundle")
	return c
}
