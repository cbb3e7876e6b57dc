package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// The series view reads every release in the ledger once: at 100,000
// whole-catalog releases (28 KB each) that is 2.8 GB of JSON, and
// encoding/json spent 0.74 ms of CPU on each (about 40 MB/s on the
// loaded 2-core machine), most of the view's build. releaseDecoder reads
// the stored bytes directly, keeping only what the view uses (id, partner,
// period, and per indicator its name, mechanism, dimensions, cells and
// quantiles), and interns the strings it meets, so a release costs no
// allocation per key. It accepts any JSON encoding/json would decode into
// privacy.Signed for those fields (whitespace, field order, escapes,
// unknown fields skipped); a release it cannot read is decoded by
// encoding/json instead (decodeViewRelease), so a quirk of the fast path
// can cost time, never a release. TestReleaseDecoderAgrees compares the two.

// releaseDecoder holds the interned strings of one decoding goroutine.
type releaseDecoder struct {
	// skipIntervals, if set, names the indicators whose cells' published
	// intervals the caller does not use: they are passed over unparsed
	// (left 0), which saves a third of the decoding.
	skipIntervals func(indicator string) bool
	strs          map[string]string
	keys          map[string][]string // a cell key's JSON → the key, shared and read-only
	rel           *privacy.Signed
	data          []byte
	pos           int
}

func newReleaseDecoder() *releaseDecoder {
	return &releaseDecoder{strs: map[string]string{}, keys: map[string][]string{}}
}

