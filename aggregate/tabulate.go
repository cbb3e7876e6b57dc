package aggregate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// Tabulate is TabulateFixed with no quarter fixed by an earlier release:
// every person counts in the quarter of their earliest case of the year.
// It is for tools and tests that publish nothing; the release workflow uses
// TabulateFixed, so that a person never moves between quarters of a year.
func Tabulate(ctx context.Context, cat *Catalog, period Period, indicators []string, each func(fn func(*Case) error) error) ([]*Table, error) {
	tables, _, err := TabulateFixed(ctx, cat, period, indicators, each, nil)
	return tables, err
}

// QuarterBook says in which quarter of a year an earlier release fixed a
// person (DESIGN.md's privacy model: the quarter is fixed the first time a
// release includes the person, and later edits never move it).
type QuarterBook interface {
	// Quarter is the quarter (1–4) person (Case.Person()) was fixed to in
	// year, or 0 when no release has included the person that year.
	Quarter(person string, year int) int
}

// Assignment fixes the quarter a person counts in for one year.
type Assignment struct {
	Person  string // Case.Person(): "p:" + person_id, or "c:" + case_id
	Year    int
	Quarter int // 1–4
}

// TabulateFixed computes the exact tables of the named indicators (all of
// the catalog's if indicators is empty) for one period, bounding every
// person's contribution as DESIGN.md's privacy model requires. each must
// call fn once for every case the node holds, of any year; TabulateFixed
// keeps no *Case after fn returns (it copies the fields it needs), so each
// may reuse one Case value.
//
// The rules, in aggregate/DESIGN.md: the person (Case.Person) is the unit;
// each person-year is merged from the person's cases registered that year
// (single-valued fields from the earliest case, ties broken by the smaller
// case_id; multi-valued fields the union); the person counts only in the
// quarter book fixed for them that year, or, if none, in the quarter of
// that earliest case; a multi-valued breakdown keeps at most the
// indicator's k keys, the first k in the catalog's key order.
//
// It returns, beside the tables, the quarter of every person it counted
// whom book had not fixed yet. With a nil book it returns none: that is
// Tabulate, whose tables must not be published. The caller must record
// them durably before anything computed from the tables leaves the node.
func TabulateFixed(ctx context.Context, cat *Catalog, period Period, indicators []string, each func(fn func(*Case) error) error, book QuarterBook) ([]*Table, []Assignment, error) {
	if cat == nil {
		return nil, nil, errors.New("tabulate: no catalog")
	}
	if period.Quarter < 0 || period.Quarter > 4 || period.Year < MinYear || period.Year > MaxYear {
		return nil, nil, fmt.Errorf("tabulate: period %v is not a quarter or year in %d–%d", period, MinYear, MaxYear)
	}
	if err := cat.Validate(); err != nil {
		return nil, nil, fmt.Errorf("tabulate: %w", err)
	}
	inds, err := selectIndicators(cat, indicators)
	if err != nil {
		return nil, nil, fmt.Errorf("tabulate: %w", err)
	}
	start := time.Now()
	people, records, err := collectPeople(ctx, period.Year, each, newPersonIndex())
	if err != nil {
		return nil, nil, fmt.Errorf("tabulate %v: %w", period, err)
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
	var codes [numDims]uint32
	var ages ageHistogram
	var fixed []Assignment
	codeOf := newCodeTables()
	for i := range people.n {
		py := people.at(i)
		q, known := py.quarter(book, period.Year)
		if period.Quarter != 0 && q != period.Quarter {
			continue // counted in another quarter of the year
		}
		if !known && book != nil {
			fixed = append(fixed, Assignment{Person: py.person(), Year: period.Year, Quarter: q})
		}
		py.codes(codeOf, &codes)
		for j := range plans {
			plans[j].add(&codes)
		}
		if py.age != AgeUnknown {
			ages.add(int(py.age))
		}
	}
	for _, t := range quantiles { // age is the only quantile value (quantileValues)
		t.values = ages.values(t.ind.Lower, t.ind.Upper)
	}
	slog.Debug("tabulated", "period", period.String(), "cases", records, "person_years", people.n, "tables", len(tables), "newly_fixed", len(fixed), "elapsed", time.Since(start))
	return tables, fixed, nil
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

// ageHistogram counts people by age, ages below 0 sharing the first bucket
// and ages above MaxAge the last. It replaces sorting a million floats:
// a quantile table's bounds lie within 0–MaxAge (Catalog.Validate), so
// clamping to them maps every age of a bucket to one value, and clamping is
// monotone, so reading the buckets in order yields the values sorted. Sorted
// values say nothing about the store's order of cases.
type ageHistogram [MaxAge + 3]int

func (h *ageHistogram) add(age int) { h[min(max(age, -1), MaxAge+1)+1]++ }

// values lists every counted age clamped to [lower, upper], in ascending
// order; nil when there are none.
func (h *ageHistogram) values(lower, upper float64) []float64 {
	n := 0
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return nil
	}
	out := make([]float64, 0, n)
	for b, c := range h {
		v := min(max(float64(b-1), lower), upper) // b-1: an age of the bucket
		for range c {
			out = append(out, v)
		}
	}
	return out
}

// quarter is the quarter p counts in for year: the one book fixed (known
// true), else that of p's earliest case of the year.
func (p *personYear) quarter(book QuarterBook, year int) (q int, known bool) {
	if book != nil {
		if q := book.Quarter(p.person(), year); q >= 1 && q <= 4 {
			return q, true
		}
	}
	return p.first.Quarter(), false
}

// person is p's Case.Person() key.
func (p *personYear) person() string {
	if p.personID != "" {
		return "p:" + p.personID
	}
	return "c:" + p.firstID
}

// personYear is one person's merged record for one calendar year.
type personYear struct {
	first         Date   // earliest registration that year: fixes the quarter
	firstID       string // its case_id, to break ties deterministically
	personID      string // the key when not empty; else firstID is (sameKey)
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

// grow appends a zero person-year and returns it, so the caller fills it in
// place rather than copying a filled one in.
func (c *chunkedPeople) grow() *personYear {
	if c.n&(1<<chunkBits-1) == 0 {
		c.chunks = append(c.chunks, make([]personYear, 1<<chunkBits))
	}
	p := c.at(c.n)
	c.n++
	return p
}

// personIndex finds the person-year a case belongs to. It is an
// open-addressing hash table (linear probing) over positions in a
// chunkedPeople, built for the one question the tabulator asks per case,
// "this person's record, or a new one": a single probe sequence answers it
// and, for a new person, the empty slot it ends on is where the person goes.
// A Go map needs a lookup and then an assignment, hashing the key string
// twice, and its string keys make the garbage collector scan it.
//
// A slot holds a 32-bit tag of the key's hash beside the person's position,
// so a probe touches a person-year only when the tags agree; the key itself
// is compared there (personYear.sameKey), so a hash collision costs a
// probe, never a wrong merge. The tag also fixes the home slot, so growing
// re-places slots without rehashing keys.
type personIndex struct {
	// slots hold tag<<32 | (position+1); 0 is an empty slot. 32 bits of
	// position index 4 billion person-years, far beyond any node's memory.
	slots []uint64
	used  int
	// seeds hash person_id and case_id keys apart ([0] and [1]), so an id
	// that is both someone's pseudonym and someone's case_id does not collide
	// every time. Random per index: the output never depends on the hash.
	seeds [2]maphash.Seed
	// tagMask is all ones; tests narrow it to force tag collisions.
	tagMask uint32
}

// minIndexSlots is the starting size: small, because growth is cheap (no
// rehashing) and a node may hold only a few cases for the year.
const minIndexSlots = 1 << 10

func newPersonIndex() *personIndex {
	return &personIndex{
		slots:   make([]uint64, minIndexSlots),
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		tagMask: ^uint32(0),
	}
}

// find returns c's person-year in people and true, or a new zero
// person-year appended to people (already indexed) and false.
func (x *personIndex) find(people *chunkedPeople, c *Case) (*personYear, bool) {
	if 2*(x.used+1) > len(x.slots) { // load ≤ 1/2 keeps probe sequences short
		x.grow()
	}
	var h uint64
	if c.PersonID != "" {
		h = maphash.String(x.seeds[0], c.PersonID)
	} else {
		h = maphash.String(x.seeds[1], c.CaseID)
	}
	tag := uint32(h>>32) & x.tagMask
	mask := len(x.slots) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			x.slots[i] = uint64(tag)<<32 | uint64(people.n+1)
			x.used++
			return people.grow(), false
		}
		if uint32(s>>32) == tag {
			if p := people.at(int(uint32(s)) - 1); p.sameKey(c) {
				return p, true
			}
		}
	}
}

