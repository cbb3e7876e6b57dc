package ingest

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/node/store"
)

// testKDF keeps Argon2id cheap in tests.
var testKDF = store.MinKDFParams()

var testPass = []byte("test passphrase")

func newStore(tb testing.TB) (*store.Store, string) {
	tb.Helper()
	dir := tb.TempDir()
	if err := store.Init(dir, "RS", testPass, testKDF); err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(dir, testPass)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, dir
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

// pickSet joins up to max distinct values of xs with ";".
func pickSet(r *rand.Rand, xs []string, max int) string {
	n := r.IntN(max + 1)
	seen := map[int]bool{}
	var out []string
	for range n {
		i := r.IntN(len(xs))
		if !seen[i] {
			seen[i] = true
			out = append(out, xs[i])
		}
	}
	return strings.Join(out, ";")
}

var (
	genCountries = []string{"AL", "BA", "XK", "RS", "ME", "MK", "DE", "AT", "IT", "SY", "AF", "UA", ""}
	genNotes     = []string{"", "", "", "referred after outreach in the bus station", "follow-up planned", "interpreter needed; prefers female caseworker"}
)

// genRow writes a realistic, valid row in aggregate.Columns order.
func genRow(r *rand.Rand, i int, rec []string) []string {
	year := 2019 + r.IntN(6)
	date := aggregate.DateOf(year, 1, 1) + aggregate.Date(r.IntN(365))
	age := 4 + r.IntN(60)
	by, ag := strconv.Itoa(year-age), strconv.Itoa(age)
	switch r.IntN(5) {
	case 0:
		by = ""
	case 1:
		ag = ""
	}
	unacc := "false"
	if age < 18 && r.IntN(3) == 0 {
		unacc = "true"
	}
	// A store's own records: a foreign citizen is exploited in RS (or
	// where is unknown), so none is refused as identified elsewhere.
	cit, expl := pick(r, genCountries), pick(r, genCountries)
	if cit != "RS" && cit != "" && expl != "" {
		expl = "RS"
	}
	pid := ""
	if r.IntN(3) == 0 {
		pid = fmt.Sprintf("P-%06d", r.IntN(i+1))
	}
	rec = append(rec[:0],
		fmt.Sprintf("RS-%07d", i), pid, date.String(),
		pick(r, aggregate.Vocabulary("status")), pick(r, []string{"Female", "Female", "Male", "Unknown"}), by, ag,
		cit, expl,
		pickSet(r, aggregate.Vocabulary("exploitation_forms"), 2), pickSet(r, aggregate.Vocabulary("labour_types"), 1),
		pickSet(r, aggregate.Vocabulary("sexual_types"), 1), pickSet(r, aggregate.Vocabulary("means_of_control"), 3),
		pick(r, aggregate.Vocabulary("recruitment")), pick(r, aggregate.Vocabulary("recruiter_relation")),
		pick(r, aggregate.Vocabulary("referral_source")), pick(r, aggregate.Vocabulary("migrant_status")),
		unacc, pickSet(r, aggregate.Vocabulary("services"), 3), pick(r, genNotes),
	)
	return rec
}

// writeGenCSV writes n generated rows (deterministic for a seed) to path.
func writeGenCSV(tb testing.TB, path string, n int, seed uint64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	w.Write(aggregate.Columns)
	r := rand.New(rand.NewPCG(seed, 1))
	rec := make([]string, 0, len(aggregate.Columns))
	for i := range n {
		rec = genRow(r, i, rec)
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		tb.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}