// decodeViewRelease decodes a stored release for the view: the fast path,
// or encoding/json if the fast path fails.
func (d *releaseDecoder) decodeViewRelease(data []byte) (*privacy.Signed, error) {
	if err := d.decode(data); err == nil {
		return d.rel, nil
	}
	var s privacy.Signed
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

var errSyntax = errors.New("release JSON: unexpected input")

// decode fills d.rel's ID and the release's Partner, Period and
// Indicators from data; other fields are left empty.
func (d *releaseDecoder) decode(data []byte) error {
	d.data, d.pos, d.rel = data, 0, &privacy.Signed{}
	err := d.object(func(key []byte) error {
		switch string(key) {
		case "id":
			b, err := d.rawString()
			d.rel.ID = string(b)
			return err
		case "release":
			return d.release()
		}
		return d.skip(key, "id", "release")
	})
	if err != nil {
		return err
	}
	d.space()
	if d.pos != len(d.data) {
		return errSyntax
	}
	return nil
}

func (d *releaseDecoder) release() error {
	r := &d.rel.Release
	return d.object(func(key []byte) error {
		switch string(key) {
		case "partner":
			return d.str(&r.Partner)
		case "period":
			var s string
			if err := d.str(&s); err != nil {
				return err
			}
			p, err := aggregate.ParsePeriod(s)
			r.Period = p
			return err
		case "indicators":
			if d.null() {
				r.Indicators = nil
				return nil
			}
			r.Indicators = []privacy.IndicatorRelease{}
			return d.array(func(i int) error {
				r.Indicators = append(r.Indicators, privacy.IndicatorRelease{})
				return d.indicator(&r.Indicators[i])
			})
		}
		return d.skip(key, "partner", "period", "indicators")
	})
}

func (d *releaseDecoder) indicator(ir *privacy.IndicatorRelease) error {
	return d.object(func(key []byte) error {
		switch string(key) {
		case "name":
			return d.str(&ir.Name)
		case "mechanism":
			return d.str(&ir.Mechanism)
		case "dimensions":
			return d.strings(&ir.Dimensions)
		case "cells":
			if d.null() {
				ir.Cells = nil
				return nil
			}
			ir.Cells = make([]privacy.Cell, 0, 64)
			return d.array(func(i int) error {
				ir.Cells = append(ir.Cells, privacy.Cell{})
				return d.cell(&ir.Cells[i], ir.Name != "" && d.skipIntervals != nil && d.skipIntervals(ir.Name))
			})
		case "quantiles":
			if d.null() {
				ir.Quantiles = nil
				return nil
			}
			ir.Quantiles = []privacy.Quantile{}
			return d.array(func(i int) error {
				var q privacy.Quantile
				err := d.object(func(key []byte) error {
					switch string(key) {
					case "rank":
						return d.float(&q.Rank)
					case "value":
						return d.float(&q.Value)
					case "ci_low":
						return d.float(&q.CILow)
					case "ci_high":
						return d.float(&q.CIHigh)
					}
					return d.skip(key, "rank", "value", "ci_low", "ci_high")
				})
				ir.Quantiles = append(ir.Quantiles, q)
				return err
			})
		}
		return d.skip(key, "name", "mechanism", "dimensions", "cells", "quantiles")
	})
}

func (d *releaseDecoder) cell(c *privacy.Cell, noIntervals bool) error {
	return d.object(func(k []byte) error {
		switch string(k) {
		case "key":
			return d.cellKey(&c.Key)
		case "value":
			return d.int(&c.Value)
		case "scale":
			return d.float(&c.Scale)
		case "ci_low", "ci_high":
			if noIntervals {
				return d.skipValue()
			}
			if k[3] == 'l' {
				return d.float(&c.CILow)
			}
			return d.float(&c.CIHigh)
		}
		return d.skip(k, "key", "value", "scale", "ci_low", "ci_high")
	})
}

// cellKey reads a cell's key. A catalog has a few hundred keys and every
// release repeats them, so the key is looked up by its JSON text (the
// array is only scanned) and parsed once; the slice is shared between
// cells and must not be changed.
func (d *releaseDecoder) cellKey(out *[]string) error {
	d.space()
	start := d.pos
	if err := d.skipValue(); err != nil {
		return err
	}
	if k, ok := d.keys[string(d.data[start:d.pos])]; ok {
		*out = k
		return nil
	}
	end := d.pos
	d.pos = start
	if err := d.strings(out); err != nil {
		return err
	}
	if d.pos != end {
		return errSyntax
	}
	if len(d.keys) < 1<<14 && *out != nil {
		d.keys[string(d.data[start:end])] = *out
	}
	return nil
}

// strings reads an array of strings into *out; null is nil, as for
// encoding/json.
func (d *releaseDecoder) strings(out *[]string) error {
	if d.null() {
		*out = nil
		return nil
	}
	s := make([]string, 0, 4)
	err := d.array(func(int) error {
		var v string
		err := d.str(&v)
		s = append(s, v)
		return err
	})
	*out = s
	return err
}

func (d *releaseDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// null consumes a JSON null, which encoding/json decodes as the zero value.
func (d *releaseDecoder) null() bool {
	d.space()
	if len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "null" {
		d.pos += 4
		return true
	}
	return false
}

func (d *releaseDecoder) expect(c byte) error {
	d.space()
	if d.pos >= len(d.data) || d.data[d.pos] != c {
		return errSyntax
	}
	d.pos++
	return nil
}

// object calls field for each member of an object, positioned at its value.
func (d *releaseDecoder) object(field func(key []byte) error) error {
	return d.sequence('{', '}', func(int) error {
		key, err := d.rawString()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		return field(key)
	})
}

// array calls elem for each element, positioned at it.
func (d *releaseDecoder) array(elem func(i int) error) error {
	return d.sequence('[', ']', elem)
}

// sequence reads null, or open, the members separated by commas (member
// reads each), and close.
func (d *releaseDecoder) sequence(open, close byte, member func(i int) error) error {
	if d.null() {
		return nil
	}
	if err := d.expect(open); err != nil {
		return err
	}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == close {
		d.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := member(i); err != nil {
			return err
		}
		d.space()
		if d.pos >= len(d.data) {
			return errSyntax
		}
		d.pos++
		switch d.data[d.pos-1] {
		case ',':
		case close:
			return nil
		default:
			return errSyntax
		}
	}
}

// rawString returns the bytes of a string without escapes; a string with
// an escape, a control character or invalid UTF-8 (which encoding/json
// would replace) is left to encoding/json.
func (d *releaseDecoder) rawString() ([]byte, error) {
	if err := d.expect('"'); err != nil {
		return nil, err
	}
	start, ascii := d.pos, true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			b := d.data[start : d.pos-1]
			if !ascii && !utf8.Valid(b) {
				return nil, errSyntax
			}
			return b, nil
		case c == '\\' || c < 0x20:
			return nil, errSyntax
		case c >= 0x80:
			ascii = false
		}
		d.pos++
	}
	return nil, errSyntax
}

