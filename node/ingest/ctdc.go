package ingest

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"roundtable/aggregate"
)

// The CTDC global dataset (Counter Trafficking Data Collaborative) is one
// row per person with 0/1/-99 indicator columns; -99 means unknown. See
// DESIGN.md for how each column maps onto the case schema.

var ctdcFlags = []string{"0", "1", "-99"}

// ctdcFormFlags maps the exploitation indicators onto forms.
var ctdcFormFlags = map[string][]aggregate.Form{
	"isForcedLabour":        {aggregate.ForcedLabour},
	"isSexualExploit":       {aggregate.SexualExploitation},
	"isOtherExploit":        {aggregate.FormOther},
	"isSexAndLabour":        {aggregate.SexualExploitation, aggregate.ForcedLabour},
	"isForcedMarriage":      {aggregate.ForcedMarriage},
	"isForcedMilitary":      {aggregate.ForcedMilitary},
	"isOrganRemoval":        {aggregate.OrganRemoval},
	"isSlaveryAndPractices": {aggregate.SlaveryAndPractices},
}

// ctdcRelations are the recruiterRelation* flags in the order the first set
// one is taken (the schema keeps one relation per case).
var ctdcRelations = []struct {
	col string
	rel aggregate.Relation
}{
	{"recruiterRelationIntimatePartner", aggregate.IntimatePartner},
	{"recruiterRelationFamily", aggregate.Family},
	{"recruiterRelationFriend", aggregate.Friend},
	{"recruiterRelationOther", aggregate.RelationOther},
	{"recruiterRelationUnknown", aggregate.RelationUnknown},
}

// ctdcIgnored are CTDC columns read for nothing: text copies of the flags
// ("…Concatenated", RecruiterRelationship), flags the schema has no place
// for, and majority status at other moments than registration.
var ctdcIgnored = []string{
	"meansOfControlConcatenated", "typeOfExploitConcatenated", "typeOfLabourConcatenated",
	"typeOfSexConcatenated", "RecruiterRelationship", "majorityStatusAtExploit", "majorityEntry",
	"meansOfControlNotSpecified", "typeOfLabourNotSpecified",
}

// ctdcAges maps ageBroad bands to their lower bound.
var ctdcAges = map[string]int{
	"0--8": 0, "9--17": 9, "18--20": 18, "21--23": 21, "24--26": 24, "27--29": 27,
	"30--38": 30, "39--47": 39, "48+": 48,
}

type ctdcSource struct {
	r    *csv.Reader
	head []string
	col  map[string]int
	// flags are the columns (and what they set) present in this file.
	flags []ctdcFlag
	// byName lists the columns' indexes in the order of their names, for
	// the canonical content a row's id is computed from.
	byName []int
	// seen counts the rows of each content so far: identical rows are
	// distinct people, told apart by their occurrence.
	seen map[[sha256.Size]byte]int
	buf  []byte
}

type ctdcFlag struct {
	idx int
	col string
	set func(c *aggregate.Case)
}

func newCTDCSource(name string, r io.Reader) (*ctdcSource, error) {
	cr := newCSVReader(r)
	head, err := readHeader(name, cr)
	if err != nil {
		return nil, err
	}
	s := &ctdcSource{r: cr, head: head, col: map[string]int{}, seen: map[[sha256.Size]byte]int{}}
	known := ctdcKnown()
	// The first cell is the terms-of-use notice, not a column.
	for i := 1; i < len(head); i++ {
		h := strings.TrimSpace(head[i])
		if _, dup := s.col[h]; dup {
			return nil, fmt.Errorf("%s:1: column %q appears twice", name, h)
		}
		set, ok := known[h]
		if !ok {
			return nil, fmt.Errorf("%s:1: unknown CTDC column %q (is this the CTDC global dataset? use --format csv for the project format)", name, h)
		}
		s.col[h] = i
		s.flags = append(s.flags, ctdcFlag{idx: i, col: h, set: set})
	}
	if _, ok := s.col["yearOfRegistration"]; !ok {
		return nil, fmt.Errorf("%s:1: missing required CTDC column \"yearOfRegistration\"", name)
	}
	for _, i := range s.col {
		s.byName = append(s.byName, i)
	}
	slices.SortFunc(s.byName, func(a, b int) int { return strings.Compare(strings.TrimSpace(head[a]), strings.TrimSpace(head[b])) })
	return s, nil
}

