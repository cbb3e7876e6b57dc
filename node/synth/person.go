package synth

import (
	"math/rand/v2"

	"roundtable/aggregate"
)

// person holds what stays the same across one person's cases. It is drawn
// again from the person's own seed for each of their cases, so cases can be
// generated in date order without keeping people in memory.
type person struct {
	birthYear     int
	birthday      int // day of the year (1–365) the person turns a year older
	ageKnown      bool
	recordAge     bool // the partner recorded the age…
	recordBirth   bool // …and/or the birth year
	sex           aggregate.Sex
	citizenship   aggregate.Country
	exploitedIn   aggregate.Country
	migration     aggregate.Migration
	unaccompanied bool           // if a child when registered
	primary       aggregate.Form // the form that decides sex, age, control and recruitment
	forms         aggregate.Set[aggregate.Form]
	labour        aggregate.Set[aggregate.LabourType]
	sexual        aggregate.Set[aggregate.SexType]
	recruitment   aggregate.Recruitment
	relation      aggregate.Relation
	statusDraw    float64 // identified at a case when below that year's share
}

// tables are the distributions that depend on the form of exploitation
// rather than on the partner. They are built once per generator.
type tables struct {
	labourTypes  choice[aggregate.LabourType]
	sexualTypes  choice[aggregate.SexType]
	control      [aggregate.FormOther + 1]choice[aggregate.Control]
	recruitment  [aggregate.FormOther + 1]choice[recruitedBy]
	secondForm   [aggregate.FormOther + 1]choice[aggregate.Form]
	smuggled     choice[recruitedBy]
	migrantState choice[aggregate.Migration]
	notes        []string
}

// recruitedBy pairs a method of recruitment with the recruiter's relation,
// because the two go together (family for begging, partner or job offer
// for sexual exploitation, job offer for labour).
type recruitedBy struct {
	method   aggregate.Recruitment
	relation aggregate.Relation
}

