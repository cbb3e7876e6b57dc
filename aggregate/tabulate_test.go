package aggregate

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// mk builds a case registered on y-m-d with the given options applied.
func mk(id, person string, y int, m time.Month, d int, opts ...func(*Case)) Case {
	c := NewCase()
	c.CaseID, c.PersonID, c.RegisteredOn = id, person, DateOf(y, m, d)
	c.Sex = SexUnknown
	for _, o := range opts {
		o(&c)
	}
	return c
}

func withAge(a int) func(*Case)       { return func(c *Case) { c.Age = a } }
func withSex(s Sex) func(*Case)       { return func(c *Case) { c.Sex = s } }
func withStatus(s Status) func(*Case) { return func(c *Case) { c.Status = s } }
func withServices(s ...Service) func(*Case) {
	return func(c *Case) {
		for _, x := range s {
			c.Services = c.Services.With(x)
		}
	}
}
func withControl(s ...Control) func(*Case) {
	return func(c *Case) {
		for _, x := range s {
			c.Control = c.Control.With(x)
		}
	}
}
func withForms(s ...Form) func(*Case) {
	return func(c *Case) {
		for _, x := range s {
			c.Forms = c.Forms.With(x)
		}
	}
}

func over(cases []Case) func(fn func(*Case) error) error {
	return func(fn func(*Case) error) error {
		for i := range cases {
			if err := fn(&cases[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

func tabulate(t testing.TB, period string, cases []Case, indicators ...string) []*Table {
	t.Helper()
	p, err := ParsePeriod(period)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := Tabulate(context.Background(), CatalogV1(), p, indicators, over(cases))
	if err != nil {
		t.Fatalf("Tabulate: %v", err)
	}
	return tables
}

// cell returns the count of the cell with the given key ("*" for summed out).
func cell(t *testing.T, tables []*Table, indicator string, measurement int, key ...string) int64 {
	t.Helper()
	for _, tb := range tables {
		if tb.Indicator().Name != indicator || tb.Measurement() != measurement {
			continue
		}
		for i := 0; i < tb.NumCells(); i++ {
			if slices.Equal(tb.Key(i), key) {
				return tb.Count(i)
			}
		}
		t.Fatalf("%s/%d has no cell %v", indicator, measurement, key)
	}
	t.Fatalf("no table %s/%d", indicator, measurement)
	return 0
}

func total(tables []*Table, indicator string, measurement int) int64 {
	var s int64
	for _, tb := range tables {
		if tb.Indicator().Name == indicator && tb.Measurement() == measurement {
			for i := 0; i < tb.NumCells(); i++ {
				s += tb.Count(i)
			}
		}
	}
	return s
}

func TestTabulatePersonCountsOnceInFirstQuarter(t *testing.T) {
	cases := []Case{
		// One person, three cases in Q4, Q1 and Q2 (out of order on purpose).
		mk("c3", "P1", 2024, time.November, 3, withSex(Male), withAge(30)),
		mk("c1", "P1", 2024, time.February, 10, withSex(Female), withAge(15), withStatus(Identified)),
		mk("c2", "P1", 2024, time.May, 1, withSex(Male), withAge(16)),
		// The same person the year before, and the year after.
		mk("c0", "P1", 2023, time.December, 30, withSex(Female), withAge(14)),
		mk("c9", "P1", 2025, time.January, 2, withSex(Female), withAge(16)),
	}
	tests := []struct {
		period string
		want   int64 // victims total
		key    []string
	}{
		{"2024-Q1", 1, []string{"identified", "female", "12-17"}}, // attributes of the earliest case
		{"2024-Q2", 0, nil},
		{"2024-Q4", 0, nil},
		{"2024", 1, []string{"identified", "female", "12-17"}},
		{"2023-Q4", 1, []string{"presumed", "female", "12-17"}},
		{"2025-Q1", 1, []string{"presumed", "female", "12-17"}},
		{"2022", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.period, func(t *testing.T) {
			tables := tabulate(t, tc.period, cases, "victims")
			if got := total(tables, "victims", 0); got != tc.want {
				t.Fatalf("victims total = %d, want %d", got, tc.want)
			}
			if tc.key != nil {
				if got := cell(t, tables, "victims", 0, tc.key...); got != 1 {
					t.Fatalf("cell %v = %d, want 1", tc.key, got)
				}
			}
		})
	}
}

func TestTabulateMergeTieBreaksByCaseID(t *testing.T) {
	// Same day: the smaller case_id supplies the single-valued fields,
	// whatever order the store yields them in.
	a := mk("b-2", "P", 2024, time.March, 1, withSex(Male), withAge(40))
	b := mk("a-1", "P", 2024, time.March, 1, withSex(Female), withAge(8))
	for _, order := range [][]Case{{a, b}, {b, a}} {
		tables := tabulate(t, "2024-Q1", order, "victims")
		if got := cell(t, tables, "victims", 0, "presumed", "female", "0-11"); got != 1 {
			t.Fatalf("merge picked the wrong case: female/0-11 = %d", got)
		}
	}
}

func TestTabulateCasesWithoutPersonIDArePersons(t *testing.T) {
	cases := []Case{
		mk("x", "", 2024, time.January, 5, withAge(20)),
		mk("y", "", 2024, time.January, 5, withAge(20)),
		mk("x", "x", 2024, time.January, 5, withAge(20)), // a pseudonym equal to a case id is another person
	}
	if got := total(tabulate(t, "2024-Q1", cases, "victims"), "victims", 0); got != 3 {
		t.Fatalf("total = %d, want 3", got)
	}
}

func TestTabulateKBounding(t *testing.T) {
	cases := []Case{
		// Six control methods in five groups: keep the first 3 groups in key order.
		mk("c1", "P1", 2024, time.January, 1, withControl(ControlOther, WithholdsDocuments, PhysicalAbuse, Threats, DebtBondage, TakesEarnings)),
		// Two cases of one person: the union is bounded, not each case.
		mk("c2", "P2", 2024, time.January, 1, withServices(Legal, Medical), withForms(ForcedBegging, ForcedMarriage)),
		mk("c3", "P2", 2024, time.February, 1, withServices(Accommodation), withForms(OrganRemoval, SexualExploitation), withAge(12)),
	}
	tables := tabulate(t, "2024-Q1", cases, "means_of_control", "services", "exploitation")
	wantControl := map[string]int64{"financial_control": 1, "threats": 1, "psychological_abuse": 0, "violence": 1, "restricted_movement": 0, "other": 0}
	for k, want := range wantControl {
		if got := cell(t, tables, "means_of_control", 0, k); got != want {
			t.Errorf("means_of_control %s = %d, want %d", k, got, want)
		}
	}
	for _, k := range []string{"accommodation", "legal", "medical"} {
		if got := cell(t, tables, "services", 0, k); got != 1 {
			t.Errorf("services %s = %d, want 1", k, got)
		}
	}
	// P2's forms: sexual, begging, forced_marriage, organ_removal → first 3 in key order;
	// age from the earliest case (unknown).
	wantForms := map[string]int64{"sexual": 1, "begging": 1, "forced_marriage": 1, "organ_removal": 0}
	for k, want := range wantForms {
		if got := cell(t, tables, "exploitation", 0, k, "unknown"); got != want {
			t.Errorf("exploitation %s/unknown = %d, want %d", k, got, want)
		}
	}
	for _, tb := range tables {
		if want := tb.Indicator().K; tb.L0() != want {
			t.Errorf("%s L0 = %d, want %d", tb.Indicator().Name, tb.L0(), want)
		}
	}
}

func TestTabulateAgeGroupsAndChildren(t *testing.T) {
	cases := []Case{
		mk("a", "", 2024, time.January, 1, withAge(0)),
		mk("b", "", 2024, time.January, 1, withAge(11)),
		mk("c", "", 2024, time.January, 1, withAge(12)),
		mk("d", "", 2024, time.January, 1, withAge(17), withForms(ForcedBegging)),
		mk("e", "", 2024, time.January, 1, withAge(18), withForms(ForcedBegging)),
		mk("f", "", 2024, time.January, 1, withAge(24)),
		mk("g", "", 2024, time.January, 1, withAge(25)),
		mk("h", "", 2024, time.January, 1, withAge(39)),
		mk("i", "", 2024, time.January, 1, withAge(40)),
		mk("j", "", 2024, time.January, 1, withAge(95)),
		mk("k", "", 2024, time.January, 1, withForms(ForcedBegging)),             // unknown age
		mk("l", "", 2024, time.January, 1, func(c *Case) { c.BirthYear = 2010 }), // age from birth year: 14
	}
	tables := tabulate(t, "2024-Q1", cases, "victims", "exploitation", "age")
	want := map[string]int64{"0-11": 2, "12-17": 3, "18-24": 2, "25-39": 2, "40+": 2, "unknown": 1}
	for k, w := range want {
		if got := cell(t, tables, "victims", 3, "*", "*", k); got != w {
			t.Errorf("age group %s = %d, want %d", k, got, w)
		}
	}
	for k, w := range map[string]int64{"child": 1, "adult": 1, "unknown": 1} {
		if got := cell(t, tables, "exploitation", 0, "begging", k); got != w {
			t.Errorf("begging/%s = %d, want %d", k, got, w)
		}
	}
	var age *Table
	for _, tb := range tables {
		if tb.Indicator().Name == "age" {
			age = tb
		}
	}
	wantAges := []float64{0, 11, 12, 14, 17, 18, 24, 25, 39, 40, 90} // 95 clamped, unknown left out
	if !slices.Equal(age.Values(), wantAges) {
		t.Errorf("age values = %v, want %v", age.Values(), wantAges)
	}
	if age.NumCells() != 0 || age.L0() != 1 || age.Share() != 1 {
		t.Errorf("age table: %d cells, L0 %d, share %v", age.NumCells(), age.L0(), age.Share())
	}
}

func TestTabulateMarginsAndZeroCells(t *testing.T) {
	cases := genCases(5000, 1500, 2024, 2024, 7)
	tables := tabulate(t, "2024-Q2", cases, "victims")
	if len(tables) != 5 {
		t.Fatalf("%d victims tables, want 5 (full + 4 margins)", len(tables))
	}
	full := tables[0]
	if full.NumCells() != 48 {
		t.Fatalf("full table has %d cells, want 48", full.NumCells())
	}
	zeros := 0
	for i := 0; i < full.NumCells(); i++ {
		if full.Count(i) == 0 {
			zeros++
		}
	}
	if zeros == 0 {
		t.Errorf("expected some zero cells (transgender_nonconforming is rare) to be present")
	}
	shares := 0.0
	for _, m := range tables {
		shares += m.Share()
		kept := m.Kept()
		// Sum the full table over the dimensions the margin drops.
		sums := map[string]int64{}
		for i := 0; i < full.NumCells(); i++ {
			k := full.Key(i)
			for d, name := range full.Dimensions() {
				if !slices.Contains(kept, name) {
					k[d] = KeyAll
				}
			}
			sums[strings.Join(k, "|")] += full.Count(i)
		}
		if len(sums) != m.NumCells() {
			t.Errorf("margin %v: %d cells, want %d", kept, m.NumCells(), len(sums))
		}
		for i := 0; i < m.NumCells(); i++ {
			if k := strings.Join(m.Key(i), "|"); sums[k] != m.Count(i) {
				t.Errorf("margin %v cell %s = %d, sum of cross table = %d", kept, k, m.Count(i), sums[k])
			}
		}
	}
	if shares < 1-1e-12 || shares > 1+1e-12 {
		t.Errorf("shares sum to %v", shares)
	}
	if total(tables, "victims", 1) == 0 {
		t.Errorf("empty quarter: generator broken")
	}
}

func TestTabulateYearCountsEachPersonOnce(t *testing.T) {
	cases := genCases(20000, 4000, 2023, 2024, 3)
	year := tabulate(t, "2024", cases)
	var quarters int64
	for q := 1; q <= 4; q++ {
		quarters += total(tabulate(t, fmt.Sprintf("2024-Q%d", q), cases, "victims"), "victims", 1)
	}
	// The person-years of 2024, counted independently.
	persons := map[string]bool{}
	for i := range cases {
		if cases[i].RegisteredOn.Year() == 2024 {
			persons[cases[i].Person()] = true
		}
	}
	if got := total(year, "victims", 1); got != int64(len(persons)) || quarters != got {
		t.Fatalf("year total %d, Σ quarters %d, distinct persons %d: want all equal", got, quarters, len(persons))
	}
}

func TestTabulateErrors(t *testing.T) {
	ctx := context.Background()
	ok := over(nil)
	if _, err := Tabulate(ctx, CatalogV1(), Period{2024, 1}, []string{"nope"}, ok); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown indicator: %v", err)
	}
	if _, err := Tabulate(ctx, CatalogV1(), Period{2024, 5}, nil, ok); err == nil {
		t.Errorf("quarter 5 accepted")
	}
	if _, err := Tabulate(ctx, nil, Period{2024, 1}, nil, ok); err == nil {
		t.Errorf("nil catalog accepted")
	}
	bad := CatalogV1()
	bad.Indicators[0].K = 0
	if _, err := Tabulate(ctx, bad, Period{2024, 1}, nil, ok); err == nil {
		t.Errorf("invalid catalog accepted")
	}
	boom := errors.New("disk on fire")
	if _, err := Tabulate(ctx, CatalogV1(), Period{2024, 1}, nil, func(func(*Case) error) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("iterator error not wrapped: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Tabulate(cctx, CatalogV1(), Period{2024, 1}, nil, over(genCases(10000, 10000, 2024, 2024, 1))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	corrupt := []Case{mk("c", "", 2024, time.January, 1, withStatus(Status(9)))}
	if _, err := Tabulate(ctx, CatalogV1(), Period{2024, 1}, nil, over(corrupt)); err == nil {
		t.Errorf("out-of-range code accepted")
	}
}

func TestTableNeverSerialises(t *testing.T) {
	tables := tabulate(t, "2024-Q1", []Case{mk("a", "", 2024, time.January, 1, withAge(33))}, "victims")
	tb := tables[0]
	type wrapper struct{ T *Table }
	encoders := map[string]func() error{
		"json pointer": func() error { _, err := json.Marshal(tb); return err },
		"json value":   func() error { _, err := json.Marshal(*tb); return err },
		"json nested":  func() error { _, err := json.Marshal(wrapper{tb}); return err },
		"gob":          func() error { return gob.NewEncoder(&bytes.Buffer{}).Encode(tb) },
		"xml":          func() error { _, err := xml.Marshal(tb); return err },
		"text":         func() error { _, err := tb.MarshalText(); return err },
		"binary":       func() error { _, err := tb.MarshalBinary(); return err },
	}
	for name, enc := range encoders {
		if err := enc(); err == nil {
			t.Errorf("%s encoding of a Table succeeded", name)
		}
	}
	// Printing shows the shape only: the count "1" of the one cell cannot appear
	// as a count list.
	for _, s := range []string{fmt.Sprint(tb), fmt.Sprintf("%+v", *tb), fmt.Sprintf("%#v", tb), fmt.Sprintf("%d", tb)} {
		if !strings.HasPrefix(s, "aggregate.Table{victims 2024-Q1") || strings.Contains(s, "[") {
			t.Errorf("printed table = %q", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "t", tb)
	if !strings.Contains(buf.String(), "aggregate.Table{victims") || strings.Contains(buf.String(), "counts") {
		t.Errorf("slog output = %s", buf.String())
	}
}

// genCases makes n cases of about persons people over the years from..to,
// with the region's rough mix (many children, most nationals, repeat cases).
// It is deterministic for a seed.
func genCases(n, persons int, from, to int, seed uint64) []Case {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cases := make([]Case, n)
	countries := []Country{"RS", "RS", "RS", "RS", "BA", "XK", "AL", "SY", "AF", "DE", "NG", ""}
	days := int(DateOf(to+1, time.January, 1) - DateOf(from, time.January, 1))
	start := DateOf(from, time.January, 1)
	for i := range cases {
		c := &cases[i]
		*c = NewCase()
		c.CaseID = "case-" + itoa(i)
		if p := r.IntN(persons + persons/4); p < persons {
			c.PersonID = "p-" + itoa(p)
		}
		c.RegisteredOn = start + Date(r.IntN(days))
		c.Status = Status(r.IntN(2))
		c.Sex = Sex([]uint8{0, 0, 0, 1, 1, 3}[r.IntN(6)])
		if r.IntN(200) == 0 {
			c.Sex = TransgenderNonConforming
		}
		if r.IntN(10) > 0 {
			c.Age = r.IntN(60)
		}
		c.Citizenship = countries[r.IntN(len(countries))]
		c.ExploitedIn = countries[r.IntN(len(countries))]
		c.Forms = Set[Form](r.Uint32() & 0x3ff & r.Uint32())
		c.LabourTypes = Set[LabourType](r.Uint32() & 0xfff & r.Uint32() & r.Uint32())
		c.SexualTypes = Set[SexType](r.Uint32() & 0xf & r.Uint32())
		c.Control = Set[Control](r.Uint32() & 0x1ffff & r.Uint32())
		c.Services = Set[Service](r.Uint32() & 0xff)
		c.Recruitment = Recruitment(r.IntN(len(recruitmentVocab.names)))
		c.RecruiterRelation = Relation(r.IntN(len(relationVocab.names)))
		c.ReferralSource = Referral(r.IntN(len(referralVocab.names)))
		c.MigrantStatus = Migration(r.IntN(len(migrationVocab.names)))
		c.Unaccompanied = c.Age >= 0 && c.Age < 18 && r.IntN(4) == 0
	}
	return cases
}

func itoa(i int) string { return fmt.Sprint(i) }

// BenchmarkTabulate1M tabulates the whole v1 catalog for one quarter over a
// million cases (200,000 persons with repeat cases, 2023–2024).
func BenchmarkTabulate1M(b *testing.B) {
	const n = 1_000_000
	cases := genCases(n, 200_000, 2023, 2024, 42)
	cat := CatalogV1()
	ctx := context.Background()
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Tabulate(ctx, cat, Period{2024, 1}, nil, over(cases)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// A catalog that lists keys in another order files people under the same
// keys, and bounds k by its own key order.
func TestTabulateFollowsCatalogKeyOrder(t *testing.T) {
	cases := genCases(3000, 1000, 2024, 2024, 9)
	v1 := CatalogV1()
	rev := CatalogV1()
	for i := range rev.Indicators {
		for j := range rev.Indicators[i].Dimensions {
			slices.Reverse(rev.Indicators[i].Dimensions[j].Keys)
		}
	}
	if err := rev.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := Tabulate(ctx, v1, Period{2024, 3}, []string{"victims", "services", "citizenship"}, over(cases))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Tabulate(ctx, rev, Period{2024, 3}, []string{"citizenship", "services", "victims"}, over(cases))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d tables vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Indicator().Name != b[i].Indicator().Name || a[i].Measurement() != b[i].Measurement() {
			t.Fatalf("table %d: %s/%d vs %s/%d: not in catalog order", i, a[i].Indicator().Name, a[i].Measurement(), b[i].Indicator().Name, b[i].Measurement())
		}
		counts := map[string]int64{}
		for c := 0; c < a[i].NumCells(); c++ {
			counts[strings.Join(a[i].Key(c), "|")] = a[i].Count(c)
		}
		for c := 0; c < b[i].NumCells(); c++ {
			if k := strings.Join(b[i].Key(c), "|"); counts[k] != b[i].Count(c) {
				t.Errorf("%s cell %s: %d with v1 order, %d reversed", a[i].Indicator().Name, k, counts[k], b[i].Count(c))
			}
		}
	}
}

// collisionCases mixes pseudonymous people with repeat cases, cases without
// a pseudonym (some sharing a case_id), and ids used both as a pseudonym
// and as a case_id, in an order that interleaves them.
func collisionCases(n int) []Case {
	r := rand.New(rand.NewPCG(5, 11))
	cases := make([]Case, 0, n)
	for i := range n {
		var id, person string
		switch i % 4 {
		case 0:
			id, person = "c"+itoa(i), "p"+itoa(r.IntN(n/8+1)) // repeat persons
		case 1:
			id = "c" + itoa(r.IntN(n/2)) // may repeat: duplicate case_ids merge
		case 2:
			id = "p" + itoa(r.IntN(n/8+1)) // a case_id equal to someone's pseudonym
		default:
			id = "c" + itoa(i)
		}
		c := mk(id, person, 2024, time.Month(1+r.IntN(12)), 1+r.IntN(28), withAge(r.IntN(70)))
		c.Services = Set[Service](r.Uint32() & 0xff)
		c.Sex = Sex(r.IntN(4))
		cases = append(cases, c)
	}
	return cases
}

// referencePeople merges cases by Case.Person with a plain map: what
// collectPeople must reproduce, person-year for person-year, in order of
// first appearance.
func referencePeople(cases []Case) []personYear {
	groups := newCountryGroups()
	at := map[string]int{}
	var out []personYear
	for i := range cases {
		c := &cases[i]
		if j, ok := at[c.Person()]; ok {
			out[j].merge(c, groups)
			continue
		}
		p := personYear{personID: c.PersonID}
		p.takeSingle(c, groups)
		p.merge(c, groups)
		at[c.Person()] = len(out)
		out = append(out, p)
	}
	return out
}

// The person index compares keys on every tag match, so a hash collision
// costs probes, never a wrong merge: with the tag narrowed to a few bits (or
// to none, so every key collides) the person-years are the same as a plain
// map's, across table growth.
func TestPersonIndexCollisions(t *testing.T) {
	cases := collisionCases(3000)
	want := referencePeople(cases)
	for _, mask := range []uint32{^uint32(0), 0xff, 0x3, 0} {
		t.Run(fmt.Sprintf("tag mask %#x", mask), func(t *testing.T) {
			index := newPersonIndex()
			index.tagMask = mask
			people, n, err := collectPeople(context.Background(), 2024, over(cases), index)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(cases) || people.n != len(want) {
				t.Fatalf("read %d cases into %d person-years, want %d into %d", n, people.n, len(cases), len(want))
			}
			if len(index.slots) <= minIndexSlots {
				t.Fatalf("index has %d slots: the test should make it grow", len(index.slots))
			}
			for i := range want {
				if got := *people.at(i); got != want[i] {
					t.Fatalf("person-year %d: got %+v, want %+v", i, got, want[i])
				}
			}
		})
	}
}

// The age histogram yields exactly the sorted clamped values, including
// ages outside 0–MaxAge that only a corrupted record could carry.
func TestAgeHistogramMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	ages := []int{-7, -2, 0, 1, MaxAge, MaxAge + 1, 500}
	for range 5000 {
		ages = append(ages, r.IntN(MaxAge+1))
	}
	for _, bounds := range [][2]float64{{0, 90}, {2.5, 60.5}, {0, MaxAge}, {17, 18}} {
		var h ageHistogram
		var want []float64
		for _, a := range ages {
			h.add(a)
			want = append(want, min(max(float64(a), bounds[0]), bounds[1]))
		}
		slices.Sort(want)
		if got := h.values(bounds[0], bounds[1]); !slices.Equal(got, want) {
			t.Errorf("bounds %v: histogram values differ from sorted values", bounds)
		}
	}
	var empty ageHistogram
	if v := empty.values(0, 90); v != nil {
		t.Errorf("no ages: got %v, want nil", v)
	}
}

// The memoised code tables give what catalog_v1.go's functions give, over
// every value a checked case can hold (and ages no import would accept).
func TestCodeTablesMatchFunctions(t *testing.T) {
	tables := newCodeTables()
	var codes [numDims]uint32
	for age := -5; age <= 300; age++ {
		p := personYear{age: int16(age)}
		p.codes(tables, &codes)
		if codes[dimAgeGroup] != ageGroup(age) || codes[dimAgeClass] != ageClass(age) {
			t.Fatalf("age %d: group %d class %d, want %d %d", age, codes[dimAgeGroup], codes[dimAgeClass], ageGroup(age), ageClass(age))
		}
	}
	for v := range 256 {
		p := personYear{referral: Referral(v), migration: Migration(v), recruitment: Recruitment(v), relation: Relation(v)}
		p.codes(tables, &codes)
		got := [4]uint32{codes[dimReferral], codes[dimMigration], codes[dimRecruitment], codes[dimRelation]}
		want := [4]uint32{referralCode(Referral(v)), migrationCode(Migration(v)), recruitmentCode(Recruitment(v)), relationCode(Relation(v))}
		if got != want {
			t.Fatalf("code %d: referral, migration, recruitment, relation %v, want %v", v, got, want)
		}
	}
	for s := range 1 << len(controlVocab.names) {
		p := personYear{control: Set[Control](s)}
		p.codes(tables, &codes)
		if want := controlMask(Set[Control](s)); codes[dimControl] != want {
			t.Fatalf("control set %#x: group mask %#x, want %#x", s, codes[dimControl], want)
		}
	}
}
