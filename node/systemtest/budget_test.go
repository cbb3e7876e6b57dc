package systemtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"roundtable/node/api"
)

// overBudget is what a budget refusal says, from the accountant through the
// ledger, the API and the CLI to stderr.
const overBudget = "over budget"

// fillQuarterToCap publishes from m, sequentially and with nothing else
// happening, on a quarter nobody has spent on: five releases of
// publishEpsilon fit the cap exactly and must all be acknowledged; then a
// release of one micro-unit must be refused as over budget. It returns the
// acknowledged release ids.
func fillQuarterToCap(ctx context.Context, t *testing.T, m *member, quarter string) []string {
	t.Helper()
	var ids []string
	for i := range 5 {
		r := run(ctx, t, "", "publish", "--data-dir", m.dir, "--period", quarter, "--epsilon", publishEpsilon)
		id := publishedLine.FindStringSubmatch(r.stdout)
		if r.code != 0 || id == nil {
			t.Fatalf("%s: release %d of 5 on %s (ε %s each, cap %s) was not acknowledged: %s", m.partner, i+1, quarter, publishEpsilon, capEpsilon, r)
		}
		ids = append(ids, id[1])
	}
	r := run(ctx, t, "", "publish", "--data-dir", m.dir, "--period", quarter, "--epsilon", "0.000001")
	if r.code == 0 {
		t.Fatalf("%s: a release of one micro-unit on the full quarter %s was admitted: %s", m.partner, quarter, r)
	}
	if !strings.Contains(r.stderr, overBudget) {
		t.Fatalf("%s: the release over the cap failed, but not as a budget refusal: %s", m.partner, r)
	}
	return ids
}

// spentMicro reads what partner has spent on quarter, per m.
func spentMicro(ctx context.Context, m *member, partner, quarter string) (spent, capMicro int64, err error) {
	var b api.BudgetResponse
	if err := getJSON(ctx, m.url()+"/v1/budget", &b); err != nil {
		return 0, 0, err
	}
	for _, p := range b.Partners {
		if p.Partner != partner {
			continue
		}
		for _, q := range p.Quarters {
			if q.Quarter == quarter {
				return q.SpentMicro, b.CapMicro, nil
			}
		}
	}
	return 0, b.CapMicro, nil
}

// budgetRefusals is, per partner and quarter, whether a concurrent
// publisher was refused as over budget.
type budgetRefusals map[string]bool

func (r budgetRefusals) key(partner, quarter string) string { return partner + "/" + quarter }

// checkBudgetRefusals asserts what a budget refusal during the concurrent
// phase implies: ε comes in steps of publishEpsilon, which divide the cap,
// so a partner refused on a quarter had spent all of it, to the micro-unit;
// and the quarters the plan does not fill are never refused for budget.
func checkBudgetRefusals(ctx context.Context, t *testing.T, m *member, partners []string, refused budgetRefusals) {
	t.Helper()
	for _, p := range partners {
		for _, q := range []string{"2024-Q1", "2024-Q2"} {
			if !refused[refused.key(p, q)] {
				continue
			}
			if q != "2024-Q1" {
				t.Errorf("%s was refused as over budget on %s, which the plan never fills", p, q)
				continue
			}
			// m may not have applied the last reservation yet: wait for it.
			eventually(ctx, t, 10*time.Second, p+" refused on a full "+q, func(ctx context.Context) error {
				spent, capMicro, err := spentMicro(ctx, m, p, q)
				if err == nil && spent != capMicro {
					err = fmt.Errorf("%s was refused as over budget on %s with %d of %d µε spent: the cap is inclusive, a release that fits exactly must be admitted",
						p, q, spent, capMicro)
				}
				return err
			})
		}
	}
}
