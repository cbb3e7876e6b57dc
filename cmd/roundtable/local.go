package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"roundtable/aggregate"
	"roundtable/keyseal"
	"roundtable/node/ingest"
	"roundtable/node/store"
	"roundtable/node/summary"
	"roundtable/node/synth"
)

func newInitCmd() *cobra.Command {
	var dir, partner string
	kdf := store.DefaultKDFParams()
	c := &cobra.Command{
		Use:   "init --data-dir DIR --partner XX",
		Short: "Create a partner's encrypted store and signing key",
		Long: `init creates DIR/node.db: a bbolt file whose records are sealed with
XChaCha20-Poly1305 under a random data key, itself wrapped under a key derived
from your passphrase with Argon2id. It also makes the partner's ed25519
signing key (sealed in the store; the public key is printed).`,
		Example: `  ROUNDTABLE_PASSPHRASE=... roundtable init --data-dir ./rs --partner RS`,
		Args:    cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		pass, err := readPassphrase(*pf)
		if err != nil {
			return err
		}
		warnWeak(cmd.ErrOrStderr(), pass)
		if err := store.Init(dir, partner, pass, kdf); err != nil {
			return err
		}
		st, err := store.Open(dir, pass)
		if err != nil {
			return err
		}
		defer st.Close()
		fmt.Fprintf(cmd.OutOrStdout(), "initialised store for partner %s in %s\nsigning public key: %x\n", st.Partner(), dir, []byte(st.PublicKey()))
		return nil
	}
	c.Flags().StringVar(&dir, "data-dir", "", "directory for the node's files (created if missing)")
	c.Flags().StringVar(&partner, "partner", "", "partner country code (ISO 3166-1 alpha-2; XK for Kosovo)")
	addKDFFlags(c, &kdf)
	mustRequire(c, "data-dir", "partner")
	return c
}

// addKDFFlags adds the Argon2id flags of a command that seals a key under
// a passphrase (the store, the CA key, a coordinator key).
func addKDFFlags(c *cobra.Command, p *keyseal.Params) {
	c.Flags().Uint32Var(&p.Time, "argon2-time", p.Time, fmt.Sprintf("Argon2id passes (at least %d)", keyseal.MinTime))
	c.Flags().Uint32Var(&p.MemoryKiB, "argon2-memory", p.MemoryKiB, fmt.Sprintf("Argon2id memory in KiB (at least %d)", keyseal.MinMemoryKiB))
	c.Flags().Uint8Var(&p.Threads, "argon2-threads", p.Threads, "Argon2id lanes")
}

func mustRequire(c *cobra.Command, names ...string) {
	for _, n := range names {
		if err := c.MarkFlagRequired(n); err != nil {
			panic(err) // a flag name typo in this file
		}
	}
}

// openStore opens the store in dir with the passphrase from the flag or env.
func openStore(dir, passFile string) (*store.Store, error) {
	pass, err := readPassphrase(passFile)
	if err != nil {
		return nil, err
	}
	return store.Open(dir, pass)
}

func newRekeyCmd() *cobra.Command {
	var dir, newFile string
	kdf := store.DefaultKDFParams()
	c := &cobra.Command{
		Use:   "rekey --data-dir DIR --new-passphrase-file FILE",
		Short: "Change the store passphrase and re-seal every record under a new data key",
		Long: `rekey opens the store with the current passphrase ($ROUNDTABLE_PASSPHRASE or
--passphrase-file) and writes a copy in which every record, the signing key
and the node's pending state are sealed under a NEW random data key, wrapped
under the new passphrase; the copy then replaces DIR/node.db in one rename.
Nothing in the new file opens with the old passphrase or the old data key.
It takes about as long as reading the store once.

Stop the node first: rekey refuses while the store is in use. If it is
interrupted, the store is the old one (old passphrase) or the new one (new
passphrase), never half of each. Backups of node.db made before a rekey
still open with the old passphrase: destroy them.

It also strengthens a store sealed with Argon2id parameters below the
minimum (t=2, 19 MiB), which no other command opens; the new passphrase may
be the same as the old one.`,
		Example: `  ROUNDTABLE_PASSPHRASE=old roundtable rekey --data-dir ./rs --new-passphrase-file ./new-pass`,
		Args:    cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&newFile, "new-passphrase-file", "", "file holding the new passphrase")
	addKDFFlags(c, &kdf)
	mustRequire(c, "data-dir", "new-passphrase-file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		old, err := readPassphrase(*pf)
		if err != nil {
			return err
		}
		np, err := readPassphrase(newFile)
		if err != nil {
			return fmt.Errorf("new passphrase: %w", err)
		}
		warnWeak(cmd.ErrOrStderr(), np)
		if err := store.Rekey(cmd.Context(), dir, old, np, kdf); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "store re-sealed under a new data key; use the new passphrase from now on "+
			"(backups made before now still open with the old one: destroy them)")
		return nil
	}
	return c
}

