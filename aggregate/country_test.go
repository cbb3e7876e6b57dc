package aggregate

import "testing"

// TestCountryCode: CountryCode reads exactly the codes ParseCountry
// produces (every known code, upper case),
// and refuses every other spelling.
func TestCountryCode(t *testing.T) {
	for i := 0; i+2 <= len(iso3166); i += 3 {
		code := iso3166[i : i+2]
		c, ok := CountryCode([]byte(code))
		p, err := ParseCountry("c", code)
		if !ok || err != nil || c != p || string(c) != code {
			t.Fatalf("%s: CountryCode %q %v, ParseCountry %q %v", code, c, ok, p, err)
		}
	}
	for _, bad := range []string{"", "A", "rs", "Rs", "ZZ", "00", "QQ", "SRB", "R\x00", "[A", "A["} {
		if c, ok := CountryCode([]byte(bad)); ok || c != "" {
			t.Errorf("CountryCode(%q) = %q, %v; want refused", bad, c, ok)
		}
	}
}
