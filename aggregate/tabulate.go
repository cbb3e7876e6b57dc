package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Tabulate computes the exact tables of the named indicators (all of the
// catalog's if indicators is empty) for one period, bounding every
// person's contribution as DESIGN.md's privacy model requires. each must
// call fn once for every case the node holds, of any year; Tabulate keeps
// no *Case after fn returns (it copies the fields it needs), so each may
// reuse one Case value.
//
// The rules, in aggregate/DESIGN.md: the person (Case.Person) is the unit;
// each person-year is merged from the person's cases registered that year
// (single-valued fields from the earliest case, ties broken by the smaller
// case_id; multi-valued fields the union); the person counts only in the
// quarter of that earliest case; a multi-valued breakdown keeps at most the
// indicator's k keys, the first k in the catalog's key order.
func Tabulate(ctx context.Context, cat *Catalog, period Period, indicators []string, each func(fn func(*Case) error) error) ([]*Table, error) {
	if cat == nil {
		return nil, errors.New("tabulate: no catalog")
	}
	if period.Quarter < 0 || period.Quarter > 4 || period.Year < MinYear || period.Year > MaxYear {
		return nil, fmt.Errorf("tabulate: period %v is not a quarter or year in %d–%d", period, MinYear, MaxYear)
	}
	if err := cat.Validate(); err != nil {
		return nil, fmt.Errorf("tabulate: %w", err)
	}
	inds, err := selectIndicators(cat, indicators)
	if err != nil {
		return nil, fmt.Errorf("tabulate: %w", err)
	}
	start := time.Now()
	people, records, err := collectPeople(ctx, period.Year, each)
	if err != nil {
		return nil, fmt.Errorf("tabulate %v: %w", period, err)
	}
	var tables, quantiles []*Table
	var plans []plan
	for _, ind := range inds {
		for m := 0; m < ind.NumMeasurements(); m++ {
			t, p := newTable(ind, period, m)
			tables = append(tables, t)
			if p != nil {
				plans = append(plans, *p)
			} else {
				quantiles = append(quantiles, t)
			}
		}
	}
	lo, hi := periodBounds(period)
	var codes [numDims]uint32
	for i := range people.n {
		py := people.at(i)
		if py.first < lo || py.first >= hi {
			continue // counted in another quarter of the year
		}
		py.codes(&codes)
		for j := range plans {
			plans[j].add(&codes)
		}
		for _, t := range quantiles {
			if py.age != AgeUnknown {
				t.values = append(t.values, min(max(float64(py.age), t.ind.Lower), t.ind.Upper))
			}
		}
	}
	for _, t := range tables {
		slices.Sort(t.values) // so the order says nothing about the store's order of cases
	}
	slog.Debug("tabulated", "period", period.String(), "cases", records, "person_years", people.n, "tables", len(tables), "elapsed", time.Since(start))
	return tables, nil
}

func selectIndicators(cat *Catalog, names []string) ([]*Indicator, error) {
	if len(names) == 0 {
		out := make([]*Indicator, len(cat.Indicators))
		for i := range cat.Indicators {
			out[i] = &cat.Indicators[i]
		}
		return out, nil
	}
	out := make([]*Indicator, 0, len(names))
	for _, n := range names {
		ind, ok := cat.Indicator(n)
		if !ok {
			all := make([]string, len(cat.Indicators))
			for i := range cat.Indicators {
				all[i] = cat.Indicators[i].Name
			}
			return nil, fmt.Errorf("indicator %q is not in the catalog (known: %s)", n, strings.Join(all, ", "))
		}
		if slices.Contains(out, ind) {
			return nil, fmt.Errorf("indicator %q asked for twice", n)
		}
		out = append(out, ind)
	}
	// Catalog order, so the tables come out the same whatever the caller's order.
	slices.SortFunc(out, func(a, b *Indicator) int {
		return slices.IndexFunc(cat.Indicators, func(x Indicator) bool { return x.Name == a.Name }) -
			slices.IndexFunc(cat.Indicators, func(x Indicator) bool { return x.Name == b.Name })
	})
	return out, nil
}

// periodBounds is the half-open range of dates a person's first case of
// the year must fall in for the person to count in period.
func periodBounds(p Period) (Date, Date) {
	if p.Quarter == 0 {
		return DateOf(p.Year, time.January, 1), DateOf(p.Year+1, time.January, 1)
	}
	lo := DateOf(p.Year, time.Month(3*p.Quarter-2), 1)
	if p.Quarter == 4 {
		return lo, DateOf(p.Year+1, time.January, 1)
	}
	return lo, DateOf(p.Year, time.Month(3*p.Quarter+1), 1)
}

// personYear is one person's merged record for one calendar year.
type personYear struct {
	first         Date   // earliest registration that year: fixes the quarter
	firstID       string // its case_id, to break ties deterministically
	age           int16
	citizenship   uint8 // citizenship_group code
	exploitedIn   uint8 // exploitation_country_group code
	status        Status
	sex           Sex
	recruitment   Recruitment
	relation      Relation
	referral      Referral
	migration     Migration
	unaccompanied bool
	forms         Set[Form]
	labour        Set[LabourType]
	sexual        Set[SexType]
	control       Set[Control]
	services      Set[Service]
}

// takeSingle copies the single-valued fields of c.
func (p *personYear) takeSingle(c *Case, g *countryGroups) {
	p.first, p.firstID = c.RegisteredOn, c.CaseID
	p.age = int16(c.AgeAt())
	p.citizenship, p.exploitedIn = g.citizenship(c.Citizenship), g.exploitedIn(c.ExploitedIn)
	p.status, p.sex = c.Status, c.Sex
	p.recruitment, p.relation, p.referral = c.Recruitment, c.RecruiterRelation, c.ReferralSource
	p.migration, p.unaccompanied = c.MigrantStatus, c.Unaccompanied
}

// merge folds one more case of the same person-year into p.
func (p *personYear) merge(c *Case, g *countryGroups) {
	if c.RegisteredOn < p.first || (c.RegisteredOn == p.first && c.CaseID < p.firstID) {
		p.takeSingle(c, g)
	}
	p.forms |= c.Forms
	p.labour |= c.LabourTypes
	p.sexual |= c.SexualTypes
	p.control |= c.Control
	p.services |= c.Services
}

// countryGroups memoises the country → group maps over all alpha-2 codes,
// so merging a case costs an array index, not a list search.
type countryGroups struct {
	cit, exp [26 * 26]uint8
}

func newCountryGroups() *countryGroups {
	g := &countryGroups{}
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			c := Country([]byte{a, b})
			i := int(a-'A')*26 + int(b-'A')
			g.cit[i], g.exp[i] = uint8(citizenshipGroup(c)), uint8(exploitedInGroup(c))
		}
	}
	return g
}

