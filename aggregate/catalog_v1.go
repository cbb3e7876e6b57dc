package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Key names shared by several dimensions.
const (
	keyUnknown = "unknown"
	keyOther   = "other"
	// KeyAll marks a dimension summed out of a margin.
	KeyAll = "*"
)

// CatalogV1 returns the regional indicator catalog v1 of DESIGN.md. Every
// call returns a fresh copy, so callers may not change each other's.
//
// The mapping from case fields to each dimension's keys is in dimKeys and
// the functions below it, and in docs/case-schema.md.
func CatalogV1() *Catalog {
	dim := func(name string) Dimension {
		spec, _ := lookupDim(name)
		return Dimension{Name: name, Keys: slices.Clone(spec.keys), Multi: spec.multi}
	}
	return &Catalog{
		Version: 1,
		Indicators: []Indicator{
			{
				Name: "victims", Title: "Victims by status, sex and age group", Kind: KindCount,
				Dimensions: []Dimension{dim("status"), dim("sex"), dim("age_group")},
				// The headline indicator (TIP reports, GLOTIP) gets four times an
				// ordinary indicator's share of a release.
				K: 1, Weight: 4,
				// total = Σ sex = Σ age group = Σ status: the hierarchy
				// coordinators compare. The total is what is quoted most and
				// sums no noisy cells, so it gets the largest share; the 48
				// cells of the cross table are each small, and summing them
				// adds noise, so they matter mostly through consistency.
				Margins: [][]string{{}, {"sex"}, {"age_group"}, {"status"}},
				Shares:  []float64{0.2, 0.4, 0.15, 0.15, 0.1},
			},
			{
				Name: "exploitation", Title: "Forms of exploitation by child or adult", Kind: KindCount,
				Dimensions: []Dimension{dim("form"), dim("age_class")},
				K:          3, Weight: 1,
			},
			{
				Name: "citizenship", Title: "Citizenship group by sex", Kind: KindCount,
				Dimensions: []Dimension{dim("citizenship_group"), dim("sex")},
				K:          1, Weight: 1,
			},
			{
				Name: "corridors", Title: "Citizenship group by country of exploitation", Kind: KindCount,
				Dimensions: []Dimension{dim("citizenship_group"), dim("exploitation_country_group")},
				K:          1, Weight: 1,
			},
			{
				Name: "referral_source", Title: "Source of referral", Kind: KindCount,
				Dimensions: []Dimension{dim("referral_source")},
				K:          1, Weight: 1,
			},
			{
				Name: "migration", Title: "Migrant status by unaccompanied child", Kind: KindCount,
				Dimensions: []Dimension{dim("migrant_status"), dim("unaccompanied_child")},
				K:          1, Weight: 1,
			},
			{
				Name: "services", Title: "Services received", Kind: KindCount,
				Dimensions: []Dimension{dim("service")},
				K:          8, Weight: 1,
			},
			{
				Name: "means_of_control", Title: "Means of control (condensed HTCDS)", Kind: KindCount,
				Dimensions: []Dimension{dim("control_group")},
				K:          3, Weight: 1,
			},
			{
				Name: "recruitment", Title: "Method of recruitment by recruiter relation", Kind: KindCount,
				Dimensions: []Dimension{dim("recruitment_method"), dim("recruiter_relation")},
				K:          1, Weight: 1,
			},
			{
				Name: "age", Title: "Age at identification: quartiles", Kind: KindQuantiles,
				K: 1, Lower: 0, Upper: 90, Ranks: []float64{0.25, 0.5, 0.75}, Weight: 1, Value: "age",
			},
		},
	}
}

// dimSpec is what the tabulator knows about a dimension name: its complete
// key set (a catalog may order the keys differently but must list them all,
// so no person silently falls out of a table) and whether a person may fall
// in several keys.
type dimSpec struct {
	keys  []string
	multi bool
}

