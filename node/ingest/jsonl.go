package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"roundtable/aggregate"
)

// maxJSONLine caps one JSON Lines record, so a file without newlines
// cannot make the importer hold it all in memory.
const maxJSONLine = 1 << 20

// jsonlSource reads one JSON object per line with aggregate.Columns as keys.
type jsonlSource struct {
	r    *bufio.Reader
	line int
	buf  []byte
}

func newJSONLSource(r io.Reader) *jsonlSource {
	return &jsonlSource{r: bufio.NewReaderSize(r, 64*1024)}
}

// jsonlColumns is the rejected file's header: the line as it was.
func (s *jsonlSource) columns() []string { return []string{"json"} }

// readLine returns the next line without its end, or tooLong if it passed
// maxJSONLine (the rest of that line is skipped).
func (s *jsonlSource) readLine() (line []byte, tooLong bool, err error) {
	s.buf = s.buf[:0]
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(s.buf)+len(frag) <= maxJSONLine+2 { // +2 for the line end
			s.buf = append(s.buf, frag...)
		} else {
			tooLong = true
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(s.buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		s.line++
		return bytes.TrimRight(s.buf, "\r\n"), tooLong || len(bytes.TrimRight(s.buf, "\r\n")) > maxJSONLine, nil
	}
}

func (s *jsonlSource) next(r *row) error {
	for {
		b, tooLong, err := s.readLine()
		if err != nil {
			return err
		}
		r.line, r.c = s.line, aggregate.NewCase()
		switch {
		case tooLong:
			r.err = fmt.Errorf("line is longer than %d bytes (1 MiB); is this JSON Lines (one record per line)?", maxJSONLine)
			return nil
		case len(bytes.TrimSpace(b)) == 0:
			continue
		case !utf8.Valid(b):
			r.raw, r.err = []string{string(b)}, errNotUTF8
			return nil
		}
		r.raw = []string{string(b)}
		r.err = decodeJSONCase(b, &r.c)
		return nil
	}
}

func decodeJSONCase(b []byte, c *aggregate.Case) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("not a valid JSON object: %v", err)
	}
	if obj == nil {
		return errors.New("not a valid JSON object: null")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic messages
	for _, k := range keys {
		if !slices.Contains(aggregate.Columns, k) {
			return fmt.Errorf("unknown key %q (known keys: %s)", k, strings.Join(aggregate.Columns, ", "))
		}
	}
	for _, req := range requiredColumns {
		if _, ok := obj[req]; !ok {
			return fmt.Errorf("missing key %q (case_id and registered_on are required)", req)
		}
	}
	for _, col := range aggregate.Columns {
		raw, ok := obj[col]
		if !ok {
			continue
		}
		v, err := jsonValue(col, raw)
		if err != nil {
			return err
		}
		if err := aggregate.SetField(c, col, v); err != nil {
			return err
		}
	}
	return c.Validate()
}

// jsonValue turns a JSON value into the text SetField reads: strings as
// they are, numbers and booleans as written, null as empty, and arrays of
// strings joined with ";".
func jsonValue(col string, raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("field %q: %v", col, err)
	}
	switch t := v.(type) {
	case nil:
		return "", nil
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case bool:
		if t {
			return "true", nil
		}
		return "false", nil
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("field %q: a JSON array must hold only strings", col)
			}
			parts[i] = s
		}
		return strings.Join(parts, ";"), nil
	}
	return "", fmt.Errorf("field %q: a JSON object is not allowed here (want a string, number or array of strings)", col)
}
