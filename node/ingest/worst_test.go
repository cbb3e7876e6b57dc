package ingest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// worstInputs are the slowest uploads found (by fuzzing and by hand) per
// byte, each about size bytes: one huge record, lines that are all
// separators, rows that are all invalid or all the same, JSON at its
// limits.
func worstInputs(size int) []struct{ name, format, data string } {
	rep := func(s string, n int) string { return strings.Repeat(s, max(n/len(s), 1)) }
	ctdcHead := "terms," + strings.Join(ctdcTestColumns, ",") + "\n"
	return []struct{ name, format, data string }{
		{"a line of commas", FormatCSV, "case_id,registered_on\n" + rep(",", size)},
		{"a header of commas", FormatCSV, rep(",", size)},
		{"one quoted field", FormatCSV, "case_id,registered_on\n\"" + rep(`""`, size) + "\",2024-01-01\n"},
		{"blank rows", FormatCSV, "case_id,registered_on\n" + rep(",\n", size)},
		{"empty lines", FormatCSV, "case_id,registered_on\n" + rep("\n", size)},
		{"every row invalid", FormatCSV, "case_id,registered_on,sex\n" + rep("A,2024-01-01,Mle\n", size)},
		{"one case_id again and again", FormatCSV, "case_id,registered_on,sex\n" + rep("A,2024-01-01,Male\n", size)},
		{"CTDC line of commas", FormatCTDC, ctdcHead + rep(",", size)},
		{"CTDC smallest rows", FormatCTDC, "t,yearOfRegistration\n" + rep(",2020\n", size)},
		{"JSON nested a megabyte deep", FormatJSONL, rep("[", 1<<20-1) + "\n"},
		{"JSON lines over the limit", FormatJSONL, rep(rep("x", 1<<20+5)+"\n", size)},
		{"JSON one key a hundred thousand times", FormatJSONL, "{" + rep(`"case_id":"A",`, 1<<20-100) + `"registered_on":"2024-01-01"}` + "\n"},
		{"JSON empty lines", FormatJSONL, rep("\n", size)},
		{"JSON array of a hundred thousand", FormatJSONL, `{"case_id":"A","registered_on":"2024-01-01","services":[` + rep(`"Legal",`, 1<<20-100) + `"Legal"]}` + "\n"},
	}
}

// TestImportWorstInputsBounded imports each of the worst inputs found and
// checks that none costs more time or memory than a normal file of the
// same size, or of the same number of lines, by more than a factor of 4
// (before the line cap, a line of commas took 3–6× the time and 9× the
// allocations): the import's
// cost is linear in what it reads, so a hostile upload is no slower than
// an honest one of its size. Both are timed in the same run, so a loaded
// machine slows the baseline too.
func TestImportWorstInputsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("times imports of a few megabytes")
	}
	const size = 1 << 20
	const slack = 4
	ctx := context.Background()
	normal := filepath.Join(t.TempDir(), "normal.csv")
	writeGenCSV(t, normal, size/190, 1)
	nb, err := os.ReadFile(normal)
	if err != nil {
		t.Fatal(err)
	}
	var alloc uint64 // bytes allocated by the last timeImport
	timeImport := func(format, data string) time.Duration {
		st, _ := newStore(t)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		RunReader(ctx, st, Options{Format: format, AllowForeign: true}, "in", strings.NewReader(data))
		d := time.Since(start)
		runtime.ReadMemStats(&m1)
		alloc = m1.TotalAlloc - m0.TotalAlloc
		return d
	}
	// The fastest of three: the baseline is what the work costs, not
	// what the machine's other load added to it.
	base := timeImport(FormatCSV, string(nb))
	for range 2 {
		base = min(base, timeImport(FormatCSV, string(nb)))
	}
	baseLines, baseAlloc := bytes.Count(nb, []byte("\n")), alloc
	t.Logf("baseline: %d bytes, %d lines of a normal CSV in %v, %d MB allocated", len(nb), baseLines, base, baseAlloc>>20)
	for _, in := range worstInputs(size) {
		d := min(timeImport(in.format, in.data), timeImport(in.format, in.data))
		scale := max(float64(len(in.data))/float64(len(nb)), float64(strings.Count(in.data, "\n"))/float64(baseLines), 1)
		bound := time.Duration(slack*scale*float64(base)) + 100*time.Millisecond
		t.Logf("%-40s %8d bytes %7d lines: %v (bound %v), %d MB allocated", in.name, len(in.data), strings.Count(in.data, "\n"),
			d.Round(time.Millisecond), bound.Round(time.Millisecond), alloc>>20)
		if d > bound {
			t.Errorf("%s: %v, more than %d× a normal file of its size or lines (%v)", in.name, d, slack, bound)
		}
		// Allocation is exact where time is noisy: before the line cap, a
		// line of commas allocated 9× what a normal file does.
		if limit := uint64(slack * scale * float64(baseAlloc)); alloc > limit {
			t.Errorf("%s: allocated %d MB, more than %d× a normal file of its size or lines (%d MB)", in.name, alloc>>20, slack, limit>>20)
		}
	}
}
