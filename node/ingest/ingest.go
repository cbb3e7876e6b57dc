// Package ingest validates partner case files and imports them into the
// node's store, all or nothing: every row is checked with the case schema
// (aggregate.SetField, then Case.Validate), every bad row is reported as
// FILE:LINE: followed by the aggregate.FieldError text, and one bad row
// means nothing is stored unless the operator asks to skip invalid rows.
//
// Three formats are read: the project CSV (header = aggregate.Columns), the
// CTDC global dataset CSV, and JSON Lines. DESIGN.md explains the choices.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"roundtable/aggregate"
	"roundtable/node/store"
)

// Formats accepted in Options.Format.
const (
	FormatCSV   = "csv"
	FormatCTDC  = "ctdc"
	FormatJSONL = "jsonl"
)

// DefaultMaxErrors caps the errors a Report lists when Options.MaxErrors is 0.
const DefaultMaxErrors = 100

// Options control an import.
type Options struct {
	Format      string    // FormatCSV (default), FormatCTDC or FormatJSONL
	SkipInvalid bool      // store the valid rows; write rejected rows to FILE.rejected.csv
	MaxErrors   int       // cap on Report.Errors (default DefaultMaxErrors)
	Progress    io.Writer // progress bar destination (a terminal), or nil
	// Source names where the records come from; it is stored with each.
	Source string
	// Replace makes the files the whole of Source: Source's records that
	// they no longer hold are removed in the same all-or-nothing import.
	Replace bool
	// AllowForeign stores records identified in another country than the
	// store's partner; without it their presence refuses the whole import.
	AllowForeign bool
}

// Report says what an import read and did.
type Report struct {
	Files    []string
	Rows     int      // data rows read (valid + invalid)
	Invalid  int      // rows that failed validation
	Errors   []string // "FILE:LINE: reason", at most MaxErrors
	Rejected []string // FILE.rejected.csv files written (SkipInvalid only)
	Stats    store.ImportStats
	Imported bool   // the import committed
	Replaced string // the source the import replaced (Options.Replace), else ""
	// Foreign counts the valid rows identified in another country than
	// the store's partner (see identifiedElsewhere).
	Foreign int
}

// InputError is an import refused for what its input holds or how it
// reads — a bad header, a malformed, truncated or oversized file, invalid
// or foreign rows, options that contradict each other — as opposed to a
// failure of the store or the disk. Its message names the file, line and
// field where there is one; an API answers it with a 4xx.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// inputErr marks err as the input's fault.
func inputErr(err error) error { return &InputError{Err: err} }

// row is one data row read by a source: a case, or the reason it is invalid.
type row struct {
	line int
	raw  []string // the fields as read, for the rejected file; valid only until the next call
	c    aggregate.Case
	err  error
}

// source reads the rows of one file in one format. next returns io.EOF at
// the end; any other error is fatal to the whole import.
type source interface {
	columns() []string
	next(r *row) error
}

func newSource(format, name string, r io.Reader) (source, error) {
	switch format {
	case "", FormatCSV:
		return newCSVSource(name, r)
	case FormatCTDC:
		return newCTDCSource(name, r)
	case FormatJSONL:
		return newJSONLSource(r), nil
	}
	return nil, fmt.Errorf("unknown format %q (want csv, ctdc or jsonl)", format)
}

// errNotUTF8 is the row error for bytes that are not UTF-8.
var errNotUTF8 = errors.New("not valid UTF-8 (save the file as UTF-8)")

// Run imports files into st as one generation. Rows are parsed and sealed
// in one pass; on the first invalid row (without SkipInvalid) the
// generation is aborted and the rest is only validated, so every error is
// reported and nothing is stored. The returned error says how many rows
// were invalid; Report.Errors lists them.
func Run(ctx context.Context, st *store.Store, opts Options, files ...string) (Report, error) {
	if len(files) == 0 {
		return Report{}, errors.New("import: no files given")
	}
	return runAll(ctx, st, opts, files, func(r *run) error {
		for _, f := range files {
			if err := r.file(f); err != nil {
				return err
			}
		}
		return nil
	})
}

// RunReader imports one stream (an upload) under the given name, with the
// same validation and all-or-nothing rule as Run. Nothing is written
// beside it: SkipInvalid is refused, since there is no file to put the
// rejected rows next to, and the caller gets every error in the Report.
func RunReader(ctx context.Context, st *store.Store, opts Options, name string, in io.Reader) (Report, error) {
	if opts.SkipInvalid {
		return Report{Files: []string{name}}, inputErr(errors.New("import: skip-invalid needs a file to write rejected rows beside"))
	}
	return runAll(ctx, st, opts, []string{name}, func(r *run) error {
		return r.stream(name, in, 0)
	})
}

