package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/store"
)

// A CTDC export with a few of the dataset's columns: rows 1, 3 and 5 are
// identical (three people the dataset cannot tell apart).
const ctdcExport = `Terms of use notice,yearOfRegistration,Datasource,gender,citizenship
,2023,Hotline,Woman,AL
,2023,Case Management,Man,RS
,2023,Hotline,Woman,AL
,2024,Case Management,-99,XK
,2023,Hotline,Woman,AL
`

// The same export re-ordered: rows shuffled, columns permuted.
const ctdcReordered = `Terms of use notice,gender,citizenship,Datasource,yearOfRegistration
,Woman,AL,Hotline,2023
,-99,XK,Case Management,2024
,Woman,AL,Hotline,2023
,Man,RS,Case Management,2023
,Woman,AL,Hotline,2023
`

func importCTDC(t *testing.T, st *store.Store, opts Options, path string) Report {
	t.Helper()
	opts.Format = FormatCTDC
	rep, err := Run(context.Background(), st, opts, path)
	if err != nil {
		t.Fatalf("import %s: %v %q", path, err, rep.Errors)
	}
	return rep
}

// yearTotal is the exact number of people counted in year.
func yearTotal(t *testing.T, st *store.Store, year string) int64 {
	t.Helper()
	p, _ := aggregate.ParsePeriod(year)
	tables, err := aggregate.Tabulate(context.Background(), aggregate.CatalogV1(), p, []string{"victims"},
		func(fn func(*aggregate.Case) error) error { return st.Cases(context.Background(), fn) })
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.NumCells() == 1 {
			return tb.Count(0)
		}
	}
	t.Fatal("no victims total")
	return 0
}

// TestCTDCIDScheme computes one row's id by hand from the documented
// scheme: SHA-256 over "name\x1fvalue\x1e" for each column in name order
// (the notice column left out), the first 16 bytes in hex, then the
// occurrence of that content in the file.
func TestCTDCIDScheme(t *testing.T) {
	st, _ := newStore(t)
	importCTDC(t, st, Options{}, writeFile(t, "export.csv", ctdcExport))
	id := func(canonical string, n string) string {
		h := sha256.Sum256([]byte(canonical))
		return "ctdc-" + hex.EncodeToString(h[:16]) + "-" + n
	}
	man := "Datasource\x1fCase Management\x1ecitizenship\x1fRS\x1egender\x1fMan\x1eyearOfRegistration\x1f2023\x1e"
	woman := "Datasource\x1fHotline\x1ecitizenship\x1fAL\x1egender\x1fWoman\x1eyearOfRegistration\x1f2023\x1e"
	got := storedCases(t, st)
	for _, want := range []string{id(man, "0"), id(woman, "0"), id(woman, "1"), id(woman, "2")} {
		if _, ok := got[want]; !ok {
			t.Errorf("no case %s; stored %v", want, slices.Sorted(maps.Keys(got)))
		}
	}
	if c := got[id(man, "0")]; c.Sex != aggregate.Male || c.Citizenship != "RS" {
		t.Errorf("%s is %+v, want the RS man", id(man, "0"), c)
	}
}

// TestCTDCRenameAndReorder: the same export imported under another name,
// and then re-ordered (rows and columns), updates the same five cases:
// nothing is added, the ids and contents are the same, and so are the
// counts.
func TestCTDCRenameAndReorder(t *testing.T) {
	st, _ := newStore(t)
	importCTDC(t, st, Options{}, writeFile(t, "ctdc-2024-03.csv", ctdcExport))
	first := storedCases(t, st)
	if len(first) != 5 || yearTotal(t, st, "2023") != 4 || yearTotal(t, st, "2024") != 1 {
		t.Fatalf("first import: %d cases, 2023 counts %d", len(first), yearTotal(t, st, "2023"))
	}
	for name, content := range map[string]string{"renamed.csv": ctdcExport, "reordered.csv": ctdcReordered} {
		rep := importCTDC(t, st, Options{}, writeFile(t, name, content))
		if rep.Stats.Added != 0 || rep.Stats.Updated != 5 || count(t, st) != 5 {
			t.Errorf("%s: added %d, updated %d, store holds %d; want 0, 5, 5", name, rep.Stats.Added, rep.Stats.Updated, count(t, st))
		}
		if got := storedCases(t, st); !maps.Equal(got, first) {
			t.Errorf("%s changed the stored cases", name)
		}
		if a, b := yearTotal(t, st, "2023"), yearTotal(t, st, "2024"); a != 4 || b != 1 {
			t.Errorf("%s: counts 2023 %d, 2024 %d; want 4 and 1", name, a, b)
		}
	}
}

