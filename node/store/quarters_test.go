package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// These tests run the release workflow's data path (node.draw without the
// ledger and the noise): read the quarter book, tabulate through it, fix
// the quarters of the newly counted people. Each "release" returns the
// exact victims total, which the tiny stores below make a person count.

// release tabulates period over st the way node.draw does and records the
// quarters it fixed; it returns the exact number of people counted.
func release(t *testing.T, st *Store, period string) int64 {
	t.Helper()
	book, err := st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	tables, fixed, err := aggregate.TabulateFixed(context.Background(), aggregate.CatalogV1(), mustPeriod(t, period),
		[]string{"victims"}, func(fn func(*aggregate.Case) error) error { return st.Cases(context.Background(), fn) }, book)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FixQuarters(fixed); err != nil {
		t.Fatal(err)
	}
	return victims(tables)
}

// unfixed is what the tabulation counted before this change: the quarter
// recomputed from the cases at each release.
func unfixed(t *testing.T, st *Store, period string) int64 {
	t.Helper()
	tables, err := aggregate.Tabulate(context.Background(), aggregate.CatalogV1(), mustPeriod(t, period),
		[]string{"victims"}, func(fn func(*aggregate.Case) error) error { return st.Cases(context.Background(), fn) })
	if err != nil {
		t.Fatal(err)
	}
	return victims(tables)
}

func victims(tables []*aggregate.Table) int64 {
	for _, tb := range tables {
		if tb.Indicator().Name == "victims" && tb.NumCells() == 1 { // the total margin
			return tb.Count(0)
		}
	}
	panic("no victims total")
}