// grow doubles the table. Entries are distinct, so re-placing them needs
// only their tags.
func (x *personIndex) grow() {
	old := x.slots
	x.slots = make([]uint64, 2*len(old))
	mask := len(x.slots) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := int(uint32(s>>32)) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// sameKey reports whether c belongs to person-year p (Case.Person's rule).
// A person-year without a person_id was made of cases that all share its
// case_id, so firstID is that key.
func (p *personYear) sameKey(c *Case) bool {
	if c.PersonID != "" {
		return p.personID == c.PersonID
	}
	return p.personID == "" && p.firstID == c.CaseID
}

// checkEvery is how many records pass between context checks.
const checkEvery = 4096

// collectPeople merges the cases registered in year into person-years.
// Cases of other years are skipped without merging: the horizon is the
// calendar year, so they never affect this year's tables.
func collectPeople(ctx context.Context, year int, each func(fn func(*Case) error) error, index *personIndex) (chunkedPeople, int, error) {
	lo, hi := DateOf(year, time.January, 1), DateOf(year+1, time.January, 1)
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
		p, found := index.find(&people, c)
		if !found {
			p.personID = c.PersonID
			p.takeSingle(c, groups)
		}
		p.merge(c, groups)
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
	dimExploitationForm
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
	case "exploitation_form":
		return dimExploitationForm
	}
	return -1
}

