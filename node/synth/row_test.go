package synth

import (
	"bytes"
	"context"
	"encoding/csv"
	"testing"

	"roundtable/aggregate"
)

// csvLine is what encoding/csv writes for fields.
func csvLine(t testing.TB, fields ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(fields); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return b.Bytes()
}

func TestAppendFieldMatchesEncodingCSV(t *testing.T) {
	fields := []string{
		"", "plain", "a,b", `say "hi"`, `"`, `""`, " leading space", "\tleading tab",
		"trailing space ", "line\nbreak", "cr\rhere", `\.`, `\.x`, "ünïcode, too", "\u00a0nbsp first",
	}
	for _, f := range fields {
		got := append(appendField(nil, f), '\n')
		if want := csvLine(t, f); !bytes.Equal(got, want) {
			t.Errorf("appendField(%q) = %q, encoding/csv writes %q", f, got, want)
		}
	}
}

func FuzzAppendField(f *testing.F) {
	for _, s := range []string{"", "a,b", `x"y`, " z", `\.`, "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := append(appendField(nil, s), '\n')
		if want := csvLine(t, s); !bytes.Equal(got, want) {
			t.Fatalf("appendField(%q) = %q, encoding/csv writes %q", s, got, want)
		}
	})
}

// TestRowMatchesEncodingCSV checks whole generated files line by line
// against encoding/csv fed with aggregate.FieldValue, memo included.
func TestRowMatchesEncodingCSV(t *testing.T) {
	for _, p := range Partners() {
		var want bytes.Buffer
		w := csv.NewWriter(&want)
		if err := w.Write(aggregate.Columns); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(aggregate.Columns))
		_, err := Cases(context.Background(), Options{Partner: p, From: 2018, To: 2023, Seed: 9}, func(c *aggregate.Case) error {
			for i, col := range aggregate.Columns {
				row[i] = aggregate.FieldValue(c, col)
			}
			return w.Write(row)
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Flush()
		got, _ := generate(t, Options{Partner: p, From: 2018, To: 2023, Seed: 9})
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s: Generate differs from encoding/csv over FieldValue", p)
		}
	}
}