// Key sets of the dimensions the tabulator can compute. Order here is the
// native code order used by the extractors in tabulate.go.
var (
	statusKeys      = []string{"presumed", "identified"}
	sexKeys         = []string{"female", "male", "transgender_nonconforming", keyUnknown}
	ageGroupKeys    = []string{"0-11", "12-17", "18-24", "25-39", "40+", keyUnknown}
	ageClassKeys    = []string{"child", "adult", keyUnknown}
	citizenshipKeys = []string{"AL", "BA", "XK", "ME", "MK", "RS", "other_europe", "middle_east", "asia", "africa", "americas", keyUnknown}
	exploitedInKeys = []string{"AL", "BA", "XK", "ME", "MK", "RS", "other_europe", keyOther, keyUnknown}
	formKeys        = []string{"sexual", "forced_labour", "begging", "forced_criminality", "forced_marriage", "domestic_servitude", "organ_removal", keyOther}
	referralKeys    = []string{"police", "social_welfare", "ngo", "mobile_team", "hotline", "self", keyOther, keyUnknown}
	migrationKeys   = []string{"national", "migrant", "asylum_seeker", "refugee", keyUnknown}
	yesNoKeys       = []string{"yes", "no"}
	serviceKeys     = []string{"accommodation", "meals_clothing", "legal", "psychological", "medical", "reintegration", "income_generation", "education"}
	controlKeys     = []string{"financial_control", "threats", "psychological_abuse", "violence", "substances", "restricted_movement", "deprivation", keyOther}
	recruitmentKeys = []string{"abduction", "job_offer", "intimate_partner_or_marriage", "familial", "internet", "false_benefactor", "smuggling", keyOther, keyUnknown}
	relationKeys    = []string{"intimate_partner", "friend", "family", keyOther, keyUnknown}
)

// lookupDim returns the spec of a dimension the tabulator can compute.
func lookupDim(name string) (dimSpec, bool) {
	switch name {
	case "status":
		return dimSpec{keys: statusKeys}, true
	case "sex":
		return dimSpec{keys: sexKeys}, true
	case "age_group":
		return dimSpec{keys: ageGroupKeys}, true
	case "age_class":
		return dimSpec{keys: ageClassKeys}, true
	case "citizenship_group":
		return dimSpec{keys: citizenshipKeys}, true
	case "exploitation_country_group":
		return dimSpec{keys: exploitedInKeys}, true
	case "form":
		return dimSpec{keys: formKeys, multi: true}, true
	case "exploitation_form":
		return dimSpec{keys: exploitationFormKeys}, true
	case "referral_source":
		return dimSpec{keys: referralKeys}, true
	case "migrant_status":
		return dimSpec{keys: migrationKeys}, true
	case "unaccompanied_child":
		return dimSpec{keys: yesNoKeys}, true
	case "service":
		return dimSpec{keys: serviceKeys, multi: true}, true
	case "control_group":
		return dimSpec{keys: controlKeys, multi: true}, true
	case "recruitment_method":
		return dimSpec{keys: recruitmentKeys}, true
	case "recruiter_relation":
		return dimSpec{keys: relationKeys}, true
	}
	return dimSpec{}, false
}

// knownDims lists the dimension names lookupDim accepts, for error messages.
const knownDims = "status, sex, age_group, age_class, citizenship_group, exploitation_country_group, form, exploitation_form, " +
	"referral_source, migrant_status, unaccompanied_child, service, control_group, recruitment_method, recruiter_relation"

// ageGroup maps an age to its age_group code; boundaries follow UNODC's
// child/adult split at 18 and the TIP reports' 0–11/12–17 split of children.
func ageGroup(age int) uint32 {
	switch {
	case age == AgeUnknown || age < 0:
		return 5
	case age <= 11:
		return 0
	case age <= 17:
		return 1
	case age <= 24:
		return 2
	case age <= 39:
		return 3
	}
	return 4
}

// ageClass maps an age to child (0), adult (1) or unknown (2).
func ageClass(age int) uint32 {
	switch {
	case age == AgeUnknown || age < 0:
		return 2
	case age < 18:
		return 0
	}
	return 1
}

// Country groups beyond the six partners. Codes not listed in any group
// and not a partner fall in "asia", which therefore also holds Oceania and
// Antarctica: at the region's magnitudes those are too rare for a group.
// Türkiye and the Caucasus count as Europe, as in UNODC's GLOTIP regions.
const (
	otherEuropeCodes = "AD AM AT AX AZ BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GE GG GI GR HR HU IE IM IS IT JE " +
		"LI LT LU LV MC MD MT NL NO PL PT RO RU SE SI SJ SK SM TR UA VA"
	middleEastCodes = "AE BH IL IQ IR JO KW LB OM PS QA SA SY YE"
	africaCodes     = "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG " +
		"ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"
	americasCodes = "AG AI AR AW BB BL BM BO BQ BR BS BZ CA CL CO CR CU CW DM DO EC FK GD GF GL GP GS GT GY HN HT " +
		"JM KN KY LC MF MQ MS MX NI PA PE PM PR PY SR SV SX TC TT UM US UY VC VE VG VI"
)

// inCodeList reports whether code is one of the space-separated codes.
func inCodeList(list, code string) bool {
	for i := 0; i+2 <= len(list); i += 3 {
		if list[i:i+2] == code {
			return true
		}
	}
	return false
}