func countryIndex(c Country) int {
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return -1
	}
	return int(c[0]-'A')*26 + int(c[1]-'A')
}

func (g *countryGroups) citizenship(c Country) uint8 {
	if i := countryIndex(c); i >= 0 {
		return g.cit[i]
	}
	return uint8(citizenshipGroup(c))
}

func (g *countryGroups) exploitedIn(c Country) uint8 {
	if i := countryIndex(c); i >= 0 {
		return g.exp[i]
	}
	return uint8(exploitedInGroup(c))
}

// chunkedPeople stores person-years in fixed-size chunks, so growing to a
// million never copies what is already there.
type chunkedPeople struct {
	chunks [][]personYear
	n      int
}

const chunkBits = 12

func (c *chunkedPeople) at(i int) *personYear {
	return &c.chunks[i>>chunkBits][i&(1<<chunkBits-1)]
}

func (c *chunkedPeople) add(p personYear) {
	if c.n&(1<<chunkBits-1) == 0 {
		c.chunks = append(c.chunks, make([]personYear, 0, 1<<chunkBits))
	}
	last := len(c.chunks) - 1
	c.chunks[last] = append(c.chunks[last], p)
	c.n++
}

// checkEvery is how many records pass between context checks.
const checkEvery = 4096

// collectPeople merges the cases registered in year into person-years.
// Cases of other years are skipped without merging: the horizon is the
// calendar year, so they never affect this year's tables.
func collectPeople(ctx context.Context, year int, each func(fn func(*Case) error) error) (chunkedPeople, int, error) {
	lo, hi := DateOf(year, time.January, 1), DateOf(year+1, time.January, 1)
	byPerson := make(map[string]int32)
	byCase := make(map[string]int32)
	var people chunkedPeople
	groups := newCountryGroups()
	n := 0
	err := each(func(c *Case) error {
		n++
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if c.RegisteredOn < lo || c.RegisteredOn >= hi {
			return nil
		}
		if err := c.CheckCodes(); err != nil {
			return err
		}
		index, key := byPerson, c.PersonID
		if key == "" {
			index, key = byCase, c.CaseID // no pseudonym: the case is its own person
		}
		if i, ok := index[key]; ok {
			people.at(int(i)).merge(c, groups)
			return nil
		}
		var p personYear
		p.takeSingle(c, groups)
		p.merge(c, groups)
		index[key] = int32(people.n)
		people.add(p)
		return nil
	})
	if err != nil {
		return people, n, fmt.Errorf("read cases: %w", err)
	}
	return people, n, nil
}

