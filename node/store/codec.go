package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"roundtable/aggregate"
)

// codecVersion leads every encoded record so the layout can change later.
// Version 2 adds the record's source label after the version byte; version
// 1 records (no source) are still read.
const (
	codecVersion   = 2
	codecVersionV1 = 1
)

var errShort = errors.New("record is truncated")

// encodeCase is encodeRecord without a source.
func encodeCase(dst []byte, c *aggregate.Case) []byte { return encodeRecord(dst, c, "") }

// encodeRecord appends the compact binary form of c and the name of the
// source it was imported from ("" for none) to dst: strings as uvarint
// length + bytes, integers as zig-zag varints, enums as one byte, sets as
// uvarint bit masks, countries as a length byte (0 or 2) + code.
func encodeRecord(dst []byte, c *aggregate.Case, source string) []byte {
	dst = append(dst, codecVersion)
	dst = appendString(dst, source)
	dst = appendString(dst, c.CaseID)
	dst = appendString(dst, c.PersonID)
	dst = binary.AppendVarint(dst, int64(c.RegisteredOn))
	dst = append(dst, byte(c.Status), byte(c.Sex))
	dst = binary.AppendVarint(dst, int64(c.BirthYear))
	dst = binary.AppendVarint(dst, int64(c.Age))
	dst = appendString(dst, string(c.Citizenship))
	dst = appendString(dst, string(c.ExploitedIn))
	dst = binary.AppendUvarint(dst, uint64(c.Forms))
	dst = binary.AppendUvarint(dst, uint64(c.LabourTypes))
	dst = binary.AppendUvarint(dst, uint64(c.SexualTypes))
	dst = binary.AppendUvarint(dst, uint64(c.Control))
	var unacc byte
	if c.Unaccompanied {
		unacc = 1
	}
	dst = append(dst, byte(c.Recruitment), byte(c.RecruiterRelation), byte(c.ReferralSource), byte(c.MigrantStatus), unacc)
	dst = binary.AppendUvarint(dst, uint64(c.Services))
	return appendString(dst, c.Notes)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads the fields encodeCase wrote; the first error sticks so the
// caller checks once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("string of %d bytes is too long", n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) int(lo, hi int64) int {
	v := d.varint()
	if d.err == nil && (v < lo || v > hi) {
		d.err = fmt.Errorf("integer %d out of range", v)
	}
	return int(v)
}

// set reads a bit mask and checks it only uses the vocabulary's codes,
// which CheckCodes does not do for sets.
func (d *decoder) set(column string) uint32 {
	v := d.uvarint()
	n := len(aggregate.Vocabulary(column))
	if d.err == nil && v>>uint(n) != 0 {
		d.err = fmt.Errorf("%s set has codes out of range", column)
	}
	return uint32(v)
}

func (d *decoder) country() aggregate.Country {
	n := d.uvarint()
	switch {
	case d.err != nil:
		return aggregate.CountryUnknown
	case n == 0:
		return aggregate.CountryUnknown
	case n > 2 || n > uint64(len(d.b)):
		d.err = fmt.Errorf("string of %d bytes is too long", n)
		return aggregate.CountryUnknown
	}
	c, ok := aggregate.CountryCode(d.b[:n])
	if !ok {
		d.err = fmt.Errorf("country %q is not valid", d.b[:n])
	}
	d.b = d.b[n:]
	return c
}

// decodeCase reads a record written by encodeRecord into c, ignoring its
// source. It never panics on malformed input and checks every code is in
// its vocabulary.
func decodeCase(b []byte, c *aggregate.Case) error {
	_, err := decodeRecord(b, c)
	return err
}

// decodeRecord reads a record into c and returns its source.
func decodeRecord(b []byte, c *aggregate.Case) (string, error) {
	d := decoder{b: b}
	source := d.header()
	if d.err != nil {
		return "", fmt.Errorf("decode record: %w", d.err)
	}
	c.CaseID = d.string(aggregate.MaxIDLen)
	c.PersonID = d.string(aggregate.MaxIDLen)
	c.RegisteredOn = aggregate.Date(d.int(-1<<31, 1<<31-1))
	c.Status = aggregate.Status(d.byte())
	c.Sex = aggregate.Sex(d.byte())
	c.BirthYear = d.int(aggregate.AgeUnknown, 9999)
	c.Age = d.int(aggregate.AgeUnknown, aggregate.MaxAge)
	c.Citizenship = d.country()
	c.ExploitedIn = d.country()
	c.Forms = aggregate.Set[aggregate.Form](d.set("exploitation_forms"))
	c.LabourTypes = aggregate.Set[aggregate.LabourType](d.set("labour_types"))
	c.SexualTypes = aggregate.Set[aggregate.SexType](d.set("sexual_types"))
	c.Control = aggregate.Set[aggregate.Control](d.set("means_of_control"))
	c.Recruitment = aggregate.Recruitment(d.byte())
	c.RecruiterRelation = aggregate.Relation(d.byte())
	c.ReferralSource = aggregate.Referral(d.byte())
	c.MigrantStatus = aggregate.Migration(d.byte())
	unacc := d.byte()
	c.Unaccompanied = unacc == 1
	c.Services = aggregate.Set[aggregate.Service](d.set("services"))
	c.Notes = d.string(aggregate.MaxNotesLen)
	if d.err != nil {
		return "", fmt.Errorf("decode record: %w", d.err)
	}
	if len(d.b) != 0 || unacc > 1 {
		return "", fmt.Errorf("decode record: %d trailing or malformed bytes", len(d.b))
	}
	if err := c.CheckCodes(); err != nil {
		return "", fmt.Errorf("decode record: %w", err)
	}
	return source, nil
}

// sourceOf reads only the source of an encoded record.
func sourceOf(b []byte) (string, error) {
	d := decoder{b: b}
	source := d.header()
	return source, d.err
}

// header reads the version byte and, from version 2 on, the source.
func (d *decoder) header() string {
	switch v := d.byte(); {
	case d.err != nil:
		return ""
	case v == codecVersionV1:
		return ""
	case v == codecVersion:
		return d.string(MaxSourceLen)
	default:
		d.err = fmt.Errorf("record codec version %d is not supported", v)
		return ""
	}
}