// codeTables memoises catalog_v1.go's native-code functions over their
// small domains, built once per call like countryGroups: a person's codes
// then cost array reads instead of switches whose branches the data makes
// unpredictable.
type codeTables struct {
	ageGroup, ageClass                         [MaxAge + 3]uint8 // by age clamped to -1…MaxAge+1, plus 1
	referral, migration, recruitment, relation [256]uint8
	// control_group of the low 9 and the next 8 HTCDS control bits: the
	// group mask of a set is the union of its bits' groups.
	controlLo [1 << 9]uint32
	controlHi [1 << 8]uint32
}

func newCodeTables() *codeTables {
	t := &codeTables{}
	for i := range t.ageGroup {
		t.ageGroup[i], t.ageClass[i] = uint8(ageGroup(i-1)), uint8(ageClass(i-1))
	}
	for i := range 256 {
		t.referral[i] = uint8(referralCode(Referral(i)))
		t.migration[i] = uint8(migrationCode(Migration(i)))
		t.recruitment[i] = uint8(recruitmentCode(Recruitment(i)))
		t.relation[i] = uint8(relationCode(Relation(i)))
		t.controlHi[i] = controlMask(Set[Control](i << 9))
	}
	for i := range t.controlLo {
		t.controlLo[i] = controlMask(Set[Control](i))
	}
	return t
}

