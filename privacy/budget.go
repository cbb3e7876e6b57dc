package privacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Budget is an amount of privacy budget, ε under PureDP or ρ under ZCDP,
// as an integer number of Micro units (millionths). It is the one type a
// budget has from the flag to the ledger: parsed once from its decimal
// text (ParseBudget), sent over the API as that same decimal, reserved
// and charged as the integer, and turned into a float only to calibrate
// noise. So the release spends exactly what the reservation claimed, for
// every budget a partner can type.
//
// *Budget is a pflag.Value (Set, String, Type), so a command line parses
// it when it reads the flag, before anything else runs.
type Budget int64

// budgetDecimals is how many decimals a budget may have: Micro's.
const budgetDecimals = 6

// ParseBudget reads a budget written as a plain decimal with at most six
// decimals ("0.5", "4.014", "1", ".25"): exactly, without a float. It
// refuses zero, negative numbers, exponents, more decimals than a Micro
// unit holds and anything above the most one release may spend, saying
// what would be accepted.
func ParseBudget(s string) (Budget, error) {
	b, err := parseAmount(s)
	if err != nil {
		return 0, err
	}
	if err := b.Check(); err != nil {
		return 0, &BudgetError{Text: s, Reason: strings.TrimPrefix(err.Error(), "budget "+b.String()+" ")}
	}
	return b, nil
}

// parseAmount reads ParseBudget's decimals, zero included: an amount spent
// or left may be zero, a budget to spend may not.
func parseAmount(s string) (Budget, error) {
	bad := func(why string) (Budget, error) { return 0, &BudgetError{Text: s, Reason: why} }
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return bad("is empty")
	case strings.HasPrefix(t, "-"):
		return bad("is negative")
	case strings.ContainsAny(t, "eE"):
		return bad("has an exponent")
	}
	whole, frac, dot := strings.Cut(t, ".")
	if (whole == "" && frac == "") || (dot && frac == "") || !digits(whole) || !digits(frac) {
		return bad("is not a number")
	}
	if len(frac) > budgetDecimals {
		return bad(fmt.Sprintf("has %d decimals, finer than one micro unit (%d decimals)", len(frac), budgetDecimals))
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > len(strconv.Itoa(maxBudget)) {
		return bad("is too large")
	}
	var m int64
	for _, c := range whole + frac + strings.Repeat("0", budgetDecimals-len(frac)) {
		m = m*10 + int64(c-'0')
	}
	return Budget(m), nil
}

// BudgetError is ParseBudget's refusal of a budget's text.
type BudgetError struct {
	Text   string // as given
	Reason string // what is wrong with it
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget %q %s; write it as a decimal with at most %d decimals in (0, %d], e.g. 0.5",
		e.Text, e.Reason, budgetDecimals, maxBudget)
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Check refuses a budget no release may spend: it must be at least one
// Micro unit and at most MaxSpendMicro.
func (b Budget) Check() error {
	switch {
	case b <= 0:
		return fmt.Errorf("budget %s is not positive", b)
	case b > MaxSpendMicro:
		return fmt.Errorf("budget %s is above %d, the most one release may spend", b, maxBudget)
	}
	return nil
}

// Micro is the budget in Micro units, as the ledger charges it.
func (b Budget) Micro() int64 { return int64(b) }

// Value is the budget as a float (ε or ρ), for calibrating noise only:
// nothing is ever charged from it.
func (b Budget) Value() float64 { return float64(b) / Micro }

// String writes the budget as the shortest exact decimal: 4.014, 0.5, 2.
func (b Budget) String() string {
	sign, m := "", int64(b)
	if m < 0 {
		sign, m = "-", -m
	}
	frac := strings.TrimRight(fmt.Sprintf("%06d", m%Micro), "0")
	if frac == "" {
		return fmt.Sprintf("%s%d", sign, m/Micro)
	}
	return fmt.Sprintf("%s%d.%s", sign, m/Micro, frac)
}

// Set parses a flag's value (pflag.Value).
func (b *Budget) Set(s string) error {
	v, err := ParseBudget(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type names the flag's value in help text (pflag.Value).
func (*Budget) Type() string { return "decimal" }

// MarshalJSON writes the budget as a JSON number with its exact decimal
// text, so a reader parsing the literal gets the same integer back.
func (b Budget) MarshalJSON() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalJSON reads a JSON number, or a string holding one, from its
// literal text with ParseBudget's rules, except that zero is read (an
// amount spent or left may be zero; a request's budget is Checked where
// it is used): the float a JSON library would make of 4.014 is never
// formed. null leaves the budget unset (zero).
func (b *Budget) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if string(data) == "null" {
		return nil
	}
	text := string(data)
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &text); err != nil {
			return err
		}
	}
	v, err := parseAmount(text)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