func newTables() tables {
	type r = w[recruitedBy]
	rb := func(m aggregate.Recruitment, rel aggregate.Relation, p float64) r { return r{recruitedBy{m, rel}, p} }
	type ct = w[aggregate.Control]
	var t tables
	t.labourTypes = newChoice(
		w[aggregate.LabourType]{aggregate.Agriculture, 25}, w[aggregate.LabourType]{aggregate.Construction, 25},
		w[aggregate.LabourType]{aggregate.Hospitality, 20}, w[aggregate.LabourType]{aggregate.Manufacturing, 10},
		w[aggregate.LabourType]{aggregate.DomesticWork, 8}, w[aggregate.LabourType]{aggregate.Peddling, 5},
		w[aggregate.LabourType]{aggregate.Transportation, 3}, w[aggregate.LabourType]{aggregate.LabourOther, 4},
	)
	t.sexualTypes = newChoice(
		w[aggregate.SexType]{aggregate.Prostitution, 80}, w[aggregate.SexType]{aggregate.PrivateSexualServices, 8},
		w[aggregate.SexType]{aggregate.Pornography, 6}, w[aggregate.SexType]{aggregate.RemoteInteractiveServices, 6},
	)
	t.control[aggregate.SexualExploitation] = newChoice(ct{aggregate.SexualAbuse, 6}, ct{aggregate.PsychologicalAbuse, 6}, ct{aggregate.Threats, 5},
		ct{aggregate.TakesEarnings, 5}, ct{aggregate.FalsePromises, 4}, ct{aggregate.PhysicalAbuse, 4}, ct{aggregate.RestrictsMovement, 3},
		ct{aggregate.PsychoactiveSubstances, 2}, ct{aggregate.WithholdsDocuments, 1}, ct{aggregate.DebtBondage, 2})
	t.control[aggregate.ForcedLabour] = newChoice(ct{aggregate.ExcessiveWorkingHours, 6}, ct{aggregate.TakesEarnings, 5}, ct{aggregate.DebtBondage, 4},
		ct{aggregate.WithholdsDocuments, 4}, ct{aggregate.FalsePromises, 5}, ct{aggregate.Threats, 3}, ct{aggregate.RestrictsMovement, 2},
		ct{aggregate.WithholdsNecessities, 2}, ct{aggregate.ThreatOfLawEnforcement, 2}, ct{aggregate.RestrictsFinancialAccess, 2})
	t.control[aggregate.ForcedBegging] = newChoice(ct{aggregate.TakesEarnings, 6}, ct{aggregate.PhysicalAbuse, 4}, ct{aggregate.Threats, 4},
		ct{aggregate.PsychologicalAbuse, 4}, ct{aggregate.WithholdsNecessities, 3}, ct{aggregate.RestrictsMovement, 2})
	t.control[aggregate.ForcedCriminality] = newChoice(ct{aggregate.Threats, 5}, ct{aggregate.DebtBondage, 3}, ct{aggregate.PsychoactiveSubstances, 3},
		ct{aggregate.PhysicalAbuse, 3}, ct{aggregate.TakesEarnings, 3}, ct{aggregate.ThreatOfLawEnforcement, 2})
	t.control[aggregate.ForcedMarriage] = newChoice(ct{aggregate.RestrictsMovement, 5}, ct{aggregate.PsychologicalAbuse, 5}, ct{aggregate.SexualAbuse, 4},
		ct{aggregate.Threats, 3}, ct{aggregate.PhysicalAbuse, 3}, ct{aggregate.RestrictsMedicalCare, 1})
	t.control[aggregate.DomesticServitude] = newChoice(ct{aggregate.ExcessiveWorkingHours, 5}, ct{aggregate.RestrictsMovement, 4},
		ct{aggregate.WithholdsDocuments, 3}, ct{aggregate.PsychologicalAbuse, 4}, ct{aggregate.TakesEarnings, 2}, ct{aggregate.WithholdsNecessities, 2})
	t.control[aggregate.FormOther] = newChoice(ct{aggregate.Threats, 3}, ct{aggregate.FalsePromises, 3}, ct{aggregate.ControlOther, 2})

	t.recruitment[aggregate.SexualExploitation] = newChoice(rb(aggregate.RecruitedByIntimatePartner, aggregate.IntimatePartner, 35),
		rb(aggregate.JobOffer, aggregate.Friend, 12), rb(aggregate.JobOffer, aggregate.RelationOther, 12), rb(aggregate.Internet, aggregate.RelationOther, 10),
		rb(aggregate.Internet, aggregate.Friend, 5), rb(aggregate.PosingAsBenefactor, aggregate.Friend, 8), rb(aggregate.Familial, aggregate.Family, 5),
		rb(aggregate.Abduction, aggregate.RelationOther, 3), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 10))
	t.recruitment[aggregate.ForcedLabour] = newChoice(rb(aggregate.JobOffer, aggregate.RelationOther, 35), rb(aggregate.JobOffer, aggregate.Friend, 20),
		rb(aggregate.Internet, aggregate.RelationOther, 10), rb(aggregate.Work, aggregate.RelationOther, 10), rb(aggregate.Familial, aggregate.Family, 5),
		rb(aggregate.OfferOfAccommodation, aggregate.RelationOther, 4), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 10))
	t.recruitment[aggregate.ForcedBegging] = newChoice(rb(aggregate.Familial, aggregate.Family, 70), rb(aggregate.PosingAsBenefactor, aggregate.RelationOther, 8),
		rb(aggregate.PublicArea, aggregate.RelationOther, 7), rb(aggregate.Abduction, aggregate.RelationOther, 2), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 10))
	t.recruitment[aggregate.ForcedCriminality] = newChoice(rb(aggregate.Familial, aggregate.Family, 30), rb(aggregate.PosingAsBenefactor, aggregate.Friend, 25),
		rb(aggregate.PublicArea, aggregate.RelationOther, 15), rb(aggregate.Internet, aggregate.Friend, 10), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 15))
	t.recruitment[aggregate.ForcedMarriage] = newChoice(rb(aggregate.Familial, aggregate.Family, 65), rb(aggregate.RecruitedByIntimatePartner, aggregate.IntimatePartner, 20),
		rb(aggregate.InternationalMarriageBroker, aggregate.RelationOther, 5), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 8))
	t.recruitment[aggregate.DomesticServitude] = newChoice(rb(aggregate.JobOffer, aggregate.RelationOther, 35), rb(aggregate.Familial, aggregate.Family, 30),
		rb(aggregate.OfferOfAccommodation, aggregate.Friend, 15), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 15))
	t.recruitment[aggregate.FormOther] = newChoice(rb(aggregate.RecruitmentOther, aggregate.RelationOther, 50), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 50))
	t.smuggled = newChoice(rb(aggregate.Smuggling, aggregate.RelationOther, 60), rb(aggregate.JobOffer, aggregate.RelationOther, 20),
		rb(aggregate.Smuggling, aggregate.Friend, 10), rb(aggregate.RecruitmentUnknown, aggregate.RelationUnknown, 10))

	t.secondForm[aggregate.SexualExploitation] = newChoice(w[aggregate.Form]{aggregate.ForcedLabour, 6}, w[aggregate.Form]{aggregate.ForcedCriminality, 2}, w[aggregate.Form]{aggregate.ForcedMarriage, 1})
	t.secondForm[aggregate.ForcedLabour] = newChoice(w[aggregate.Form]{aggregate.SexualExploitation, 5}, w[aggregate.Form]{aggregate.DomesticServitude, 3}, w[aggregate.Form]{aggregate.ForcedCriminality, 2})
	t.secondForm[aggregate.ForcedBegging] = newChoice(w[aggregate.Form]{aggregate.ForcedCriminality, 5}, w[aggregate.Form]{aggregate.ForcedLabour, 3}, w[aggregate.Form]{aggregate.SexualExploitation, 1})
	t.secondForm[aggregate.ForcedCriminality] = newChoice(w[aggregate.Form]{aggregate.ForcedBegging, 3}, w[aggregate.Form]{aggregate.SexualExploitation, 2}, w[aggregate.Form]{aggregate.ForcedLabour, 2})
	t.secondForm[aggregate.ForcedMarriage] = newChoice(w[aggregate.Form]{aggregate.DomesticServitude, 6}, w[aggregate.Form]{aggregate.SexualExploitation, 3})
	t.secondForm[aggregate.DomesticServitude] = newChoice(w[aggregate.Form]{aggregate.ForcedLabour, 4}, w[aggregate.Form]{aggregate.SexualExploitation, 3})
	t.secondForm[aggregate.FormOther] = newChoice(w[aggregate.Form]{aggregate.ForcedLabour, 1})

	t.migrantState = newChoice(w[aggregate.Migration]{aggregate.Migrant, 45}, w[aggregate.Migration]{aggregate.AsylumSeeker, 45}, w[aggregate.Migration]{aggregate.Refugee, 10})
	t.notes = noteLines()
	return t
}

