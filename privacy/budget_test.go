package privacy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"roundtable/aggregate"
)

func TestParseBudget(t *testing.T) {
	good := []struct {
		in   string
		want Budget
	}{
		{"0.5", 500_000}, {"4.014", 4_014_000}, {"1", 1_000_000}, {".25", 250_000}, {"007.5", 7_500_000},
		{"0.000001", 1}, {"2.999999", 2_999_999}, {"1000", 1_000_000_000}, {"1000.000000", 1_000_000_000}, {" 3 ", 3_000_000},
	}
	for _, tc := range good {
		got, err := ParseBudget(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBudget(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"0", "is not positive"},
		{"0.000000", "is not positive"},
		{"-1", "is negative"},
		{"-0.5", "is negative"},
		{"1e-7", "has an exponent"},
		{"1e3", "has an exponent"},
		{"1E3", "has an exponent"},
		{"abc", "is not a number"},
		{"NaN", "is not a number"},
		{"Inf", "is not a number"},
		{"+1", "is not a number"},
		{"1.", "is not a number"},
		{".", "is not a number"},
		{"1,5", "is not a number"},
		{"", "is empty"},
		{"0.0000001", "has 7 decimals, finer than one micro unit"},
		{"4.0140001", "has 7 decimals"},
		{"1000.000001", "is above 1000"},
		{"99999999999999999999", "is too large"},
	}
	for _, tc := range bad {
		got, err := ParseBudget(tc.in)
		if err == nil {
			t.Errorf("ParseBudget(%q) = %d, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "at most 6 decimals") {
			t.Errorf("ParseBudget(%q): %q does not say %q and what is accepted", tc.in, err, tc.want)
		}
	}
}

func TestBudgetJSON(t *testing.T) {
	var req struct {
		A, B, C Budget
	}
	if err := json.Unmarshal([]byte(`{"A":4.014,"B":"0.25","C":null}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.A != 4_014_000 || req.B != 250_000 || req.C != 0 {
		t.Errorf("decoded %+v", req)
	}
	// An amount spent or left may be zero; Check refuses it as a budget.
	if err := json.Unmarshal([]byte(`{"A":0}`), &req); err != nil || req.A != 0 || req.A.Check() == nil {
		t.Errorf("zero: %+v, %v", req, err)
	}
	for _, in := range []string{`{"A":1e3}`, `{"A":4.0140001}`, `{"A":-1}`, `{"A":true}`, `{"A":"x"}`} {
		if err := json.Unmarshal([]byte(in), &req); err == nil {
			t.Errorf("%s decoded as %+v, want an error", in, req)
		}
	}
	b, err := json.Marshal(struct{ E Budget }{4_014_000})
	if err != nil || string(b) != `{"E":4.014}` {
		t.Errorf("marshal: %s, %v", b, err)
	}
}

// oldToMicro is the conversion budgets went through before Budget: a
// float ε rounded up to Micro. The CLI reserved oldToMicro(ε) and the
// builder, given float(reserved)/Micro back, charged oldToMicro of that.
func oldToMicro(x float64) int64 {
	m := int64(x * Micro)
	if float64(m) < x*Micro {
		m++
	}
	return m
}

// TestSixDecimalBudgetSweep runs every six-decimal budget up to 3 (three
// million of them) through what decides a release's spend: the flag's
// text parsed once, the reservation's integer, the parameters the builder
// takes from the reservation, the builder's split between the whole
// catalog's indicators, and the Validator's check that the split adds up
// to the spend. None may fail. The same sweep through the old float
// conversion finds the 1,893 budgets whose release would have
// charged one micro more than its reservation (4.014 among them), so the
// sweep does reach the bug it guards against.
func TestSixDecimalBudgetSweep(t *testing.T) {
	cat := aggregate.CatalogV1()
	var ws []float64
	for i := range cat.Indicators {
		ws = append(ws, weight(&cat.Indicators[i], nil))
	}
	const upTo = 3 * Micro
	failed, oldFailed := 0, 0
	for m := int64(1); m <= upTo; m++ {
		text := Budget(m).String()
		b, err := ParseBudget(text)
		if err != nil || b.Micro() != m {
			t.Fatalf("%s parsed as %d, %v", text, b, err)
		}
		res := Reservation{Accounting: PureDP, SpendMicro: b.Micro()}
		p := res.Params()
		var sum float64
		for _, x := range splitBudget(p.Budget, ws) {
			sum += x
		}
		if p.Budget.Micro() != res.SpendMicro || checkSpend(res.SpendMicro, sum) != nil {
			failed++
			if failed < 5 {
				t.Errorf("budget %s: reserved %d, release charges %d, indicators sum to %v", text, res.SpendMicro, p.Budget.Micro(), sum)
			}
		}
		f, _ := strconv.ParseFloat(text, 64)
		if reserved := oldToMicro(f); oldToMicro(float64(reserved)/Micro) != reserved {
			oldFailed++
		}
	}
	if failed != 0 {
		t.Errorf("%d of %d six-decimal budgets up to 3 fail", failed, upTo)
	}
	if oldFailed != 1893 {
		t.Errorf("the old float conversion fails %d budgets up to 3; the issue counted 1,893", oldFailed)
	}
	t.Logf("%d six-decimal budgets up to 3: %d fail (the old float conversion: %d)", upTo, failed, oldFailed)
}

// TestBuildSpendsTheReservation builds real releases, the 4.014
// among them, at budgets parsed from text, both accountings, random
// indicator subsets and periods, and checks that each charges exactly its
// reservation's integer and passes the ledger's Validator.
func TestBuildSpendsTheReservation(t *testing.T) {
	cat, tables := testTables(t, 300)
	rng := rand.New(rand.NewPCG(9, 2))
	texts := []string{"4.014", "0.000001", "2.999999", "1000"}
	for range 40 {
		texts = append(texts, Budget(1+rng.Int64N(3*Micro)).String())
	}
	for i, text := range texts {
		b, err := ParseBudget(text)
		if err != nil {
			t.Fatal(err)
		}
		acc := []string{PureDP, ZCDP}[i%2]
		keep := map[string]bool{cat.Indicators[rng.IntN(len(cat.Indicators))].Name: true}
		for _, ind := range cat.Indicators {
			keep[ind.Name] = keep[ind.Name] || i < 4 || rng.IntN(2) == 0
		}
		var sub []*aggregate.Table
		for _, tb := range tables {
			if keep[tb.Indicator().Name] {
				sub = append(sub, tb)
			}
		}
		p := ReleaseParams{Accounting: acc, Budget: b, Period: testPeriod, Partner: "RS"}
		res := reservationFor(cat, sub, p)
		s, err := BuildRelease(context.Background(), cat, sub, res.Params(), res, testKey(t))
		if err != nil {
			t.Fatalf("budget %s (%s): %v", text, acc, err)
		}
		if s.Release.SpendMicro != res.SpendMicro || res.SpendMicro != b.Micro() {
			t.Errorf("budget %s: parsed %d, reserved %d, release charges %d", text, b, res.SpendMicro, s.Release.SpendMicro)
		}
	}
}
