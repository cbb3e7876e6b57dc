package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// foreignCSV is a file for RS's store: own rows (an RS citizen exploited
// abroad, a foreigner exploited in RS or in a third country, rows with a
// country unknown) and rows identified elsewhere (a national of another
// country exploited there).
func foreignCSV(own int, elsewhere map[string]int) string {
	var b strings.Builder
	b.WriteString("case_id,registered_on,citizenship,country_of_exploitation\n")
	ownRows := []string{"RS,DE", "AL,RS", ",AL", "XK,", "AF,DE"}
	for i := range own {
		fmt.Fprintf(&b, "own-%d,2024-02-01,%s\n", i, ownRows[i%len(ownRows)])
	}
	for _, cc := range []string{"AL", "BA", "XK"} {
		for i := range elsewhere[cc] {
			fmt.Fprintf(&b, "%s-%d,2024-02-01,%s,%s\n", cc, i, cc, cc)
		}
	}
	return b.String()
}

// TestImportRefusesForeignRecords: a file holding records identified in
// another country than the store's partner is refused whole, with the
// count and the countries in the message, unless AllowForeign is set;
// a refusal changes nothing in the store.
func TestImportRefusesForeignRecords(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		elsewhere map[string]int
		want      string
	}{
		{"one country", map[string]int{"AL": 12},
			"12 of 20 records were identified in AL, not in this store's partner RS; import them with --allow-foreign"},
		{"several countries", map[string]int{"AL": 5, "BA": 2, "XK": 2},
			"9 of 17 records were identified in other countries (AL 5, BA 2, XK 2), not in this store's partner RS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newStore(t) // partner RS
			if _, err := Run(ctx, st, Options{}, writeFile(t, "seed.csv", foreignCSV(3, nil))); err != nil {
				t.Fatalf("own records refused: %v", err)
			}
			before := contents(t, st)
			path := writeFile(t, "mixed.csv", foreignCSV(8, tc.elsewhere))
			rep, err := Run(ctx, st, Options{}, path)
			var ie *InputError
			if err == nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an InputError containing %q", err, tc.want)
			}
			if rep.Imported || rep.Invalid != 0 {
				t.Errorf("report %+v: want not imported and no invalid rows", rep)
			}
			if after := contents(t, st); !maps.Equal(before, after) {
				t.Fatalf("a refused import changed the store: %d → %d cases", len(before), len(after))
			}
			rep, err = Run(ctx, st, Options{AllowForeign: true}, path)
			if err != nil || !rep.Imported {
				t.Fatalf("with AllowForeign: %v (%+v)", err, rep)
			}
			n := 0
			for _, k := range tc.elsewhere {
				n += k
			}
			if rep.Foreign != n || rep.Stats.Added != n+5 {
				t.Errorf("with AllowForeign: Foreign %d, Added %d; want %d and %d", rep.Foreign, rep.Stats.Added, n, n+5)
			}
		})
	}
}