// drawPerson draws the person whose first case is on first, for a partner
// whose figures that year are fig.
func (g *generator) drawPerson(r *rand.Rand, first aggregate.Date, fig yearFigure) person {
	var p person
	child := chance(r, fig.children)
	primary := g.prof.adultForms.pick(r)
	if child {
		primary = g.prof.childForms.pick(r)
	}
	p.primary = primary
	p.forms = p.forms.With(primary)
	if chance(r, g.prof.multiForm) {
		p.forms = p.forms.With(g.t.secondForm[primary].pick(r))
	}
	p.sex = drawSex(r, primary, child)
	age := drawAge(r, primary, child)
	p.birthday = between(r, 1, 365)
	p.birthYear = first.Year() - age
	if dayOfYear(first) < p.birthday {
		p.birthYear-- // the birthday this year is still ahead
	}
	p.ageKnown = !chance(r, 0.03)
	switch u := r.Float64(); {
	case u < 0.60:
		p.recordAge, p.recordBirth = true, true
	case u < 0.85:
		p.recordAge = true
	default:
		p.recordBirth = true
	}

	p.citizenship, p.migration = g.prof.partner, aggregate.National
	onRoute := false // a migrant or asylum seeker on the Balkan route
	switch u := r.Float64(); {
	case u < fig.migrants:
		onRoute = true
		p.citizenship, p.migration = g.prof.migrantFrom.pick(r), g.t.migrantState.pick(r)
		p.unaccompanied = child && chance(r, 0.6)
	case u < fig.migrants+g.prof.neighbourShare:
		p.citizenship, p.migration = g.prof.neighbours.pick(r), aggregate.Migrant
	case u < fig.migrants+g.prof.neighbourShare+0.01:
		p.citizenship, p.migration = aggregate.CountryUnknown, aggregate.MigrationUnknown
	}
	p.exploitedIn = g.prof.partner
	switch {
	case chance(r, 0.02):
		p.exploitedIn = aggregate.CountryUnknown
	case p.migration == aggregate.National && chance(r, g.prof.abroadShare):
		p.exploitedIn = g.prof.abroad.pick(r)
	case onRoute && chance(r, 0.15):
		p.exploitedIn = []aggregate.Country{"TR", "GR", "BG", "HU"}[r.IntN(4)] // exploited in transit
	}

	for _, f := range p.forms.Values() {
		switch f {
		case aggregate.SexualExploitation:
			p.sexual = p.sexual.With(g.t.sexualTypes.pick(r))
		case aggregate.ForcedLabour:
			p.labour = p.labour.With(g.t.labourTypes.pick(r))
		case aggregate.ForcedBegging:
			p.labour = p.labour.With(aggregate.Begging)
		case aggregate.ForcedCriminality:
			p.labour = p.labour.With(aggregate.IllicitActivities)
		case aggregate.DomesticServitude:
			p.labour = p.labour.With(aggregate.DomesticWork)
		}
	}
	rec := g.t.recruitment[primary].pick(r)
	if onRoute {
		rec = g.t.smuggled.pick(r)
	}
	p.recruitment, p.relation = rec.method, rec.relation
	p.statusDraw = r.Float64()
	return p
}

