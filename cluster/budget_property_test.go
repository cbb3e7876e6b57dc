package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// TestAcceptedBudgetPublishes is the property issue 9 asks for: any budget
// the command line accepts and the ledger admits produces a release the
// ledger admits. Each trial types a random six-decimal budget up to the
// cap (sometimes with trailing zeros), names a random subset of the v1
// catalog's indicators in random order, picks a quarter or a year, and
// goes the way a node does: privacy.ParseBudget on the text, the catalog's
// order (Catalog.Select), the node's pre-check (privacy.NewCharge, against
// the ledger's spend), a signed reservation through the state machine,
// privacy.BuildRelease from the reservation's parameters, and the release
// through the state machine, which validates it. The pre-check must agree
// with the ledger's verdict on every reservation, and every admitted one
// must publish, charging exactly the parsed integer. Both accountings.
func TestAcceptedBudgetPublishes(t *testing.T) {
	const capMicro = 3 * privacy.Micro
	trials := 200
	if testing.Short() {
		trials = 40
	}
	// Budgets the float conversion used to break (reserved one micro more
	// than typed, or released one more than reserved) come first.
	fixed := []string{"0.000123", "0.00391", "0.003923", "2.999999", "3"}
	v1 := aggregate.CatalogV1()
	canon, err := v1.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	for _, accounting := range []string{privacy.PureDP, privacy.ZCDP} {
		t.Run(accounting, func(t *testing.T) {
			f, l := newTestFSM(t), &fsmLog{}
			pol := privacy.Policy{Accounting: accounting, CapMicro: capMicro}
			g := fsmGenesis(t, "RS")
			g.Genesis.Catalog = canon
			g.Genesis.Policy = governance.Policy{Accounting: accounting, CapMicro: capMicro}
			mustApply(t, f, l, g)
			consortium, err := f.ConsortiumID()
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(accounting[0]), 9))
			admitted, refused := 0, 0
			for i := range trials {
				m := 1 + rng.Int64N(capMicro)
				text := privacy.Budget(m).String()
				if rng.IntN(2) == 0 {
					text = fmt.Sprintf("%d.%06d", m/privacy.Micro, m%privacy.Micro)
				}
				if i < len(fixed) {
					text = fixed[i]
				}
				b, err := privacy.ParseBudget(text)
				if err != nil || (i >= len(fixed) && b.Micro() != m) {
					t.Fatalf("%q parsed as %d, %v", text, b, err)
				}
				m = b.Micro()
				var asked []string
				for _, ind := range v1.Indicators {
					if rng.IntN(3) == 0 {
						asked = append(asked, ind.Name)
					}
				}
				rng.Shuffle(len(asked), func(a, b int) { asked[a], asked[b] = asked[b], asked[a] })
				names, err := v1.Select(asked)
				if err != nil {
					t.Fatal(err)
				}
				per := aggregate.Period{Year: 1990 + rng.IntN(40), Quarter: rng.IntN(5)}
				spends, err := f.Spend("RS")
				if err != nil {
					t.Fatal(err)
				}
				_, precheck := privacy.NewCharge(pol, "RS", per, names, b, func(q aggregate.Period) int64 {
					for _, s := range spends {
						if s.Quarter == q {
							return s.SpentMicro
						}
					}
					return 0
				})
				res := privacy.Reservation{ID: fmt.Sprintf("%032x", i+1), Consortium: consortium, Partner: "RS", CatalogHash: v1.Hash(), Period: per,
					Accounting: accounting, SpendMicro: b.Micro(), Indicators: names}
				sr, err := privacy.SignReservation(res, fsmKey("RS"))
				if err != nil {
					t.Fatal(err)
				}
				ar := applyAll(t, f, l.add(t, NewReserve(sr)))[0]
				if ar.OK != (precheck == nil) {
					t.Fatalf("trial %d (%s on %s, %v): the pre-check says %v, the ledger admitted=%v (%s)", i, text, per, asked, precheck, ar.OK, ar.Refusal)
				}
				if !ar.OK {
					refused++
					continue
				}
				admitted++
				tables, err := aggregate.Tabulate(context.Background(), v1, per, names, func(func(*aggregate.Case) error) error { return nil })
				if err != nil {
					t.Fatal(err)
				}
				s, err := privacy.BuildRelease(context.Background(), v1, tables, res.Params(), res, fsmKey("RS"))
				if err != nil {
					t.Fatalf("trial %d (%s on %s, %v): admitted reservation, builder refuses: %v", i, text, per, asked, err)
				}
				if pr := applyAll(t, f, l.add(t, NewPublish(s)))[0]; !pr.OK {
					t.Fatalf("trial %d (%s on %s, %v): admitted reservation, ledger refuses the release: %s", i, text, per, asked, pr.Refusal)
				}
				if s.Release.SpendMicro != m {
					t.Errorf("trial %d: typed %s, release charges %d micro", i, text, s.Release.SpendMicro)
				}
			}
			if admitted == 0 || refused == 0 {
				t.Errorf("%d admitted, %d refused: the trials should reach both verdicts", admitted, refused)
			}
			t.Logf("%s: %d releases published, %d reservations refused over budget (pre-check agreed on all)", accounting, admitted, refused)
		})
	}
}
