package synth

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"roundtable/aggregate"
)

// rowFormatter turns a case into a CSV line: values from
// aggregate.FieldValue, quoted exactly as encoding/csv.Writer quotes them
// (TestRowMatchesEncodingCSV holds it to that). It exists for speed: it
// remembers the encoded text of the columns whose value is one small code
// that repeats from row to row (dates, birth years, the multi-valued sets),
// and appends to one buffer instead of writing field by field. Those two
// were most of the cost of a row, and the load tests want ≥ 500k rows/s.
type rowFormatter struct {
	line []byte
	memo []map[int64]string // by column index; nil for columns not memoised
}

func newRowFormatter() *rowFormatter {
	f := &rowFormatter{line: make([]byte, 0, 512), memo: make([]map[int64]string, len(aggregate.Columns))}
	for i, col := range aggregate.Columns {
		if _, ok := memoKey(&aggregate.Case{}, col); ok {
			f.memo[i] = make(map[int64]string)
		}
	}
	return f
}

// memoKey is the code that alone decides FieldValue(c, col), for the
// memoised columns.
func memoKey(c *aggregate.Case, col string) (int64, bool) {
	switch col {
	case "registered_on":
		return int64(c.RegisteredOn), true
	case "birth_year":
		return int64(c.BirthYear), true
	case "exploitation_forms":
		return int64(c.Forms), true
	case "labour_types":
		return int64(c.LabourTypes), true
	case "sexual_types":
		return int64(c.SexualTypes), true
	case "means_of_control":
		return int64(c.Control), true
	case "services":
		return int64(c.Services), true
	}
	return 0, false
}

// format returns c as one CSV line ending in "\n"; the slice is reused by
// the next call.
func (f *rowFormatter) format(c *aggregate.Case) []byte {
	b := f.line[:0]
	for i, col := range aggregate.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		m := f.memo[i]
		if m == nil {
			b = appendField(b, aggregate.FieldValue(c, col))
			continue
		}
		k, _ := memoKey(c, col)
		s, ok := m[k]
		if !ok {
			s = string(appendField(nil, aggregate.FieldValue(c, col)))
			m[k] = s
		}
		b = append(b, s...)
	}
	b = append(b, '\n')
	f.line = b
	return b
}

// header returns the header line.
func header() []byte {
	var b []byte
	for i, col := range aggregate.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(b, col)
	}
	return append(b, '\n')
}

// appendField appends s as encoding/csv.Writer (comma ",", no CRLF) writes
// a field: quoted if it holds a comma, quote, CR or LF, starts with a
// space, or is `\.`; quotes inside doubled.
func appendField(b []byte, s string) []byte {
	if !needsQuotes(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		b = append(b, s[:i+1]...)
		b = append(b, '"')
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}

func needsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s == `\.` {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}