// TestCTDCIdenticalRowsDistinct: identical rows are distinct people, on
// the first import and on a re-import.
func TestCTDCIdenticalRowsDistinct(t *testing.T) {
	st, _ := newStore(t)
	rows := "Terms,yearOfRegistration,gender\n" + strings.Repeat(",2022,Woman\n", 4)
	for range 2 {
		importCTDC(t, st, Options{}, writeFile(t, "same.csv", rows))
		if n := count(t, st); n != 4 {
			t.Errorf("four identical rows stored as %d cases", n)
		}
		if got := yearTotal(t, st, "2022"); got != 4 {
			t.Errorf("four identical rows counted as %d people", got)
		}
	}
}

// TestReplaceSource: a corrected export replaces the source whole: the
// corrected row's old record, the dropped row and one of three identical
// rows go; the other source's record stays.
func TestReplaceSource(t *testing.T) {
	st, _ := newStore(t)
	opts := Options{Source: "ctdc-global", Replace: true}
	importCTDC(t, st, opts, writeFile(t, "v1.csv", ctdcExport))
	if _, err := Run(context.Background(), st, Options{Source: "crm"}, writeFile(t, "crm.csv", "case_id,registered_on\nK-1,2023-04-01\n")); err != nil {
		t.Fatal(err)
	}
	before := storedCases(t, st)
	v2 := `Terms of use notice,yearOfRegistration,Datasource,gender,citizenship
,2023,Hotline,Woman,AL
,2023,Case Management,-99,RS
,2023,Hotline,Woman,AL
`
	rep := importCTDC(t, st, opts, writeFile(t, "v2.csv", v2))
	if rep.Stats.Removed != 3 || rep.Stats.Added != 1 || rep.Stats.Updated != 2 || rep.Replaced != "ctdc-global" {
		t.Errorf("stats %+v (replaced %q); want 3 removed, 1 added, 2 updated", rep.Stats, rep.Replaced)
	}
	after := storedCases(t, st)
	if len(after) != 4 || count(t, st) != 4 {
		t.Fatalf("%d cases (count %d), want 4", len(after), count(t, st))
	}
	if _, ok := after["K-1"]; !ok {
		t.Error("the crm source's record was removed")
	}
	kept := 0
	for id := range after {
		if _, ok := before[id]; ok {
			kept++
		}
	}
	if kept != 3 { // two of the identical rows, and K-1
		t.Errorf("%d records kept from before, want 3", kept)
	}
	if got := yearTotal(t, st, "2023"); got != 4 {
		t.Errorf("2023 counts %d, want 4", got)
	}
}

// TestReplaceAllOrNothing: a replacing import with one bad row stores
// nothing and removes nothing; --replace needs --source and refuses
// --skip-invalid.
func TestReplaceAllOrNothing(t *testing.T) {
	st, _ := newStore(t)
	opts := Options{Format: FormatCTDC, Source: "ctdc-global", Replace: true}
	importCTDC(t, st, opts, writeFile(t, "v1.csv", ctdcExport))
	before := contents(t, st)
	bad := "Terms,yearOfRegistration,gender\n,2023,Woman\n,2023,Mle\n"
	rep, err := Run(context.Background(), st, opts, writeFile(t, "bad.csv", bad))
	if err == nil || rep.Imported || rep.Invalid != 1 {
		t.Fatalf("bad file: imported %v, %d invalid, err %v", rep.Imported, rep.Invalid, err)
	}
	if got := contents(t, st); !maps.Equal(got, before) || count(t, st) != 5 {
		t.Errorf("a refused replacing import changed the store: %d cases, count %d", len(got), count(t, st))
	}
	for _, o := range []Options{{Format: FormatCTDC, Replace: true}, {Format: FormatCTDC, Source: "x", Replace: true, SkipInvalid: true}} {
		if _, err := Run(context.Background(), st, o, writeFile(t, "v1.csv", ctdcExport)); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if got := contents(t, st); !maps.Equal(got, before) {
		t.Error("a refused option changed the store")
	}
}