func mustPeriod(t *testing.T, s string) aggregate.Period {
	t.Helper()
	p, err := aggregate.ParsePeriod(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// personCase is case id of person on the given day of 2024.
func personCase(id, person string, month time.Month, day int) *aggregate.Case {
	c := testCase(id, "")
	c.PersonID = person
	c.RegisteredOn = aggregate.DateOf(2024, month, day)
	return c
}

func importFrom(t *testing.T, st *Store, opts ImportOptions, cases ...*aggregate.Case) ImportStats {
	t.Helper()
	imp, err := st.beginImport(context.Background(), 3, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if err := imp.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	s, err := imp.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCounts(t *testing.T, st *Store, want map[string]int64) {
	t.Helper()
	for _, p := range []string{"2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"} {
		if w, ok := want[p]; ok {
			if got := release(t, st, p); got != w {
				t.Errorf("%s release counted %d people, want %d", p, got, w)
			}
		}
	}
}

// TestLateEntryCountsOnce is the P-7: a May case; a March case
// entered late puts P-7 in Q1 and the Q1 release counts P-7; the March case
// is then corrected to November. Recomputing the quarter would count P-7
// again in Q2 (shown first); with the quarter fixed at the Q1 release, the
// Q2 release does not, and neither do Q3, Q4 or a second Q1 release.
func TestLateEntryCountsOnce(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 3, personCase("may", "P-7", time.May, 10))
	importCases(t, st, 3, personCase("march", "P-7", time.March, 3)) // entered late
	if got := release(t, st, "2024-Q1"); got != 1 {
		t.Fatalf("Q1 release counted %d, want P-7", got)
	}
	importCases(t, st, 3, personCase("march", "P-7", time.November, 3)) // corrected
	if got := unfixed(t, st, "2024-Q2"); got != 1 {
		t.Fatalf("without fixed quarters Q2 counts %d; the test would prove nothing", got)
	}
	wantCounts(t, st, map[string]int64{"2024-Q2": 0, "2024-Q3": 0, "2024-Q4": 0, "2024-Q1": 1})
	if got := release(t, st, "2024"); got != 1 {
		t.Errorf("yearly release counted %d, want P-7 once", got)
	}

	// The assignment survives a restart of the store.
	st.Close()
	st, err := Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	book, err := st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	if q := book.Quarter("p:P-7", 2024); q != 1 {
		t.Errorf("after reopening, P-7 is fixed to Q%d of 2024, want Q1", q)
	}
	if q := book.Quarter("p:P-7", 2023); q != 0 {
		t.Errorf("P-7 fixed to Q%d of 2023, never released", q)
	}
	wantCounts(t, st, map[string]int64{"2024-Q1": 1, "2024-Q2": 0})
}

// TestCorrectionIntoEarlierQuarter: P-7 counted in Q2 (May); a case is then
// corrected to February. The Q1 release leaves P-7 out, Q2 keeps them.
func TestCorrectionIntoEarlierQuarter(t *testing.T) {
	st, _ := newStore(t)
	importCases(t, st, 3, personCase("a", "P-7", time.May, 10), personCase("b", "P-7", time.August, 1))
	wantCounts(t, st, map[string]int64{"2024-Q2": 1})
	importCases(t, st, 3, personCase("b", "P-7", time.February, 1))
	if got := unfixed(t, st, "2024-Q1"); got != 1 {
		t.Fatalf("without fixed quarters Q1 counts %d; the test would prove nothing", got)
	}
	wantCounts(t, st, map[string]int64{"2024-Q1": 0, "2024-Q2": 1, "2024-Q3": 0})
}

// TestDeletedPersonContributesNothing: P-7 is fixed to Q1; every case of
// 2024 is then removed (a replacing import). P-7 counts nowhere, and the
// assignment stays: a case added later in August still counts in Q1, not
// Q3.
func TestDeletedPersonContributesNothing(t *testing.T) {
	st, _ := newStore(t)
	src := ImportOptions{Source: "crm", Replace: true}
	importFrom(t, st, src, personCase("a", "P-7", time.March, 1), personCase("x", "P-8", time.March, 2))
	wantCounts(t, st, map[string]int64{"2024-Q1": 2})
	if s := importFrom(t, st, src, personCase("x", "P-8", time.March, 2)); s.Removed != 1 {
		t.Fatalf("replace removed %d, want P-7's case", s.Removed)
	}
	wantCounts(t, st, map[string]int64{"2024-Q1": 1, "2024-Q2": 0, "2024-Q3": 0, "2024-Q4": 0})
	importFrom(t, st, src, personCase("x", "P-8", time.March, 2), personCase("c", "P-7", time.August, 1))
	wantCounts(t, st, map[string]int64{"2024-Q1": 2, "2024-Q3": 0})
}

// TestYearlyAfterQuarterly: a Q1 release fixes P-7; P-9 (June) is counted
// first by the yearly release, which fixes them to Q2. Each counts once in
// the year, and a later correction of P-9 to February does not move them.
func TestYearlyAfterQuarterly(t *testing.T) {
	st, _ := newStore(t)
	importCases(t, st, 3, personCase("a", "P-7", time.March, 1), personCase("b", "P-9", time.June, 5))
	wantCounts(t, st, map[string]int64{"2024-Q1": 1})
	importCases(t, st, 3, personCase("a", "P-7", time.October, 1)) // P-7 moved after Q1's release
	if got := release(t, st, "2024"); got != 2 {
		t.Errorf("yearly release counted %d, want 2 (each person once)", got)
	}
	importCases(t, st, 3, personCase("b", "P-9", time.February, 5))
	wantCounts(t, st, map[string]int64{"2024-Q1": 1, "2024-Q2": 1, "2024-Q4": 0})
	book, _ := st.QuarterBook()
	if q7, q9 := book.Quarter("p:P-7", 2024), book.Quarter("p:P-9", 2024); q7 != 1 || q9 != 2 {
		t.Errorf("fixed quarters P-7 Q%d, P-9 Q%d; want Q1 and Q2", q7, q9)
	}
}

// TestQuarterBookSealed: the book's file bytes show no person id (nor a
// case id standing for a person), a conflicting assignment is refused
// whole, and a tampered entry does not decrypt.
func TestQuarterBookSealed(t *testing.T) {
	st, dir := newStore(t)
	as := []aggregate.Assignment{
		{Person: "p:PERSON-QUOKKA-99", Year: 2024, Quarter: 3},
		{Person: "c:CASE-NARWHAL-12", Year: 2023, Quarter: 1},
	}
	if err := st.FixQuarters(as); err != nil {
		t.Fatal(err)
	}
	// Fixing the same quarter again is a no-op; another quarter is refused
	// and nothing of the batch is written.
	if err := st.FixQuarters(as[:1]); err != nil {
		t.Errorf("re-fixing the same quarter: %v", err)
	}
	err := st.FixQuarters([]aggregate.Assignment{{Person: "p:NEW", Year: 2024, Quarter: 2}, {Person: "p:PERSON-QUOKKA-99", Year: 2024, Quarter: 4}})
	if !errors.Is(err, ErrQuarterConflict) {
		t.Errorf("moving a fixed person to Q4: %v, want ErrQuarterConflict", err)
	}
	book, err := st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	if book.Len() != 2 || book.Quarter("p:NEW", 2024) != 0 || book.Quarter("p:PERSON-QUOKKA-99", 2024) != 3 {
		t.Errorf("after the refused batch: %d entries, NEW Q%d, QUOKKA Q%d", book.Len(), book.Quarter("p:NEW", 2024), book.Quarter("p:PERSON-QUOKKA-99", 2024))
	}
	st.Close()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"QUOKKA", "NARWHAL", "p:NEW"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q is readable in the store file", s)
		}
	}
	// Tamper: swap the two sealed values. Each is bound to its key.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuarters)
		var ks, vs [][]byte
		b.ForEach(func(k, v []byte) error { ks, vs = append(ks, clone(k)), append(vs, clone(v)); return nil })
		b.Put(ks[0], vs[1])
		return b.Put(ks[1], vs[0])
	})
	db.Close()
	st, err = Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.QuarterBook(); err == nil {
		t.Error("swapped quarter entries were read without error")
	}
}
