package privacy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"strings"
	"testing"

	"roundtable/aggregate"
)

func TestBuildReleasePureDP(t *testing.T) {
	cat, tables := testTables(t, 2000)
	p := ReleaseParams{Accounting: PureDP, Budget: Micro, Period: testPeriod, Partner: "RS"}
	key := testKey(t)
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	r := s.Release
	if r.SpendMicro != Micro || r.Reservation != "res-1" || r.Accounting != PureDP || r.Partner != "RS" || r.CatalogHash != cat.Hash() {
		t.Fatalf("header = %+v", r)
	}
	if len(r.Indicators) != len(cat.Indicators) {
		t.Fatalf("%d indicators, want %d", len(r.Indicators), len(cat.Indicators))
	}
	var sumEps float64
	cellsByInd := map[string]int{}
	for _, tb := range tables {
		cellsByInd[tb.Indicator().Name] += tb.NumCells()
	}
	for i, ir := range r.Indicators {
		ind := cat.Indicators[i]
		if ir.Name != ind.Name {
			t.Fatalf("indicator %d is %s, want catalog order %s", i, ir.Name, ind.Name)
		}
		if ir.Mechanism != Laplace {
			t.Errorf("%s: mechanism %s", ir.Name, ir.Mechanism)
		}
		sumEps += ir.Epsilon
		// Catalog weights: victims 4, the other nine 1.
		wantEps := ind.Weight / 13
		if math.Abs(ir.Epsilon-wantEps) > 1e-12 {
			t.Errorf("%s: ε = %v, want %v (weight %v of 13)", ir.Name, ir.Epsilon, wantEps, ind.Weight)
		}
		if ind.Kind == aggregate.KindQuantiles {
			checkQuantiles(t, ir, ind)
			continue
		}
		if len(ir.Cells) != cellsByInd[ir.Name] {
			t.Errorf("%s: %d cells, want %d", ir.Name, len(ir.Cells), cellsByInd[ir.Name])
		}
		for _, c := range ir.Cells {
			if c.CILow > float64(c.Value) || c.CIHigh < float64(c.Value) || c.CIHigh-float64(c.Value) != float64(c.Value)-c.CILow {
				t.Fatalf("%s %v: interval [%v, %v] not centred on %d", ir.Name, c.Key, c.CILow, c.CIHigh, c.Value)
			}
		}
	}
	if math.Abs(sumEps-1) > 1e-9 {
		t.Errorf("indicator ε sum to %v, want 1", sumEps)
	}
	// Noise was applied: with b ≈ 16.7 a cell keeps its exact count with
	// probability ≈ 3%, so most of the 48 cross-table cells must differ.
	same := 0
	for i, c := range r.Indicators[0].Cells[:tables[0].NumCells()] {
		if c.Value == tables[0].Count(i) {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of %d victims cells equal their exact count", same, tables[0].NumCells())
	}
	// The victims cross table has share 0.2 of 4/13 and l0 = 1.
	if got, want := r.Indicators[0].Cells[0].Scale, 1/(4.0/13*0.2); math.Abs(got-want) > 1e-9 {
		t.Errorf("victims cell scale %v, want %v", got, want)
	}
	// exploitation: k = 3, one table: b = 3/(1/13).
	if got, want := r.Indicators[1].Cells[0].Scale, 3*13.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("exploitation cell scale %v, want %v", got, want)
	}
}

func checkQuantiles(t *testing.T, ir IndicatorRelease, ind aggregate.Indicator) {
	t.Helper()
	if len(ir.Quantiles) != len(ind.Ranks) || len(ir.Cells) != 1 {
		t.Fatalf("%s: %d quantiles and %d cells, want %d and 1", ir.Name, len(ir.Quantiles), len(ir.Cells), len(ind.Ranks))
	}
	for i, q := range ir.Quantiles {
		if q.Rank != ind.Ranks[i] || q.CILow > q.Value || q.Value > q.CIHigh || q.CILow < ind.Lower || q.CIHigh > ind.Upper {
			t.Errorf("%s: quantile %+v malformed", ir.Name, q)
		}
	}
}

func TestBuildReleaseZCDP(t *testing.T) {
	cat, tables := testTables(t, 500)
	p := ReleaseParams{Accounting: ZCDP, Budget: 0.5 * Micro, Period: testPeriod, Partner: "AL"}
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Release.SpendMicro != 500_000 {
		t.Errorf("spend %d micro, want 500000", s.Release.SpendMicro)
	}
	var sumRho float64
	for _, ir := range s.Release.Indicators {
		sumRho += ir.Rho
		if ir.Mechanism != Gaussian || ir.Delta != GaussianDelta {
			t.Errorf("%s: mechanism %s δ %v", ir.Name, ir.Mechanism, ir.Delta)
		}
		if ir.Epsilon != 0 {
			t.Errorf("%s: ε %v under zCDP; an indicator states only its ρ", ir.Name, ir.Epsilon)
		}
	}
	if math.Abs(sumRho-0.5) > 1e-9 {
		t.Errorf("ρ sums to %v, want 0.5", sumRho)
	}
	// victims cross table: ρ = 0.5·4/13·0.2, Δ2 = 1, σ = 1/√(2ρ), within
	// the library's 0.1% calibration accuracy and never below.
	want := 1 / math.Sqrt(2*0.5*4/13*0.2)
	if got := s.Release.Indicators[0].Cells[0].Scale; got < want || got > want*1.002 {
		t.Errorf("victims σ = %v, want [%v, %v]", got, want, want*1.002)
	}
}

