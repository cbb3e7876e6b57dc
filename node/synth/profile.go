package synth

import (
	"roundtable/aggregate"
)

// profile is what distinguishes one partner's caseload from another's:
// volumes per year, the mix of exploitation for children and adults, where
// foreigners come from and where people are exploited, and who refers them.
type profile struct {
	partner        aggregate.Country
	years          [8]yearFigure
	childForms     choice[aggregate.Form]
	adultForms     choice[aggregate.Form]
	multiForm      float64 // chance of a second form of exploitation
	neighbourShare float64 // foreigners from the region and nearby Europe
	neighbours     choice[aggregate.Country]
	migrantFrom    choice[aggregate.Country] // origins of migrants and asylum seekers
	abroadShare    float64                   // nationals exploited outside the country
	abroad         choice[aggregate.Country]
	referral       choice[aggregate.Referral]
}

// Partners lists the partner countries the generator knows, in the order
// the demo starts them.
func Partners() []aggregate.Country {
	return []aggregate.Country{"AL", "BA", "XK", "RS", "ME", "MK"}
}

// migrantOrigins are the Balkan-route origins seen among migrants and
// asylum seekers: the Middle East, South Asia and North/West Africa.
func migrantOrigins() choice[aggregate.Country] {
	return newChoice(
		w[aggregate.Country]{"AF", 30}, w[aggregate.Country]{"SY", 20}, w[aggregate.Country]{"PK", 12},
		w[aggregate.Country]{"IQ", 6}, w[aggregate.Country]{"IR", 6}, w[aggregate.Country]{"BD", 6},
		w[aggregate.Country]{"MA", 5}, w[aggregate.Country]{"IN", 4}, w[aggregate.Country]{"NG", 3},
		w[aggregate.Country]{"DZ", 3}, w[aggregate.Country]{"TN", 2}, w[aggregate.Country]{"EG", 2}, w[aggregate.Country]{"NP", 1},
	)
}

func forms(sexual, labour, begging, criminality, marriage, domestic, other float64) choice[aggregate.Form] {
	return newChoice(
		w[aggregate.Form]{aggregate.SexualExploitation, sexual}, w[aggregate.Form]{aggregate.ForcedLabour, labour},
		w[aggregate.Form]{aggregate.ForcedBegging, begging}, w[aggregate.Form]{aggregate.ForcedCriminality, criminality},
		w[aggregate.Form]{aggregate.ForcedMarriage, marriage}, w[aggregate.Form]{aggregate.DomesticServitude, domestic},
		w[aggregate.Form]{aggregate.FormOther, other},
	)
}

func referrals(police, welfare, ngo, mobile, hotline, self, other float64) choice[aggregate.Referral] {
	return newChoice(
		w[aggregate.Referral]{aggregate.Police, police}, w[aggregate.Referral]{aggregate.SocialWelfare, welfare},
		w[aggregate.Referral]{aggregate.NGO, ngo}, w[aggregate.Referral]{aggregate.MobileTeam, mobile},
		w[aggregate.Referral]{aggregate.Hotline, hotline}, w[aggregate.Referral]{aggregate.Self, self},
		w[aggregate.Referral]{aggregate.ReferralOther, other}, w[aggregate.Referral]{aggregate.ReferralUnknown, 2},
	)
}

func countries(cs ...w[aggregate.Country]) choice[aggregate.Country] { return newChoice(cs...) }

