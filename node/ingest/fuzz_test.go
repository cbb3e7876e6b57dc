package ingest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzImport feeds arbitrary bytes to Run in one format: it must never
// panic, and when it returns an error the store must be unchanged.
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
		before := count(t, st)
		rep, err := Run(context.Background(), st, Options{Format: format}, path)
		after := count(t, st)
		if err != nil && (after != before || rep.Imported) {
			t.Fatalf("failed import changed the store: %d → %d cases (%v)", before, after, err)
		}
		if err == nil && after < before {
			t.Fatalf("import lost cases: %d → %d", before, after)
		}
		for _, e := range rep.Errors {
			if !strings.HasPrefix(e, path+":") {
				t.Fatalf("error without FILE:LINE: %q", e)
			}
		}
	})
}

func FuzzCSV(f *testing.F) {
	fuzzImport(f, FormatCSV, "testdata/quirks.csv", "testdata/crlf.csv",
		"case_id,registered_on,sex\nA,2023-01-01,Mle\n", "case_id,registered_on\n\"A\nB\",2023-01-01\n", "\xef\xbb\xbf")
}

func FuzzCTDC(f *testing.F) {
	fuzzImport(f, FormatCTDC, "testdata/ctdc_small.csv", "t,yearOfRegistration,isForcedLabour\n,2020,2\n", "t,yearOfRegistration\n")
}

func FuzzJSONL(f *testing.F) {
	fuzzImport(f, FormatJSONL, "testdata/valid.jsonl", `{"case_id":"A","registered_on":"2023-01-01","services":["Legal",1]}`, "{}\n[]\nnull\n")
}
