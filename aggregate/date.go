package aggregate

import (
	"fmt"
	"time"
)

// Date is a calendar date, as days since 1970-01-01 (UTC). Case dates carry
// no time of day, and an integer keeps records small and comparisons exact.
type Date int32

// DateOf returns the Date of y-m-d.
func DateOf(y int, m time.Month, d int) Date {
	return Date(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(field, s string) (Date, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, &FieldError{Field: field, Value: s, Reason: "is not a date in the form YYYY-MM-DD"}
	}
	return Date(t.Unix() / 86400), nil
}

// Time is the date at midnight UTC.
func (d Date) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Year is the calendar year.
func (d Date) Year() int { return d.Time().Year() }

// Quarter is 1–4.
func (d Date) Quarter() int { return (int(d.Time().Month())-1)/3 + 1 }

func (d Date) String() string { return d.Time().Format("2006-01-02") }

// Period is a calendar quarter (Quarter 1–4) or a whole year (Quarter 0).
type Period struct {
	Year    int
	Quarter int
}

// ParsePeriod reads "2024-Q1" or "2024".
func ParsePeriod(s string) (Period, error) {
	var p Period
	if n, err := fmt.Sscanf(s, "%4d-Q%1d", &p.Year, &p.Quarter); err == nil && n == 2 && len(s) == 7 {
		if p.Quarter >= 1 && p.Quarter <= 4 && p.Year >= 1900 && p.Year <= 9999 {
			return p, nil
		}
	}
	if n, err := fmt.Sscanf(s, "%4d", &p.Year); err == nil && n == 1 && len(s) == 4 && p.Year >= 1900 {
		p.Quarter = 0
		return p, nil
	}
	return Period{}, fmt.Errorf("period %q: want YYYY-Qn (e.g. 2024-Q1) or YYYY", s)
}

func (p Period) String() string {
	if p.Quarter == 0 {
		return fmt.Sprintf("%04d", p.Year)
	}
	return fmt.Sprintf("%04d-Q%d", p.Year, p.Quarter)
}

// IsYear reports whether the period is a whole year.
func (p Period) IsYear() bool { return p.Quarter == 0 }

// Quarters lists the quarters the period covers: itself, or the year's four.
func (p Period) Quarters() []Period {
	if p.Quarter != 0 {
		return []Period{p}
	}
	return []Period{{p.Year, 1}, {p.Year, 2}, {p.Year, 3}, {p.Year, 4}}
}

// Contains reports whether d falls in the period.
func (p Period) Contains(d Date) bool {
	if d.Year() != p.Year {
		return false
	}
	return p.Quarter == 0 || d.Quarter() == p.Quarter
}

// MarshalText encodes the period as in String.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes a period written by MarshalText.
func (p *Period) UnmarshalText(b []byte) error {
	q, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
