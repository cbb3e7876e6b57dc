package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"roundtable/node/brief"
	"roundtable/node/web"
)

func newBriefCmd() *cobra.Command {
	var server, token, caCert, lang, out, date string
	var year int
	c := &cobra.Command{
		Use:   "brief --server URL --year 2024 [--lang en|sq|bs|mk|sr-Latn|sr-Cyrl] --out brief.html",
		Short: "Write the regional brief for a year: one self-contained HTML file that prints on A4",
		Long: `brief reads a node's published data (its public API only) and writes the
regional brief for a roundtable: regional and country trends with their 95%
intervals, the year's changes that can and cannot be told apart from noise,
the corridors, the forms of exploitation by child or adult, the privacy budget
each partner spent, and a one-page methods note naming the releases and the
checkpoint it is built from, so anyone can check it with 'roundtable verify'.
The file has its CSS and charts inline and loads nothing; print it on A4
(five pages). The dashboard's "Download the regional brief" gives the same.`,
		Example: `  roundtable brief --server http://127.0.0.1:8080 --year 2024 --lang sq --out brief-sq.html`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			day := time.Now()
			if date != "" {
				var err error
				if day, err = time.Parse(time.DateOnly, date); err != nil {
					return fmt.Errorf("--date %q: want a day like 2025-03-01", date)
				}
			}
			if _, err := web.Messages(lang); err != nil {
				return fmt.Errorf("--lang: %w", err)
			}
			cl, err := nodeClient(server, token, caCert)
			if err != nil {
				return err
			}
			d, err := brief.Fetch(cmd.Context(), cl.Get, year)
			if err != nil {
				return err
			}
			page, err := brief.Render(d, brief.Options{Lang: lang, Date: day, Server: server})
			if err != nil {
				return err
			}
			if out == "-" {
				_, err = cmd.OutOrStdout().Write(page)
				return err
			}
			if err := os.WriteFile(out, page, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: the %d brief in %s, %d releases, checkpoint %d (%d A4 pages)\n",
				out, year, lang, len(d.Releases)+d.EarlierReleases, d.Checkpoint.Size, brief.Pages)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:8080", "a node's base URL")
	f.StringVar(&token, "token", os.Getenv("ROUNDTABLE_TOKEN"), "API token if the node requires one to read (default $ROUNDTABLE_TOKEN)")
	caCertFlag(f, &caCert)
	f.IntVar(&year, "year", 0, "the year the brief is about, e.g. 2024")
	f.StringVar(&lang, "lang", web.SourceLanguage, "language: en, sq, bs, mk, sr-Latn or sr-Cyrl")
	f.StringVar(&out, "out", "brief.html", "file to write (- for standard output)")
	f.StringVar(&date, "date", "", "the date printed on the brief (default today), e.g. 2025-03-01")
	mustRequire(c, "year")
	return c
}
