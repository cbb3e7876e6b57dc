// Package summary computes the local summary of a node's case records:
// exact counts of cases and distinct persons by year, status, sex and age
// group. It is for the node operator's eyes only. The counts are not noised
// and must never leave the node, so the package has no JSON encoding and
// nothing network-facing; the CLI's `roundtable cases` prints it.
package summary

import (
	"context"
	"fmt"
	"slices"

	"roundtable/aggregate"
)

// Banner is the first line of every written summary.
const Banner = "LOCAL ONLY — exact counts for this node's operator; never published"

// Dimension is one breakdown of the summary.
type Dimension string

// The breakdowns, in the order Write prints them.
const (
	Total  Dimension = "total" // the single value "all"
	Status Dimension = "status"
	Sex    Dimension = "sex"
	Age    Dimension = "age"
)

// AllYears selects the all-years column in Get.
const AllYears = 0

// Counts are exact numbers of cases and of distinct persons.
type Counts struct {
	Cases   int
	Persons int
}

// Summary holds the counts per registration year and over all years. A
// person is counted once in each row their cases fall in: someone
// presumed in March and identified in May is in both status rows, and
// once in the total.
type Summary struct {
	years  []int // ascending
	byYear map[int]*table
	all    table
}

// Years lists the registration years present, ascending.
func (s *Summary) Years() []int { return slices.Clone(s.years) }

// Get returns the counts of one row for a year (or AllYears). ok is false
// for a dimension or value the summary does not have; a year without cases
// gives zero counts.
func (s *Summary) Get(year int, d Dimension, value string) (c Counts, ok bool) {
	i, ok := rowIndex(d, value)
	if !ok {
		return Counts{}, false
	}
	t := &s.all
	if year != AllYears {
		if t = s.byYear[year]; t == nil {
			return Counts{}, true
		}
	}
	return t.rows[i], true
}

// nAgeGroups is the number of age groups, the last one "unknown".
const nAgeGroups = 6

// ageLabel names age group i, as the catalog does.
func ageLabel(i int) string {
	return [nAgeGroups]string{"0–11", "12–17", "18–24", "25–39", "40+", "unknown"}[i]
}

// AgeGroups lists the age group labels in order.
func AgeGroups() []string {
	out := make([]string, nAgeGroups)
	for i := range out {
		out[i] = ageLabel(i)
	}
	return out
}

func ageGroup(age int) int {
	switch {
	case age == aggregate.AgeUnknown:
		return nAgeGroups - 1
	case age < 12:
		return 0
	case age < 18:
		return 1
	case age < 25:
		return 2
	case age < 40:
		return 3
	}
	return 4
}

// The rows of a table: total, then status, sex and age values. Status and
// sex codes are positions in their vocabularies, so row = first + code.
const (
	nStatus   = 2
	nSex      = 4
	rowTotal  = 0
	rowStatus = 1
	rowSex    = rowStatus + nStatus
	rowAge    = rowSex + nSex
	nRows     = rowAge + nAgeGroups
)

func rowIndex(d Dimension, value string) (int, bool) {
	switch d {
	case Total:
		return rowTotal, value == "all" || value == ""
	case Status, Sex, Age:
		for i := rowStatus; i < nRows; i++ {
			if dd, v := rowLabel(i); dd == d && v == value {
				return i, true
			}
		}
	}
	return 0, false
}

// rowLabel returns the dimension and value of row i.
func rowLabel(i int) (Dimension, string) {
	switch {
	case i == rowTotal:
		return Total, "all"
	case i < rowSex:
		return Status, aggregate.Status(i - rowStatus).String()
	case i < rowAge:
		return Sex, aggregate.Sex(i - rowSex).String()
	}
	return Age, ageLabel(i - rowAge)
}

// table is one column of the summary: a year or all years.
type table struct {
	rows   [nRows]Counts
	people map[string]uint32 // person → bit set of the rows their cases fall in; dropped when done
}

func newTable() table { return table{people: map[string]uint32{}} }

func (t *table) add(person string, rows [4]int) {
	m := t.people[person]
	for _, r := range rows {
		t.rows[r].Cases++
		m |= 1 << r
	}
	t.people[person] = m
}

// finish turns the per-person bit sets into person counts. The order the
// map is walked in does not matter: the counts are sums.
func (t *table) finish() {
	for _, m := range t.people {
		for r := range nRows {
			if m&(1<<r) != 0 {
				t.rows[r].Persons++
			}
		}
	}
	t.people = nil
}

// Compute reads every case from cases and counts them. cases calls fn once
// per case and stops at fn's first error; fn does not keep the case.
func Compute(ctx context.Context, cases func(fn func(*aggregate.Case) error) error) (*Summary, error) {
	s := &Summary{byYear: map[int]*table{}, all: newTable()}
	n := 0
	err := cases(func(c *aggregate.Case) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := c.CheckCodes(); err != nil {
			return err
		}
		rows := [4]int{rowTotal, rowStatus + int(c.Status), rowSex + int(c.Sex), rowAge + ageGroup(c.AgeAt())}
		y := c.RegisteredOn.Year()
		t := s.byYear[y]
		if t == nil {
			nt := newTable()
			t = &nt
			s.byYear[y] = t
			s.years = append(s.years, y)
		}
		p := c.Person()
		t.add(p, rows)
		s.all.add(p, rows)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	slices.Sort(s.years)
	for _, t := range s.byYear {
		t.finish()
	}
	s.all.finish()
	return s, nil
}
