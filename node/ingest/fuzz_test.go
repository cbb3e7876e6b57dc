package ingest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/store"
)

// fuzzImport feeds arbitrary bytes to Run in one format: it must never
// panic; when it returns an error the store's contents must be exactly as
// before, case by case and field by field; when it succeeds, the cases it
// did not add or update must be untouched and its statistics must say
// what changed.
func fuzzImport(f *testing.F, format string, seeds ...string) {
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		} else {
			f.Add([]byte(s))
		}
	}
	st, _ := newStore(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		before := contents(t, st)
		rep, err := Run(context.Background(), st, Options{Format: format}, path)
		after := contents(t, st)
		if n := count(t, st); n != len(after) {
			t.Fatalf("Count says %d cases, reading them gives %d", n, len(after))
		}
		if err != nil {
			if rep.Imported {
				t.Fatalf("import failed (%v) but reports Imported", err)
			}
			if !maps.Equal(before, after) {
				t.Fatalf("failed import changed the store: %d → %d cases, %d differ (%v)", len(before), len(after), len(diffKeys(before, after)), err)
			}
		} else {
			var added, changed int
			for id, c := range after {
				old, ok := before[id]
				switch {
				case !ok:
					added++
				case old != c:
					changed++
				}
			}
			for id := range before {
				if _, ok := after[id]; !ok {
					t.Fatalf("import lost case %q", id)
				}
			}
			if added != rep.Stats.Added || changed > rep.Stats.Updated {
				t.Fatalf("import added %d and changed %d cases, but reports %+v", added, changed, rep.Stats)
			}
		}
		for _, e := range rep.Errors {
			if !strings.HasPrefix(e, path+":") {
				t.Fatalf("error without FILE:LINE: %q", e)
			}
		}
	})
}

// contents is every stored case, by case_id, printed with all its fields.
func contents(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.Cases(context.Background(), func(c *aggregate.Case) error {
		if _, dup := out[c.CaseID]; dup {
			return fmt.Errorf("case %q stored twice", c.CaseID)
		}
		out[c.CaseID] = fmt.Sprintf("%+v", *c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func FuzzCSV(f *testing.F) {
	fuzzImport(f, FormatCSV, "testdata/quirks.csv", "testdata/crlf.csv",
		// A stored case; a file that updates it beside an invalid row (the
		// update must not land); a file that only updates it (the count
		// stays, the contents change).
		"case_id,registered_on,sex\nUPD-1,2023-01-01,Female\n", "case_id,registered_on,sex\nUPD-1,2023-02-02,Male\nUPD-2,2023-01-01,Mle\n",
		"case_id,registered_on,sex\nUPD-1,2023-03-03,Male\n",
		"case_id,registered_on,sex\nA,2023-01-01,Mle\n", "case_id,registered_on\n\"A\nB\",2023-01-01\n", "\xef\xbb\xbf")
}

func FuzzCTDC(f *testing.F) {
	fuzzImport(f, FormatCTDC, "testdata/ctdc_small.csv", "t,yearOfRegistration,isForcedLabour\n,2020,2\n", "t,yearOfRegistration\n")
}

func FuzzJSONL(f *testing.F) {
	fuzzImport(f, FormatJSONL, "testdata/valid.jsonl", `{"case_id":"A","registered_on":"2023-01-01","services":["Legal",1]}`, "{}\n[]\nnull\n")
}
