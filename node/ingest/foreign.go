package ingest

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"roundtable/aggregate"
)

// identifiedElsewhere returns the country a record shows its person was
// identified in when that is not partner, and "" otherwise. The schema
// has no column for the country of identification, so it is read from
// what a record does say: a national of a country exploited in that same
// country was identified there, so a record whose citizenship and country
// of exploitation are one country other than partner is that country's.
// Everything else is taken to be the partner's own: its nationals
// (returnees included), the people exploited in its country, foreigners
// exploited in a third country and found in transit, and records with a
// country unknown. See DESIGN.md, "Foreign records".
func identifiedElsewhere(c *aggregate.Case, partner string) aggregate.Country {
	if partner == "" || c.Citizenship == aggregate.CountryUnknown || c.Citizenship != c.ExploitedIn ||
		c.Citizenship == aggregate.Country(partner) {
		return ""
	}
	return c.Citizenship
}

// foreignError is the refusal of an import holding records identified in
// other countries than partner, with how many and where.
func foreignError(partner string, byCountry map[aggregate.Country]int, valid int) error {
	n := 0
	for _, k := range byCountry {
		n += k
	}
	where := ""
	if len(byCountry) == 1 {
		for c := range byCountry {
			where = "in " + string(c)
		}
	} else {
		// Most records first, then by code, so the message is stable.
		cs := slices.SortedFunc(maps.Keys(byCountry), func(a, b aggregate.Country) int {
			if d := byCountry[b] - byCountry[a]; d != 0 {
				return d
			}
			return strings.Compare(string(a), string(b))
		})
		parts := make([]string, len(cs))
		for i, c := range cs {
			parts[i] = fmt.Sprintf("%s %d", c, byCountry[c])
		}
		where = "in other countries (" + strings.Join(parts, ", ") + ")"
	}
	return &InputError{Err: fmt.Errorf("%d of %d records were identified %s, not in this store's partner %s; "+
		"import them with --allow-foreign (allow_foreign=true over the API) if that is intended", n, valid, where, partner)}
}
