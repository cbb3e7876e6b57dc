// Package aggregate is the statistics model of roundtable: the case schema a
// partner's records follow, the regional indicator catalog, exact tabulation
// with contribution bounding (local to a node), and the combination of
// published releases into regional and time-series estimates.
//
// Value names follow the Human Trafficking Case Data Standard (HTCDS v2.0,
// IOM) where HTCDS has them; countries are ISO 3166-1 alpha-2 with XK for
// Kosovo. docs/case-schema.md lists every field and value and maps the CTDC
// global dataset onto them.
package aggregate

// Status says whether a person is a presumed (potential) or a formally
// identified victim.
type Status uint8

// Sex is HTCDS Gender.
type Sex uint8

// Form is a form of exploitation (multi-valued per case).
type Form uint8

// LabourType is HTCDS TypeOfLabourExploitation.
type LabourType uint8

// SexType is HTCDS TypeOfSexExploitation.
type SexType uint8

// Control is HTCDS MethodsOfControl.
type Control uint8

// Recruitment is HTCDS MethodOfRecruitment.
type Recruitment uint8

// Relation is the recruiter's relation to the person (CTDC recruiterRelation).
type Relation uint8

// Referral is who referred the person to the partner.
type Referral uint8

// Migration is the person's migrant status.
type Migration uint8

// Service is a kind of assistance received (multi-valued).
type Service uint8

// The vocabularies. Codes are positions in these lists and are stored in
// records: append, never reorder.
var (
	statusVocab = newVocab[Status]("status", []string{"Presumed", "Identified"},
		map[string]string{"potential": "Presumed"})
	sexVocab = newVocab[Sex]("sex", []string{"Female", "Male", "Transgender/NonConforming", "Unknown"},
		map[string]string{"woman": "Female", "man": "Male", "trans/transgender/nonconforming": "Transgender/NonConforming", "f": "Female", "m": "Male"})
	formVocab = newVocab[Form]("exploitation_forms", []string{
		"SexualExploitation", "ForcedLabour", "ForcedBegging", "ForcedCriminality", "ForcedMarriage",
		"DomesticServitude", "OrganRemoval", "ForcedMilitary", "SlaveryAndPractices", "Other"}, nil)
	labourVocab = newVocab[LabourType]("labour_types", []string{
		"Agriculture", "Aquafarming", "Begging", "Construction", "DomesticWork", "Hospitality",
		"IllicitActivities", "Manufacturing", "MiningOrDrilling", "Peddling", "Transportation", "Other"}, nil)
	sexTypeVocab = newVocab[SexType]("sexual_types", []string{
		"Prostitution", "Pornography", "RemoteInteractiveServices", "PrivateSexualServices"}, nil)
	controlVocab = newVocab[Control]("means_of_control", []string{
		"DebtBondage", "TakesEarnings", "RestrictsFinancialAccess", "Threats", "PsychologicalAbuse",
		"PhysicalAbuse", "SexualAbuse", "FalsePromises", "PsychoactiveSubstances", "RestrictsMovement",
		"RestrictsMedicalCare", "ExcessiveWorkingHours", "UsesChildren", "ThreatOfLawEnforcement",
		"WithholdsNecessities", "WithholdsDocuments", "Other"}, nil)
	recruitmentVocab = newVocab[Recruitment]("recruitment", []string{
		"Unknown", "Abduction", "EducationalFacility", "Familial", "Internet", "InternationalMarriageBroker",
		"IntimatePartner", "JobOffer", "PosingAsBenefactor", "PublicArea", "OfferOfAccommodation",
		"Shelter", "Smuggling", "Work", "Other"}, nil)
	relationVocab = newVocab[Relation]("recruiter_relation", []string{
		"Unknown", "IntimatePartner", "Friend", "Family", "Other"},
		map[string]string{"friend/acquaintance": "Friend", "intimate partner": "IntimatePartner", "family/relative": "Family"})
	referralVocab = newVocab[Referral]("referral_source", []string{
		"Unknown", "Police", "SocialWelfare", "NGO", "MobileTeam", "Hotline", "Self", "Other"},
		map[string]string{"social_welfare": "SocialWelfare", "mobile_team": "MobileTeam", "self-referral": "Self"})
	migrationVocab = newVocab[Migration]("migrant_status", []string{
		"Unknown", "National", "Migrant", "AsylumSeeker", "Refugee"},
		map[string]string{"asylum_seeker": "AsylumSeeker"})
	serviceVocab = newVocab[Service]("services", []string{
		"Accommodation", "MealsClothing", "Legal", "Psychological", "Medical", "Reintegration",
		"IncomeGeneration", "Education"},
		map[string]string{"meals_clothing": "MealsClothing", "income_generation": "IncomeGeneration"})
)

// Status values.
const (
	Presumed Status = iota
	Identified
)

// Sex values.
const (
	Female Sex = iota
	Male
	TransgenderNonConforming
	SexUnknown
)