// codes fills the person's native key code for every dimension (a bit set
// over the native keys for multi-valued ones). Computing all of them once
// per person is cheaper than asking per table. The person's control set
// holds only the vocabulary's 17 codes (Case.CheckCodes).
func (p *personYear) codes(t *codeTables, out *[numDims]uint32) {
	age := min(max(int(p.age), -1), MaxAge+1) + 1 // ages outside 0–MaxAge share their end's groups
	out[dimStatus] = uint32(p.status)
	out[dimSex] = uint32(min(p.sex, SexUnknown))
	out[dimAgeGroup] = uint32(t.ageGroup[age])
	out[dimAgeClass] = uint32(t.ageClass[age])
	out[dimCitizenship] = uint32(p.citizenship)
	out[dimExploitedIn] = uint32(p.exploitedIn)
	out[dimForm] = formMask(p.forms, p.labour, p.sexual)
	out[dimExploitationForm] = exploitationForm(out[dimForm])
	out[dimReferral] = uint32(t.referral[p.referral])
	out[dimMigration] = uint32(t.migration[p.migration])
	out[dimUnaccompanied] = 1
	if p.unaccompanied {
		out[dimUnaccompanied] = 0
	}
	out[dimService] = uint32(p.services) & (1<<len(serviceKeys) - 1)
	out[dimControl] = t.controlLo[p.control&(1<<9-1)] | t.controlHi[(p.control>>9)&(1<<8-1)]
	out[dimRecruitment] = uint32(t.recruitment[p.recruitment])
	out[dimRelation] = uint32(t.relation[p.relation])
}

// axis is one kept single-valued dimension of a measurement. offset maps
// the dimension's native code straight to its catalog key position times
// the dimension's stride, so a person's cell index is a sum of lookups.
type axis struct {
	dim    int
	offset []int
}

// multiAxis is a measurement's kept multi-valued dimension, in the
// catalog's key order: natives[pos] is key pos's native code and
// offsets[pos] its position times the stride. A multi-valued dimension's
// native codes are a uint32 bit set, so it has at most 32 keys.
type multiAxis struct {
	dim     int
	natives []uint8
	offsets []int
}

// plan fills one count table.
type plan struct {
	counts []int64
	single []axis
	multi  *multiAxis // nil when the measurement keeps none
	k      int
}

func (p *plan) add(codes *[numDims]uint32) {
	base := 0
	for i := range p.single {
		a := &p.single[i]
		base += a.offset[codes[a.dim]]
	}
	m := p.multi
	if m == nil {
		p.counts[base]++
		return
	}
	// The person's keys as a bit set over catalog positions, built without
	// branches (the data makes them unpredictable); then a visit of its set
	// bits, lowest first.
	mask, have := codes[m.dim], uint32(0)
	for pos, nat := range m.natives {
		have |= (mask >> nat & 1) << pos
	}
	// Bounding: the first k keys the person has, in the catalog's key order.
	for taken := 0; have != 0 && taken < p.k; taken++ {
		p.counts[base+m.offsets[bits.TrailingZeros32(have)]]++
		have &= have - 1
	}
}

// EmptyTable returns measurement m of ind with every cell zero: the cell
// keys (in Key order), sensitivities and budget share that any tabulation
// of that measurement has, whatever the data. The ledger checks published
// releases against it, so the tabulator and the check share one layout.
// ind must belong to a catalog that passed Validate, and m must be in
// [0, ind.NumMeasurements()); otherwise EmptyTable returns nil.
func EmptyTable(ind *Indicator, m int) *Table {
	if ind == nil || m < 0 || m >= ind.NumMeasurements() {
		return nil
	}
	t, _ := newTable(ind, Period{}, m)
	return t
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
		if d.Multi {
			m := &multiAxis{dim: dimID(d.Name), natives: make([]uint8, len(d.Keys)), offsets: make([]int, len(d.Keys))}
			for pos, k := range d.Keys {
				m.natives[pos] = uint8(slices.Index(spec.keys, k))
				m.offsets[pos] = pos * cells
			}
			p.multi = m
			t.l0 = min(ind.K, len(d.Keys))
		} else {
			a := axis{dim: dimID(d.Name), offset: make([]int, len(spec.keys))}
			for nat, k := range spec.keys {
				a.offset[nat] = slices.Index(d.Keys, k) * cells
			}
			p.single = append(p.single, a)
		}
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
