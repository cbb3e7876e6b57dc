package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
	obj, err := jsonObject(b)
	if err != nil {
		return err
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
		if len(raw) > maxFieldBytes {
			// Decoding a long array costs about 40 bytes per element of
			// three; no field of the schema comes near this.
			return fmt.Errorf("field %q is longer than %d KiB", col, maxFieldBytes>>10)
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

// jsonObject reads a line as an object of schema keys, each at most once,
// key by key, and stops at the first unknown or repeated one: decoding the whole object first costs
// about 12 bytes per byte for a line of a hundred thousand different keys
// (TestHostileUploadMemory).
func jsonObject(b []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if !json.Valid(b) || !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		// Invalid JSON fails Unmarshal's syntax pass before anything is
		// allocated; a valid non-object fails on its type. Either way
		// Unmarshal words the error.
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("not a valid JSON object: %v", err)
		}
		return nil, errors.New("not a valid JSON object: null")
	}
	obj = map[string]json.RawMessage{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, fmt.Errorf("not a valid JSON object: %v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not a valid JSON object: %v", err)
		}
		k, _ := tok.(string)
		if !slices.Contains(aggregate.Columns, k) {
			return nil, fmt.Errorf("unknown key %q (known keys: %s)", k, strings.Join(aggregate.Columns, ", "))
		}
		if _, dup := obj[k]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not a valid JSON object: %v", err)
		}
		obj[k] = raw
	}
	return obj, nil
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
