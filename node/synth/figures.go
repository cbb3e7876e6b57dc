package synth

import "roundtable/aggregate"

// firstTableYear and lastTableYear bound the years REGION.md's table
// covers (2017–2022) plus the two years this package extends it by; years
// outside reuse the nearest end, so any range generates plausible volumes.
const (
	firstTableYear = 2017
	lastTableYear  = 2024
)

// yearFigure is what one partner registers in one year at scale 1.
type yearFigure struct {
	persons    int     // distinct people with a case that year, presumed and identified
	identified float64 // share of cases formally identified (the rest presumed)
	children   float64 // share of new people under 18
	migrants   float64 // share of new people who are migrants, asylum seekers or refugees
}

// figures returns the partner's figure for year y.
func (p *profile) figure(y int) yearFigure {
	y = min(max(y, firstTableYear), lastTableYear)
	return p.years[y-firstTableYear]
}

// The per-country tables. Numbers in the persons column are REGION.md's
// "victims identified per year" where the table has them; the other years
// are interpolated or held near the last known level (marked "ext").
// Children's shares come from the table's child counts but are capped at
// 0.68, because the same table sums to 30–70% over any few years and a
// single year's 80–88% (XK 2018, 2020; BA 2022) rests on 15–38 people.

// albania: the table counts official and potential victims together, most
// of them potential (found by mobile teams), so a third are identified.
func albania() [8]yearFigure {
	return [8]yearFigure{
		{105, 0.35, 0.53, 0.02}, // 2017: 105 (56 children)
		{95, 0.35, 0.68, 0.02},  // 2018: 95 (67 minors)
		{103, 0.35, 0.65, 0.02}, // 2019: 103 (67 minors)
		{90, 0.35, 0.55, 0.02},  // 2020: ext (pandemic dip)
		{159, 0.35, 0.50, 0.03}, // 2021: 159
		{112, 0.35, 0.66, 0.03}, // 2022: 112 (48 girls, 26 boys)
		{118, 0.35, 0.58, 0.03}, // 2023: ext
		{125, 0.35, 0.58, 0.02}, // 2024: ext
	}
}

// bosnia: counts are of identified victims; the NGO also works with some
// presumed ones.
func bosnia() [8]yearFigure {
	return [8]yearFigure{
		{82, 0.70, 0.57, 0.02}, // 2017: 82 (47 children, 52 begging)
		{36, 0.70, 0.33, 0.06}, // 2018: 36 (12 children)
		{61, 0.70, 0.59, 0.06}, // 2019: 61 (36 children)
		{80, 0.70, 0.56, 0.05}, // 2020: 80 (45 children, 48 begging)
		{61, 0.70, 0.50, 0.05}, // 2021: 61
		{38, 0.70, 0.68, 0.05}, // 2022: 38 (29 children; capped)
		{52, 0.70, 0.55, 0.05}, // 2023: ext
		{58, 0.70, 0.55, 0.03}, // 2024: ext
	}
}

// kosovo: few, mostly girls exploited sexually.
func kosovo() [8]yearFigure {
	return [8]yearFigure{
		{20, 0.70, 0.60, 0.01}, // 2017: ext
		{15, 0.70, 0.68, 0.01}, // 2018: 15 (12 children; capped)
		{26, 0.70, 0.58, 0.01}, // 2019: 26 (15 children)
		{17, 0.70, 0.68, 0.01}, // 2020: 17 (15 children; capped)
		{22, 0.70, 0.60, 0.02}, // 2021: 22 (16 girls)
		{24, 0.70, 0.60, 0.02}, // 2022: ext
		{25, 0.70, 0.60, 0.02}, // 2023: ext
		{27, 0.70, 0.60, 0.02}, // 2024: ext
	}
}

// montenegro: tiny, except 2019 when one investigation found dozens of
// potential victims (39 + 85 potential; held to the 40 cap of the band).
func montenegro() [8]yearFigure {
	return [8]yearFigure{
		{2, 0.60, 0.35, 0.05},  // 2017: 2
		{4, 0.60, 0.35, 0.05},  // 2018: 4
		{39, 0.30, 0.30, 0.05}, // 2019: 39 (+85 potential)
		{5, 0.60, 0.35, 0.05},  // 2020: ext
		{3, 0.60, 0.35, 0.05},  // 2021: 3
		{7, 0.60, 0.35, 0.05},  // 2022: 7
		{8, 0.60, 0.35, 0.05},  // 2023: ext
		{9, 0.60, 0.35, 0.05},  // 2024: ext
	}
}

// macedonia: few identified victims and many potential ones found by
// mobile teams (victims / potential in the table), except in 2020.
func macedonia() [8]yearFigure {
	return [8]yearFigure{
		{98, 0.08, 0.40, 0.05},  // 2017: ext (8 / 90)
		{113, 0.08, 0.40, 0.05}, // 2018: 9 / 104
		{130, 0.05, 0.40, 0.05}, // 2019: 6 / 124
		{13, 0.54, 0.40, 0.03},  // 2020: 7 / 6
		{48, 0.17, 0.40, 0.04},  // 2021: ext (8 / 40)
		{63, 0.13, 0.40, 0.05},  // 2022: ext (8 / 55)
		{69, 0.13, 0.40, 0.05},  // 2023: ext (9 / 60)
		{69, 0.13, 0.40, 0.03},  // 2024: ext (9 / 60)
	}
}

// serbia: persons are the referred (presumed + identified), identified is
// the table's identified / referred. The migrant share follows the arrivals
// through Serbia (145,600 in 2022, 108,808 in 2023, 15,266 by Oct 2024).
func serbia() [8]yearFigure {
	return [8]yearFigure{
		{142, 0.28, 0.40, 0.10}, // 2017: 40 / 142
		{193, 0.39, 0.42, 0.10}, // 2018: 76 (32 children) / 193
		{135, 0.27, 0.67, 0.10}, // 2019: 36 (24 children) / 135
		{130, 0.37, 0.35, 0.12}, // 2020: 48 (17 children) / 130
		{127, 0.34, 0.40, 0.15}, // 2021: 43 / 127
		{140, 0.36, 0.40, 0.25}, // 2022: ext (50 / 140)
		{135, 0.38, 0.40, 0.22}, // 2023: ext (52 / 135)
		{115, 0.39, 0.40, 0.10}, // 2024: ext (45 / 115)
	}
}

// band is the range of people per country-year at scale 1 that the
// generator keeps to after jitter; tests hold it to the same ranges.
func band(p aggregate.Country) (lo, hi int) {
	switch p {
	case "AL":
		return 60, 200
	case "BA":
		return 25, 120
	case "XK":
		return 10, 40
	case "ME":
		return 2, 40
	case "MK":
		return 10, 140
	case "RS":
		return 30, 200
	}
	return 0, 0
}
