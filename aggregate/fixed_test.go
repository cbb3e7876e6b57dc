package aggregate

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"
)

// mapBook is a QuarterBook held in a map, keyed "person/year".
type mapBook map[string]int

func (b mapBook) Quarter(person string, year int) int {
	return b[person+"/"+strconv.Itoa(year)]
}

// TestTabulateFixedHonoursBook: a person the book fixed counts in that
// quarter whatever their cases say; the others count in their earliest
// case's quarter and are returned to be fixed; a yearly period counts
// everyone once and returns every unfixed person; a nil book returns none.
func TestTabulateFixedHonoursBook(t *testing.T) {
	cases := []Case{
		mk("a1", "FIXED", 2024, time.May, 1), // computes to Q2, fixed to Q1
		mk("b1", "NEW", 2024, time.May, 2),   // computes to Q2, not fixed
		mk("c1", "", 2024, time.August, 3),   // a case without person_id, Q3
		mk("d1", "OLD", 2023, time.May, 2),   // another year; fixed in 2024 with no 2024 case: nothing
	}
	book := mapBook{"p:FIXED/2024": 1, "p:OLD/2024": 3}
	tests := []struct {
		period string
		want   int64
		fixed  []Assignment
	}{
		{"2024-Q1", 1, nil},
		{"2024-Q2", 1, []Assignment{{"p:NEW", 2024, 2}}},
		{"2024-Q3", 1, []Assignment{{"c:c1", 2024, 3}}},
		{"2024-Q4", 0, nil},
		{"2024", 3, []Assignment{{"p:NEW", 2024, 2}, {"c:c1", 2024, 3}}},
		{"2023-Q2", 1, []Assignment{{"p:OLD", 2023, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.period, func(t *testing.T) {
			p, _ := ParsePeriod(tc.period)
			tables, fixed, err := TabulateFixed(context.Background(), CatalogV1(), p, []string{"victims"}, over(cases), book)
			if err != nil {
				t.Fatal(err)
			}
			if got := total(tables, "victims", 0); got != tc.want {
				t.Errorf("victims total = %d, want %d", got, tc.want)
			}
			slices.SortFunc(fixed, func(a, b Assignment) int { return a.Quarter - b.Quarter })
			if !slices.Equal(fixed, tc.fixed) {
				t.Errorf("newly fixed = %v, want %v", fixed, tc.fixed)
			}
			if _, none, _ := TabulateFixed(context.Background(), CatalogV1(), p, nil, over(cases), nil); none != nil {
				t.Errorf("a nil book returned assignments %v", none)
			}
		})
	}
}