func drawSex(r *rand.Rand, f aggregate.Form, child bool) aggregate.Sex {
	u := r.Float64()
	if u < 0.01 {
		return aggregate.SexUnknown
	}
	female := 0.5
	switch f {
	case aggregate.SexualExploitation:
		female = 0.92
		if u > 0.995 {
			return aggregate.TransgenderNonConforming
		}
	case aggregate.ForcedLabour:
		female = 0.30
		if child {
			female = 0.40
		}
	case aggregate.ForcedBegging:
		female = 0.45
	case aggregate.ForcedCriminality:
		female = 0.40
	case aggregate.ForcedMarriage:
		female = 0.97
	case aggregate.DomesticServitude:
		female = 0.80
	}
	if r.Float64() < female {
		return aggregate.Female
	}
	return aggregate.Male
}

// drawAge draws the age at the first case: begging children are young,
// sexually exploited children mostly 14–17; adults are mostly under 40.
func drawAge(r *rand.Rand, f aggregate.Form, child bool) int {
	if child {
		switch f {
		case aggregate.ForcedBegging:
			return between(r, 4, 15)
		case aggregate.SexualExploitation, aggregate.ForcedMarriage:
			return max(between(r, 13, 17), between(r, 13, 17)) // skewed towards 16–17
		case aggregate.ForcedLabour, aggregate.ForcedCriminality:
			return between(r, 12, 17)
		default:
			return between(r, 2, 17)
		}
	}
	switch u := r.Float64(); {
	case f == aggregate.ForcedBegging:
		return between(r, 18, 65)
	case u < 0.45:
		return between(r, 18, 24)
	case u < 0.85:
		return between(r, 25, 39)
	default:
		return between(r, 40, 62)
	}
}

