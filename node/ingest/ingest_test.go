package ingest

import (
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/store"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func storedCases(t *testing.T, st *store.Store) map[string]aggregate.Case {
	t.Helper()
	out := map[string]aggregate.Case{}
	if err := st.Cases(context.Background(), func(c *aggregate.Case) error {
		out[c.CaseID] = *c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, st *store.Store) int {
	t.Helper()
	n, err := st.Count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRowErrors checks the exact FILE:LINE: message for each kind of bad
// row, and that nothing is stored.
func TestRowErrors(t *testing.T) {
	ctdcHead := "terms," + strings.Join(ctdcTestColumns, ",") + "\n"
	ctdcRow := func(over map[string]string) string {
		vals := []string{""}
		for _, c := range ctdcTestColumns {
			v, ok := over[c]
			switch {
			case ok:
			case c == "yearOfRegistration":
				v = "2020"
			case c == "Datasource":
				v = "Hotline"
			default:
				v = "-99"
			}
			vals = append(vals, v)
		}
		return strings.Join(vals, ",") + "\n"
	}
	long := strings.Repeat("x", aggregate.MaxNotesLen+1)
	for _, tc := range []struct {
		name, format, content, want string
	}{
		{"bad enum", "csv", "case_id,registered_on,sex\nA1,2023-01-02,Mle\n",
			`:2: field "sex": "Mle" is not one of Female, Male, Transgender/NonConforming, Unknown`},
		{"bad date", "csv", "case_id,registered_on\nA1,2023-13-01\n",
			`:2: field "registered_on": "2023-13-01" is not a date in the form YYYY-MM-DD`},
		{"date out of range", "csv", "case_id,registered_on\nA1,1980-01-01\n",
			`:2: field "registered_on": "1980-01-01" is required and must fall in 1990–2100`},
		{"bad country", "csv", "case_id,registered_on,citizenship\nA1,2023-01-02,XX\n",
			`:2: field "citizenship": "XX" is not an ISO 3166-1 alpha-2 country code (XK for Kosovo; leave empty or 00 if unknown)`},
		{"age out of range", "csv", "case_id,registered_on,age\nA1,2023-01-02,130\n",
			`:2: field "age": "130" is not a whole number from 0 to 120 (leave empty if unknown)`},
		{"non-UTF-8", "csv", "case_id,registered_on,notes\nA1,2023-01-02,caf\xe9\n",
			`:2: not valid UTF-8 (save the file as UTF-8)`},
		{"notes too long", "csv", "case_id,registered_on,notes\nA1,2023-01-02," + long + "\n",
			`:2: field "notes": "` + long[:32] + `…" is longer than 4096 bytes`},
		{"missing case_id value", "csv", "case_id,registered_on\n,2023-01-02\n",
			`:2: field "case_id": "" is required`},
		{"too few fields, after blank and CRLF lines", "csv", "case_id,registered_on,sex\r\n\r\nA1,2023-01-02,Male\r\nA2,2023-01-02\r\n",
			`:4: has 2 fields but the header has 3`},
		{"unaccompanied adult", "csv", "case_id,registered_on,age,unaccompanied_child\nA1,2023-01-02,30,yes\n",
			`:2: field "unaccompanied_child": "true" is only allowed for a person under 18 (give age or birth_year)`},
		{"bare quote", "csv", "case_id,registered_on,notes\nA1,2023-01-02,say \"hi\"\n",
			`:2: malformed CSV: bare " in non-quoted-field (put quotes around fields holding commas or quotes, and double quotes inside them)`},
		{"ctdc bad flag", "ctdc", ctdcHead + ctdcRow(nil) + ctdcRow(map[string]string{"isForcedLabour": "2"}),
			`:3: field "isForcedLabour": "2" is not one of 0, 1, -99`},
		{"ctdc bad gender", "ctdc", ctdcHead + ctdcRow(map[string]string{"gender": "Fmale"}),
			`:2: field "gender": "Fmale" is not one of Female, Male, Transgender/NonConforming, Unknown`},
		{"ctdc bad age band", "ctdc", ctdcHead + ctdcRow(map[string]string{"ageBroad": "18-20"}),
			`:2: field "ageBroad": "18-20" is not one of 0--8, 9--17, 18--20, 21--23, 24--26, 27--29, 30--38, 39--47, 48+, -99`},
		{"ctdc missing year", "ctdc", ctdcHead + ctdcRow(map[string]string{"yearOfRegistration": "-99"}),
			`:2: field "yearOfRegistration": "-99" is not a year from 1990 to 2100 (it is required)`},
		{"ctdc bad datasource", "ctdc", ctdcHead + ctdcRow(map[string]string{"Datasource": "Police"}),
			`:2: field "Datasource": "Police" is not one of Case Management, Hotline`},
		{"jsonl bad JSON", "jsonl", `{"case_id":"J1","registered_on":"2023-01-02"}` + "\n" + `{"case_id":"J2",` + "\n",
			`:2: not a valid JSON object: unexpected end of JSON input`},
		{"jsonl unknown key", "jsonl", `{"case_id":"J1","registered_on":"2023-01-02","colour":"red"}` + "\n",
			`:1: unknown key "colour" (known keys: ` + strings.Join(aggregate.Columns, ", ") + `)`},
		{"jsonl missing key", "jsonl", `{"case_id":"J1"}` + "\n",
			`:1: missing key "registered_on" (case_id and registered_on are required)`},
		{"jsonl bad enum", "jsonl", `{"case_id":"J1","registered_on":"2023-01-02","services":["Legal","Lunch"]}` + "\n",
			`:1: field "services": "Lunch" is not one of Accommodation, MealsClothing, Legal, Psychological, Medical, Reintegration, IncomeGeneration, Education`},
		{"jsonl object value", "jsonl", `{"case_id":"J1","registered_on":"2023-01-02","sex":{"x":1}}` + "\n",
			`:1: field "sex": a JSON object is not allowed here (want a string, number or array of strings)`},
		{"jsonl non-UTF-8", "jsonl", "{\"case_id\":\"J\xff\",\"registered_on\":\"2023-01-02\"}\n",
			`:1: not valid UTF-8 (save the file as UTF-8)`},
		{"jsonl line too long", "jsonl", `{"case_id":"J1","registered_on":"2023-01-02","notes":"` + strings.Repeat("y", maxJSONLine) + `"}` + "\n" + `{"case_id":"J2","registered_on":"2023-01-02"}` + "\n",
			`:1: line is longer than 1048576 bytes (1 MiB); is this JSON Lines (one record per line)?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newStore(t)
			path := writeFile(t, "in."+tc.format, tc.content)
			rep, err := Run(context.Background(), st, Options{Format: tc.format}, path)
			if err == nil || !strings.Contains(err.Error(), "nothing was imported") {
				t.Fatalf("err = %v, want an error saying nothing was imported", err)
			}
			if len(rep.Errors) == 0 || rep.Errors[0] != path+tc.want {
				t.Errorf("errors = %q\nwant first %q", rep.Errors, path+tc.want)
			}
			if n := count(t, st); n != 0 || rep.Imported {
				t.Errorf("%d cases stored, imported=%v", n, rep.Imported)
			}
		})
	}
}

// ctdcTestColumns is a subset of the CTDC header, enough for row tests.
var ctdcTestColumns = []string{"yearOfRegistration", "Datasource", "gender", "ageBroad", "majorityStatus",
	"citizenship", "isForcedLabour", "isSexualExploit", "CountryOfExploitation"}

func TestHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, format, content, want string
	}{
		{"unknown column", "csv", "case_id,registered_on,colour\nA,2023-01-01,red\n",
			`:1: unknown column "colour" (expected columns: ` + strings.Join(aggregate.Columns, ", ") + `)`},
		{"missing required", "csv", "case_id,sex\nA,Male\n",
			`:1: missing required column "registered_on" (expected columns: ` + strings.Join(aggregate.Columns, ", ") + `; only case_id and registered_on are required)`},
		{"duplicate column", "csv", "case_id,registered_on,sex,Sex\n",
			`:1: column "Sex" appears twice`},
		{"empty file", "csv", "", `: the file is empty (expected a header line)`},
		{"ctdc unknown column", "ctdc", "terms,yearOfRegistration,isTimeTravel\n,2020,1\n",
			`:1: unknown CTDC column "isTimeTravel" (is this the CTDC global dataset? use --format csv for the project format)`},
		{"ctdc missing year", "ctdc", "terms,gender\n,Male\n",
			`:1: missing required CTDC column "yearOfRegistration"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newStore(t)
			path := writeFile(t, "in.csv", tc.content)
			_, err := Run(context.Background(), st, Options{Format: tc.format}, path)
			want := "import: " + path + tc.want + "; nothing was imported"
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
			if n := count(t, st); n != 0 {
				t.Errorf("%d cases stored", n)
			}
		})
	}
}

func TestAllOrNothing(t *testing.T) {
	st, dir := newStore(t)
	good := filepath.Join(dir, "good.csv")
	writeGenCSV(t, good, 300, 7)
	if _, err := Run(context.Background(), st, Options{}, good); err != nil {
		t.Fatal(err)
	}
	before := storedCases(t, st)

	// 2,000 valid rows (updating the 300 and adding more) with one bad row
	// in the middle, split over two files: nothing of either may land.
	var b strings.Builder
	b.WriteString(strings.Join(aggregate.Columns, ",") + "\n")
	for i := range 2000 {
		sex := "Male"
		if i == 1234 {
			sex = "Mle"
		}
		fmt.Fprintf(&b, "RS-%07d,,2024-01-02,Identified,%s,,,,,,,,,,,,,,,changed\n", i, sex)
	}
	bad := writeFile(t, "bad.csv", b.String())
	other := writeFile(t, "other.csv", "case_id,registered_on\nNEW-1,2024-01-01\n")
	rep, err := Run(context.Background(), st, Options{}, other, bad)
	if err == nil || !strings.Contains(err.Error(), "1 of 2001 rows were invalid") {
		t.Fatalf("err = %v", err)
	}
	if want := bad + `:1236: field "sex": "Mle" is not one of Female, Male, Transgender/NonConforming, Unknown`; len(rep.Errors) != 1 || rep.Errors[0] != want {
		t.Errorf("errors = %q, want [%q]", rep.Errors, want)
	}
	if after := storedCases(t, st); !reflect.DeepEqual(before, after) || count(t, st) != 300 {
		t.Errorf("store changed by a failed import: %d cases before, %d after", len(before), len(after))
	}
}

func TestMaxErrors(t *testing.T) {
	st, _ := newStore(t)
	var b strings.Builder
	b.WriteString("case_id,registered_on\n")
	for i := range 50 {
		fmt.Fprintf(&b, "E-%d,not-a-date\n", i)
	}
	path := writeFile(t, "e.csv", b.String())
	rep, err := Run(context.Background(), st, Options{MaxErrors: 5}, path)
	if err == nil || rep.Invalid != 50 || len(rep.Errors) != 5 {
		t.Errorf("invalid %d, %d errors listed, err %v; want 50, 5, error", rep.Invalid, len(rep.Errors), err)
	}
}

func TestSkipInvalid(t *testing.T) {
	st, _ := newStore(t)
	path := writeFile(t, "mixed.csv", "case_id,registered_on,sex\nS-1,2023-01-01,Female\nS-2,2023-01-01,Mle\nS-3,2023-01-01\nS-4,2023-02-30,Male\nS-5,2023-01-05,male\n")
	rep, err := Run(context.Background(), st, Options{SkipInvalid: true}, path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stats.Added != 2 || rep.Invalid != 3 || count(t, st) != 2 {
		t.Errorf("report %+v, count %d", rep, count(t, st))
	}
	got := storedCases(t, st)
	if _, ok := got["S-1"]; !ok {
		t.Error("S-1 not stored")
	}
	f, err := os.Open(path + ".rejected.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"case_id", "registered_on", "sex", "line", "reason"},
		{"S-2", "2023-01-01", "Mle", "3", `field "sex": "Mle" is not one of Female, Male, Transgender/NonConforming, Unknown`},
		{"S-3", "2023-01-01", "", "4", "has 2 fields but the header has 3"},
		{"S-4", "2023-02-30", "Male", "5", `field "registered_on": "2023-02-30" is not a date in the form YYYY-MM-DD`},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("rejected file:\n%q\nwant\n%q", recs, want)
	}
	if len(rep.Rejected) != 1 || rep.Rejected[0] != path+".rejected.csv" {
		t.Errorf("report rejected = %q", rep.Rejected)
	}
}

func TestReimportUpdates(t *testing.T) {
	st, _ := newStore(t)
	v1 := writeFile(t, "v1.csv", "case_id,registered_on,notes\nR-1,2023-01-01,first\nR-2,2023-01-01,first\n")
	v2 := writeFile(t, "v2.csv", "case_id,registered_on,notes\nR-2,2023-01-01,second\nR-3,2023-01-01,new\nR-3,2023-01-01,newer\n")
	if _, err := Run(context.Background(), st, Options{}, v1); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), st, Options{}, v2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.ImportStats{Added: 1, Updated: 1, Repeated: 1}); rep.Stats != want {
		t.Errorf("stats = %+v, want %+v", rep.Stats, want)
	}
	got := storedCases(t, st)
	if count(t, st) != 3 || got["R-1"].Notes != "first" || got["R-2"].Notes != "second" || got["R-3"].Notes != "newer" {
		t.Errorf("after re-import: %d cases %+v", count(t, st), got)
	}
}

func TestCSVQuirks(t *testing.T) {
	st, _ := newStore(t)
	rep, err := Run(context.Background(), st, Options{}, "testdata/quirks.csv", "testdata/crlf.csv")
	if err != nil {
		t.Fatalf("%v %q", err, rep.Errors)
	}
	got := storedCases(t, st)
	if len(got) != 5 || rep.Rows != 5 {
		t.Fatalf("stored %d, rows %d: %+v", len(got), rep.Rows, got)
	}
	q1 := got["Q-1"]
	if q1.Sex != aggregate.Female || q1.Age != 16 || q1.Citizenship != "XK" || q1.Notes != `said "no", then left` ||
		!q1.Forms.Has(aggregate.SexualExploitation) || !q1.Forms.Has(aggregate.ForcedBegging) {
		t.Errorf("Q-1 = %+v", q1)
	}
	if got["Q-2"].Notes != "two\nlines" || got["Q-2"].Age != aggregate.AgeUnknown {
		t.Errorf("Q-2 = %+v", got["Q-2"])
	}
	if got["C-2"].Sex != aggregate.Male || got["C-2"].RegisteredOn != aggregate.DateOf(2022, 1, 6) {
		t.Errorf("C-2 = %+v", got["C-2"])
	}
}

func TestCTDC(t *testing.T) {
	st, _ := newStore(t)
	// The fixtures are rows of the global dataset, from several countries.
	rep, err := Run(context.Background(), st, Options{Format: FormatCTDC, AllowForeign: true}, "testdata/ctdc_small.csv")
	if err != nil {
		t.Fatalf("%v %q", err, rep.Errors)
	}
	got := storedCases(t, st)
	a := aggregate.NewCase()
	_, a.RegisteredOn, a.Status, a.Sex, a.Age = "", aggregate.DateOf(2019, 1, 1), aggregate.Identified, aggregate.Female, 9
	a.Citizenship, a.ExploitedIn = "AL", "XK"
	a.Control = a.Control.With(aggregate.DebtBondage).With(aggregate.Threats)
	a.Forms = a.Forms.With(aggregate.SexualExploitation)
	a.SexualTypes = a.SexualTypes.With(aggregate.Prostitution)
	a.Recruitment, a.RecruiterRelation = aggregate.Abduction, aggregate.Family

	b := aggregate.NewCase()
	_, b.RegisteredOn, b.Status, b.Sex = "", aggregate.DateOf(2021, 1, 1), aggregate.Presumed, aggregate.Male
	b.ReferralSource, b.ExploitedIn, b.RecruiterRelation = aggregate.Hotline, "RS", aggregate.Friend
	b.Forms = b.Forms.With(aggregate.ForcedLabour)
	b.LabourTypes = b.LabourTypes.With(aggregate.Construction)

	c := aggregate.NewCase()
	_, c.RegisteredOn, c.Status, c.Sex, c.Age = "", aggregate.DateOf(2020, 1, 1), aggregate.Identified, aggregate.SexUnknown, 48
	c.Citizenship = "UA"
	matchIgnoringIDs(t, got, a, b, c)
}

// TestCTDCRealLayout reads a fixture in the real CTDC global dataset's
// layout: the dataset's 63 columns in its order (the header equals the
// public sample's from the second cell on), the terms-of-use notice as the
// first header cell and empty in every row, 0/1/-99 flags, ageBroad bands,
// year-only registration, and the free-text columns as the dataset writes
// them ("Friend/Acquaintance; Intimate Partner", "Not Specified", joined
// means of control). The rows are written for the project: the public
// sample's terms do not allow copying it here (see the data README).
func TestCTDCRealLayout(t *testing.T) {
	st, _ := newStore(t)
	rep, err := Run(context.Background(), st, Options{Format: FormatCTDC, AllowForeign: true}, "testdata/ctdc_layout.csv")
	if err != nil {
		t.Fatalf("%v %q", err, rep.Errors)
	}
	if rep.Rows != 4 || rep.Stats.Added != 4 {
		t.Errorf("read %d rows, added %d; want 4 and 4", rep.Rows, rep.Stats.Added)
	}
	got := storedCases(t, st)

	a := aggregate.NewCase() // a hotline record; two relations flagged, the first in order wins
	_, a.RegisteredOn, a.Status, a.ReferralSource = "", aggregate.DateOf(2016, 1, 1), aggregate.Presumed, aggregate.Hotline
	a.Sex, a.Age, a.Citizenship, a.ExploitedIn = aggregate.Female, 21, "US", "US"
	a.Control = a.Control.With(aggregate.Threats).With(aggregate.PsychologicalAbuse).With(aggregate.SexualAbuse)
	a.Forms = a.Forms.With(aggregate.SexualExploitation)
	a.SexualTypes = a.SexualTypes.With(aggregate.Prostitution)
	a.RecruiterRelation = aggregate.IntimatePartner

	b := aggregate.NewCase() // case management, control "not specified", exploitation country unknown
	_, b.RegisteredOn, b.Status = "", aggregate.DateOf(2002, 1, 1), aggregate.Identified
	b.Sex, b.Age, b.Citizenship = aggregate.Female, 18, "MD"
	b.Forms = b.Forms.With(aggregate.SexualExploitation)
	b.RecruiterRelation = aggregate.RelationUnknown

	c := aggregate.NewCase() // forced labour of a minor in domestic work, abducted, family recruiter
	_, c.RegisteredOn, c.Status, c.ReferralSource = "", aggregate.DateOf(2016, 1, 1), aggregate.Presumed, aggregate.Hotline
	c.Sex, c.Age, c.Citizenship, c.ExploitedIn = aggregate.Male, 9, "CO", "US"
	c.Control = c.Control.With(aggregate.TakesEarnings).With(aggregate.WithholdsDocuments)
	c.Forms = c.Forms.With(aggregate.ForcedLabour)
	c.LabourTypes = c.LabourTypes.With(aggregate.DomesticWork)
	c.Recruitment, c.RecruiterRelation = aggregate.Abduction, aggregate.Family

	d := aggregate.NewCase() // only the year and the source known
	_, d.RegisteredOn, d.Status, d.ReferralSource = "", aggregate.DateOf(2016, 1, 1), aggregate.Presumed, aggregate.Hotline
	d.Sex, d.RecruiterRelation = aggregate.SexUnknown, aggregate.RelationUnknown

	matchIgnoringIDs(t, got, a, b, c, d)
}

// ctdcID is the documented shape of a CTDC case_id: content hash and
// occurrence (docs/case-schema.md).
var ctdcID = regexp.MustCompile(`^ctdc-[0-9a-f]{32}-[0-9]+$`)

// matchIgnoringIDs checks that got holds exactly the want cases, whatever
// their ids (CTDC ids are content hashes, tested in ctdc_id_test.go), and
// that every id has the CTDC shape.
func matchIgnoringIDs(t *testing.T, got map[string]aggregate.Case, want ...aggregate.Case) {
	t.Helper()
	left := maps.Clone(got)
	for _, w := range want {
		found := ""
		for id, g := range left {
			g.CaseID = ""
			if g == w {
				found = id
				break
			}
		}
		if found == "" {
			t.Errorf("no stored case is\n%+v", w)
			continue
		}
		if !ctdcID.MatchString(found) {
			t.Errorf("case_id %q is not ctdc-<32 hex>-<occurrence>", found)
		}
		delete(left, found)
	}
	for id, g := range left {
		t.Errorf("unexpected stored case %s: %+v", id, g)
	}
}

func TestJSONL(t *testing.T) {
	st, _ := newStore(t)
	rep, err := Run(context.Background(), st, Options{Format: FormatJSONL}, "testdata/valid.jsonl")
	if err != nil {
		t.Fatalf("%v %q", err, rep.Errors)
	}
	got := storedCases(t, st)
	j1 := got["J-1"]
	if len(got) != 2 || j1.Age != 17 || !j1.Unaccompanied || !j1.Services.Has(aggregate.Legal) || !j1.Services.Has(aggregate.Medical) || j1.Citizenship != "AL" {
		t.Errorf("J-1 = %+v (%d cases)", j1, len(got))
	}
	if j2 := got["J-2"]; j2.BirthYear != 1990 || j2.Services.Len() != 2 || j2.Notes != "" {
		t.Errorf("J-2 = %+v", j2)
	}
}

func TestProgress(t *testing.T) {
	st, _ := newStore(t)
	var b strings.Builder
	if _, err := Run(context.Background(), st, Options{Progress: &b}, "testdata/crlf.csv"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "crlf.csv [") || !strings.Contains(b.String(), "100%") {
		t.Errorf("progress output %q", b.String())
	}
}

func TestUnknownFormat(t *testing.T) {
	st, _ := newStore(t)
	if _, err := Run(context.Background(), st, Options{Format: "xlsx"}, "testdata/crlf.csv"); err == nil || !strings.Contains(err.Error(), `unknown format "xlsx"`) {
		t.Errorf("err = %v", err)
	}
}

func TestCanceled(t *testing.T) {
	st, dir := newStore(t)
	path := filepath.Join(dir, "big.csv")
	writeGenCSV(t, path, 5000, 9)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, st, Options{}, path); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %v, want context canceled", err)
	}
	if n := count(t, st); n != 0 {
		t.Errorf("%d cases stored by a canceled import", n)
	}
	// The store is usable afterwards.
	if rep, err := Run(context.Background(), st, Options{}, path); err != nil || rep.Stats.Added != 5000 {
		t.Errorf("import after cancel: %+v %v", rep.Stats, err)
	}
}