func newSynthCmd() *cobra.Command {
	var o synth.Options
	c := &cobra.Command{
		Use:   "synth --partner RS --from 2019 --to 2024 [--seed N] [--scale X]",
		Short: "Write synthetic case records for one partner as CSV to stdout",
		Long: `synth writes realistic synthetic case records in the project's CSV format,
with the region's magnitudes (tens to low hundreds of people per country-year).
The same seed always gives the same file. --scale multiplies the volume for
load tests.`,
		Example: `  roundtable synth --partner RS --from 2019 --to 2024 > rs.csv
  roundtable synth --partner AL --from 2024 --to 2024 --scale 1000 > big.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<16)
			n, err := synth.Generate(cmd.Context(), w, o)
			if err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d synthetic records for %s\n", n, o.Partner)
			return nil
		},
	}
	c.Flags().StringVar((*string)(&o.Partner), "partner", "", "partner code: AL, BA, XK, RS, ME or MK")
	c.Flags().IntVar(&o.From, "from", 2019, "first year")
	c.Flags().IntVar(&o.To, "to", 2024, "last year")
	c.Flags().Int64Var(&o.Seed, "seed", 1, "random seed (same seed, same output)")
	c.Flags().Float64Var(&o.Scale, "scale", 1, "volume multiplier for load tests")
	mustRequire(c, "partner")
	return c
}

func newImportCmd() *cobra.Command {
	var dir string
	var o ingest.Options
	c := &cobra.Command{
		Use:   "import --data-dir DIR [--format csv|ctdc|jsonl] [--skip-invalid] [--source NAME [--replace]] [--allow-foreign] FILE...",
		Short: "Validate and import case records into the encrypted store (all or nothing)",
		Long: `import validates every row of every file and stores them encrypted. One
invalid row means nothing is stored and the exit code is non-zero; every bad
row is reported as FILE:LINE: field "x": "value" is not one of ...
With --skip-invalid the valid rows are stored and the rejected ones are written
beside each input as FILE.rejected.csv with the reason. Importing a case_id
again updates it.

Formats: csv (the project's columns, see docs/case-schema.md), ctdc (the CTDC
global dataset CSV) and jsonl (one JSON object per line).

--source NAME labels every imported record with where it came from. With
--replace the files are the whole of that source: its records that are no
longer in them are removed, in the same all-or-nothing import. Use it for an
export that is re-exported in full, such as CTDC (which has no ids, so a
corrected row is a new record and the old one must go).

Records identified in another country than the store's partner (citizenship
and country of exploitation the same other country) refuse the whole import,
with how many and where: they are most likely another partner's file.
--allow-foreign imports them when that is intended.`,
		Args: cobra.MinimumNArgs(1),
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&o.Format, "format", "csv", "input format: csv, ctdc or jsonl")
	c.Flags().BoolVar(&o.SkipInvalid, "skip-invalid", false, "store valid rows, write rejected ones beside the input")
	c.Flags().IntVar(&o.MaxErrors, "max-errors", 100, "report at most this many invalid rows")
	c.Flags().StringVar(&o.Source, "source", "", "name of the source the records come from, stored with each")
	c.Flags().BoolVar(&o.Replace, "replace", false, "the files are the whole of --source: remove its records they no longer hold")
	c.Flags().BoolVar(&o.AllowForeign, "allow-foreign", false, "import records identified in another country than the store's partner")
	mustRequire(c, "data-dir")
	c.RunE = func(cmd *cobra.Command, files []string) error {
		if o.Replace && o.Source == "" {
			return exitError{err: errors.New("import: --replace needs --source NAME (the source whose records the files replace)"), code: 2}
		}
		st, err := openStore(dir, *pf)
		if err != nil {
			return err
		}
		defer st.Close()
		if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			o.Progress = f
		}
		rep, err := ingest.Run(cmd.Context(), st, o, files...)
		writeImportReport(cmd.ErrOrStderr(), rep)
		if err != nil {
			return exitError{err: err, code: 2}
		}
		return nil
	}
	return c
}

func newCasesCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "cases --data-dir DIR",
		Short: "Print the local summary: exact counts for the operator's eyes only",
		Long: `cases prints exact counts of cases and persons by year, status, sex and age
group. It is computed locally, printed to your terminal, and never sent
anywhere: publish noise-protected releases with 'roundtable publish'.`,
		Args: cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	mustRequire(c, "data-dir")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := openStore(dir, *pf)
		if err != nil {
			return err
		}
		defer st.Close()
		each := func(fn func(*aggregate.Case) error) error { return st.Cases(cmd.Context(), fn) }
		s, err := summary.Compute(cmd.Context(), each)
		if err != nil {
			return err
		}
		return s.Write(cmd.OutOrStdout())
	}
	return c
}

func writeImportReport(w io.Writer, rep ingest.Report) {
	for _, e := range rep.Errors {
		fmt.Fprintln(w, e)
	}
	if rep.Invalid > len(rep.Errors) {
		fmt.Fprintf(w, "… and %d more invalid rows\n", rep.Invalid-len(rep.Errors))
	}
	for _, r := range rep.Rejected {
		fmt.Fprintf(w, "rejected rows written to %s\n", r)
	}
	if rep.Imported {
		fmt.Fprintf(w, "imported %d rows from %d file(s): %d new cases, %d updated",
			rep.Rows-rep.Invalid, len(rep.Files), rep.Stats.Added, rep.Stats.Updated)
		if rep.Replaced != "" {
			fmt.Fprintf(w, ", %d removed (no longer in source %s)", rep.Stats.Removed, rep.Replaced)
		}
		fmt.Fprintln(w)
	}
}

// exitError carries a chosen exit status: 2 for input the user must fix.
type exitError struct {
	err  error
	code int
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }
