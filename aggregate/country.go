package aggregate

import "strings"

// Country is an ISO 3166-1 alpha-2 code, with XK for Kosovo (user-assigned,
// as the EU and IOM use it). The empty Country means unknown. XK is never
// folded into RS.
type Country string

// CountryUnknown is the unknown country.
const CountryUnknown Country = ""

// iso3166 holds every officially assigned alpha-2 code, plus XK.
const iso3166 = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK"

// knownCountry reports whether code is in iso3166.
func knownCountry(code string) bool {
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return false
	}
	return countryTable[int(code[0]-'A')*26+int(code[1]-'A')]
}

// countryTable is iso3166 as a lookup table, built once and never written
// again (import validation calls knownCountry for every row).
var countryTable = func() (t [26 * 26]bool) {
	for i := 0; i+2 <= len(iso3166); i += 3 {
		t[int(iso3166[i]-'A')*26+int(iso3166[i+1]-'A')] = true
	}
	return t
}()

// countryCodes holds each known code as a Country, so CountryCode hands
// out one shared string per code instead of allocating one per record.
var countryCodes = func() (t [26 * 26]Country) {
	for i := 0; i+2 <= len(iso3166); i += 3 {
		t[int(iso3166[i]-'A')*26+int(iso3166[i+1]-'A')] = Country(iso3166[i : i+2])
	}
	return t
}()

// CountryCode returns the known country whose upper-case alpha-2 code is
// exactly b (no other spelling: this reads codes ParseCountry already
// normalised, such as the store's), or false.
func CountryCode(b []byte) (Country, bool) {
	if len(b) != 2 || b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z' {
		return "", false
	}
	c := countryCodes[int(b[0]-'A')*26+int(b[1]-'A')]
	return c, c != ""
}

// ISO3 codes seen in the newer CTDC synthetic dataset, for the countries of
// the region and the commonest others; anything else must be given as alpha-2.
var iso3to2 = map[string]string{
	"ALB": "AL", "BIH": "BA", "XKX": "XK", "XKO": "XK", "SRB": "RS", "MNE": "ME", "MKD": "MK",
	"HRV": "HR", "SVN": "SI", "BGR": "BG", "ROU": "RO", "GRC": "GR", "TUR": "TR", "HUN": "HU",
	"AUT": "AT", "DEU": "DE", "ITA": "IT", "FRA": "FR", "GBR": "GB", "UKR": "UA", "MDA": "MD",
	"RUS": "RU", "SYR": "SY", "AFG": "AF", "PAK": "PK", "IRQ": "IQ", "IRN": "IR", "BGD": "BD",
	"IND": "IN", "CHN": "CN", "NGA": "NG", "MAR": "MA", "DZA": "DZ", "TUN": "TN", "EGY": "EG",
	"USA": "US", "PHL": "PH", "VNM": "VN", "NPL": "NP", "LKA": "LK",
}

// ParseCountry accepts an alpha-2 code (any case), one of the region's ISO3
// codes, or an unknown marker ("", "00", "unknown", "-99").
func ParseCountry(field, s string) (Country, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	switch t {
	case "", "00", "UNKNOWN", "-99", "ZZ":
		return CountryUnknown, nil
	}
	if a2, ok := iso3to2[t]; ok {
		return Country(a2), nil
	}
	if knownCountry(t) {
		return Country(t), nil
	}
	return "", &FieldError{Field: field, Value: s, Reason: "is not an ISO 3166-1 alpha-2 country code (XK for Kosovo; leave empty or 00 if unknown)"}
}
