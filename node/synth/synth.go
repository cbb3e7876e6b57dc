// Package synth generates deterministic synthetic case records for one
// partner over a range of years, with the magnitudes and patterns of
// /work/shared/REGION.md (see DESIGN.md beside this file): tens to low
// hundreds of people per country-year, each country's mix of exploitation,
// nationals and foreigners, presumed and identified victims, and a few
// people with several cases.
//
// The same Options always give byte-identical output: every draw comes from
// math/rand/v2 PCG streams seeded from the seed, the partner, the year and
// the person, never from the clock or from map iteration.
package synth

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"roundtable/aggregate"
)

// MaxScale bounds Options.Scale: at 2e4 the biggest partner-year is about
// 4M people (about 100 MB of plans), and person numbers over every year
// the schema accepts still fit the int32 the sort key packs.
const MaxScale = 2e4

// Options says what to generate.
type Options struct {
	Partner  aggregate.Country // one of Partners()
	From, To int               // registration years, inclusive
	Seed     int64
	Scale    float64 // multiplies the volume; 0 means 1
}

// check validates o and fills in defaults.
func (o Options) check() (Options, profile, error) {
	prof, ok := profileOf(o.Partner)
	if !ok {
		return o, prof, fmt.Errorf("synth: partner %q is not one of %v", o.Partner, Partners())
	}
	if o.From < aggregate.MinYear || o.To > aggregate.MaxYear || o.From > o.To {
		return o, prof, fmt.Errorf("synth: years %d–%d: want %d ≤ from ≤ to ≤ %d", o.From, o.To, aggregate.MinYear, aggregate.MaxYear)
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if math.IsNaN(o.Scale) || o.Scale < 0 || o.Scale > MaxScale {
		return o, prof, fmt.Errorf("synth: scale %v: want a number in (0, %g]", o.Scale, float64(MaxScale))
	}
	return o, prof, nil
}

// Generate writes o's cases to w as the project's CSV (header
// aggregate.Columns, values as aggregate.FieldValue formats them), sorted by
// registration date, and returns the number of rows written.
func Generate(ctx context.Context, w io.Writer, o Options) (int, error) {
	if _, _, err := o.check(); err != nil {
		return 0, err // before the header, so bad options write nothing
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(header()); err != nil {
		return 0, fmt.Errorf("synth: write header: %w", err)
	}
	f := newRowFormatter()
	n, err := Cases(ctx, o, func(c *aggregate.Case) error {
		_, err := bw.Write(f.format(c))
		return err
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("synth: write: %w", err)
	}
	return n, nil
}

// Cases calls fn for each of o's cases in registration-date order and
// returns how many it generated. fn must not keep c: it is reused.
func Cases(ctx context.Context, o Options, fn func(c *aggregate.Case) error) (int, error) {
	o, prof, err := o.check()
	if err != nil {
		return 0, err
	}
	g := newGenerator(o, prof)
	n := 0
	var c aggregate.Case // one case, reused, so no row allocates it
	var carried []plan   // cases of earlier years' people falling in this year
	for y := o.From; y <= o.To; y++ {
		var plans []plan
		plans, carried = g.planYear(y, carried)
		for i := range plans {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return n, fmt.Errorf("synth: %w", err)
				}
			}
			c = g.makeCase(&plans[i], y, i+1)
			if err := fn(&c); err != nil {
				return n, fmt.Errorf("synth: case %s: %w", c.CaseID, err)
			}
			n++
		}
	}
	return n, nil
}

// plan is one case before its content is drawn: enough to sort a year's
// cases by date and to draw the content later from the person's seed.
type plan struct {
	key   uint64         // date, person, seq packed so one integer compare sorts
	first aggregate.Date // the person's first case
	seed  uint64         // the person's seed
}

// newPlan packs the sort key. Dates are days since 1970 (under 2^24 up to
// aggregate.MaxYear), people are numbered from 1 in an int32, seq is 0–2.
func newPlan(date aggregate.Date, person int32, seq uint8, first aggregate.Date, seed uint64) plan {
	return plan{key: uint64(date)<<40 | uint64(uint32(person))<<8 | uint64(seq), first: first, seed: seed}
}

func (p *plan) date() aggregate.Date { return aggregate.Date(p.key >> 40) }
func (p *plan) person() int32        { return int32(uint32(p.key >> 8)) }
func (p *plan) seq() uint8           { return uint8(p.key) }

type generator struct {
	o      Options
	prof   profile
	t      tables
	src    *rand.PCG // reseeded per year, person and case: no allocation per row
	r      *rand.Rand
	nextID int32
	idBuf  []byte
}

func newGenerator(o Options, prof profile) *generator {
	src := rand.NewPCG(0, 0)
	return &generator{o: o, prof: prof, t: newTables(), src: src, r: rand.New(src), idBuf: make([]byte, 0, 32)}
}

// stream reseeds the shared source for one purpose. The second PCG word
// mixes the partner with a purpose tag so partners and purposes never share
// a stream for the same seed.
func (g *generator) stream(a, tag uint64) *rand.Rand {
	p := uint64(g.o.Partner[0])<<8 | uint64(g.o.Partner[1])
	g.src.Seed(a, p<<48^tag)
	return g.r
}

const (
	tagYear   = 1 << 40
	tagPerson = 2 << 40
	tagCase   = 3 << 40
)

// planYear returns year y's cases sorted by date, and the later cases of
// this year's people that fall in year y+1.
func (g *generator) planYear(y int, carried []plan) (plans, next []plan) {
	r := g.stream(uint64(g.o.Seed), tagYear|uint64(y))
	target := g.target(r, y)
	// People who came back from last year count towards this year's
	// people, so the distinct count per year stays on the target.
	back := 0
	for i := range carried {
		if i == 0 || carried[i].person() != carried[i-1].person() {
			back++
		}
	}
	plans = append(make([]plan, 0, target+target/8+len(carried)), carried...)
	end := aggregate.DateOf(y, time.December, 31)
	limit := end // later cases may spill into the next year, if generated
	if y < g.o.To {
		limit = aggregate.DateOf(y+1, time.December, 31)
	}
	for range max(target-back, 0) {
		g.nextID++
		first, seed := registrationDate(r, y), r.Uint64()
		plans = append(plans, newPlan(first, g.nextID, 0, first, seed))
		extra := 0
		switch u := r.Float64(); {
		case u < 0.02:
			extra = 2
		case u < 0.08:
			extra = 1
		}
		for seq, prev := uint8(1), first; extra > 0; seq, extra = seq+1, extra-1 {
			d := prev + aggregate.Date(between(r, 20, 330))
			if d > limit {
				// Past the last year generated, or two years on: keep the
				// case before the limit if there is room, else the person
				// has one case fewer.
				if limit-prev < 14 {
					break
				}
				d = prev + aggregate.Date(between(r, 7, int(limit-prev)))
			}
			if d > end {
				next = append(next, newPlan(d, g.nextID, seq, first, seed))
			} else {
				plans = append(plans, newPlan(d, g.nextID, seq, first, seed))
			}
			prev = d
		}
	}
	slices.SortFunc(plans, func(a, b plan) int { return cmp.Compare(a.key, b.key) })
	return plans, next
}

// target is the number of people with a case in year y: the year's figure
// with ±10% jitter, kept in the partner's band, times the scale.
func (g *generator) target(r *rand.Rand, y int) int {
	f := float64(g.prof.figure(y).persons) * (0.9 + 0.2*r.Float64())
	lo, hi := band(g.o.Partner)
	f = min(max(math.Round(f), float64(lo)), float64(hi))
	return int(math.Round(f * g.o.Scale))
}

// registrationDate draws a date in year y: somewhat more in the summer
// (begging and seasonal work peak then), and mostly on working days.
func registrationDate(r *rand.Rand, y int) aggregate.Date {
	months := [12]float64{7, 7, 8, 8, 9, 10, 10, 10, 9, 8, 8, 6}
	var cum float64
	for _, m := range months {
		cum += m
	}
	var d aggregate.Date
	for try := 0; try < 3; try++ {
		x, m := r.Float64()*cum, 0
		for ; m < 11 && x >= months[m]; m++ {
			x -= months[m]
		}
		month := time.Month(m + 1)
		days := time.Date(y, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
		d = aggregate.DateOf(y, month, between(r, 1, days))
		if wd := d.Time().Weekday(); wd != time.Saturday && wd != time.Sunday || chance(r, 0.2) {
			break
		}
	}
	return d
}

// makeCase draws the content of planned case number k of year y.
func (g *generator) makeCase(p *plan, y, k int) aggregate.Case {
	c := aggregate.NewCase()
	c.CaseID = g.id(y, k)
	c.PersonID = g.id(0, int(p.person()))
	c.RegisteredOn = p.date()
	per := g.drawPerson(g.stream(p.seed, tagPerson), p.first, g.prof.figure(p.first.Year()))
	g.fillCase(g.stream(p.seed, tagCase|uint64(p.seq())), &c, &per, int(p.seq()), g.prof.figure(y))
	return c
}

// id formats a case id "RS-2023-000045" (year > 0) or a person id
// "RS-P000123" (year 0); numbers past 999999 take more digits.
func (g *generator) id(year, n int) string {
	b := g.idBuf[:0]
	b = append(b, g.o.Partner...)
	b = append(b, '-')
	if year > 0 {
		b = strconv.AppendInt(b, int64(year), 10)
		b = append(b, '-')
	} else {
		b = append(b, 'P')
	}
	for m := max(n, 1); m < 100000; m *= 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(n), 10)
	g.idBuf = b
	return string(b)
}
