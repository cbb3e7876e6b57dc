package privacy

import (
	"errors"
	"fmt"
	"testing"

	"roundtable/aggregate"
)

// The cap is inclusive: spent + cost == cap is admitted, one micro more is
// refused, for a quarter and for a year (where one full quarter is enough
// to refuse the whole year). The random property tests reach the exact
// boundary about once in 10⁶ draws, so it is pinned here.
func TestAdmitCapBoundary(t *testing.T) {
	const capMicro = 3 * Micro / 2
	q2 := aggregate.Period{Year: 2024, Quarter: 2}
	year := aggregate.Period{Year: 2024}
	tests := []struct {
		name   string
		period aggregate.Period
		spent  map[int]int64 // by quarter
		cost   int64
		admit  bool
	}{
		{"quarter exact fit from empty", q2, nil, capMicro, true},
		{"quarter one micro over from empty", q2, nil, capMicro + 1, false},
		{"quarter exact fit after spending", q2, map[int]int64{2: 400_001}, capMicro - 400_001, true},
		{"quarter one micro over after spending", q2, map[int]int64{2: 400_001}, capMicro - 400_000, false},
		{"quarter last micro", q2, map[int]int64{2: capMicro - 1}, 1, true},
		{"quarter full", q2, map[int]int64{2: capMicro}, 1, false},
		{"year exact fit on the fullest quarter", year, map[int]int64{1: 10, 3: 700_000}, capMicro - 700_000, true},
		{"year one micro over on one quarter", year, map[int]int64{1: 10, 3: 700_000}, capMicro - 700_000 + 1, false},
		{"year one micro over on the last quarter only", year, map[int]int64{4: 1}, capMicro, false},
	}
	for _, acc := range []string{PureDP, ZCDP} {
		p := Policy{Accounting: acc, CapMicro: capMicro}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", acc, tt.name), func(t *testing.T) {
				spent := func(q aggregate.Period) int64 { return tt.spent[q.Quarter] }
				out, err := Admit(p, acc, tt.period, tt.cost, spent)
				if !tt.admit {
					var ref *Refusal
					if !errors.As(err, &ref) {
						t.Fatalf("cost %d on %v with spent %v: err = %v, want a *Refusal", tt.cost, tt.period, tt.spent, err)
					}
					if out != nil {
						t.Fatalf("refused charge returned spends %v", out)
					}
					return
				}
				if err != nil {
					t.Fatalf("cost %d on %v with spent %v: refused (%v), want admitted", tt.cost, tt.period, tt.spent, err)
				}
				quarters := tt.period.Quarters()
				if len(out) != len(quarters) {
					t.Fatalf("got %d quarter spends, want %d", len(out), len(quarters))
				}
				for i, q := range quarters {
					want := tt.spent[q.Quarter] + tt.cost
					if out[i].Quarter != q || out[i].SpentMicro != want {
						t.Fatalf("spend %d = %v, want %v %d", i, out[i], q, want)
					}
					if want > capMicro {
						t.Fatalf("admitted spend %d is over the cap %d", want, capMicro)
					}
				}
			})
		}
	}
}

// Filling a quarter to the cap exactly through a sequence of charges ends
// with the cap spent, after which even one micro is refused.
func TestAdmitFillsToCapExactly(t *testing.T) {
	p := Policy{Accounting: PureDP, CapMicro: Micro}
	l := &ledger{spent: map[aggregate.Period]int64{}}
	q := aggregate.Period{Year: 2024, Quarter: 1}
	for i := range 5 {
		if err := l.apply(p, PureDP, q, Micro/5); err != nil {
			t.Fatalf("charge %d of 5 × cap/5 refused: %v", i+1, err)
		}
	}
	if l.spent[q] != Micro {
		t.Fatalf("spent %d after five fifths, want %d", l.spent[q], Micro)
	}
	if err := l.apply(p, PureDP, q, 1); err == nil {
		t.Fatalf("one micro over a full cap admitted; spent now %d", l.spent[q])
	}
}
