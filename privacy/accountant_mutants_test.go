package privacy

import (
	"errors"
	"strings"
	"testing"

	"roundtable/aggregate"
)

// The tests in this file kill accountant mutants that `make mutate` found
// alive (docs/testing.md).

// TestPolicyCapMustBePositive: a cap of 0 is refused as a policy and by
// Admit, however small the charge; a cap of one micro is a policy.
func TestPolicyCapMustBePositive(t *testing.T) {
	for _, acc := range []string{PureDP, ZCDP} {
		if err := (Policy{Accounting: acc, CapMicro: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "cap must be positive") {
			t.Errorf("%s cap 0: %v, want a refusal", acc, err)
		}
		if err := (Policy{Accounting: acc, CapMicro: 1}).Validate(); err != nil {
			t.Errorf("%s cap 1 micro refused: %v", acc, err)
		}
	}
	q := aggregate.Period{Year: 2024, Quarter: 1}
	_, err := Admit(Policy{Accounting: PureDP, CapMicro: 0}, PureDP, q, 1, func(aggregate.Period) int64 { return 0 })
	var r *Refusal
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "cap must be positive") {
		t.Errorf("Admit under a cap of 0: %v, want a refusal", err)
	}
}

// TestAdmitRefusesZeroCost: a release spending 0 (or less) is refused, one
// spending a single micro is admitted.
func TestAdmitRefusesZeroCost(t *testing.T) {
	p := Policy{Accounting: PureDP, CapMicro: Micro}
	q := aggregate.Period{Year: 2024, Quarter: 1}
	none := func(aggregate.Period) int64 { return 0 }
	for _, cost := range []int64{0, -1} {
		var r *Refusal
		if _, err := Admit(p, PureDP, q, cost, none); !errors.As(err, &r) || !strings.Contains(r.Reason, "must spend a positive budget") {
			t.Errorf("cost %d: %v, want a refusal", cost, err)
		}
	}
	got, err := Admit(p, PureDP, q, 1, none)
	if err != nil || len(got) != 1 || got[0].SpentMicro != 1 {
		t.Errorf("cost 1 micro: %v, %v", got, err)
	}
}

// TestAdmitRefusesCorruptSpend: a negative recorded spend (a corrupt
// ledger) is refused, not treated as extra room under the cap; and the
// refusal's figures are exact, zero and negative remainders included.
func TestAdmitRefusesCorruptSpend(t *testing.T) {
	p := Policy{Accounting: PureDP, CapMicro: Micro}
	q := aggregate.Period{Year: 2024, Quarter: 1}
	for spent, want := range map[int64]string{
		-1:        "has 1.000001 left",
		Micro:     "has 0.000000 left",
		Micro + 1: "has -0.000001 left",
	} {
		_, err := Admit(p, PureDP, q, 1, func(aggregate.Period) int64 { return spent })
		var r *Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, want) {
			t.Errorf("spent %d: %v, want a refusal saying %q", spent, err, want)
		}
	}
	if got := formatMicro(-1_500_000); got != "-1.500000" {
		t.Errorf("formatMicro(-1.5) = %q", got)
	}
}

// TestNewChargeFigures: a charge shows each quarter's spend before the
// release and what is left after it, exactly.
func TestNewChargeFigures(t *testing.T) {
	p := Policy{Accounting: PureDP, CapMicro: Micro}
	q := aggregate.Period{Year: 2024, Quarter: 2}
	c, err := NewCharge(p, "RS", q, []string{"victims"}, Budget(200_000), func(aggregate.Period) int64 { return 300_000 })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Quarters) != 1 || c.Quarters[0].Spent != 300_000 || c.Quarters[0].Left != 500_000 {
		t.Fatalf("charge quarters %+v, want spent 0.3 and 0.5 left", c.Quarters)
	}
}
