package aggregate

import (
	"math/bits"
	"slices"
)

// exploitationFormKeys are the keys of exploitation_form: one form per
// person, as the TIP reports count them ("several" for a person with more
// than one, "unknown" for none recorded), so every person is in exactly
// one cell and the table's L0 is 1.
var exploitationFormKeys = append(slices.Clone(formKeys), "several", keyUnknown)

// exploitationForm maps a form bit set (formMask) to its
// exploitation_form code: the one form, several, or unknown.
func exploitationForm(mask uint32) uint32 {
	switch bits.OnesCount32(mask) {
	case 0:
		return uint32(len(formKeys)) + 1 // unknown
	case 1:
		return uint32(bits.TrailingZeros32(mask))
	}
	return uint32(len(formKeys)) // several
}

// CatalogV2 returns the regional indicator catalog v2. It differs from v1
// in shape — exploitation has one form per person (k = 1, with "several"
// and "unknown" keys), and the age quartiles are gone (victims keeps its
// age groups) — and in that every indicator's budget (Weight, a fraction
// of the release), its measured margins, their shares and the k of each
// multi-valued breakdown are the output of the workload optimiser,
// privacy.Design, run on privacy.RegionalWorkload (pure ε-DP). The numbers
// below are copied from it; TestCatalogV2IsDesigned fails if they differ,
// so the catalog cannot drift from its justification. Every call returns
// a fresh copy.
func CatalogV2() *Catalog {
	c := CatalogV2Base()
	for i := range c.Indicators {
		d := catalogV2Design[i]
		ind := &c.Indicators[i]
		ind.Weight, ind.K, ind.Margins, ind.Shares = d.weight, d.k, cloneMargins(d.margins), slices.Clone(d.shares)
	}
	return c
}

// designV2 is what the optimiser chose for one indicator of v2.
type designV2 struct {
	weight  float64
	k       int
	margins [][]string
	shares  []float64
}

// catalogV2Design is privacy.Design's output, in CatalogV2Base's order
// (regenerate: go test ./privacy -run TestCatalogV2IsDesigned -v).
var catalogV2Design = []designV2{
	{weight: 0.439, k: 1, margins: [][]string{{}, {"sex"}, {"age_group"}, {"status"}}, shares: []float64{0.107, 0.426, 0.16, 0.162, 0.145}}, // victims
	{weight: 0.185, k: 1}, // exploitation
	{weight: 0.048, k: 1}, // citizenship
	{weight: 0.088, k: 1}, // corridors
	{weight: 0.048, k: 1}, // referral_source
	{weight: 0.048, k: 1}, // migration
	{weight: 0.048, k: 1}, // services
	{weight: 0.048, k: 1}, // means_of_control
	{weight: 0.048, k: 1}, // recruitment
}

func cloneMargins(m [][]string) [][]string {
	if m == nil {
		return nil
	}
	out := make([][]string, len(m))
	for i := range m {
		out[i] = slices.Clone(m[i])
	}
	return out
}

// CatalogV2Base is catalog v2's shape — indicators, dimensions and keys —
// before the optimiser sets budgets, margins, shares and k: what
// privacy.Design starts from. It is not a publishable catalog.
func CatalogV2Base() *Catalog {
	dim := func(name string) Dimension {
		spec, _ := lookupDim(name)
		return Dimension{Name: name, Keys: slices.Clone(spec.keys), Multi: spec.multi}
	}
	count := func(name, title string, k int, dims ...string) Indicator {
		ind := Indicator{Name: name, Title: title, Kind: KindCount, K: k, Weight: 1}
		for _, d := range dims {
			ind.Dimensions = append(ind.Dimensions, dim(d))
		}
		return ind
	}
	return &Catalog{
		Version: 2,
		Indicators: []Indicator{
			count("victims", "Victims by status, sex and age group", 1, "status", "sex", "age_group"),
			count("exploitation", "Form of exploitation by child or adult", 1, "exploitation_form", "age_class"),
			count("citizenship", "Citizenship group by sex", 1, "citizenship_group", "sex"),
			count("corridors", "Citizenship group by country of exploitation", 1, "citizenship_group", "exploitation_country_group"),
			count("referral_source", "Source of referral", 1, "referral_source"),
			count("migration", "Migrant status by unaccompanied child", 1, "migrant_status", "unaccompanied_child"),
			count("services", "Services received", len(serviceKeys), "service"),
			count("means_of_control", "Means of control (condensed HTCDS)", 3, "control_group"),
			count("recruitment", "Method of recruitment by recruiter relation", 1, "recruitment_method", "recruiter_relation"),
		},
	}
}
