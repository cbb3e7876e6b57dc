package privacy

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"roundtable/aggregate"
)

// TestValidateAcceptsEveryBuiltRelease is the property the ledger relies
// on: whatever the builder makes — any subset of the v1 catalog's
// indicators, any budget from one micro unit up, either accounting, a
// quarter or a year, the catalog's weights or a partner's own, few or
// many cases — passes ValidateRelease after a trip through JSON, as the
// ledger receives it. buildRelease is called directly, so the builder's
// own self-check (BuildRelease) cannot hide a failure.
func TestValidateAcceptsEveryBuiltRelease(t *testing.T) {
	cat := aggregate.CatalogV1()
	v, err := NewValidator(cat)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 3))
	runs := 60
	if testing.Short() {
		runs = 10
	}
	for run := range runs {
		var names []string
		for _, ind := range cat.Indicators {
			if rng.IntN(2) == 0 {
				names = append(names, ind.Name)
			}
		}
		if len(names) == 0 {
			names = []string{cat.Indicators[rng.IntN(len(cat.Indicators))].Name}
		}
		per := aggregate.Period{Year: 2019 + rng.IntN(6), Quarter: rng.IntN(5)}
		accounting := []string{PureDP, ZCDP}[rng.IntN(2)]
		// Budgets from 1 micro to 10, log-uniform, at micro precision as
		// a node reserves them.
		spend := int64(math.Exp(rng.Float64() * math.Log(10*Micro)))
		spend = max(spend, 1)
		p := ReleaseParams{Accounting: accounting, Budget: Budget(spend), Period: per, Partner: "RS"}
		if rng.IntN(3) == 0 {
			p.Weights = map[string]float64{names[0]: 0.1 + 10*rng.Float64()}
		}
		q := max(per.Quarter, 1)
		tables, err := aggregate.Tabulate(context.Background(), cat, per, names, synthCases(uint64(run), rng.IntN(3000), per.Year, q))
		if err != nil {
			t.Fatal(err)
		}
		ms := make([]measurement, len(tables))
		for i, tb := range tables {
			ms[i] = tb
		}
		s, err := buildRelease(context.Background(), cat, ms, p, reservationFor(cat, tables, p), testKey(t))
		if err != nil {
			t.Fatalf("run %d (%s %v %d micro %v): build: %v", run, accounting, per, spend, names, err)
		}
		b, err := json.Marshal(s.Release)
		if err != nil {
			t.Fatal(err)
		}
		var got Release
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(&got); err != nil {
			t.Errorf("run %d (%s %v %d micro %v weights %v): %v", run, accounting, per, spend, names, p.Weights, err)
		}
	}
}

// TestIntervalConstants: the constants the intervals and the zCDP
// conversion use are written out so every architecture agrees; they must
// be the formulas' values (within the last bit a library may round
// differently).
func TestIntervalConstants(t *testing.T) {
	for _, c := range []struct {
		name       string
		got, exact float64
	}{
		{"z975", z975, math.Sqrt2 * math.Erfinv(Confidence)},
		{"ln20", ln20, math.Log(1 / (1 - Confidence))},
	} {
		if c.got != c.exact && math.Nextafter(c.got, c.exact) != c.exact {
			t.Errorf("%s = %v, formula gives %v", c.name, c.got, c.exact)
		}
	}
}

// TestValidateRefusals covers what the ledger-level attack tests
// (cluster.TestFSMRefusesInvalidReleaseContent) do not reach: header
// fields and the spend's bounds, on a release the builder made.
func TestValidateRefusals(t *testing.T) {
	cat, tables := testTables(t, 500)
	p := ReleaseParams{Accounting: PureDP, Budget: 0.7 * Micro, Period: testPeriod, Partner: "RS"}
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateRelease(cat, &s.Release); err != nil {
		t.Fatalf("builder's release: %v", err)
	}
	tests := []struct {
		name string
		edit func(r *Release)
		want string
	}{
		{"format version", func(r *Release) { r.Version = 1 }, "format version 1"},
		{"other catalog", func(r *Release) { r.CatalogHash = "ab" }, "catalog ab"},
		{"unknown accounting", func(r *Release) { r.Accounting = "=1" }, `accounting "=1"`},
		{"no spend", func(r *Release) { r.SpendMicro = 0 }, "spend 0 micro"},
		{"spend above the builder's bound", func(r *Release) { r.SpendMicro = MaxSpendMicro + 1 }, "spend 1000000001 micro"},
		{"period", func(r *Release) { r.Period.Quarter = 5 }, "is not a quarter or a year"},
		{"no indicators", func(r *Release) { r.Indicators = nil }, "no indicators"},
		{"indicator twice", func(r *Release) { r.Indicators = append(r.Indicators, r.Indicators[0]) }, "out of catalog order or repeated"},
		{"spend above the indicators' budgets", func(r *Release) { r.SpendMicro += 2 }, "indicators spend 0.700000 in total, but the release charges 0.700002"},
		{"spend below them", func(r *Release) { r.SpendMicro-- }, "but the release charges 0.699999"},
		{"NaN ε", func(r *Release) { r.Indicators[1].Epsilon = math.NaN() }, "must be positive and finite"},
		{"NaN interval", func(r *Release) { r.Indicators[1].Cells[0].CILow = math.NaN() }, "cell 0: interval"},
		{"NaN quantile", func(r *Release) { r.Indicators[len(r.Indicators)-1].Quantiles[0].Value = math.NaN() }, "must be ordered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(s.Release)
			var r Release
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			tc.edit(&r)
			err := ValidateRelease(cat, &r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
