package privacy

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"

	"roundtable/aggregate"
)

// synthCases calls fn for n deterministic synthetic cases registered in
// quarter q of year; every tenth person has a second case, so contribution
// bounding is exercised. It reuses one Case, as Tabulate allows.
func synthCases(seed uint64, n, year, q int) func(fn func(*aggregate.Case) error) error {
	citizenships := []aggregate.Country{"AL", "BA", "XK", "ME", "MK", "RS", "DE", "SY", "CN", "NG", "BR", ""}
	return func(fn func(*aggregate.Case) error) error {
		r := rand.New(rand.NewPCG(seed, 7))
		start := aggregate.DateOf(year, 1, 1) + aggregate.Date((q-1)*91)
		c := aggregate.NewCase()
		for i := range n {
			c = aggregate.NewCase()
			c.CaseID = fmt.Sprintf("c%07d", i)
			if i%10 == 1 {
				c.PersonID = fmt.Sprintf("p%07d", i-1)
			}
			c.RegisteredOn = start + aggregate.Date(r.IntN(90))
			c.Status = aggregate.Status(r.IntN(2))
			c.Sex = aggregate.Sex(r.IntN(4))
			if r.IntN(10) > 0 {
				c.Age = min(90, 8+r.IntN(40)+r.IntN(20))
			}
			c.Citizenship = citizenships[r.IntN(len(citizenships))]
			c.ExploitedIn = citizenships[r.IntN(len(citizenships))]
			for range 1 + r.IntN(3) {
				c.Forms = c.Forms.With(aggregate.Form(r.IntN(10)))
				c.Control = c.Control.With(aggregate.Control(r.IntN(17)))
				c.Services = c.Services.With(aggregate.Service(r.IntN(8)))
			}
			c.Recruitment = aggregate.Recruitment(r.IntN(15))
			c.RecruiterRelation = aggregate.Relation(r.IntN(5))
			c.ReferralSource = aggregate.Referral(r.IntN(8))
			c.MigrantStatus = aggregate.Migration(r.IntN(5))
			c.Unaccompanied = r.IntN(20) == 0
			if err := fn(&c); err != nil {
				return err
			}
		}
		return nil
	}
}

var testPeriod = aggregate.Period{Year: 2024, Quarter: 2}

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "roundtable privacy test key seed")
	return ed25519.NewKeyFromSeed(seed)
}

func testTables(t testing.TB, n int) (*aggregate.Catalog, []*aggregate.Table) {
	t.Helper()
	cat := aggregate.CatalogV1()
	tables, err := aggregate.Tabulate(context.Background(), cat, testPeriod, nil, synthCases(1, n, testPeriod.Year, testPeriod.Quarter))
	if err != nil {
		t.Fatalf("tabulate: %v", err)
	}
	return cat, tables
}

// reservationFor is the reservation a node would have admitted for p.
func reservationFor(cat *aggregate.Catalog, tables []*aggregate.Table, p ReleaseParams) Reservation {
	var names []string
	for _, t := range tables {
		if n := t.Indicator().Name; len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	return Reservation{ID: "res-1", Consortium: testConsortium, Partner: p.Partner, CatalogHash: cat.Hash(), Period: p.Period,
		Accounting: p.Accounting, SpendMicro: p.Budget.Micro(), Indicators: names}
}

// fixedTable is a measurement with given counts, for tests that need a
// table without tabulating cases.
type fixedTable struct {
	ind    *aggregate.Indicator
	counts []int64
	values []float64
	l0     int
	share  float64
}

func (f *fixedTable) Indicator() *aggregate.Indicator { return f.ind }
func (f *fixedTable) Dimensions() []string            { return dimensionNames(f.ind) }
func (f *fixedTable) NumCells() int                   { return len(f.counts) }
func (f *fixedTable) Key(i int) []string              { return []string{fmt.Sprint(i)} }
func (f *fixedTable) Count(i int) int64               { return f.counts[i] }
func (f *fixedTable) L0() int                         { return f.l0 }
func (f *fixedTable) LInf() int64                     { return 1 }
func (f *fixedTable) Share() float64                  { return f.share }
func (f *fixedTable) Values() []float64               { return f.values }

// testConsortium stands for a consortium id (a genesis hash): a release
// names the consortium it is published in.
const testConsortium = "5e1f0c4ad2b9e3f7a6c8d1b0e2f4a6c8d0e2f4a6c8b1d3f5a7c9e0b2d4f6a8c0"