// partnerCode returns the code (0–5) of a partner country in the key order
// AL, BA, XK, ME, MK, RS, or -1.
func partnerCode(c Country) int {
	switch c {
	case "AL":
		return 0
	case "BA":
		return 1
	case "XK":
		return 2
	case "ME":
		return 3
	case "MK":
		return 4
	case "RS":
		return 5
	}
	return -1
}

// citizenshipGroup maps a citizenship to its citizenship_group code.
func citizenshipGroup(c Country) uint32 {
	if p := partnerCode(c); p >= 0 {
		return uint32(p)
	}
	code := string(c)
	switch {
	case c == CountryUnknown:
		return 11
	case inCodeList(otherEuropeCodes, code):
		return 6
	case inCodeList(middleEastCodes, code):
		return 7
	case inCodeList(africaCodes, code):
		return 9
	case inCodeList(americasCodes, code):
		return 10
	}
	return 8
}

// exploitedInGroup maps a country of exploitation to its
// exploitation_country_group code: corridors are about the region, so
// beyond the partners and the rest of Europe one "other" is enough.
func exploitedInGroup(c Country) uint32 {
	if p := partnerCode(c); p >= 0 {
		return uint32(p)
	}
	switch {
	case c == CountryUnknown:
		return 8
	case inCodeList(otherEuropeCodes, string(c)):
		return 6
	}
	return 7
}

// Codes of the form dimension, in formKeys order.
const (
	formSexual = iota
	formForcedLabour
	formBegging
	formCriminality
	formMarriage
	formDomestic
	formOrgan
	formOther
)

// formMask maps a person's exploitation forms and labour and sexual types
// to a bit set over formKeys. Labour types that the catalog names as forms
// of their own (Begging, IllicitActivities, DomesticWork) count there and
// not as forced_labour, unless the person also has another labour type;
// the schema's ForcedLabour with no labour type counts as forced_labour.
func formMask(forms Set[Form], labour Set[LabourType], sexual Set[SexType]) uint32 {
	var m uint32
	set := func(code int) { m |= 1 << code }
	if forms.Has(SexualExploitation) || sexual != 0 {
		set(formSexual)
	}
	if forms.Has(ForcedBegging) || labour.Has(Begging) {
		set(formBegging)
	}
	if forms.Has(ForcedCriminality) || labour.Has(IllicitActivities) {
		set(formCriminality)
	}
	if forms.Has(DomesticServitude) || labour.Has(DomesticWork) {
		set(formDomestic)
	}
	specific := Set[LabourType](0).With(Begging).With(IllicitActivities).With(DomesticWork)
	general := labour &^ specific
	if general != 0 || (forms.Has(ForcedLabour) && labour&specific == 0) {
		set(formForcedLabour)
	}
	if forms.Has(ForcedMarriage) {
		set(formMarriage)
	}
	if forms.Has(OrganRemoval) {
		set(formOrgan)
	}
	if forms.Has(ForcedMilitary) || forms.Has(SlaveryAndPractices) || forms.Has(FormOther) {
		set(formOther)
	}
	return m
}

// controlGroupOf maps an HTCDS method of control to its control_group code.
func controlGroupOf(c Control) uint32 {
	switch c {
	case DebtBondage, TakesEarnings, RestrictsFinancialAccess:
		return 0 // financial_control
	case Threats, ThreatOfLawEnforcement:
		return 1 // threats
	case PsychologicalAbuse, FalsePromises:
		return 2 // psychological_abuse
	case PhysicalAbuse, SexualAbuse:
		return 3 // violence
	case PsychoactiveSubstances:
		return 4 // substances
	case RestrictsMovement, WithholdsDocuments:
		return 5 // restricted_movement
	case RestrictsMedicalCare, WithholdsNecessities, ExcessiveWorkingHours:
		return 6 // deprivation
	}
	return 7 // other: UsesChildren, Other
}

// controlMask maps a set of HTCDS methods of control to a bit set over
// controlKeys.
func controlMask(s Set[Control]) uint32 {
	var m uint32
	for x := uint32(s); x != 0; x &= x - 1 {
		m |= 1 << controlGroupOf(Control(bits.TrailingZeros32(x)))
	}
	return m
}

// recruitmentCode maps HTCDS MethodOfRecruitment to recruitment_method.
func recruitmentCode(r Recruitment) uint32 {
	switch r {
	case Abduction:
		return 0
	case JobOffer, Work:
		return 1 // job_offer
	case RecruitedByIntimatePartner, InternationalMarriageBroker:
		return 2 // intimate_partner_or_marriage
	case Familial:
		return 3
	case Internet:
		return 4
	case PosingAsBenefactor, OfferOfAccommodation, Shelter:
		return 5 // false_benefactor
	case Smuggling:
		return 6
	case RecruitmentUnknown:
		return 8
	}
	return 7 // other: EducationalFacility, PublicArea, Other
}

