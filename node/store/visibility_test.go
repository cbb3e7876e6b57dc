package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"roundtable/aggregate"
)

// pausingCtx is a context whose Err pauses the import once its first write
// transaction is in the file: Commit checks Err before each transaction of
// insertBatch records, so the pause falls between two transactions, with
// uncommitted records on disk. While paused the test reads the store;
// then it lets the import go on, or cancels it.
type pausingCtx struct {
	context.Context
	imp     func() *Import
	once    sync.Once
	paused  chan struct{} // closed when the import waits
	resume  chan error    // what Err returns after the pause
	mu      sync.Mutex
	lastErr error
}

func newPausingCtx() *pausingCtx {
	return &pausingCtx{Context: context.Background(), paused: make(chan struct{}), resume: make(chan error, 1)}
}

func (c *pausingCtx) Err() error {
	if imp := c.imp; imp != nil && imp() != nil && imp().Flushed() > 0 {
		c.once.Do(func() {
			close(c.paused)
			err := <-c.resume
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// An import is all or nothing for readers too: between the write
// transactions of an import larger than one transaction, Cases and Count
// see exactly the committed store (old versions of updated cases, none of
// the new cases); after Commit they see all of the import, and after a
// failed Commit none of it.
func TestImportInvisibleUntilCommit(t *testing.T) {
	const stored, added, updated = 100, insertBatch + 500, 60
	for _, outcome := range []string{"commit", "cancel"} {
		t.Run(outcome, func(t *testing.T) {
			st, _ := newStore(t)
			var first []*aggregate.Case
			for i := range stored {
				first = append(first, testCase(fmt.Sprintf("OLD-%d", i), "v1"))
			}
			importCases(t, st, 64, first...)
			before := allCases(t, st)

			ctx := newPausingCtx()
			imp, err := st.beginImport(ctx, 8192, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ctx.imp = func() *Import { return imp }
			for i := range updated {
				if err := imp.Add(testCase(fmt.Sprintf("OLD-%d", i), "v2")); err != nil {
					t.Fatal(err)
				}
			}
			for i := range added {
				if err := imp.Add(testCase(fmt.Sprintf("NEW-%d", i), "v2")); err != nil {
					t.Fatal(err)
				}
			}
			type result struct {
				stats ImportStats
				err   error
			}
			done := make(chan result, 1)
			go func() {
				s, err := imp.Commit()
				done <- result{s, err}
			}()
			select {
			case <-ctx.paused:
			case r := <-done:
				t.Fatalf("Commit finished (%+v, %v) without pausing between write transactions", r.stats, r.err)
			case <-time.After(2 * time.Minute):
				t.Fatal("the import did not reach its second write transaction")
			}
			if f := imp.Flushed(); f == 0 || f >= updated+added {
				t.Fatalf("paused with %d of %d records written; want some but not all", f, updated+added)
			}
			assertSame(t, "during the import", before, allCases(t, st))
			if n, err := st.Count(); err != nil || n != stored {
				t.Errorf("Count during the import = %d, %v; want %d", n, err, stored)
			}

			if outcome == "cancel" {
				ctx.resume <- context.Canceled
				if r := <-done; !errors.Is(r.err, context.Canceled) {
					t.Fatalf("Commit after cancel: %+v, %v; want context.Canceled", r.stats, r.err)
				}
				assertSame(t, "after a cancelled import", before, allCases(t, st))
				if n, err := st.Count(); err != nil || n != stored {
					t.Errorf("Count after a cancelled import = %d, %v; want %d", n, err, stored)
				}
				return
			}
			ctx.resume <- nil
			r := <-done
			if r.err != nil {
				t.Fatalf("Commit: %v", r.err)
			}
			if r.stats != (ImportStats{Added: added, Updated: updated}) {
				t.Errorf("stats %+v, want %d added, %d updated", r.stats, added, updated)
			}
			after := allCases(t, st)
			if len(after) != stored+added {
				t.Fatalf("%d cases after Commit, want %d", len(after), stored+added)
			}
			for id, c := range after {
				want := "v2"
				var i int
				if _, err := fmt.Sscanf(id, "OLD-%d", &i); err == nil && i >= updated {
					want = "v1"
				}
				if c.Notes != want {
					t.Fatalf("%s notes %q after Commit, want %q", id, c.Notes, want)
				}
			}
			if n, err := st.Count(); err != nil || n != stored+added {
				t.Errorf("Count after Commit = %d, %v; want %d", n, err, stored+added)
			}
		})
	}
}

func assertSame(t *testing.T, when string, want, got map[string]aggregate.Case) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: readers see %d cases, want the %d committed ones", when, len(got), len(want))
	}
	for id, c := range got {
		w, ok := want[id]
		switch {
		case !ok:
			t.Fatalf("%s: readers see case %s, which is not committed", when, id)
		case c.Notes != w.Notes:
			t.Fatalf("%s: readers see case %s with notes %q, the committed version has %q", when, id, c.Notes, w.Notes)
		}
	}
}
