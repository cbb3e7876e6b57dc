package privacy

import (
	"fmt"

	"roundtable/aggregate"
)

// Policy is the consortium's budget policy: each partner may spend at most
// CapMicro (ε under PureDP, ρ under ZCDP, in Micro units) on each quarter.
// Because a person contributes to at most one quarter per year, the privacy
// loss for any one person in a year is at most the cap.
type Policy struct {
	Accounting string `json:"accounting"`
	CapMicro   int64  `json:"cap_micro"`
}

// Validate refuses policies the accountant cannot enforce.
func (p Policy) Validate() error {
	if p.Accounting != PureDP && p.Accounting != ZCDP {
		return fmt.Errorf("budget policy: accounting %q is not one of %s, %s", p.Accounting, PureDP, ZCDP)
	}
	if p.CapMicro <= 0 {
		return fmt.Errorf("budget policy: cap must be positive, got %d micro", p.CapMicro)
	}
	return nil
}

// QuarterSpend is what one partner has spent on one quarter.
type QuarterSpend struct {
	Quarter    aggregate.Period `json:"quarter"`
	SpentMicro int64            `json:"spent_micro"`
}

// Refusal is a deterministic reason the accountant refused a charge: the
// same inputs give the same refusal on every node.
type Refusal struct {
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Admit decides whether a partner may spend costMicro on every quarter of
// period, given what it has spent (spent reports the current spend of one
// quarter). Both pure ε-DP and ρ-zCDP compose additively in their own
// units, so the rule is the same integer sum; the modes differ only in
// which unit the cap is expressed. It returns the new spend of each quarter
// in order, or a *Refusal. Admit is pure: no clock, no randomness, no maps.
func Admit(p Policy, accounting string, period aggregate.Period, costMicro int64, spent func(q aggregate.Period) int64) ([]QuarterSpend, error) {
	if err := p.Validate(); err != nil {
		return nil, &Refusal{Reason: err.Error()}
	}
	if accounting != p.Accounting {
		return nil, &Refusal{Reason: fmt.Sprintf("release uses %s accounting but the consortium's policy is %s", accounting, p.Accounting)}
	}
	if costMicro <= 0 {
		return nil, &Refusal{Reason: fmt.Sprintf("release spends %d micro; a release must spend a positive budget", costMicro)}
	}
	quarters := period.Quarters()
	out := make([]QuarterSpend, 0, len(quarters))
	for _, q := range quarters {
		s := spent(q)
		if s < 0 || s > p.CapMicro || costMicro > p.CapMicro-s { // written to avoid overflow
			return nil, &Refusal{Reason: fmt.Sprintf("over budget: %s has %s left of %s, release needs %s",
				q, formatMicro(p.CapMicro-s), formatMicro(p.CapMicro), formatMicro(costMicro))}
		}
		out = append(out, QuarterSpend{Quarter: q, SpentMicro: s + costMicro})
	}
	return out, nil
}

func formatMicro(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%06d", sign, m/Micro, m%Micro)
}