// relationCode maps the recruiter relation to recruiter_relation.
func relationCode(r Relation) uint32 {
	switch r {
	case IntimatePartner:
		return 0
	case Friend:
		return 1
	case Family:
		return 2
	case RelationOther:
		return 3
	}
	return 4
}

// referralCode maps the referral source to referral_source.
func referralCode(r Referral) uint32 {
	switch r {
	case Police:
		return 0
	case SocialWelfare:
		return 1
	case NGO:
		return 2
	case MobileTeam:
		return 3
	case Hotline:
		return 4
	case Self:
		return 5
	case ReferralOther:
		return 6
	}
	return 7
}

// migrationCode maps the migrant status to migrant_status.
func migrationCode(m Migration) uint32 {
	switch m {
	case National:
		return 0
	case Migrant:
		return 1
	case AsylumSeeker:
		return 2
	case Refugee:
		return 3
	}
	return 4
}

// quantileValues lists the numeric attributes a quantile indicator may use.
var quantileValues = []string{"age"}

// ParseCatalog decodes a catalog from JSON and validates it fully; nothing
// is returned unless every rule holds. Unknown JSON fields are refused so a
// typo cannot silently drop a setting.
func ParseCatalog(b []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("catalog: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every rule a catalog must satisfy to be tabulated and
// published, and names the indicator, dimension or key that breaks one.
func (c *Catalog) Validate() error {
	if c.Version < 1 {
		return fmt.Errorf("catalog: version must be ≥ 1, got %d", c.Version)
	}
	if len(c.Indicators) == 0 {
		return fmt.Errorf("catalog: no indicators")
	}
	seen := make(map[string]bool, len(c.Indicators))
	for i := range c.Indicators {
		ind := &c.Indicators[i]
		if ind.Name == "" {
			return fmt.Errorf("catalog: indicator %d has no name", i)
		}
		if seen[ind.Name] {
			return fmt.Errorf("catalog: indicator %q appears twice", ind.Name)
		}
		seen[ind.Name] = true
		if err := ind.validate(); err != nil {
			return fmt.Errorf("catalog: indicator %q: %w", ind.Name, err)
		}
	}
	return nil
}

func (ind *Indicator) validate() error {
	if ind.Weight < 0 || math.IsNaN(ind.Weight) || math.IsInf(ind.Weight, 0) {
		return fmt.Errorf("weight %v must be a finite number ≥ 0 (0 means the default, 1)", ind.Weight)
	}
	switch ind.Kind {
	case KindCount:
		return ind.validateCount()
	case KindQuantiles:
		return ind.validateQuantiles()
	}
	return fmt.Errorf("kind %q is not one of %s, %s", ind.Kind, KindCount, KindQuantiles)
}

func (ind *Indicator) validateCount() error {
	if len(ind.Dimensions) == 0 {
		return fmt.Errorf("a count indicator needs at least one dimension")
	}
	if ind.Value != "" || len(ind.Ranks) != 0 || ind.Lower != 0 || ind.Upper != 0 {
		return fmt.Errorf("value, ranks and bounds are for quantile indicators only")
	}
	multiKeys := 0
	names := make(map[string]bool, len(ind.Dimensions))
	for i := range ind.Dimensions {
		d := &ind.Dimensions[i]
		if names[d.Name] {
			return fmt.Errorf("dimension %q appears twice", d.Name)
		}
		names[d.Name] = true
		if err := d.validate(); err != nil {
			return err
		}
		if d.Multi {
			if multiKeys > 0 {
				return fmt.Errorf("dimension %q: at most one multi-valued dimension per indicator", d.Name)
			}
			multiKeys = len(d.Keys)
		}
	}
	switch {
	case ind.K < 1:
		return fmt.Errorf("k must be ≥ 1, got %d", ind.K)
	case multiKeys == 0 && ind.K != 1:
		return fmt.Errorf("k must be 1 without a multi-valued dimension, got %d", ind.K)
	case multiKeys > 0 && ind.K > multiKeys:
		return fmt.Errorf("k %d exceeds the %d keys of the multi-valued dimension", ind.K, multiKeys)
	}
	return ind.validateMargins()
}

func (ind *Indicator) validateMargins() error {
	seen := make(map[string]bool, len(ind.Margins))
	for i, m := range ind.Margins {
		pos := -1
		for _, name := range m {
			j := slices.IndexFunc(ind.Dimensions, func(d Dimension) bool { return d.Name == name })
			if j < 0 {
				return fmt.Errorf("margin %d keeps %q, which is not a dimension of the indicator", i, name)
			}
			if j <= pos {
				return fmt.Errorf("margin %d: dimensions must be distinct and in the indicator's order", i)
			}
			pos = j
		}
		if len(m) == len(ind.Dimensions) {
			return fmt.Errorf("margin %d keeps every dimension: that is the full table", i)
		}
		for _, d := range ind.Dimensions {
			if d.Multi && !slices.Contains(m, d.Name) {
				// Summing a multi-valued dimension out would count a person
				// up to k times in one cell (L∞ = k); v1 keeps L∞ = 1.
				return fmt.Errorf("margin %d sums out multi-valued dimension %q, which is not supported", i, d.Name)
			}
		}
		key := strings.Join(m, "\x00")
		if seen[key] {
			return fmt.Errorf("margin %d repeats an earlier margin", i)
		}
		seen[key] = true
	}
	if len(ind.Shares) == 0 {
		return nil
	}
	if len(ind.Shares) != ind.NumMeasurements() {
		return fmt.Errorf("shares has %d entries, want %d (full table + %d margins)", len(ind.Shares), ind.NumMeasurements(), len(ind.Margins))
	}
	sum := 0.0
	for i, s := range ind.Shares {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("share %d is %v; shares must be positive", i, s)
		}
		sum += s
	}
	if math.Abs(sum-1) > 1e-9 {
		return fmt.Errorf("shares sum to %v, want 1", sum)
	}
	return nil
}

func (d *Dimension) validate() error {
	spec, ok := lookupDim(d.Name)
	if !ok {
		return fmt.Errorf("dimension %q is not one the tabulator computes (known: %s)", d.Name, knownDims)
	}
	if d.Multi != spec.multi {
		return fmt.Errorf("dimension %q: multi must be %v", d.Name, spec.multi)
	}
	seen := make(map[string]bool, len(d.Keys))
	for _, k := range d.Keys {
		switch {
		case k == "":
			return fmt.Errorf("dimension %q has an empty key", d.Name)
		case k == KeyAll:
			return fmt.Errorf("dimension %q: key %q is reserved for summed-out dimensions", d.Name, k)
		case seen[k]:
			return fmt.Errorf("dimension %q: key %q appears twice", d.Name, k)
		case !slices.Contains(spec.keys, k):
			return fmt.Errorf("dimension %q: key %q is not one of %s", d.Name, k, strings.Join(spec.keys, ", "))
		}
		seen[k] = true
	}
	for _, k := range spec.keys {
		if !seen[k] {
			// A missing key would silently drop the people who have it.
			return fmt.Errorf("dimension %q: key %q is missing (all of %s are required)", d.Name, k, strings.Join(spec.keys, ", "))
		}
	}
	return nil
}

func (ind *Indicator) validateQuantiles() error {
	if len(ind.Dimensions) != 0 || len(ind.Margins) != 0 || len(ind.Shares) != 0 {
		return fmt.Errorf("a quantile indicator has no dimensions, margins or shares")
	}
	if !slices.Contains(quantileValues, ind.Value) {
		return fmt.Errorf("value %q is not one of %s", ind.Value, strings.Join(quantileValues, ", "))
	}
	if ind.K != 1 {
		return fmt.Errorf("k must be 1 for a quantile indicator, got %d", ind.K)
	}
	if math.IsNaN(ind.Lower) || math.IsNaN(ind.Upper) || math.IsInf(ind.Lower, 0) || math.IsInf(ind.Upper, 0) || ind.Lower >= ind.Upper {
		return fmt.Errorf("bounds [%v, %v] must be finite with lower < upper", ind.Lower, ind.Upper)
	}
	if ind.Lower < 0 || ind.Upper > MaxAge {
		return fmt.Errorf("bounds [%v, %v] must lie within 0–%d for %s", ind.Lower, ind.Upper, MaxAge, ind.Value)
	}
	if len(ind.Ranks) == 0 {
		return fmt.Errorf("ranks: at least one quantile rank is required")
	}
	for i, r := range ind.Ranks {
		if !(r > 0 && r < 1) {
			return fmt.Errorf("rank %v must lie strictly between 0 and 1", r)
		}
		if i > 0 && r <= ind.Ranks[i-1] {
			return fmt.Errorf("ranks must be strictly increasing (%v after %v)", r, ind.Ranks[i-1])
		}
	}
	return nil
}
