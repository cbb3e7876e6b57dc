package cluster

import (
	"strings"
	"testing"

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
