package aggregate

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Columns are the project's CSV header, in order. JSON Lines records use the
// same names as keys. Multi-valued fields are ";"-separated lists.
var Columns = []string{
	"case_id", "person_id", "registered_on", "status", "sex", "birth_year", "age",
	"citizenship", "country_of_exploitation", "exploitation_forms", "labour_types",
	"sexual_types", "means_of_control", "recruitment", "recruiter_relation",
	"referral_source", "migrant_status", "unaccompanied_child", "services", "notes",
}

// Limits on free-text fields, so one bad row cannot bloat the store.
const (
	MinYear     = 1990 // earliest registration year accepted
	MaxYear     = 2100
	MaxIDLen    = 64
	MaxNotesLen = 4096
)

// NewCase returns a case with every optional field unknown.
func NewCase() Case {
	return Case{BirthYear: AgeUnknown, Age: AgeUnknown}
}

// SetField parses value into the named column of c. The error is a
// *FieldError naming the field, the value and what is accepted.
func SetField(c *Case, column, value string) error {
	var err error
	switch column {
	case "case_id":
		c.CaseID, err = parseID(column, value, true)
	case "person_id":
		c.PersonID, err = parseID(column, value, false)
	case "registered_on":
		c.RegisteredOn, err = ParseDate(column, strings.TrimSpace(value))
	case "status":
		c.Status, err = statusVocab.parse(value)
	case "sex":
		c.Sex, err = sexVocab.parse(value)
	case "birth_year":
		c.BirthYear, err = parseInt(column, value, 1900, 2100)
	case "age":
		c.Age, err = parseInt(column, value, 0, MaxAge)
	case "citizenship":
		c.Citizenship, err = ParseCountry(column, value)
	case "country_of_exploitation":
		c.ExploitedIn, err = ParseCountry(column, value)
	case "exploitation_forms":
		c.Forms, err = formVocab.parseSet(value)
	case "labour_types":
		c.LabourTypes, err = labourVocab.parseSet(value)
	case "sexual_types":
		c.SexualTypes, err = sexTypeVocab.parseSet(value)
	case "means_of_control":
		c.Control, err = controlVocab.parseSet(value)
	case "recruitment":
		c.Recruitment, err = parseOrUnknown(recruitmentVocab, value)
	case "recruiter_relation":
		c.RecruiterRelation, err = parseOrUnknown(relationVocab, value)
	case "referral_source":
		c.ReferralSource, err = parseOrUnknown(referralVocab, value)
	case "migrant_status":
		c.MigrantStatus, err = parseOrUnknown(migrationVocab, value)
	case "unaccompanied_child":
		c.Unaccompanied, err = parseBool(column, value)
	case "services":
		c.Services, err = serviceVocab.parseSet(value)
	case "notes":
		if len(value) > MaxNotesLen {
			err = &FieldError{Field: column, Value: strings.ToValidUTF8(value[:32], "") + "…", Reason: fmt.Sprintf("is longer than %d bytes", MaxNotesLen)}
		}
		c.Notes = value
	default:
		err = fmt.Errorf("unknown column %q (known: %s)", column, strings.Join(Columns, ", "))
	}
	return err
}

// FieldValue formats the named column of c the way SetField reads it.
func FieldValue(c *Case, column string) string {
	switch column {
	case "case_id":
		return c.CaseID
	case "person_id":
		return c.PersonID
	case "registered_on":
		return c.RegisteredOn.String()
	case "status":
		return c.Status.String()
	case "sex":
		return c.Sex.String()
	case "birth_year":
		return formatInt(c.BirthYear)
	case "age":
		return formatInt(c.Age)
	case "citizenship":
		return string(c.Citizenship)
	case "country_of_exploitation":
		return string(c.ExploitedIn)
	case "exploitation_forms":
		return formVocab.formatSet(c.Forms)
	case "labour_types":
		return labourVocab.formatSet(c.LabourTypes)
	case "sexual_types":
		return sexTypeVocab.formatSet(c.SexualTypes)
	case "means_of_control":
		return controlVocab.formatSet(c.Control)
	case "recruitment":
		return c.Recruitment.String()
	case "recruiter_relation":
		return c.RecruiterRelation.String()
	case "referral_source":
		return c.ReferralSource.String()
	case "migrant_status":
		return c.MigrantStatus.String()
	case "unaccompanied_child":
		return strconv.FormatBool(c.Unaccompanied)
	case "services":
		return serviceVocab.formatSet(c.Services)
	case "notes":
		return c.Notes
	}
	return ""
}