func TestRunReader(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	bad := "case_id,registered_on,sex\nU-1,2024-02-01,Female\nU-2,2024-02-03,Mle\n"
	rep, err := RunReader(ctx, st, Options{}, "upload.csv", strings.NewReader(bad))
	if err == nil || rep.Imported || count(t, st) != 0 {
		t.Fatalf("bad upload: err=%v imported=%v count=%d", err, rep.Imported, count(t, st))
	}
	if want := `upload.csv:3: field "sex": "Mle" is not one of Female, Male, Transgender/NonConforming, Unknown`; len(rep.Errors) != 1 || rep.Errors[0] != want {
		t.Errorf("errors = %q, want [%q]", rep.Errors, want)
	}
	good := "case_id,registered_on,sex\nU-1,2024-02-01,Female\nU-2,2024-02-03,Male\n"
	rep, err = RunReader(ctx, st, Options{}, "upload.csv", strings.NewReader(good))
	if err != nil || !rep.Imported || count(t, st) != 2 {
		t.Fatalf("good upload: err=%v imported=%v count=%d", err, rep.Imported, count(t, st))
	}
	if _, err := RunReader(ctx, st, Options{SkipInvalid: true}, "upload.csv", strings.NewReader(good)); err == nil {
		t.Error("skip-invalid on a stream was accepted")
	}
}