// caseID names a CTDC row by its content, since CTDC has no ids:
// "ctdc-" + the first 16 bytes of SHA-256 over the row's columns sorted by
// name (name, 0x1f, trimmed value, 0x1e for each; the notice column left
// out) in hex + "-" + how many identical rows came before it in this file.
// Renaming or re-ordering the file keeps every id; identical rows stay
// distinct people; a corrected row is a new id (docs/case-schema.md).
func (s *ctdcSource) caseID(rec []string) string {
	b := s.buf[:0]
	for _, i := range s.byName {
		b = append(b, strings.TrimSpace(s.head[i])...)
		b = append(b, 0x1f)
		b = append(b, strings.TrimSpace(rec[i])...)
		b = append(b, 0x1e)
	}
	s.buf = b
	h := sha256.Sum256(b)
	n := s.seen[h]
	s.seen[h] = n + 1
	return "ctdc-" + hex.EncodeToString(h[:16]) + "-" + strconv.Itoa(n)
}

// ctdcKnown maps every known CTDC column to what a 1 in it sets; columns
// with values other than flags map to nil and are read in next.
func ctdcKnown() map[string]func(*aggregate.Case) {
	m := map[string]func(*aggregate.Case){}
	for _, c := range []string{"yearOfRegistration", "Datasource", "gender", "ageBroad", "majorityStatus", "citizenship", "CountryOfExploitation"} {
		m[c] = nil
	}
	flag := func(col string, set func(*aggregate.Case)) { m[col] = set }
	for _, c := range ctdcIgnored {
		if strings.HasSuffix(c, "NotSpecified") {
			flag(c, func(*aggregate.Case) {}) // validated as a flag, otherwise unused
		} else {
			m[c] = nil
		}
	}
	for i, n := range aggregate.Vocabulary("means_of_control") {
		v := aggregate.Control(i)
		flag("meansOfControl"+n, func(c *aggregate.Case) { c.Control = c.Control.With(v) })
	}
	for i, n := range aggregate.Vocabulary("labour_types") {
		v := aggregate.LabourType(i)
		flag("typeOfLabour"+n, func(c *aggregate.Case) { c.LabourTypes = c.LabourTypes.With(v) })
	}
	for i, n := range aggregate.Vocabulary("sexual_types") {
		v := aggregate.SexType(i)
		flag("typeOfSex"+n, func(c *aggregate.Case) { c.SexualTypes = c.SexualTypes.With(v) })
	}
	for col, forms := range ctdcFormFlags {
		flag(col, func(c *aggregate.Case) {
			for _, f := range forms {
				c.Forms = c.Forms.With(f)
			}
		})
	}
	flag("isAbduction", func(c *aggregate.Case) { c.Recruitment = aggregate.Abduction })
	for _, r := range ctdcRelations {
		flag(r.col, func(*aggregate.Case) {}) // applied in order after all flags
	}
	return m
}

func (s *ctdcSource) columns() []string { return s.head }

func (s *ctdcSource) next(r *row) error {
	rec, line, err := nextRecord(s.r, r)
	if err != nil || r.err != nil {
		return err
	}
	if len(rec) != len(s.head) {
		r.err = fmt.Errorf("has %d fields but the header has %d", len(rec), len(s.head))
		return nil
	}
	r.line, r.c = line, aggregate.NewCase()
	r.c.CaseID = s.caseID(rec)
	r.err = s.fill(&r.c, rec)
	if r.err == nil {
		r.err = r.c.Validate()
	}
	return nil
}

func (s *ctdcSource) get(rec []string, col string) (string, bool) {
	i, ok := s.col[col]
	if !ok {
		return "", false
	}
	return strings.TrimSpace(rec[i]), true
}