// str reads a string, interned.
func (d *releaseDecoder) str(out *string) error {
	if d.null() {
		return nil
	}
	b, err := d.rawString()
	if err != nil {
		return err
	}
	if s, ok := d.strs[string(b)]; ok {
		*out = s
		return nil
	}
	s := string(b)
	if len(d.strs) < 1<<14 { // names and keys repeat; a hostile ledger's need not
		d.strs[s] = s
	}
	*out = s
	return nil
}

// number returns the bytes of a JSON number (RFC 8259 §6:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?).
func (d *releaseDecoder) number() ([]byte, error) {
	d.space()
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	peek := func(cs string) bool { return d.pos < len(d.data) && strings.IndexByte(cs, d.data[d.pos]) >= 0 }
	if peek("-") {
		d.pos++
	}
	if peek("0") {
		d.pos++
	} else if digits() == 0 {
		return nil, errSyntax
	}
	if peek(".") {
		d.pos++
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	if peek("eE") {
		d.pos++
		if peek("+-") {
			d.pos++
		}
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	return d.data[start:d.pos], nil
}

func (d *releaseDecoder) int(out *int64) error {
	if d.null() {
		return nil
	}
	b, err := d.number()
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("release JSON: %w", err)
	}
	*out = v
	return nil
}

func (d *releaseDecoder) float(out *float64) error {
	if d.null() {
		return nil
	}
	b, err := d.number()
	if err != nil {
		return err
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("release JSON: %w", err)
	}
	*out = v
	return nil
}

// skip passes over the value of a member the view does not read. A key
// that encoding/json would match to one of the view's fields (it matches
// names case-insensitively) is left to encoding/json.
func (d *releaseDecoder) skip(key []byte, fields ...string) error {
	for _, f := range fields {
		if bytes.EqualFold(key, []byte(f)) {
			return errSyntax
		}
	}
	return d.skipValue()
}

// skipValue passes over one value of any kind.
func (d *releaseDecoder) skipValue() error {
	d.space()
	if d.pos >= len(d.data) {
		return errSyntax
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(func([]byte) error { return d.skipValue() })
	case c == '[':
		return d.array(func(int) error { return d.skipValue() })
	case c == '"':
		return d.skipString()
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
				d.pos += len(lit)
				return nil
			}
		}
		return errSyntax
	}
	_, err := d.number()
	return err
}

// skipString passes over a string, checking its escapes.
func (d *releaseDecoder) skipString() error {
	d.pos++ // the opening quote
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		d.pos++
		switch {
		case c == '"':
			return nil
		case c < 0x20:
			return errSyntax
		case c == '\\':
			if d.pos >= len(d.data) {
				return errSyntax
			}
			e := d.data[d.pos]
			d.pos++
			switch {
			case strings.IndexByte(`"\\/bfnrt`, e) >= 0:
			case e == 'u':
				if len(d.data)-d.pos < 4 {
					return errSyntax
				}
				for _, h := range d.data[d.pos : d.pos+4] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return errSyntax
					}
				}
				d.pos += 4
			default:
				return errSyntax
			}
		}
	}
	return errSyntax
}
