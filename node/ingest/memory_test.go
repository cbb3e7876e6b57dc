package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileUploads are uploads of about size bytes shaped to make a parser
// allocate far more than it reads: separators, one field or one record as
// large as the whole upload, and records of a million fields.
func hostileUploads(size int) []struct{ name, format, data string } {
	rep := func(s string, n int) string { return strings.Repeat(s, max(n/len(s), 1)) }
	head := "case_id,registered_on\n"
	longest := rep(",", maxCSVRecord-1) + "\n" // the longest line the cap lets through
	return []struct{ name, format, data string }{
		{"commas", FormatCSV, head + rep(",", size)},
		{"commas in lines at the cap", FormatCSV, head + rep(longest, size)},
		{"one unquoted field", FormatCSV, head + rep("a", size)},
		{"one quoted field over many lines", FormatCSV, head + "\"" + rep("a\n", size) + "\",2024-01-01\n"},
		{"a record of a million fields", FormatCSV, head + rep(`"`+"\n"+`",`, 4<<20) + "\n" + rep("A,2024-01-01\n", size-4<<20)},
		{"records of a million fields", FormatCSV, head + rep(`"`+"\n"+`",`, size)},
		{"CTDC commas", FormatCTDC, "t,yearOfRegistration\n" + rep(",", size)},
		{"CTDC one quoted field", FormatCTDC, "t,yearOfRegistration\n\"" + rep("a\n", size) + "\",2020\n"},
		{"JSON lines of a hundred thousand keys", FormatJSONL, rep("{"+rep(`"case_id":"A",`, maxJSONLine-100)+`"registered_on":"2024-01-01"}`+"\n", size)},
		{"JSON lines of long arrays", FormatJSONL, rep(`{"case_id":"A","registered_on":"2024-01-01","services":[`+rep(`"",`, maxJSONLine-100)+`""]}`+"\n", size)},
		{"JSON lines of distinct keys", FormatJSONL, rep(distinctKeys(maxJSONLine-100)+"\n", size)},
		{"JSON one line", FormatJSONL, rep("[", size)},
	}
}

// distinctKeys is a JSON object of about n bytes with as many different
// keys as fit.
func distinctKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "\"k%d\":0,", i)
	}
	b.WriteString(`"case_id":"A"}`)
	return b.String()
}

// peakHeap runs f and returns the most heap in use while it ran, above
// what was in use before, and the bytes it allocated in all. The heap is
// sampled every millisecond, so a short spike can be missed; TotalAlloc
// cannot miss anything and bounds the peak from above.
func peakHeap(f func()) (peak, total uint64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var (
		mu   sync.Mutex
		high = before.HeapInuse
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&m)
			mu.Lock()
			high = max(high, m.HeapInuse)
			mu.Unlock()
		}
	}()
	f()
	close(done)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return max(high, after.HeapInuse) - before.HeapInuse, after.TotalAlloc - before.TotalAlloc
}

// TestHostileUploadMemory uploads 16 MiB shaped to blow up the parser
// (the attack of issue 10: 16 MiB of commas took a node from 148 MB to
// 1.68 GB resident) and checks that none holds more than 10× its size on
// the heap at any time, nor allocates in all more than 2× what a normal
// file of the same size allocates (measured in the same run). The record,
// field and fields-per-record caps of csv.go and jsonl.go are what hold
// it: without them a record of a million fields costs about 50 bytes per
// input byte.
func TestHostileUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 16 MiB uploads")
	}
	const size = 16 << 20
	ctx := context.Background()
	normal := filepath.Join(t.TempDir(), "normal.csv")
	writeGenCSV(t, normal, size/190, 1)
	nb, err := os.ReadFile(normal)
	if err != nil {
		t.Fatal(err)
	}
	upload := func(format, data string) (peak, total uint64, rep Report, err error) {
		st, _ := newStore(t)
		peak, total = peakHeap(func() {
			rep, err = RunReader(ctx, st, Options{Format: format, AllowForeign: true}, "upload", strings.NewReader(data))
		})
		return peak, total, rep, err
	}
	basePeak, baseTotal, rep, err := upload(FormatCSV, string(nb))
	if err != nil || !rep.Imported {
		t.Fatalf("normal file: %v (%d of %d rows invalid)", err, rep.Invalid, rep.Rows)
	}
	t.Logf("%-40s %9d bytes: heap peak +%4d MiB, allocated %5d MiB", "normal file (baseline)", len(nb), basePeak>>20, baseTotal>>20)
	for _, in := range hostileUploads(size) {
		data := in.data
		peak, total, rep, err := upload(in.format, data)
		msg := "imported nothing"
		if err != nil {
			msg = clip(err.Error())
		}
		t.Logf("%-40s %9d bytes: heap peak +%4d MiB, allocated %5d MiB; %d rows: %s", in.name, len(data), peak>>20, total>>20, rep.Rows, msg)
		if limit := 10 * uint64(len(data)); peak > limit {
			t.Errorf("%s: %d MiB on the heap, more than 10× its %d MiB", in.name, peak>>20, len(data)>>20)
		}
		if limit := 2 * baseTotal * uint64(len(data)) / uint64(len(nb)); total > limit {
			t.Errorf("%s: allocated %d MiB, more than twice a normal file of its size (%d MiB)", in.name, total>>20, baseTotal>>20)
		}
	}
}

// TestRecordCaps checks each CSV cap at its edge: a record exactly at a
// cap still parses (and is judged by the schema), one byte or field more
// refuses the file with the line and the cap in words.
func TestRecordCaps(t *testing.T) {
	head := "case_id,registered_on\n"
	quoted := func(n int) string { return `"` + strings.Repeat("a\n", n/2) + `"` }
	tests := []struct {
		name, data, refused string // refused: "" if the caps let it through
	}{
		{"field at the cap", head + strings.Repeat("a", maxFieldBytes) + ",2024-01-01\n", ""},
		{"field over the cap", head + strings.Repeat("a", maxFieldBytes+1) + ",2024-01-01\n", "line 2: a field is longer than 64 KiB"},
		{"quoted field over the cap", head + quoted(maxFieldBytes) + ",2024-01-01\n", "a field is longer than 64 KiB"},
		{"fields at the cap", head + "A,2024-01-01" + strings.Repeat(",", maxCSVFields-2) + "\n", ""},
		{"fields over the cap", head + "A,2024-01-01" + strings.Repeat(",", maxCSVFields-1) + "\n", "line 2: a record has more than 1024 fields"},
		{"quoted commas are data", head + `"` + strings.Repeat(",", 2*maxCSVFields) + `",2024-01-01` + "\n", ""},
		{"record over the cap", head + strings.Repeat(strings.Repeat("a", 60<<10)+",", 5) + "\n", "line 2: a record is longer than 256 KiB"},
		{"doubled quotes stay quoted", head + `"a""` + strings.Repeat(",", 2*maxCSVFields) + `",2024-01-01` + "\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := newStore(t)
			rep, err := RunReader(context.Background(), st, Options{}, "in.csv", strings.NewReader(tt.data))
			if tt.refused == "" {
				if rep.Rows != 1 {
					t.Fatalf("read %d rows, want the one record judged by the schema (err %v)", rep.Rows, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("err = %v, want it to say %q", err, tt.refused)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("%v is not an InputError, so the API would answer 500", err)
			}
		})
	}
}