// fillCase writes the case-level fields (the ones that may differ between
// one person's cases) into c, and the person's fields as of c's date.
func (g *generator) fillCase(r *rand.Rand, c *aggregate.Case, p *person, seq int, fig yearFigure) {
	c.Sex = p.sex
	c.BirthYear, c.Age = aggregate.AgeUnknown, aggregate.AgeUnknown
	age := aggregate.AgeUnknown
	if p.ageKnown {
		age = c.RegisteredOn.Year() - p.birthYear
		if dayOfYear(c.RegisteredOn) < p.birthday {
			age--
		}
		if p.recordAge {
			c.Age = age
		}
		if p.recordBirth {
			c.BirthYear = p.birthYear
		}
	}
	child := age != aggregate.AgeUnknown && age < 18
	c.Citizenship, c.ExploitedIn, c.MigrantStatus = p.citizenship, p.exploitedIn, p.migration
	// Validate judges "child" by the recorded fields, which with only a
	// birth year can say 18 for a 17-year-old; follow what it will see.
	c.Unaccompanied = p.unaccompanied && c.IsChild()
	c.Forms, c.LabourTypes, c.SexualTypes = p.forms, p.labour, p.sexual
	c.Recruitment, c.RecruiterRelation = p.recruitment, p.relation

	// A person seen again is more likely to have been formally identified,
	// and one draw per person keeps identified people identified later.
	c.Status = aggregate.Presumed
	if p.statusDraw < min(fig.identified+0.25*float64(seq), 0.95) {
		c.Status = aggregate.Identified
	}
	c.ReferralSource = g.prof.referral.pick(r)
	if p.migration == aggregate.AsylumSeeker || p.migration == aggregate.Refugee {
		c.ReferralSource = []aggregate.Referral{aggregate.NGO, aggregate.SocialWelfare, aggregate.ReferralOther, aggregate.Police}[r.IntN(4)]
	}
	c.Control = 0
	if !chance(r, 0.06) { // some records leave the means of control unknown
		for n := between(r, 1, 4); n > 0; n-- {
			c.Control = c.Control.With(g.t.control[p.primary].pick(r))
		}
	}
	c.Services = drawServices(r, c.Status == aggregate.Identified, child)
	c.Notes = ""
	if chance(r, 0.55) {
		c.Notes = g.t.notes[r.IntN(len(g.t.notes))]
	}
}

// drawServices: identified people receive more assistance; children go to
// school rather than into income generation.
func drawServices(r *rand.Rand, identified, child bool) aggregate.Set[aggregate.Service] {
	k := 0.5
	if identified {
		k = 1
	}
	var s aggregate.Set[aggregate.Service]
	add := func(sv aggregate.Service, p float64) {
		if chance(r, p*k) {
			s = s.With(sv)
		}
	}
	add(aggregate.Psychological, 0.75)
	add(aggregate.MealsClothing, 0.6)
	add(aggregate.Medical, 0.5)
	add(aggregate.Accommodation, 0.45)
	add(aggregate.Legal, 0.4)
	if child {
		add(aggregate.Education, 0.5)
		add(aggregate.Reintegration, 0.2)
	} else {
		add(aggregate.Reintegration, 0.35)
		add(aggregate.IncomeGeneration, 0.2)
		add(aggregate.Education, 0.08)
	}
	return s
}

func dayOfYear(d aggregate.Date) int { return d.Time().YearDay() }

// noteLines are neutral case-worker notes. Some hold commas and quotes so
// the CSV quoting path is exercised; none names anyone.
func noteLines() []string {
	return []string{
		"First contact during outreach",
		"Referred for shelter placement",
		"Follow-up visit planned",
		"Family tracing requested, no response yet",
		`Said the offer was "a job in a restaurant"`,
		"Interpreter needed, arranged for next meeting",
		"Case closed, referred to the social welfare centre",
		"Documents kept by employer; legal aid requested",
		"Guardian appointed the same day",
		`Described the work as "helping a relative", did not see it as exploitation`,
		"Moved to another municipality, contact by phone",
		"Medical check completed",
		"Declined accommodation, accepted counselling",
		"Joint interview with police and social worker",
		"Enrolled in vocational training",
		`Asked that the file say "no contact with family"`,
	}
}
