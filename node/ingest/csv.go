package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"roundtable/aggregate"
)

// csvSource reads the project CSV format: a header of aggregate.Columns
// names (any subset in any order, case_id and registered_on required).
type csvSource struct {
	r     *csv.Reader
	cols  []string
	cache *fieldCache
}

var requiredColumns = []string{"case_id", "registered_on"}

// maxCSVLine caps one physical line of a CSV file. The longest row the
// schema allows is about 20 KB (notes of 4096 characters) and a CTDC row is
// a few hundred bytes, so a longer line is not case data; without the cap
// a line of commas becomes millions of fields, each a string, and costs
// many times its size in time and memory before any check can refuse it.
const maxCSVLine = 256 << 10

// lineCapReader fails once a line passes maxCSVLine, for good.
type lineCapReader struct {
	r    io.Reader
	line int // lines seen, for the message
	n    int // bytes of the current line so far
	err  error
}

func (l *lineCapReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for rest := p[:n]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		seg := len(rest)
		if i >= 0 {
			seg = i
		}
		if l.n+seg > maxCSVLine {
			l.err = fmt.Errorf("line %d is longer than %d KiB: this is not a file of case records (is it CSV?)", l.line+1, maxCSVLine>>10)
			return 0, l.err
		}
		if i < 0 {
			l.n += seg
			break
		}
		l.n, l.line, rest = 0, l.line+1, rest[i+1:]
	}
	return n, err
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(&lineCapReader{r: r})
	cr.FieldsPerRecord = -1 // checked here, to say which line and how many
	cr.ReuseRecord = true
	return cr
}

func newCSVSource(name string, r io.Reader) (*csvSource, error) {
	cr := newCSVReader(r)
	head, err := readHeader(name, cr)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(head))
	for i, h := range head {
		cols[i] = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !slices.Contains(aggregate.Columns, cols[i]):
			return nil, fmt.Errorf("%s:1: unknown column %q (expected columns: %s)", name, h, strings.Join(aggregate.Columns, ", "))
		case slices.Contains(cols[:i], cols[i]):
			return nil, fmt.Errorf("%s:1: column %q appears twice", name, h)
		}
	}
	for _, req := range requiredColumns {
		if !slices.Contains(cols, req) {
			return nil, fmt.Errorf("%s:1: missing required column %q (expected columns: %s; only case_id and registered_on are required)",
				name, req, strings.Join(aggregate.Columns, ", "))
		}
	}
	return &csvSource{r: cr, cols: cols, cache: newFieldCache(cols)}, nil
}

// readHeader returns the first record, copied (the reader reuses records).
func readHeader(name string, cr *csv.Reader) ([]string, error) {
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: the file is empty (expected a header line)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	for _, h := range head {
		if !utf8.ValidString(h) {
			return nil, fmt.Errorf("%s:1: %w", name, errNotUTF8)
		}
	}
	return slices.Clone(head), nil
}

func (s *csvSource) columns() []string { return s.cols }

func (s *csvSource) next(r *row) error {
	rec, line, err := nextRecord(s.r, r)
	if err != nil || r.err != nil {
		return err
	}
	if len(rec) != len(s.cols) {
		r.err = fmt.Errorf("has %d fields but the header has %d", len(rec), len(s.cols))
		return nil
	}
	r.line, r.c = line, aggregate.NewCase()
	for i := range s.cols {
		if err := s.cache.set(&r.c, i, rec[i]); err != nil {
			r.err = err
			return nil
		}
	}
	r.err = r.c.Validate()
	return nil
}

// nextRecord reads the next non-blank record, setting r.raw and r.line. A
// malformed or non-UTF-8 record sets r.err; I/O errors are returned.
func nextRecord(cr *csv.Reader, r *row) ([]string, int, error) {
	for {
		rec, err := cr.Read()
		var pe *csv.ParseError
		if errors.As(err, &pe) && pe.Err != csv.ErrFieldCount {
			r.line, r.err = pe.StartLine, fmt.Errorf("malformed CSV: %v (put quotes around fields holding commas or quotes, and double quotes inside them)", pe.Err)
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		line, _ := cr.FieldPos(0)
		r.raw, r.line = rec, line
		if blank(rec) {
			continue
		}
		for _, f := range rec {
			if !utf8.ValidString(f) {
				r.err = errNotUTF8
				return rec, line, nil
			}
		}
		return rec, line, nil
	}
}

// blank reports a row of empty cells, which spreadsheets leave at the end.
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
