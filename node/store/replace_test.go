package store

import (
	"context"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReplaceRemovesExactlyMissing: a replacing import of source "ctdc"
// removes the ctdc records it no longer holds, and nothing of another
// source or of no source; the removals are counted, compacted away, and a
// removed case_id imported again is new.
func TestReplaceRemovesExactlyMissing(t *testing.T) {
	st, _ := newStore(t)
	ctdc := ImportOptions{Source: "ctdc"}
	importFrom(t, st, ctdc, testCase("A", "v1"), testCase("B", "v1"), testCase("C", "v1"))
	importFrom(t, st, ImportOptions{Source: "crm"}, testCase("D", "v1"))
	importCases(t, st, 3, testCase("E", "v1"))

	ctdc.Replace = true
	s := importFrom(t, st, ctdc, testCase("B", "v2"), testCase("C", "v1"), testCase("F", "v1"))
	if s != (ImportStats{Added: 1, Updated: 2, Removed: 1}) {
		t.Errorf("replace stats = %+v, want 1 added, 2 updated, 1 removed", s)
	}
	got := allCases(t, st)
	for id, notes := range map[string]string{"B": "v2", "C": "v1", "D": "v1", "E": "v1", "F": "v1"} {
		if c, ok := got[id]; !ok || c.Notes != notes {
			t.Errorf("%s: %+v (present %v), want notes %q", id, c, ok, notes)
		}
	}
	if _, ok := got["A"]; ok || len(got) != 5 {
		t.Errorf("after replace: %d cases, A present %v; want 5 without A", len(got), ok)
	}
	if n, _ := st.Count(); n != 5 {
		t.Errorf("count = %d, want 5", n)
	}
	if n := rawKeys(t, st); n != 5 {
		t.Errorf("%d versions in the file, want 5 (tombstone and old versions compacted)", n)
	}
	// D and E keep their source (or none): replacing "crm" with nothing
	// removes D only.
	if s := importFrom(t, st, ImportOptions{Source: "crm", Replace: true}); s.Removed != 1 {
		t.Errorf("replacing crm with nothing removed %d, want 1", s.Removed)
	}
	if s := importFrom(t, st, ImportOptions{}, testCase("A", "back")); s != (ImportStats{Added: 1}) {
		t.Errorf("re-adding a removed case: %+v, want added", s)
	}
	if n, _ := st.Count(); n != 5 {
		t.Errorf("count = %d, want 5 (B C E F A)", n)
	}
}

// TestReplaceAbortRemovesNothing: an aborted replacing import (a bad row,
// a cancelled context) leaves every record in place.
func TestReplaceAbortRemovesNothing(t *testing.T) {
	st, _ := newStore(t)
	src := ImportOptions{Source: "ctdc"}
	importFrom(t, st, src, testCase("A", "v1"), testCase("B", "v1"))
	before := allCases(t, st)
	src.Replace = true
	imp, err := st.beginImport(context.Background(), 1, src)
	if err != nil {
		t.Fatal(err)
	}
	imp.Add(testCase("B", "v2"))
	imp.Add(testCase("C", "v2"))
	if err := imp.Abort(); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "after abort", before, allCases(t, st))
	if n, _ := st.Count(); n != 2 {
		t.Errorf("count = %d, want 2", n)
	}
	if _, err := st.BeginImportWith(context.Background(), ImportOptions{Replace: true}); err == nil {
		t.Error("replace without a source name was accepted")
	}
}

// TestReplaceCrashBeforeCommit: the tombstones reached the file but the
// import did not commit; reopening drops them and A is still there.
func TestReplaceCrashBeforeCommit(t *testing.T) {
	st, dir := newStore(t)
	src := ImportOptions{Source: "ctdc"}
	importFrom(t, st, src, testCase("A", "v1"), testCase("B", "v1"))
	src.Replace = true
	imp, err := st.beginImport(context.Background(), 1, src)
	if err != nil {
		t.Fatal(err)
	}
	imp.Add(testCase("B", "v2"))
	imp.flush()
	imp.stop()
	if err := imp.insertAll(); err != nil {
		t.Fatal(err)
	}
	if err := imp.removeMissing(); err != nil || imp.stats.Removed != 1 {
		t.Fatalf("removeMissing: %v, removed %d", err, imp.stats.Removed)
	}
	st.db.Close() // the crash
	st, err = Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := allCases(t, st)
	if len(got) != 2 || got["A"].Notes != "v1" || got["B"].Notes != "v1" {
		t.Errorf("after recovery: %+v", got)
	}
	if n := rawKeys(t, st); n != 2 {
		t.Errorf("%d versions in the file, want 2", n)
	}
}

// TestTombstoneCompactedAtOpen: a committed removal whose compaction was
// interrupted (old version and tombstone both in the file) stays removed,
// and Open deletes both.
func TestTombstoneCompactedAtOpen(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 3, testCase("A", "v1"), testCase("B", "v1"))
	k := newCaseKeyer(st.macKey).key("A", 2)
	err := st.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		m.Put(keyCommitted, u64(2))
		m.Put(keyCompact, u64(2))
		m.Put(keyCount, u64(1))
		return tx.Bucket(bucketCases).Put(k[:], []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := allCases(t, st); len(got) != 1 {
		t.Errorf("before compaction: %d cases visible, want 1 (A removed)", len(got))
	}
	st.Close()
	st, err = Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := allCases(t, st); len(got) != 1 || got["B"].Notes != "v1" {
		t.Errorf("after compaction: %+v", got)
	}
	if n := rawKeys(t, st); n != 1 {
		t.Errorf("%d versions in the file, want 1", n)
	}
}