// profileOf returns the partner's profile; ok is false for a country that
// is not a partner.
func profileOf(p aggregate.Country) (prof profile, ok bool) {
	prof = profile{partner: p, migrantFrom: migrantOrigins()}
	type c = w[aggregate.Country]
	switch p {
	case "AL": // sexual and labour exploitation, at home and abroad; child begging; mobile teams
		prof.years = albania()
		prof.childForms = forms(35, 15, 40, 3, 5, 2, 0)
		prof.adultForms = forms(60, 30, 3, 2, 3, 2, 0)
		prof.multiForm = 0.18
		prof.neighbourShare = 0.05
		prof.neighbours = countries(c{"XK", 4}, c{"MK", 2}, c{"ME", 1}, c{"GR", 1}, c{"UA", 1})
		prof.abroadShare = 0.22
		prof.abroad = countries(c{"IT", 5}, c{"GR", 4}, c{"DE", 3}, c{"GB", 3}, c{"FR", 2}, c{"XK", 2}, c{"TR", 1}, c{"BE", 1})
		prof.referral = referrals(25, 15, 12, 35, 5, 5, 3)
	case "BA": // forced begging of (often Roma) children, child marriage
		prof.years = bosnia()
		prof.childForms = forms(15, 4, 65, 4, 10, 2, 0)
		prof.adultForms = forms(45, 35, 8, 4, 3, 5, 0)
		prof.multiForm = 0.10
		prof.neighbourShare = 0.08
		prof.neighbours = countries(c{"RS", 4}, c{"ME", 2}, c{"HR", 2}, c{"UA", 1}, c{"CN", 1})
		prof.abroadShare = 0.12
		prof.abroad = countries(c{"DE", 4}, c{"AT", 3}, c{"HR", 3}, c{"SI", 2}, c{"RS", 2}, c{"ME", 1})
		prof.referral = referrals(35, 30, 20, 0, 5, 5, 5)
	case "XK": // mostly girls, sexual exploitation
		prof.years = kosovo()
		prof.childForms = forms(72, 4, 18, 2, 3, 1, 0)
		prof.adultForms = forms(80, 12, 2, 1, 3, 2, 0)
		prof.multiForm = 0.08
		prof.neighbourShare = 0.12
		prof.neighbours = countries(c{"AL", 4}, c{"RS", 2}, c{"MK", 2}, c{"MD", 1}, c{"UA", 1})
		prof.abroadShare = 0.15
		prof.abroad = countries(c{"DE", 4}, c{"AL", 2}, c{"ME", 2}, c{"MK", 1}, c{"AT", 2}, c{"CH", 2}, c{"IT", 1})
		prof.referral = referrals(45, 20, 20, 0, 8, 4, 3)
	case "RS": // sexual and labour exploitation; migrants and asylum seekers on the Balkan route
		prof.years = serbia()
		prof.childForms = forms(45, 12, 20, 10, 10, 3, 0)
		prof.adultForms = forms(50, 38, 2, 5, 2, 3, 0)
		prof.multiForm = 0.12
		prof.neighbourShare = 0.06
		prof.neighbours = countries(c{"BA", 3}, c{"ME", 2}, c{"MK", 2}, c{"RO", 1}, c{"BG", 1}, c{"UA", 1})
		prof.abroadShare = 0.12
		prof.abroad = countries(c{"DE", 4}, c{"AT", 3}, c{"HR", 2}, c{"SI", 2}, c{"ME", 2}, c{"TR", 2}, c{"IT", 1}, c{"BA", 1})
		prof.referral = referrals(30, 25, 30, 0, 7, 5, 3)
	case "ME": // tiny numbers; seasonal labour and sexual exploitation on the coast
		prof.years = montenegro()
		prof.childForms = forms(30, 10, 35, 5, 20, 0, 0)
		prof.adultForms = forms(40, 45, 5, 2, 3, 5, 0)
		prof.multiForm = 0.10
		prof.neighbourShare = 0.25
		prof.neighbours = countries(c{"AL", 3}, c{"BA", 2}, c{"RS", 2}, c{"XK", 1}, c{"UA", 1}, c{"CN", 1})
		prof.abroadShare = 0.10
		prof.abroad = countries(c{"HR", 3}, c{"RS", 2}, c{"BA", 2}, c{"DE", 2})
		prof.referral = referrals(40, 25, 20, 0, 10, 5, 2)
	case "MK": // potential victims found by mobile teams, child begging
		prof.years = macedonia()
		prof.childForms = forms(30, 8, 50, 4, 8, 0, 0)
		prof.adultForms = forms(50, 35, 5, 3, 3, 4, 0)
		prof.multiForm = 0.10
		prof.neighbourShare = 0.08
		prof.neighbours = countries(c{"AL", 3}, c{"XK", 2}, c{"RS", 2}, c{"BG", 1}, c{"GR", 1})
		prof.abroadShare = 0.12
		prof.abroad = countries(c{"DE", 3}, c{"AT", 2}, c{"GR", 2}, c{"BG", 1}, c{"XK", 1}, c{"TR", 1})
		prof.referral = referrals(20, 15, 15, 40, 4, 3, 3)
	default:
		return profile{}, false
	}
	return prof, true
}
