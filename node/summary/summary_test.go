package summary

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/synth"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// mk builds a case; age or birthYear may be aggregate.AgeUnknown.
func mk(id, person string, on aggregate.Date, st aggregate.Status, sex aggregate.Sex, age, birthYear int) aggregate.Case {
	c := aggregate.NewCase()
	c.CaseID, c.PersonID, c.RegisteredOn, c.Status, c.Sex, c.Age, c.BirthYear = id, person, on, st, sex, age, birthYear
	return c
}

// fixture is eight cases of six people over 2023–2024: P1 has three cases
// (presumed then identified in 2023, again in 2024), C3 has no person_id,
// P2's age comes from the birth year only, P3's age is unknown.
func fixture() []aggregate.Case {
	const u = aggregate.AgeUnknown
	d := func(y int, m time.Month, day int) aggregate.Date { return aggregate.DateOf(y, m, day) }
	return []aggregate.Case{
		mk("C1", "P1", d(2023, 2, 1), aggregate.Presumed, aggregate.Female, 10, u),
		mk("C2", "P1", d(2023, 6, 1), aggregate.Identified, aggregate.Female, 10, u),
		mk("C3", "", d(2023, 7, 9), aggregate.Identified, aggregate.Male, 30, u),
		mk("C4", "P2", d(2023, 9, 3), aggregate.Presumed, aggregate.Female, u, 2006),
		mk("C5", "P3", d(2023, 12, 31), aggregate.Presumed, aggregate.SexUnknown, u, u),
		mk("C6", "P1", d(2024, 1, 15), aggregate.Identified, aggregate.Female, 11, u),
		mk("C7", "P4", d(2024, 3, 1), aggregate.Presumed, aggregate.TransgenderNonConforming, 45, u),
		mk("C8", "P5", d(2024, 11, 2), aggregate.Identified, aggregate.Male, 24, u),
	}
}

