package privacy

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"roundtable/aggregate"
)

// ledger is an in-memory twin of the replicated budget table: it applies
// Admit's result exactly as the state machine does.
type ledger struct {
	spent map[aggregate.Period]int64
}

func (l *ledger) get(q aggregate.Period) int64 { return l.spent[q] }

func (l *ledger) apply(p Policy, acc string, period aggregate.Period, cost int64) error {
	out, err := Admit(p, acc, period, cost, l.get)
	if err != nil {
		return err
	}
	for _, qs := range out {
		l.spent[qs.Quarter] = qs.SpentMicro
	}
	return nil
}

type charge struct {
	period aggregate.Period
	cost   int64
}

func randomCharges(r *rand.Rand, n int) []charge {
	out := make([]charge, n)
	for i := range out {
		p := aggregate.Period{Year: 2023 + r.IntN(2), Quarter: r.IntN(5)} // Quarter 0 is the whole year
		// Mostly small charges, sometimes the whole cap or more.
		cost := int64(1 + r.IntN(300_000))
		if r.IntN(10) == 0 {
			cost = int64(r.IntN(3 * Micro))
		}
		out[i] = charge{p, cost}
	}
	return out
}

// No sequence of admitted charges, quarters and years mixed, ever takes a
// quarter over the cap, in either mode; and a year's charge lands on all
// four quarters or none.
func TestAdmitNeverExceedsCap(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 1))
	for _, acc := range []string{PureDP, ZCDP} {
		for trial := range 300 {
			p := Policy{Accounting: acc, CapMicro: int64(1 + r.IntN(2*Micro))}
			l := &ledger{spent: map[aggregate.Period]int64{}}
			admitted := 0
			for _, c := range randomCharges(r, 60) {
				before := map[aggregate.Period]int64{}
				for _, q := range c.period.Quarters() {
					before[q] = l.spent[q]
				}
				err := l.apply(p, acc, c.period, c.cost)
				var ref *Refusal
				switch {
				case err == nil:
					admitted++
					for _, q := range c.period.Quarters() {
						if l.spent[q] != before[q]+c.cost {
							t.Fatalf("trial %d: %v spent %d, want %d", trial, q, l.spent[q], before[q]+c.cost)
						}
					}
				case errors.As(err, &ref):
					for q, s := range before {
						if l.spent[q] != s {
							t.Fatalf("trial %d: refused charge changed %v", trial, q)
						}
					}
				default:
					t.Fatalf("trial %d: error %v is not a *Refusal", trial, err)
				}
				for q, s := range l.spent {
					if s > p.CapMicro || s < 0 {
						t.Fatalf("trial %d %s: %v spent %d over cap %d", trial, acc, q, s, p.CapMicro)
					}
				}
			}
			if trial == 0 && admitted == 0 {
				t.Fatalf("%s: nothing admitted; the generator is not exercising Admit", acc)
			}
		}
	}
}

// A charge is admitted exactly when every quarter it covers has room: the
// accountant refuses nothing it could have admitted.
func TestAdmitIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	p := Policy{Accounting: PureDP, CapMicro: Micro}
	for range 5000 {
		spent := map[aggregate.Period]int64{}
		for q := 1; q <= 4; q++ {
			spent[aggregate.Period{Year: 2024, Quarter: q}] = int64(r.IntN(Micro + 1))
		}
		period := aggregate.Period{Year: 2024, Quarter: r.IntN(5)}
		cost := int64(1 + r.IntN(Micro))
		fits := true
		for _, q := range period.Quarters() {
			fits = fits && spent[q]+cost <= p.CapMicro
		}
		_, err := Admit(p, PureDP, period, cost, func(q aggregate.Period) int64 { return spent[q] })
		if (err == nil) != fits {
			t.Fatalf("%v cost %d spent %v: err = %v, want admitted=%v", period, cost, spent, err, fits)
		}
	}
}

func TestAdmitYearSpendsOnFourQuarters(t *testing.T) {
	p := Policy{Accounting: ZCDP, CapMicro: Micro}
	out, err := Admit(p, ZCDP, aggregate.Period{Year: 2024}, 250_000, func(aggregate.Period) int64 { return 100 })
	if err != nil {
		t.Fatal(err)
	}
	want := []QuarterSpend{
		{aggregate.Period{Year: 2024, Quarter: 1}, 250_100},
		{aggregate.Period{Year: 2024, Quarter: 2}, 250_100},
		{aggregate.Period{Year: 2024, Quarter: 3}, 250_100},
		{aggregate.Period{Year: 2024, Quarter: 4}, 250_100},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
}

// Refusals are deterministic: the same inputs give the same reason.
func TestAdmitRefusalsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	for range 2000 {
		p := Policy{Accounting: []string{PureDP, ZCDP, "bogus"}[r.IntN(3)], CapMicro: int64(r.IntN(2*Micro)) - 10}
		acc := []string{PureDP, ZCDP}[r.IntN(2)]
		period := aggregate.Period{Year: 2024, Quarter: r.IntN(5)}
		cost := int64(r.IntN(2*Micro)) - 10
		base := int64(r.IntN(2 * Micro))
		spent := func(q aggregate.Period) int64 { return base + int64(q.Quarter) }
		out1, err1 := Admit(p, acc, period, cost, spent)
		out2, err2 := Admit(p, acc, period, cost, spent)
		if !reflect.DeepEqual(out1, out2) || (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("different answers: %v %v / %v %v", out1, err1, out2, err2)
		}
		if err1 != nil {
			var ref *Refusal
			if !errors.As(err1, &ref) || ref.Reason == "" {
				t.Fatalf("refusal %v has no reason", err1)
			}
		}
	}
}

func TestAdmitRefusesMismatchedMode(t *testing.T) {
	_, err := Admit(Policy{Accounting: PureDP, CapMicro: Micro}, ZCDP, testPeriod, 1, func(aggregate.Period) int64 { return 0 })
	var ref *Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("err = %v, want a refusal", err)
	}
}
