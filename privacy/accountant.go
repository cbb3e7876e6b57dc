package privacy

import (
	"fmt"
	"strings"

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

// Charge is what a release would cost, worked out before anything is
// reserved: its budget on each quarter of its period, against the cap and
// what is already spent there. The node shows it to the operator ("will
// spend …") and publishes only a release whose charge was admitted.
type Charge struct {
	Partner    string           `json:"partner"`
	Period     aggregate.Period `json:"period"`
	Accounting string           `json:"accounting"`
	Budget     Budget           `json:"budget"` // charged to each quarter
	Cap        Budget           `json:"cap"`    // per quarter, the consortium's policy
	Indicators []string         `json:"indicators"`
	Quarters   []QuarterCharge  `json:"quarters"`
	Summary    string           `json:"summary"` // one line for the operator
}

// QuarterCharge is one quarter's spend before a release and what is left
// of the cap after it.
type QuarterCharge struct {
	Quarter aggregate.Period `json:"quarter"`
	Spent   Budget           `json:"spent"`
	Left    Budget           `json:"left"`
}

// NewCharge works out what spending b on every quarter of period would
// leave, with the accountant's own rule (Admit), so that a charge it
// returns is one the ledger admits unless something is spent in between.
// A budget above the cap or above what is left is a *Refusal.
func NewCharge(p Policy, partner string, period aggregate.Period, indicators []string, b Budget, spent func(q aggregate.Period) int64) (Charge, error) {
	if err := b.Check(); err != nil {
		return Charge{}, fmt.Errorf("%s %w", unitName(p.Accounting), err)
	}
	if b.Micro() > p.CapMicro {
		return Charge{}, &Refusal{Reason: fmt.Sprintf("over budget: %s %s is above the consortium's cap of %s per quarter",
			unitName(p.Accounting), b, Budget(p.CapMicro))}
	}
	next, err := Admit(p, p.Accounting, period, b.Micro(), spent)
	if err != nil {
		return Charge{}, err
	}
	c := Charge{Partner: partner, Period: period, Accounting: p.Accounting, Budget: b, Cap: Budget(p.CapMicro), Indicators: indicators}
	for _, q := range next {
		c.Quarters = append(c.Quarters, QuarterCharge{Quarter: q.Quarter, Spent: Budget(q.SpentMicro - b.Micro()), Left: Budget(p.CapMicro - q.SpentMicro)})
	}
	c.Summary = c.describe()
	return c, nil
}

// describe says in one line what the charge spends and leaves, e.g. "will
// spend ε 0.5 on each of 2024-Q1..Q4 of RS; 0.5 of 1 left in each after
// this".
func (c Charge) describe() string {
	u := unitName(c.Accounting)
	if len(c.Quarters) == 1 {
		return fmt.Sprintf("will spend %s %s on %s of %s; %s of %s left after this", u, c.Budget, c.Quarters[0].Quarter, c.Partner, c.Quarters[0].Left, c.Cap)
	}
	s := fmt.Sprintf("will spend %s %s on each of %d-Q1..Q4 of %s", u, c.Budget, c.Period.Year, c.Partner)
	same := true
	for _, q := range c.Quarters {
		same = same && q.Left == c.Quarters[0].Left
	}
	if same {
		return fmt.Sprintf("%s; %s of %s left in each after this", s, c.Quarters[0].Left, c.Cap)
	}
	var left []string
	for _, q := range c.Quarters {
		left = append(left, fmt.Sprintf("Q%d %s", q.Quarter.Quarter, q.Left))
	}
	return fmt.Sprintf("%s; left after this, of %s each: %s", s, c.Cap, strings.Join(left, ", "))
}
