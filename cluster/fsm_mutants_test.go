package cluster

import (
	"fmt"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// The tests in this file kill mutants of the state machine's budget checks
// that `make mutate` (or a hand-applied mutant of a switch case, which
// gremlins cannot see) found alive; docs/testing.md.

// TestFSMReservationSpendLimit: the most one release may spend
// (privacy.MaxSpendMicro) is itself admitted, one micro more is refused,
// under a policy whose cap is above both so that only the per-release
// limit decides.
func TestFSMReservationSpendLimit(t *testing.T) {
	const limit = int64(privacy.MaxSpendMicro)
	for _, tc := range []struct {
		name  string
		spend int64
		admit bool
	}{
		{"exactly the limit", limit, true},
		{"one micro over", limit + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, log := newTestFSM(t), &fsmLog{}
			p := fsmPartner("RS")
			g := Genesis{
				Name: "western-balkans", Coordinators: fsmCoordinators("c1", "c2", "c3"), Threshold: 2,
				MaxCapMicro: 4 * limit,
				Partners:    []governance.Partner{{ID: p.ID, Name: p.Name, PublicKey: p.PublicKey}},
				Policy:      governance.Policy{Accounting: privacy.PureDP, CapMicro: 2 * limit},
				Catalog:     fsmCatalogJSON(t),
			}
			fsmRegisterGenesis(t, g)
			mustApply(t, f, log, NewGenesis(g))
			before := stateHash(t, f)
			res := applyAll(t, f, log.add(t, NewReserve(fsmReservation(t, fsmCatalogHash(t), "big", "RS", "RS", "2024-Q1", tc.spend))))[0]
			if res.OK != tc.admit {
				t.Fatalf("reservation of %d micro: admitted %v (%s), want %v", tc.spend, res.OK, res.Refusal, tc.admit)
			}
			if !tc.admit {
				if !strings.Contains(res.Refusal, "a release may spend at most") {
					t.Errorf("refusal %q, want the per-release limit", res.Refusal)
				}
				if stateHash(t, f) != before {
					t.Error("a refused reservation changed the ledger")
				}
			}
		})
	}
}

// TestFSMReservationPeriodBounds: a reservation's period must be a quarter
// (1–4) or a year (0) of a year from 1900 to 9999: accepted at each bound,
// refused one past it. The command decoder refuses such a period before
// applyReserve's own check (so that check's || written && cannot be seen
// from a command); the boundary mutants of that check are killed here.
func TestFSMReservationPeriodBounds(t *testing.T) {
	for _, tc := range []struct {
		year, quarter int
		admit         bool
	}{
		{1900, 1, true}, {9999, 4, true}, {2024, 0, true},
		{1899, 1, false}, {10000, 1, false}, {2024, 5, false}, {2024, -1, false},
	} {
		t.Run(fmt.Sprintf("%d-Q%d", tc.year, tc.quarter), func(t *testing.T) {
			b := newFSMBase(t)
			r := fsmReservation(t, b.cat, "p", "RS", "RS", "2024-Q3", 1000).Reservation
			r.Period = aggregate.Period{Year: tc.year, Quarter: tc.quarter}
			sr, err := privacy.SignReservation(r, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			before := stateHash(t, b.f)
			res := applyAll(t, b.f, b.log.add(t, NewReserve(sr)))[0]
			if res.OK != tc.admit {
				t.Fatalf("period %d/%d: admitted %v (%s), want %v", tc.year, tc.quarter, res.OK, res.Refusal, tc.admit)
			}
			if !tc.admit && !strings.Contains(res.Refusal, "period") {
				t.Errorf("refusal %q does not name the period", res.Refusal)
			}
			if !tc.admit && stateHash(t, b.f) != before {
				t.Error("a refused reservation changed the ledger")
			}
		})
	}
}