func each(cases []aggregate.Case) func(func(*aggregate.Case) error) error {
	return func(fn func(*aggregate.Case) error) error {
		for i := range cases {
			if err := fn(&cases[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestCompute(t *testing.T) {
	s, err := Compute(context.Background(), each(fixture()))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Years(); len(got) != 2 || got[0] != 2023 || got[1] != 2024 {
		t.Fatalf("Years() = %v, want [2023 2024]", got)
	}
	tests := []struct {
		year  int
		dim   Dimension
		value string
		want  Counts
	}{
		{2023, Total, "all", Counts{5, 4}},
		{2023, Status, "Presumed", Counts{3, 3}},
		{2023, Status, "Identified", Counts{2, 2}}, // P1 is in both status rows
		{2023, Sex, "Female", Counts{3, 2}},
		{2023, Sex, "Male", Counts{1, 1}},
		{2023, Sex, "Transgender/NonConforming", Counts{0, 0}},
		{2023, Sex, "Unknown", Counts{1, 1}},
		{2023, Age, "0–11", Counts{2, 1}},
		{2023, Age, "12–17", Counts{1, 1}}, // from birth year 2006
		{2023, Age, "18–24", Counts{0, 0}},
		{2023, Age, "25–39", Counts{1, 1}},
		{2023, Age, "40+", Counts{0, 0}},
		{2023, Age, "unknown", Counts{1, 1}},
		{2024, Total, "all", Counts{3, 3}},
		{2024, Status, "Presumed", Counts{1, 1}},
		{2024, Status, "Identified", Counts{2, 2}},
		{2024, Sex, "Transgender/NonConforming", Counts{1, 1}},
		{2024, Age, "18–24", Counts{1, 1}},
		{2024, Age, "40+", Counts{1, 1}},
		{AllYears, Total, "all", Counts{8, 6}},
		{AllYears, Status, "Presumed", Counts{4, 4}},
		{AllYears, Status, "Identified", Counts{4, 3}},
		{AllYears, Sex, "Female", Counts{4, 2}},
		{AllYears, Sex, "Male", Counts{2, 2}},
		{AllYears, Age, "0–11", Counts{3, 1}},
		{2019, Total, "all", Counts{0, 0}}, // a year without cases
	}
	for _, tc := range tests {
		got, ok := s.Get(tc.year, tc.dim, tc.value)
		if !ok || got != tc.want {
			t.Errorf("Get(%d, %s, %q) = %+v, %v; want %+v", tc.year, tc.dim, tc.value, got, ok, tc.want)
		}
	}
	for _, bad := range []struct {
		dim   Dimension
		value string
	}{{Status, "Unknown"}, {Sex, "F"}, {Age, "0-11"}, {"region", "AL"}} {
		if _, ok := s.Get(2023, bad.dim, bad.value); ok {
			t.Errorf("Get(2023, %s, %q) ok, want not found", bad.dim, bad.value)
		}
	}
}

func TestWriteGolden(t *testing.T) {
	s, err := Compute(context.Background(), each(fixture()))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("Write output differs from %s:\n%s", golden, b.String())
	}
	out := b.String()
	if first, _, _ := strings.Cut(out, "\n"); first != Banner {
		t.Errorf("first line = %q, want the banner", first)
	}
	// Spot checks that do not depend on the golden file being right: the
	// rows of each block, whitespace aside.
	blocks := strings.Split(out, "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("want banner, cases and persons blocks, got %d blocks", len(blocks))
	}
	for _, tc := range []struct {
		block int
		row   string
	}{
		{1, "2023 2024 all years"},
		{1, "total all 5 3 8"},
		{1, "status Presumed 3 1 4"},
		{1, "Identified 2 2 4"},
		{1, "age 0–11 2 1 3"},
		{2, "total all 4 3 6"},
		{2, "Identified 2 2 3"},
		{2, "sex Female 2 1 2"},
		{2, "age 0–11 1 1 1"},
		{2, "unknown 1 0 1"},
	} {
		found := false
		for _, line := range strings.Split(blocks[tc.block], "\n") {
			found = found || strings.Join(strings.Fields(line), " ") == tc.row
		}
		if !found {
			t.Errorf("block %d lacks row %q", tc.block, tc.row)
		}
	}
}

func TestWriteAligned(t *testing.T) {
	s, err := Compute(context.Background(), each(fixture()))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	// Every table line ends its last number in the same rune column.
	width := -1
	for _, line := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "total") && !strings.HasPrefix(line, "status") &&
			!strings.HasPrefix(line, "sex") && !strings.HasPrefix(line, "age") {
			continue
		}
		n := len([]rune(line))
		if width == -1 {
			width = n
		}
		if n != width {
			t.Errorf("line %q is %d runes wide, want %d", line, n, width)
		}
	}
	if width == -1 {
		t.Fatal("no table lines found")
	}
}

func TestEmpty(t *testing.T) {
	s, err := Compute(context.Background(), each(nil))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	if want := Banner + "\n\nno cases\n"; b.String() != want {
		t.Fatalf("empty summary = %q, want %q", b.String(), want)
	}
}

func TestComputeErrors(t *testing.T) {
	boom := errors.New("store unreadable")
	bad := fixture()
	bad[3].Sex = aggregate.Sex(9)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		cases func(func(*aggregate.Case) error) error
		want  error  // errors.Is target, or nil to match text
		text  string // substring of the error
	}{
		{"iterator fails", context.Background(), func(func(*aggregate.Case) error) error { return boom }, boom, "store unreadable"},
		{"corrupt code", context.Background(), each(bad), nil, `case "C4" has an out-of-range code`},
		{"canceled", canceled, each(fixture()), context.Canceled, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compute(tc.ctx, tc.cases)
			if err == nil || s != nil {
				t.Fatalf("Compute = %v, %v; want an error", s, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want it to mention %q", err, tc.text)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	s, err := Compute(context.Background(), each(fixture()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write to a failing writer = %v, want the write error", err)
	}
}

func TestAgeGroupBounds(t *testing.T) {
	tests := []struct {
		age  int
		want string
	}{
		{aggregate.AgeUnknown, "unknown"}, {0, "0–11"}, {11, "0–11"}, {12, "12–17"}, {17, "12–17"},
		{18, "18–24"}, {24, "18–24"}, {25, "25–39"}, {39, "25–39"}, {40, "40+"}, {aggregate.MaxAge, "40+"},
	}
	for _, tc := range tests {
		if got := ageLabel(ageGroup(tc.age)); got != tc.want {
			t.Errorf("age %d in group %q, want %q", tc.age, got, tc.want)
		}
	}
	if got := strings.Join(AgeGroups(), ","); got != "0–11,12–17,18–24,25–39,40+,unknown" {
		t.Errorf("AgeGroups() = %s", got)
	}
}

// TestMatchesSyntheticCounts checks Compute against an independent count
// over a generated caseload, where people have several cases and some
// cross years.
func TestMatchesSyntheticCounts(t *testing.T) {
	o := synth.Options{Partner: "RS", From: 2021, To: 2023, Seed: 5}
	var cases []aggregate.Case
	if _, err := synth.Cases(context.Background(), o, func(c *aggregate.Case) error {
		cases = append(cases, *c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s, err := Compute(context.Background(), each(cases))
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		year   int
		status aggregate.Status
	}
	nCases, people := map[key]int{}, map[key]map[string]bool{}
	for _, c := range cases {
		for _, k := range []key{{c.RegisteredOn.Year(), c.Status}, {AllYears, c.Status}} {
			nCases[k]++
			if people[k] == nil {
				people[k] = map[string]bool{}
			}
			people[k][c.Person()] = true
		}
	}
	for k, n := range nCases {
		got, _ := s.Get(k.year, Status, k.status.String())
		if want := (Counts{n, len(people[k])}); got != want {
			t.Errorf("%d %s: %+v, want %+v", k.year, k.status, got, want)
		}
	}
	total, _ := s.Get(AllYears, Total, "all")
	if total.Cases != len(cases) || total.Persons >= total.Cases {
		t.Errorf("all years: %+v for %d cases; want every case counted and fewer persons than cases", total, len(cases))
	}
}
