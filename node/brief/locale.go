package brief

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"roundtable/node/web"
)

// locale formats text, numbers and dates in one language.
type locale struct {
	code           string
	msgs           map[string]string
	decimal, group string
	minGroup       int
}

func newLocale(code string) (*locale, error) {
	lang, err := web.LanguageOf(code)
	if err != nil {
		return nil, err
	}
	msgs, err := web.Messages(code)
	if err != nil {
		return nil, err
	}
	if lang.Decimal == "" || lang.Group == "" || lang.MinGroup < 2 {
		return nil, fmt.Errorf("languages.json: %s has no number format", code)
	}
	return &locale{code: code, msgs: msgs, decimal: lang.Decimal, group: lang.Group, minGroup: lang.MinGroup}, nil
}

var placeholder = regexp.MustCompile(`\{(\w+)\}`)

// t returns message id with its {name} placeholders filled from args
// (name, value pairs). A missing id or an unfilled placeholder is an
// error: a brief never shows a message id or a brace to its reader.
func (l *locale) t(id string, args ...any) (string, error) {
	s, ok := l.msgs[id]
	if !ok || s == "" {
		return "", fmt.Errorf("language %s has no message %q", l.code, id)
	}
	vars := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		vars[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	var missing string
	s = placeholder.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := vars[m[1:len(m)-1]]
		if !ok {
			missing = m
			return m
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("message %q in %s: nothing fills %s", id, l.code, missing)
	}
	return s, nil
}

// mustT is t for the view code, which collects the first error.
func (l *locale) tr(errp *error, id string, args ...any) string {
	s, err := l.t(id, args...)
	if err != nil && *errp == nil {
		*errp = err
	}
	return s
}

// num formats a count: rounded to a whole number, digits grouped.
func (l *locale) num(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := l.groupDigits(strconv.FormatInt(n, 10))
	if neg {
		return "\u2212" + s
	}
	return s
}

// signed formats a change: +12, −5, 0.
func (l *locale) signed(v float64) string {
	if math.Round(v) > 0 {
		return "+" + l.num(v)
	}
	return l.num(v)
}

// decimalNum formats v with the given number of decimals.
func (l *locale) decimalNum(v float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	out := l.groupDigits(whole)
	if frac != "" {
		out += l.decimal + frac
	}
	if v < 0 && strings.Trim(s, "0.") != "" {
		out = "\u2212" + out
	}
	return out
}

func (l *locale) groupDigits(s string) string {
	if len(s) < l.minGroup {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(l.group)
		}
		b.WriteRune(c)
	}
	return b.String()
}

// date formats a calendar day with the language's month names and order.
func (l *locale) date(errp *error, t time.Time) string {
	month := l.tr(errp, fmt.Sprintf("month.%d", int(t.Month())))
	return l.tr(errp, "format.date", "day", t.Day(), "month", month, "year", t.Year())
}
