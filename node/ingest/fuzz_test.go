package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/store"
)

// fuzzImport feeds arbitrary bytes to Run in a format: it must never
// panic; when it returns an error the store's contents must be exactly as
// before, case by case and field by field; when it succeeds, the cases it
// did not add or update must be untouched and its statistics must say
// what changed.
func fuzzImport(f *testing.F, seeds map[string][]string) {
	formats := []string{FormatCSV, FormatCTDC, FormatJSONL}
	for i, format := range formats {
		for _, s := range seeds[format] {
			b, err := os.ReadFile(s)
			if err != nil {
				b = []byte(s)
			}
			f.Add(uint8(i), b)
		}
	}
	st, _ := newStore(f)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		format := formats[int(which)%len(formats)]
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

// The parser targets feed arbitrary bytes to one format's reader and
// validator alone, with no store, so they run thousands of inputs a
// second. FuzzImport keeps the store-level all-or-nothing property.

var (
	csvSeeds = []string{"testdata/quirks.csv", "testdata/crlf.csv",
		"case_id,registered_on,sex\nA,2023-01-01,Mle\n", "case_id,registered_on\n\"A\nB\",2023-01-01\n", "\xef\xbb\xbf",
		"case_id,registered_on,citizenship,country_of_exploitation\nF-1,2024-01-01,AL,AL\n"}
	ctdcSeeds  = []string{"testdata/ctdc_small.csv", "t,yearOfRegistration,isForcedLabour\n,2020,2\n", "t,yearOfRegistration\n"}
	jsonlSeeds = []string{"testdata/valid.jsonl", `{"case_id":"A","registered_on":"2023-01-01","services":["Legal",1]}`, "{}\n[]\nnull\n"}
)

func addSeeds(f *testing.F, seeds []string) {
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		} else {
			f.Add([]byte(s))
		}
	}
}

// fuzzParse reads data in format: it must never panic or fail to end,
// a header problem is the only error, every row it returns is either
// invalid with a line number or a case that passes Validate, and reading
// the same bytes again gives the same rows (CTDC ids are content hashes).
func fuzzParse(f *testing.F, format string, seeds []string) {
	addSeeds(f, seeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		first, err := parseAll(format, data)
		if err != nil {
			return
		}
		if len(first) > len(data)+1 {
			t.Fatalf("%d rows from %d bytes", len(first), len(data))
		}
		line := 0
		for _, r := range first {
			if r.line < line || r.line < 1 {
				t.Fatalf("row line %d after line %d", r.line, line)
			}
			line = r.line
			if r.err == nil {
				if err := r.c.Validate(); err != nil || r.c.CaseID == "" {
					t.Fatalf("line %d: a valid row holds an invalid case (%v): %+v", r.line, err, r.c)
				}
			}
		}
		again, _ := parseAll(format, data)
		if len(again) != len(first) {
			t.Fatalf("second read: %d rows, first: %d", len(again), len(first))
		}
		for i := range first {
			if first[i].c != again[i].c || fmt.Sprint(first[i].err) != fmt.Sprint(again[i].err) {
				t.Fatalf("row %d differs between two reads: %+v / %+v", i, first[i], again[i])
			}
		}
	})
}

// parseAll reads every row of data as Run would, without a store.
func parseAll(format string, data []byte) ([]row, error) {
	src, err := newSource(format, "in", stripBOM(bytes.NewReader(data)))
	if err != nil {
		return nil, err
	}
	var out []row
	for {
		var r row
		if err := src.next(&r); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		r.raw = nil // valid only until the next call
		out = append(out, r)
	}
}

func FuzzCSV(f *testing.F)   { fuzzParse(f, FormatCSV, csvSeeds) }
func FuzzCTDC(f *testing.F)  { fuzzParse(f, FormatCTDC, ctdcSeeds) }
func FuzzJSONL(f *testing.F) { fuzzParse(f, FormatJSONL, jsonlSeeds) }

// FuzzImport is the store-level target: any bytes in any format through
// Run leave the store as it was or change exactly what the report says
// (see fuzzImport). It opens a real store, so it runs far fewer inputs.
func FuzzImport(f *testing.F) {
	fuzzImport(f, map[string][]string{
		FormatCSV: append(csvSeeds,
			// A stored case; a file that updates it beside an invalid row (the
			// update must not land); a file that only updates it (the count
			// stays, the contents change).
			"case_id,registered_on,sex\nUPD-1,2023-01-01,Female\n", "case_id,registered_on,sex\nUPD-1,2023-02-02,Male\nUPD-2,2023-01-01,Mle\n",
			"case_id,registered_on,sex\nUPD-1,2023-03-03,Male\n"),
		FormatCTDC:  ctdcSeeds,
		FormatJSONL: jsonlSeeds,
	})
}