func (s *ctdcSource) fill(c *aggregate.Case, rec []string) error {
	for _, f := range []func(*aggregate.Case, []string) error{s.year, s.datasource, s.gender, s.age, s.countries} {
		if err := f(c, rec); err != nil {
			return err
		}
	}
	for _, f := range s.flags {
		if f.set == nil {
			continue
		}
		v := strings.TrimSpace(rec[f.idx])
		if !slices.Contains(ctdcFlags, v) {
			return &aggregate.FieldError{Field: f.col, Value: rec[f.idx], Allowed: ctdcFlags}
		}
		if v == "1" {
			f.set(c)
		}
	}
	for _, rel := range ctdcRelations {
		if v, _ := s.get(rec, rel.col); v == "1" {
			c.RecruiterRelation = rel.rel
			break
		}
	}
	return nil
}

// year sets registered_on to 1 January of yearOfRegistration: CTDC gives
// only the year, and the quarter is then always Q1 (see DESIGN.md).
func (s *ctdcSource) year(c *aggregate.Case, rec []string) error {
	v, _ := s.get(rec, "yearOfRegistration")
	y, err := strconv.Atoi(v)
	if err != nil || y < aggregate.MinYear || y > aggregate.MaxYear {
		return &aggregate.FieldError{Field: "yearOfRegistration", Value: v,
			Reason: fmt.Sprintf("is not a year from %d to %d (it is required)", aggregate.MinYear, aggregate.MaxYear)}
	}
	c.RegisteredOn = aggregate.DateOf(y, 1, 1)
	return nil
}

// datasource sets status and referral: case management records are
// identified victims; hotline records are presumed ones referred by a hotline.
func (s *ctdcSource) datasource(c *aggregate.Case, rec []string) error {
	v, ok := s.get(rec, "Datasource")
	if !ok {
		return nil
	}
	switch strings.ToLower(v) {
	case "case management":
		c.Status = aggregate.Identified
	case "hotline":
		c.Status, c.ReferralSource = aggregate.Presumed, aggregate.Hotline
	default:
		return &aggregate.FieldError{Field: "Datasource", Value: v, Allowed: []string{"Case Management", "Hotline"}}
	}
	return nil
}

func (s *ctdcSource) gender(c *aggregate.Case, rec []string) error {
	v, ok := s.get(rec, "gender")
	if !ok || v == "-99" || v == "" {
		c.Sex = aggregate.SexUnknown
		return nil
	}
	return fieldErr(aggregate.SetField(c, "sex", v), "gender")
}

// age sets Age to the lower bound of the ageBroad band. majorityStatus alone
// (band unknown) leaves the age unknown: the schema has no child flag.
func (s *ctdcSource) age(c *aggregate.Case, rec []string) error {
	if v, ok := s.get(rec, "ageBroad"); ok && v != "-99" && v != "" {
		a, known := ctdcAges[v]
		if !known {
			return &aggregate.FieldError{Field: "ageBroad", Value: v,
				Allowed: []string{"0--8", "9--17", "18--20", "21--23", "24--26", "27--29", "30--38", "39--47", "48+", "-99"}}
		}
		c.Age = a
	}
	if v, ok := s.get(rec, "majorityStatus"); ok {
		switch strings.ToLower(v) {
		case "minor", "adult", "-99", "":
		default:
			return &aggregate.FieldError{Field: "majorityStatus", Value: v, Allowed: []string{"Minor", "Adult", "-99"}}
		}
	}
	return nil
}

func (s *ctdcSource) countries(c *aggregate.Case, rec []string) error {
	var err error
	if v, ok := s.get(rec, "citizenship"); ok {
		if c.Citizenship, err = aggregate.ParseCountry("citizenship", v); err != nil {
			return err
		}
	}
	if v, ok := s.get(rec, "CountryOfExploitation"); ok {
		if c.ExploitedIn, err = aggregate.ParseCountry("CountryOfExploitation", v); err != nil {
			return err
		}
	}
	return nil
}
