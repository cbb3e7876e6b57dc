package privacy

// RegionalWorkload is what the dashboard and the roundtables read from the
// regional catalog, with the weight each carries; Design turns it into
// catalog v2 (aggregate.CatalogV2). Weights multiply the mean variance of
// a quantity's cells; a quantity over several partner-years (a regional
// total, a change between years) counts that many partner-years' variance.
// docs/privacy.md ("Measurement design") explains the choices.
//
//   - The headline numbers — a country's victims in a year, the region's,
//     and the change from one year to the next — carry the most weight:
//     TIP reports, GRETA and GLOTIP quote them first.
//   - Victims by sex, by age group and by status, and exploitation by form
//     and child or adult, are the breakdowns those reports print.
//   - Corridors are read at regional level (six partners summed).
//   - Every other table is read cell by cell, with a lower weight.
//
// For services and means of control, k is a choice: the key prevalences
// are those node/synth draws (from the programme's service figures), and
// 60 people is a typical partner-year.
func RegionalWorkload() Workload {
	const (
		headline  = 2.0  // a country-year total, a regional total, a change
		breakdown = 1.0  // a cell of a reported breakdown
		detail    = 0.25 // a cell of any other table
		partners  = 6
		people    = 60
	)
	all := func(dims ...string) []string { return dims }
	return Workload{Indicators: []IndicatorWorkload{
		{
			Name:       "victims",
			Candidates: [][]string{{}, all("sex"), all("age_group"), all("status")},
			Queries: []Query{
				{Name: "country-year total", Weight: headline},
				{Name: "regional-year total", Weight: headline, Multiple: partners},
				{Name: "year-over-year change", Weight: headline, Multiple: 2},
				{Name: "by sex", Keep: all("sex"), Weight: breakdown},
				{Name: "by age group", Keep: all("age_group"), Weight: breakdown},
				{Name: "by status", Keep: all("status"), Weight: breakdown},
				{Name: "status × sex × age group", Keep: all("status", "sex", "age_group"), Weight: detail},
			},
		},
		{
			Name:       "exploitation",
			Candidates: [][]string{{}, all("exploitation_form"), all("age_class")},
			Queries: []Query{
				{Name: "form × child/adult", Keep: all("exploitation_form", "age_class"), Weight: breakdown},
				{Name: "by form", Keep: all("exploitation_form"), Weight: breakdown},
				{Name: "children and adults", Keep: all("age_class"), Weight: breakdown},
			},
		},
		{
			Name:    "citizenship",
			Queries: []Query{{Name: "citizenship × sex", Keep: all("citizenship_group", "sex"), Weight: detail}},
		},
		{
			Name: "corridors",
			Queries: []Query{{Name: "regional corridor", Keep: all("citizenship_group", "exploitation_country_group"),
				Weight: detail, Multiple: partners}},
		},
		{
			Name:    "referral_source",
			Queries: []Query{{Name: "referral source", Keep: all("referral_source"), Weight: detail}},
		},
		{
			Name:    "migration",
			Queries: []Query{{Name: "migrant status × unaccompanied", Keep: all("migrant_status", "unaccompanied_child"), Weight: detail}},
		},
		{
			Name:    "services",
			Queries: []Query{{Name: "service", Keep: all("service"), Weight: detail}},
			// accommodation, meals_clothing, legal, psychological, medical,
			// reintegration, income_generation, education
			KeyPrevalence: []float64{0.36, 0.48, 0.32, 0.60, 0.40, 0.24, 0.10, 0.16},
			People:        people,
		},
		{
			Name:    "means_of_control",
			Queries: []Query{{Name: "means of control", Keep: all("control_group"), Weight: detail}},
			// financial_control, threats, psychological_abuse, violence,
			// substances, restricted_movement, deprivation, other
			KeyPrevalence: []float64{0.30, 0.35, 0.35, 0.30, 0.08, 0.25, 0.15, 0.10},
			People:        people,
		},
		{
			Name:    "recruitment",
			Queries: []Query{{Name: "recruitment × relation", Keep: all("recruitment_method", "recruiter_relation"), Weight: detail}},
		},
	}}
}