// Form values.
const (
	SexualExploitation Form = iota
	ForcedLabour
	ForcedBegging
	ForcedCriminality
	ForcedMarriage
	DomesticServitude
	OrganRemoval
	ForcedMilitary
	SlaveryAndPractices
	FormOther
)

// LabourType values.
const (
	Agriculture LabourType = iota
	Aquafarming
	Begging
	Construction
	DomesticWork
	Hospitality
	IllicitActivities
	Manufacturing
	MiningOrDrilling
	Peddling
	Transportation
	LabourOther
)

// SexType values.
const (
	Prostitution SexType = iota
	Pornography
	RemoteInteractiveServices
	PrivateSexualServices
)

// Control values.
const (
	DebtBondage Control = iota
	TakesEarnings
	RestrictsFinancialAccess
	Threats
	PsychologicalAbuse
	PhysicalAbuse
	SexualAbuse
	FalsePromises
	PsychoactiveSubstances
	RestrictsMovement
	RestrictsMedicalCare
	ExcessiveWorkingHours
	UsesChildren
	ThreatOfLawEnforcement
	WithholdsNecessities
	WithholdsDocuments
	ControlOther
)

// Recruitment values.
const (
	RecruitmentUnknown Recruitment = iota
	Abduction
	EducationalFacility
	Familial
	Internet
	InternationalMarriageBroker
	RecruitedByIntimatePartner
	JobOffer
	PosingAsBenefactor
	PublicArea
	OfferOfAccommodation
	Shelter
	Smuggling
	Work
	RecruitmentOther
)

// Relation values.
const (
	RelationUnknown Relation = iota
	IntimatePartner
	Friend
	Family
	RelationOther
)

// Referral values.
const (
	ReferralUnknown Referral = iota
	Police
	SocialWelfare
	NGO
	MobileTeam
	Hotline
	Self
	ReferralOther
)

// Migration values.
const (
	MigrationUnknown Migration = iota
	National
	Migrant
	AsylumSeeker
	Refugee
)

// Service values.
const (
	Accommodation Service = iota
	MealsClothing
	Legal
	Psychological
	Medical
	Reintegration
	IncomeGeneration
	Education
)

func (v Status) String() string      { return statusVocab.name(v) }
func (v Sex) String() string         { return sexVocab.name(v) }
func (v Form) String() string        { return formVocab.name(v) }
func (v LabourType) String() string  { return labourVocab.name(v) }
func (v SexType) String() string     { return sexTypeVocab.name(v) }
func (v Control) String() string     { return controlVocab.name(v) }
func (v Recruitment) String() string { return recruitmentVocab.name(v) }
func (v Relation) String() string    { return relationVocab.name(v) }
func (v Referral) String() string    { return referralVocab.name(v) }
func (v Migration) String() string   { return migrationVocab.name(v) }
func (v Service) String() string     { return serviceVocab.name(v) }

// AgeUnknown marks an unknown age or birth year.
const AgeUnknown = -1

// MaxAge bounds ages and birth years accepted on import.
const MaxAge = 120

// Case is one case record of one person, as a partner keeps it. It never
// leaves the node that holds it.
type Case struct {
	CaseID            string // the partner's case reference; unique per node
	PersonID          string // optional stable pseudonym; "" means this case is its own person
	RegisteredOn      Date
	Status            Status
	Sex               Sex
	BirthYear         int // AgeUnknown if not known
	Age               int // age at registration; AgeUnknown if not known
	Citizenship       Country
	ExploitedIn       Country // country of exploitation
	Forms             Set[Form]
	LabourTypes       Set[LabourType]
	SexualTypes       Set[SexType]
	Control           Set[Control]
	Recruitment       Recruitment
	RecruiterRelation Relation
	ReferralSource    Referral
	MigrantStatus     Migration
	Unaccompanied     bool // unaccompanied or separated child
	Services          Set[Service]
	Notes             string // free text; never tabulated
}

// Person is the privacy unit's key: the pseudonym if given, else the case.
func (c *Case) Person() string {
	if c.PersonID != "" {
		return "p:" + c.PersonID
	}
	return "c:" + c.CaseID
}

// AgeAt returns the person's age in years at registration, derived from
// the birth year when no age was recorded, or AgeUnknown.
func (c *Case) AgeAt() int {
	if c.Age != AgeUnknown {
		return c.Age
	}
	if c.BirthYear != AgeUnknown {
		if a := c.RegisteredOn.Year() - c.BirthYear; a >= 0 {
			return a
		}
	}
	return AgeUnknown
}

// IsChild reports whether the person was under 18 at registration; unknown
// ages count as adults only in the sense that they are not children: the
// catalog keeps an explicit unknown age group where it matters.
func (c *Case) IsChild() bool {
	a := c.AgeAt()
	return a != AgeUnknown && a < 18
}
