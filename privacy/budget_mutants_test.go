package privacy

import (
	"errors"
	"testing"
)

// The tests in this file kill Budget mutants that `make mutate` found
// alive or not covered (docs/testing.md).

// TestBudgetSetKeepsValueOnRefusal: a flag's budget that does not parse
// is refused and leaves the value it had (a command line never runs with
// half a budget); one that parses replaces it.
func TestBudgetSetKeepsValueOnRefusal(t *testing.T) {
	b := Budget(500_000)
	for _, bad := range []string{"", "0", "-1", "1e3", "0.0000001", "1001", "abc"} {
		err := b.Set(bad)
		var be *BudgetError
		if !errors.As(err, &be) || be.Text != bad {
			t.Errorf("Set(%q) = %v, want a *BudgetError for that text", bad, err)
		}
		if b != 500_000 {
			t.Fatalf("Set(%q) changed the budget to %s", bad, b)
		}
	}
	if err := b.Set("4.014"); err != nil || b.Micro() != 4_014_000 {
		t.Fatalf("Set(4.014) = %v, budget %d micro; want 4014000", err, b.Micro())
	}
}

// TestBudgetUnmarshalEmpty: an empty or blank JSON value is an error, not
// a panic (the quote check looks at the first byte only when there is one).
func TestBudgetUnmarshalEmpty(t *testing.T) {
	for _, in := range []string{"", "  "} {
		var b Budget
		if err := b.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%q) = nil, budget %s; want an error", in, b)
		}
	}
}
