package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// sequentialCases is the scan Cases replaced: one record after another on
// the caller's goroutine. It is the oracle for the parallel scan.
func sequentialCases(t *testing.T, st *Store) []aggregate.Case {
	t.Helper()
	var out []aggregate.Case
	err := st.db.View(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		var bestKey, bestVal []byte
		emit := func() error {
			if bestKey == nil || isTombstone(bestVal) {
				return nil
			}
			plain, err := open(st.aead, nil, bestVal, bestKey)
			if err != nil {
				return err
			}
			c := aggregate.NewCase()
			if err := decodeCase(plain, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		}
		cur := tx.Bucket(bucketCases).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if len(k) != recordKeyLen || generationOf(k) > committed {
				continue
			}
			if bestKey != nil && string(bestKey[:caseKeyLen]) != string(k[:caseKeyLen]) {
				if err := emit(); err != nil {
					return err
				}
			}
			bestKey, bestVal = k, v
		}
		if bestKey != nil {
			return emit()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// scanStore holds n cases over several scan batches, with corrections (a
// second version of some cases), replaced-away cases (tombstones) and
// versions above the committed generation (as a crash mid-import leaves
// them), so every rule of the scan is exercised across batch boundaries.
func scanStore(t *testing.T, n int) *Store {
	t.Helper()
	st, _ := newStore(t)
	load := func(opts ImportOptions, skip func(int) bool, note func(int) string) {
		imp, err := st.beginImport(context.Background(), 700, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !skip(i) {
				if err := imp.Add(testCase(fmt.Sprintf("scan-%05d", i), note(i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := imp.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	src := ImportOptions{Source: "scan"}
	load(src, func(int) bool { return false }, func(int) string { return "v1" })
	load(src, func(i int) bool { return i%3 != 0 }, func(int) string { return "v2" })
	// A replacing import of the source keeps all but every seventh case:
	// those become tombstones.
	load(ImportOptions{Source: "scan", Replace: true}, func(i int) bool { return i%7 == 0 }, func(i int) string {
		if i%3 == 0 {
			return "v3"
		}
		return "v1"
	})
	// A version above the committed generation must stay invisible: a copy
	// of each 50th record one generation up (it would not even decrypt, its
	// key being its associated data).
	err := st.db.Update(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		b := tx.Bucket(bucketCases)
		var put [][2][]byte
		i := 0
		if err := b.ForEach(func(k, v []byte) error {
			if i++; i%50 == 0 && len(k) == recordKeyLen {
				up := append([]byte(nil), k...)
				putGeneration(up, committed+1)
				put = append(put, [2][]byte{up, append([]byte(nil), v...)})
			}
			return nil
		}); err != nil {
			return err
		}
		for _, kv := range put {
			if err := b.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestParallelScanIsTheSequentialScan: the cases Cases hands fn, and their
// order, are exactly a one-record-at-a-time scan's, over many batches.
func TestParallelScanIsTheSequentialScan(t *testing.T) {
	const n = 5 * scanBatch
	st := scanStore(t, n)
	want := sequentialCases(t, st)
	var got []aggregate.Case
	if err := st.Cases(context.Background(), func(c *aggregate.Case) error { got = append(got, *c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(want) != n-(n+6)/7 {
		t.Fatalf("oracle sees %d cases, want %d", len(want), n-(n+6)/7)
	}
	if len(got) != len(want) {
		t.Fatalf("Cases gave %d cases, the sequential scan %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("case %d: Cases gave %+v, the sequential scan %+v", i, got[i], want[i])
		}
		if got[i].Notes == "v2" {
			t.Fatalf("case %s: an old version is visible", got[i].CaseID)
		}
	}
}

// TestParallelScanStops: fn's error ends the scan at once (no later case
// is handed to fn) and is returned; so is a cancelled context; nothing is
// left running.
func TestParallelScanStops(t *testing.T) {
	st := scanStore(t, 4*scanBatch)
	before := runtime.NumGoroutine()
	stopAt := scanBatch + 17 // inside the second batch
	calls := 0
	errStop := errors.New("enough")
	err := st.Cases(context.Background(), func(*aggregate.Case) error {
		if calls++; calls == stopAt {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != stopAt {
		t.Fatalf("fn's error: got %v after %d calls, want %v after %d", err, calls, errStop, stopAt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Cases(ctx, func(*aggregate.Case) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: got %v", err)
	}
	// The workers and the cutter have returned (Cases waits for them).
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before the scans, %d after", before, after)
	}
}

// TestParallelScanDamagedRecord: a record that does not decrypt, in a
// later batch, fails the scan after exactly the cases before it.
func TestParallelScanDamagedRecord(t *testing.T) {
	st := scanStore(t, 3*scanBatch)
	want := sequentialCases(t, st)
	victim := 2*scanBatch + 5
	// Find the victim's stored version and flip a byte of its ciphertext.
	seen := 0
	err := st.db.Update(func(tx *bolt.Tx) error {
		committed := getU64(tx.Bucket(bucketMeta), keyCommitted)
		b := tx.Bucket(bucketCases)
		var keys [][]byte
		cur := b.Cursor()
		var bestKey []byte
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if len(k) != recordKeyLen || generationOf(k) > committed {
				continue
			}
			if bestKey != nil && string(bestKey[:caseKeyLen]) != string(k[:caseKeyLen]) {
				keys = append(keys, bestKey)
			}
			if isTombstone(v) {
				bestKey = nil
				// A tombstone hides the case: drop its older versions too.
				if n := len(keys); n > 0 && string(keys[n-1][:caseKeyLen]) == string(k[:caseKeyLen]) {
					keys = keys[:n-1]
				}
				continue
			}
			bestKey = append([]byte(nil), k...)
		}
		if bestKey != nil {
			keys = append(keys, bestKey)
		}
		seen = len(keys)
		k := keys[victim]
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)-1] ^= 1
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Fatalf("test's walk sees %d cases, the scan %d", seen, len(want))
	}
	var got []aggregate.Case
	err = st.Cases(context.Background(), func(c *aggregate.Case) error { got = append(got, *c); return nil })
	if err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("damaged record: got %v", err)
	}
	if len(got) != victim {
		t.Fatalf("fn got %d cases before the damaged one, want %d", len(got), victim)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("case %d differs from the sequential scan", i)
		}
	}
}