// Dimension ids: positions in a person's code vector.
const (
	dimStatus = iota
	dimSex
	dimAgeGroup
	dimAgeClass
	dimCitizenship
	dimExploitedIn
	dimForm
	dimReferral
	dimMigration
	dimUnaccompanied
	dimService
	dimControl
	dimRecruitment
	dimRelation
	numDims
)

func dimID(name string) int {
	switch name {
	case "status":
		return dimStatus
	case "sex":
		return dimSex
	case "age_group":
		return dimAgeGroup
	case "age_class":
		return dimAgeClass
	case "citizenship_group":
		return dimCitizenship
	case "exploitation_country_group":
		return dimExploitedIn
	case "form":
		return dimForm
	case "referral_source":
		return dimReferral
	case "migrant_status":
		return dimMigration
	case "unaccompanied_child":
		return dimUnaccompanied
	case "service":
		return dimService
	case "control_group":
		return dimControl
	case "recruitment_method":
		return dimRecruitment
	case "recruiter_relation":
		return dimRelation
	}
	return -1
}

// codes fills the person's native key code for every dimension (a bit set
// over the native keys for multi-valued ones). Computing all of them once
// per person is cheaper than asking per table.
func (p *personYear) codes(out *[numDims]uint32) {
	out[dimStatus] = uint32(p.status)
	out[dimSex] = uint32(min(p.sex, SexUnknown))
	out[dimAgeGroup] = ageGroup(int(p.age))
	out[dimAgeClass] = ageClass(int(p.age))
	out[dimCitizenship] = uint32(p.citizenship)
	out[dimExploitedIn] = uint32(p.exploitedIn)
	out[dimForm] = formMask(p.forms, p.labour, p.sexual)
	out[dimReferral] = referralCode(p.referral)
	out[dimMigration] = migrationCode(p.migration)
	out[dimUnaccompanied] = 1
	if p.unaccompanied {
		out[dimUnaccompanied] = 0
	}
	out[dimService] = uint32(p.services) & (1<<len(serviceKeys) - 1)
	out[dimControl] = controlMask(p.control)
	out[dimRecruitment] = recruitmentCode(p.recruitment)
	out[dimRelation] = relationCode(p.relation)
}

// axis is one kept dimension of a measurement, with its key positions
// precomputed so the per-person loop does array lookups only.
type axis struct {
	dim         int
	stride      int
	multi       bool
	nativeToPos []int   // single-valued: native code → catalog key position
	posToNative []uint8 // multi-valued: catalog key position → native code
}

// plan fills one count table.
type plan struct {
	counts []int64
	axes   []axis
	k      int
}

func (p *plan) add(codes *[numDims]uint32) {
	base, multi := 0, -1
	for i := range p.axes {
		a := &p.axes[i]
		if a.multi {
			multi = i
			continue
		}
		base += a.nativeToPos[codes[a.dim]] * a.stride
	}
	if multi < 0 {
		p.counts[base]++
		return
	}
	a := &p.axes[multi]
	mask, taken := codes[a.dim], 0
	// Bounding: the first k keys the person has, in the catalog's key order.
	for pos, nat := range a.posToNative {
		if mask&(1<<nat) != 0 {
			p.counts[base+pos*a.stride]++
			if taken++; taken == p.k {
				break
			}
		}
	}
}

// newTable allocates measurement m of ind with all cells zero, and the plan
// that fills it (nil for a quantile table). The catalog was validated, so
// every dimension and key is known.
func newTable(ind *Indicator, period Period, m int) (*Table, *plan) {
	t := &Table{ind: ind, period: period, measurement: m, share: ind.Share(m), l0: 1}
	if ind.Kind == KindQuantiles {
		return t, nil
	}
	kept := ind.Kept(m)
	t.dims = make([]string, len(ind.Dimensions))
	t.keys = make([][]string, len(ind.Dimensions))
	t.strides = make([]int, len(ind.Dimensions))
	p := &plan{k: ind.K}
	cells := 1
	for i := len(ind.Dimensions) - 1; i >= 0; i-- { // last dimension varies fastest
		d := &ind.Dimensions[i]
		t.dims[i] = d.Name
		if !slices.Contains(kept, d.Name) {
			continue
		}
		t.keys[i] = d.Keys
		t.strides[i] = cells
		spec, _ := lookupDim(d.Name)
		a := axis{dim: dimID(d.Name), stride: cells, multi: d.Multi}
		if d.Multi {
			a.posToNative = make([]uint8, len(d.Keys))
			for pos, k := range d.Keys {
				a.posToNative[pos] = uint8(slices.Index(spec.keys, k))
			}
			t.l0 = min(ind.K, len(d.Keys))
		} else {
			a.nativeToPos = make([]int, len(spec.keys))
			for nat, k := range spec.keys {
				a.nativeToPos[nat] = slices.Index(d.Keys, k)
			}
		}
		p.axes = append(p.axes, a)
		cells *= len(d.Keys)
	}
	t.counts = make([]int64, cells)
	p.counts = t.counts
	return t, p
}

