package aggregate

import "testing"

// The tests in this file kill tabulate.go mutants that `make mutate` found
// alive (docs/testing.md).

// TestCountryGroupTables: the memoised country → group tables agree with
// the group functions for every alpha-2 code from AA to ZZ, and
// countryIndex maps exactly those codes (and nothing just outside A–Z) to
// their places.
func TestCountryGroupTables(t *testing.T) {
	g := newCountryGroups()
	n := 0
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			c := Country([]byte{a, b})
			i := countryIndex(c)
			if i != n {
				t.Fatalf("countryIndex(%s) = %d, want %d", c, i, n)
			}
			if g.cit[i] != uint8(citizenshipGroup(c)) || g.exp[i] != uint8(exploitedInGroup(c)) {
				t.Errorf("%s: memoised groups %d, %d; the functions give %d, %d", c, g.cit[i], g.exp[i], citizenshipGroup(c), exploitedInGroup(c))
			}
			n++
		}
	}
	for _, c := range []Country{"@A", "[A", "A@", "A[", "A", "ABC", ""} {
		if i := countryIndex(c); i != -1 {
			t.Errorf("countryIndex(%q) = %d, want -1", c, i)
		}
	}
}