// Validate checks the rules that involve more than one field, after every
// field has parsed. It returns the first broken rule.
func (c *Case) Validate() error {
	if c.CaseID == "" {
		return &FieldError{Field: "case_id", Value: "", Reason: "is required"}
	}
	y := c.RegisteredOn.Year()
	if y < MinYear || y > MaxYear {
		return &FieldError{Field: "registered_on", Value: c.RegisteredOn.String(), Reason: fmt.Sprintf("is required and must fall in %d–%d", MinYear, MaxYear)}
	}
	if c.BirthYear != AgeUnknown && c.BirthYear > y {
		return &FieldError{Field: "birth_year", Value: strconv.Itoa(c.BirthYear), Reason: fmt.Sprintf("is after registered_on (%s)", c.RegisteredOn)}
	}
	if c.BirthYear != AgeUnknown && y-c.BirthYear > MaxAge {
		return &FieldError{Field: "birth_year", Value: strconv.Itoa(c.BirthYear), Reason: fmt.Sprintf("makes the person older than %d at registration", MaxAge)}
	}
	if c.Age != AgeUnknown && c.BirthYear != AgeUnknown {
		if d := (y - c.BirthYear) - c.Age; d < 0 || d > 1 {
			return &FieldError{Field: "age", Value: strconv.Itoa(c.Age), Reason: fmt.Sprintf("does not agree with birth_year %d and registered_on %s", c.BirthYear, c.RegisteredOn)}
		}
	}
	if c.Unaccompanied && !c.IsChild() {
		return &FieldError{Field: "unaccompanied_child", Value: "true", Reason: "is only allowed for a person under 18 (give age or birth_year)"}
	}
	return nil
}

// validCodes reports whether every code and set of c is in its vocabulary.
func validCodes(c *Case) bool {
	return statusVocab.valid(c.Status) && sexVocab.valid(c.Sex) && recruitmentVocab.valid(c.Recruitment) &&
		relationVocab.valid(c.RecruiterRelation) && referralVocab.valid(c.ReferralSource) &&
		migrationVocab.valid(c.MigrantStatus) && formVocab.validSet(c.Forms) &&
		labourVocab.validSet(c.LabourTypes) && sexTypeVocab.validSet(c.SexualTypes) &&
		controlVocab.validSet(c.Control) && serviceVocab.validSet(c.Services)
}

// CheckCodes reports an error if any enumerated code of c is out of range,
// which only a corrupted or foreign record can cause.
func (c *Case) CheckCodes() error {
	if !validCodes(c) {
		return fmt.Errorf("case %q has an out-of-range code", c.CaseID)
	}
	return nil
}

func parseOrUnknown[T ~uint8](v vocab[T], s string) (T, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil // every single-valued vocabulary with an Unknown has it at code 0
	}
	return v.parse(s)
}

func parseID(field, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			return "", &FieldError{Field: field, Value: s, Reason: "is required"}
		}
		return "", nil
	}
	if len(s) > MaxIDLen {
		return "", &FieldError{Field: field, Value: s, Reason: fmt.Sprintf("is longer than %d characters", MaxIDLen)}
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n\t") {
		return "", &FieldError{Field: field, Value: s, Reason: "contains control characters"}
	}
	return s, nil
}

func parseInt(field, s string, lo, hi int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "-99" {
		return AgeUnknown, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, &FieldError{Field: field, Value: s, Reason: fmt.Sprintf("is not a whole number from %d to %d (leave empty if unknown)", lo, hi)}
	}
	return n, nil
}

func formatInt(n int) string {
	if n == AgeUnknown {
		return ""
	}
	return strconv.Itoa(n)
}

func parseBool(field, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "no", "0", "-99":
		return false, nil
	case "true", "yes", "1":
		return true, nil
	}
	return false, &FieldError{Field: field, Value: s, Allowed: []string{"true", "false", "yes", "no", "1", "0"}}
}

// Vocabulary lists the accepted values of an enumerated column, for docs
// and for error messages; nil for free-form columns.
func Vocabulary(column string) []string {
	switch column {
	case "status":
		return statusVocab.names
	case "sex":
		return sexVocab.names
	case "exploitation_forms":
		return formVocab.names
	case "labour_types":
		return labourVocab.names
	case "sexual_types":
		return sexTypeVocab.names
	case "means_of_control":
		return controlVocab.names
	case "recruitment":
		return recruitmentVocab.names
	case "recruiter_relation":
		return relationVocab.names
	case "referral_source":
		return referralVocab.names
	case "migrant_status":
		return migrationVocab.names
	case "services":
		return serviceVocab.names
	}
	return nil
}