// Table is one exact measurement (an indicator's full cross table or one
// of its margins) for one period. It is local to the node: its counts are
// the raw numbers DESIGN.md's first invariant keeps home. The privacy
// package is its only consumer; it adds noise and publishes the result.
//
// A Table therefore refuses every serialisation the standard library
// offers (JSON, text, binary, gob, XML) and prints only its shape, so no
// log line, API response or cache can carry an un-noised count by mistake.
type Table struct {
	ind         *Indicator
	period      Period
	measurement int
	dims        []string
	keys        [][]string // per dimension; nil when summed out
	strides     []int
	counts      []int64
	values      []float64
	l0          int
	share       float64
}

// Indicator is the catalog indicator this table measures.
func (t *Table) Indicator() *Indicator { return t.ind }

// Period is the quarter or year tabulated.
func (t *Table) Period() Period { return t.period }

// Measurement is 0 for the full cross table and 1+i for Margins[i].
func (t *Table) Measurement() int { return t.measurement }

// Kept lists the dimensions this measurement keeps (see Indicator.Kept).
func (t *Table) Kept() []string { return t.ind.Kept(t.measurement) }

// Dimensions lists all the indicator's dimensions in catalog order,
// including summed-out ones (their key is KeyAll in every cell).
func (t *Table) Dimensions() []string { return slices.Clone(t.dims) }

// NumCells is the number of cells: the product of the kept dimensions' key
// counts (1 for a grand total, 0 for a quantile indicator).
func (t *Table) NumCells() int { return len(t.counts) }

// Key returns cell i's key, one entry per dimension in Dimensions order.
func (t *Table) Key(i int) []string {
	key := make([]string, len(t.dims))
	for d := range t.dims {
		if t.keys[d] == nil {
			key[d] = KeyAll
			continue
		}
		key[d] = t.keys[d][(i/t.strides[d])%len(t.keys[d])]
	}
	return key
}

// Count is cell i's exact person count. Local only: the privacy package is
// its only consumer, and nothing derived from it may leave the node
// un-noised.
func (t *Table) Count(i int) int64 { return t.counts[i] }

// L0 is how many cells of this measurement one person can touch: k when it
// keeps the indicator's multi-valued dimension, else 1.
func (t *Table) L0() int { return t.l0 }

// LInf is the most one person adds to one cell: always 1, because margins
// never sum out a multi-valued dimension (Catalog.Validate refuses it).
func (t *Table) LInf() int64 { return 1 }

// Share is this measurement's share of the indicator's budget; the shares
// of one indicator's tables sum to 1.
func (t *Table) Share() float64 { return t.share }

// Values are the bounded values of a quantile indicator, one per person
// with a known value, clamped to [Lower, Upper] and sorted. Local only,
// like Count. The slice is the table's own: do not modify it.
func (t *Table) Values() []float64 { return t.values }

// errLocalOnly is what every serialisation of a Table returns.
var errLocalOnly = errors.New("aggregate.Table holds exact counts and never leaves the node: publish it through the privacy package")

// MarshalJSON refuses: see Table.
func (Table) MarshalJSON() ([]byte, error) { return nil, errLocalOnly }

// MarshalText refuses: see Table.
func (Table) MarshalText() ([]byte, error) { return nil, errLocalOnly }

// MarshalBinary refuses: see Table.
func (Table) MarshalBinary() ([]byte, error) { return nil, errLocalOnly }

// GobEncode refuses: see Table.
func (Table) GobEncode() ([]byte, error) { return nil, errLocalOnly }

// String shows the table's shape, never its counts.
func (t Table) String() string {
	if t.ind == nil {
		return "aggregate.Table{}"
	}
	return fmt.Sprintf("aggregate.Table{%s %v measurement %d, %d cells}", t.ind.Name, t.period, t.measurement, len(t.counts))
}

// Format makes every fmt verb (%v, %+v, %#v, %d…) print String, so a
// stray log or debug print cannot show the counts.
func (t Table) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// LogValue keeps slog from reflecting into the table.
func (t Table) LogValue() slog.Value { return slog.StringValue(t.String()) }