func runAll(ctx context.Context, st *store.Store, opts Options, files []string, read func(*run) error) (Report, error) {
	rep := Report{Files: files}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = DefaultMaxErrors
	}
	switch opts.Format {
	case "", FormatCSV, FormatCTDC, FormatJSONL:
	default:
		return rep, inputErr(fmt.Errorf("import: unknown format %q (want csv, ctdc or jsonl)", opts.Format))
	}
	if opts.Replace && opts.SkipInvalid {
		return rep, inputErr(errors.New("import: --replace cannot be combined with --skip-invalid: " +
			"the records of the skipped rows would be removed (fix the rows, then replace)"))
	}
	so := store.ImportOptions{Source: opts.Source, Replace: opts.Replace}
	if err := so.Check(); err != nil {
		return rep, inputErr(fmt.Errorf("import: %w", err))
	}
	imp, err := st.BeginImportWith(ctx, so)
	if err != nil {
		return rep, fmt.Errorf("import: %w", err)
	}
	defer imp.Abort() // no-op once committed
	r := run{ctx: ctx, opts: opts, rep: &rep, imp: imp, partner: st.Partner(), foreign: map[aggregate.Country]int{}}
	if err := read(&r); err != nil {
		return rep, fmt.Errorf("import: %w; nothing was imported", err)
	}
	if rep.Invalid > 0 && !opts.SkipInvalid {
		return rep, inputErr(fmt.Errorf("import: %d of %d rows were invalid (first: %s); nothing was imported "+
			"(fix them, or use --skip-invalid to import only the valid rows)", rep.Invalid, rep.Rows, rep.Errors[0]))
	}
	if rep.Foreign > 0 && !opts.AllowForeign {
		return rep, fmt.Errorf("import: %w; nothing was imported", foreignError(r.partner, r.foreign, rep.Rows-rep.Invalid))
	}
	stats, err := imp.Commit()
	if err != nil {
		return rep, fmt.Errorf("import: %w; nothing was imported", err)
	}
	rep.Stats, rep.Imported = stats, true
	if opts.Replace {
		rep.Replaced = opts.Source
	}
	return rep, nil
}

type run struct {
	ctx  context.Context
	opts Options
	rep  *Report
	imp  *store.Import
	// partner is the store's partner; foreign counts, by country, the
	// valid rows identified elsewhere.
	partner string
	foreign map[aggregate.Country]int
	// stopped is set at the first invalid row without SkipInvalid: the
	// import is aborted and later rows are only validated.
	stopped bool
}

func (r *run) file(name string) (err error) {
	f, err := os.Open(name)
	if err != nil {
		return inputErr(err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	return r.stream(name, f, size)
}

// stream reads one input; size (0 if unknown) scales the progress bar.
func (r *run) stream(name string, in io.Reader, size int64) (err error) {
	cr := &countingReader{r: in}
	src, err := newSource(r.opts.Format, name, stripBOM(cr))
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		return inputErr(err)
	}
	bar := newProgress(r.opts.Progress, name, size, cr)
	defer bar.done()
	var rej *rejectedWriter
	if r.opts.SkipInvalid {
		rej = &rejectedWriter{path: name + ".rejected.csv", columns: src.columns()}
		defer func() {
			if cerr := rej.close(); cerr != nil && err == nil {
				err = cerr
			}
			if rej.f != nil {
				r.rep.Rejected = append(r.rep.Rejected, rej.path)
			}
		}()
	}
	var rw row
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			bar.tick()
		}
		rw = row{}
		if err := src.next(&rw); err == io.EOF {
			return nil
		} else if err != nil {
			// The input failed to read (a truncated upload, a body over
			// its limit, a broken disk file): its fault, not the store's.
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			return inputErr(fmt.Errorf("%s: %w", name, err))
		}
		if err := r.add(name, &rw, rej); err != nil {
			return err
		}
	}
}

func (r *run) add(name string, rw *row, rej *rejectedWriter) error {
	r.rep.Rows++
	if rw.err != nil {
		r.rep.Invalid++
		if len(r.rep.Errors) < r.opts.MaxErrors {
			r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("%s:%d: %s", name, rw.line, clip(rw.err.Error())))
		}
		if rej != nil {
			return rej.write(rw.raw, rw.line, rw.err.Error())
		}
		return r.stop()
	}
	if cc := identifiedElsewhere(&rw.c, r.partner); cc != "" {
		r.rep.Foreign++
		r.foreign[cc]++
		if !r.opts.AllowForeign {
			return r.stop()
		}
	}
	if r.stopped {
		return nil
	}
	return r.imp.Add(&rw.c)
}

// maxErrorLen caps one message in Report.Errors: a message may quote the
// value it refuses, and a hundred quoted values of 64 KiB would make the
// report, and the API's answer, megabytes long.
const maxErrorLen = 512

func clip(msg string) string {
	if len(msg) <= maxErrorLen {
		return msg
	}
	return strings.ToValidUTF8(msg[:maxErrorLen], "") + "…"
}

// stop aborts the import at the first row that dooms it: what was written
// is discarded, and the remaining rows are only validated so that every
// error is reported.
func (r *run) stop() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	return r.imp.Abort()
}

// countingReader counts bytes read, for the progress bar.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fieldErr renames the field of a *aggregate.FieldError, so errors name the
// column as it appears in a foreign file (CTDC), not the schema's name.
func fieldErr(err error, column string) error {
	var fe *aggregate.FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = column
		return &c
	}
	return err
}