func TestBuildReleaseWeightsAndSubset(t *testing.T) {
	cat := aggregate.CatalogV1()
	tables, err := aggregate.Tabulate(context.Background(), cat, testPeriod, []string{"services", "victims"}, synthCases(2, 300, 2024, 2))
	if err != nil {
		t.Fatal(err)
	}
	p := ReleaseParams{Accounting: PureDP, Budget: 2 * Micro, Period: testPeriod, Partner: "ME", Weights: map[string]float64{"services": 3}}
	s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, ir := range s.Release.Indicators {
		got = append(got, ir.Name)
	}
	if strings.Join(got, ",") != "victims,services" {
		t.Fatalf("order %v, want catalog order victims,services", got)
	}
	// services weighted 3 by the caller, victims 4 by the catalog: 3/7 of ε = 2.
	if e := s.Release.Indicators[1].Epsilon; math.Abs(e-6.0/7) > 1e-12 {
		t.Errorf("services ε = %v, want 6/7 (weight 3 of 7)", e)
	}
}

func TestBuildReleaseDeterministicOrder(t *testing.T) {
	cat, tables := testTables(t, 300)
	p := ReleaseParams{Accounting: PureDP, Budget: Micro, Period: testPeriod, Partner: "RS"}
	keys := func() []string {
		s, err := BuildRelease(context.Background(), cat, tables, p, reservationFor(cat, tables, p), testKey(t))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ir := range s.Release.Indicators {
			for _, c := range ir.Cells {
				out = append(out, ir.Name+":"+strings.Join(c.Key, "/"))
			}
		}
		return out
	}
	a, b := keys(), keys()
	if strings.Join(a, "|") != strings.Join(b, "|") {
		t.Fatal("cell order differs between two releases of the same tables")
	}
}

func TestBuildReleaseRefuses(t *testing.T) {
	cat, tables := testTables(t, 100)
	good := ReleaseParams{Accounting: PureDP, Budget: Micro, Period: testPeriod, Partner: "RS"}
	other := aggregate.CatalogV1()
	other.Indicators = other.Indicators[1:]
	cases := []struct {
		name string
		edit func(p *ReleaseParams, r *Reservation, cat **aggregate.Catalog)
		want string
	}{
		{"zero epsilon", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Budget = 0 }, "ε budget 0 is not positive"},
		{"negative epsilon", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Budget = -Micro }, "ε budget -1 is not positive"},
		{"epsilon above the most", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Budget = MaxSpendMicro + 1 }, "is above 1000"},
		{"accounting not reserved", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Accounting = ZCDP }, "accounting is pure but the release needs zcdp"},
		{"unknown accounting", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Accounting = "renyi" }, "not one of"},
		{"no partner", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { p.Partner = "" }, "partner is empty"},
		{"bad weight", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) {
			p.Weights = map[string]float64{"age": 0}
		}, "weight of age"},
		{"weight for absent indicator", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) {
			p.Weights = map[string]float64{"nope": 1}
		}, `"nope", which is not in this release`},
		{"unknown indicator", func(p *ReleaseParams, r *Reservation, c **aggregate.Catalog) { *c = other }, `"victims" is not in catalog`},
		{"indicator of another catalog version", func(p *ReleaseParams, r *Reservation, c **aggregate.Catalog) {
			changed := aggregate.CatalogV1()
			changed.Indicators[0].Shares = nil
			*c = changed
			r.CatalogHash = changed.Hash()
		}, `"victims" differs from its definition`},
		{"reservation partner", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.Partner = "AL" }, "partner is AL"},
		{"reservation spend", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.SpendMicro-- }, "spend is 999999"},
		{"reservation period", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.Period.Quarter = 3 }, "period is 2024-Q3"},
		{"reservation accounting", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.Accounting = ZCDP }, "accounting is zcdp"},
		{"reservation indicators", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.Indicators = r.Indicators[1:] }, "indicators is"},
		{"reservation id", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) { r.ID = "" }, "no id"},
		{"table of another period", func(p *ReleaseParams, r *Reservation, _ **aggregate.Catalog) {
			p.Period, r.Period = aggregate.Period{Year: 2024}, aggregate.Period{Year: 2024}
		}, "covers 2024-Q2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, c := good, cat
			r := reservationFor(cat, tables, good)
			tc.edit(&p, &r, &c)
			_, err := BuildRelease(context.Background(), c, tables, p, r, testKey(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	t.Run("short key", func(t *testing.T) {
		_, err := BuildRelease(context.Background(), cat, tables, good, reservationFor(cat, tables, good), testKey(t)[:10])
		if err == nil || !strings.Contains(err.Error(), "signing key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := BuildRelease(ctx, cat, tables, good, reservationFor(cat, tables, good), testKey(t))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestSharesOverBudgetRefused(t *testing.T) {
	cat := aggregate.CatalogV1()
	ind, _ := cat.Indicator("referral_source")
	ts := []measurement{
		&fixedTable{ind: ind, counts: []int64{1}, l0: 1, share: 0.7},
		&fixedTable{ind: ind, counts: []int64{1}, l0: 1, share: 0.7},
	}
	p := ReleaseParams{Accounting: PureDP, Budget: Micro, Period: testPeriod, Partner: "RS"}
	_, err := planRelease(cat, ts, p)
	if err == nil || !strings.Contains(err.Error(), "sum to 1.4") {
		t.Fatalf("err = %v, want shares refusal", err)
	}
}
