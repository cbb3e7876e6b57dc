package ingest

import "roundtable/aggregate"

// fieldCache memoises aggregate.SetField for columns with few distinct
// values (enums, sets, countries, dates, small integers). SetField is pure
// in (column, value), and parsing those columns (case folding, set
// splitting, country lookup) was most of the cost of reading a row; a map
// hit is several times cheaper. Free-text columns are never cached.
type fieldCache struct {
	cols []cachedColumn
}

type cachedColumn struct {
	name string
	copy func(dst, src *aggregate.Case) // nil: not cached
	memo map[string]*cachedValue
}

type cachedValue struct {
	c   aggregate.Case
	err error
}

// maxCachedValues bounds each column's memo, so a file of many distinct
// dates or hostile values cannot grow memory without limit.
const maxCachedValues = 8192

func newFieldCache(columns []string) *fieldCache {
	fc := &fieldCache{cols: make([]cachedColumn, len(columns))}
	for i, col := range columns {
		fc.cols[i] = cachedColumn{name: col, copy: fieldCopier(col), memo: map[string]*cachedValue{}}
	}
	return fc
}

// set parses value into column i of c, as aggregate.SetField would.
func (fc *fieldCache) set(c *aggregate.Case, i int, value string) error {
	cc := &fc.cols[i]
	if cc.copy == nil {
		return aggregate.SetField(c, cc.name, value)
	}
	v, ok := cc.memo[value]
	if !ok {
		v = &cachedValue{c: aggregate.NewCase()}
		v.err = aggregate.SetField(&v.c, cc.name, value)
		if len(cc.memo) < maxCachedValues {
			cc.memo[value] = v
		}
	}
	if v.err != nil {
		return v.err
	}
	cc.copy(c, &v.c)
	return nil
}

func fieldCopier(col string) func(dst, src *aggregate.Case) {
	switch col {
	case "registered_on":
		return func(d, s *aggregate.Case) { d.RegisteredOn = s.RegisteredOn }
	case "status":
		return func(d, s *aggregate.Case) { d.Status = s.Status }
	case "sex":
		return func(d, s *aggregate.Case) { d.Sex = s.Sex }
	case "birth_year":
		return func(d, s *aggregate.Case) { d.BirthYear = s.BirthYear }
	case "age":
		return func(d, s *aggregate.Case) { d.Age = s.Age }
	case "citizenship":
		return func(d, s *aggregate.Case) { d.Citizenship = s.Citizenship }
	case "country_of_exploitation":
		return func(d, s *aggregate.Case) { d.ExploitedIn = s.ExploitedIn }
	case "exploitation_forms":
		return func(d, s *aggregate.Case) { d.Forms = s.Forms }
	case "labour_types":
		return func(d, s *aggregate.Case) { d.LabourTypes = s.LabourTypes }
	case "sexual_types":
		return func(d, s *aggregate.Case) { d.SexualTypes = s.SexualTypes }
	case "means_of_control":
		return func(d, s *aggregate.Case) { d.Control = s.Control }
	case "recruitment":
		return func(d, s *aggregate.Case) { d.Recruitment = s.Recruitment }
	case "recruiter_relation":
		return func(d, s *aggregate.Case) { d.RecruiterRelation = s.RecruiterRelation }
	case "referral_source":
		return func(d, s *aggregate.Case) { d.ReferralSource = s.ReferralSource }
	case "migrant_status":
		return func(d, s *aggregate.Case) { d.MigrantStatus = s.MigrantStatus }
	case "unaccompanied_child":
		return func(d, s *aggregate.Case) { d.Unaccompanied = s.Unaccompanied }
	case "services":
		return func(d, s *aggregate.Case) { d.Services = s.Services }
	}
	return nil // case_id, person_id, notes: free text
}
