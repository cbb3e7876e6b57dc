package ingest

import (
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

// Caps on what one CSV record may hold, checked on the raw bytes before
// encoding/csv sees them. encoding/csv keeps a whole record in memory and
// allocates per field, so without them a line of commas or a quoted field
// spanning a million lines costs 20 to 50 bytes per byte read before any
// check can refuse it (TestHostileUploadMemory). The longest row the
// schema allows is about 20 KB (notes of 4096 bytes, ids of 64
// characters), a CTDC row a few hundred bytes, and neither has more than
// about 60 columns, so each cap is far above any real record.
const (
	maxCSVRecord  = 256 << 10 // bytes of one record, across its lines
	maxFieldBytes = 64 << 10  // bytes of one field (a JSON value too)
	maxCSVFields  = 1024      // fields of one record
)

// recordCapReader fails, for good, once a record passes maxCSVRecord, a
// field maxFieldBytes or a record maxCSVFields fields. It follows quoting as
// RFC 4180 does: a quote toggles, so a doubled quote inside a quoted field
// toggles twice, and a comma or line end inside quotes is data.
type recordCapReader struct {
	r        io.Reader
	line     int // line ends seen, for the message
	inQuotes bool
	record   int // bytes of the current record so far
	field    int // bytes of the current field so far
	fields   int // separators seen in the current record
	err      error
}

func (l *recordCapReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i, b := range p[:n] {
		l.record++
		l.field++
		switch {
		case b == '"':
			l.inQuotes = !l.inQuotes
		case b == '\n':
			l.line++
			if !l.inQuotes {
				l.record, l.field, l.fields = 0, 0, 0
			}
		case b == ',' && !l.inQuotes:
			l.field = 0
			l.fields++
		}
		if l.err = l.check(); l.err != nil {
			// The bytes before this one are passed on, so the records
			// before it read (and a header is not blamed for a later line).
			return i, nil
		}
	}
	return n, err
}

func (l *recordCapReader) check() error {
	const notCSV = "this is not a file of case records (is it CSV?)"
	switch {
	case l.field > maxFieldBytes:
		return fmt.Errorf("line %d: a field is longer than %d KiB: %s", l.line+1, maxFieldBytes>>10, notCSV)
	case l.record > maxCSVRecord:
		return fmt.Errorf("line %d: a record is longer than %d KiB: %s", l.line+1, maxCSVRecord>>10, notCSV)
	case l.fields >= maxCSVFields:
		return fmt.Errorf("line %d: a record has more than %d fields: %s", l.line+1, maxCSVFields, notCSV)
	}
	return nil
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(&recordCapReader{r: r})
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
