package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/store"
)

// importCSV imports a project-format CSV through the running node.
func importCSV(ctx context.Context, t *testing.T, n *Node, csv string) {
	t.Helper()
	rep, err := (*backend)(n).Import(ctx, strings.NewReader(csv), "cases.csv", "csv", api.ImportSource{})
	if err != nil || !rep.Imported {
		t.Fatalf("import: %+v, %v", rep, err)
	}
}

// counts reports whether the node's exact tabulation of period counts
// person: the victims total with all records, minus the total without the
// person's. book nil is the tabulation without fixed quarters.
func counts(t *testing.T, n *Node, period, person string, book aggregate.QuarterBook) bool {
	t.Helper()
	total := func(skip string) int64 {
		each := func(fn func(*aggregate.Case) error) error {
			return n.st.Cases(t.Context(), func(c *aggregate.Case) error {
				if c.PersonID == skip {
					return nil
				}
				return fn(c)
			})
		}
		tables, _, err := aggregate.TabulateFixed(t.Context(), aggregate.CatalogV1(), mustPeriod(t, period), []string{"victims"}, each, book)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if tb.NumCells() == 1 {
				return tb.Count(0)
			}
		}
		t.Fatal("no victims total")
		return 0
	}
	switch d := total("") - total(person); d {
	case 0, 1:
		return d == 1
	default:
		t.Fatalf("%s counted %d times in %s", person, d, period)
		return false
	}
}

func fixedQuarter(t *testing.T, n *Node, person string) int {
	t.Helper()
	book, err := n.st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	return book.Quarter("p:"+person, 2024)
}

// TestLateEntryAcrossReleases runs the P-7 sequence through the
// node's release workflow: a May case; a March case entered late; the Q1
// release (interrupted after signing, then resumed by a restart); the
// March case corrected to November; the Q2 release. P-7's quarter is fixed
// before the signed Q1 release is saved, survives the restart, and keeps
// P-7 out of Q2, where recomputing the quarter would count them again.
func TestLateEntryAcrossReleases(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS")
	n := r.nodes[0]
	const head = "case_id,person_id,registered_on\n"
	importCSV(ctx, t, n, head+"P7-may,P-7,2024-05-10\n")
	importCSV(ctx, t, n, head+"P7-march,P-7,2024-03-03\n")

	interruptedPublish(ctx, t, n, "2024-Q1", 250_000, afterSign)
	if q := fixedQuarter(t, n, "P-7"); q != 1 {
		t.Fatalf("with the signed Q1 release pending, P-7 is fixed to Q%d, want Q1", q)
	}
	n = r.restart(0)
	waitFor(ctx, t, 20*time.Second, "pending Q1 release resumed", func() error {
		if _, err := n.st.Get(pendingKey); !errors.Is(err, store.ErrNotFound) {
			return errors.New("pending entry still there")
		}
		return nil
	})
	if q := fixedQuarter(t, n, "P-7"); q != 1 {
		t.Fatalf("after the restart P-7 is fixed to Q%d, want Q1", q)
	}

	importCSV(ctx, t, n, head+"P7-march,P-7,2024-11-03\n") // the correction
	if !counts(t, n, "2024-Q2", "P-7", nil) {
		t.Fatal("recomputing the quarter does not count P-7 in Q2; the test would prove nothing")
	}
	if _, err := n.Publish(ctx, mustPeriod(t, "2024-Q2"), []string{"victims"}, 100_000); err != nil {
		t.Fatalf("Q2 release: %v", err)
	}
	book, err := n.st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	if book.Quarter("p:P-7", 2024) != 1 {
		t.Errorf("after the Q2 release P-7 is fixed to Q%d, want Q1", book.Quarter("p:P-7", 2024))
	}
	for period, want := range map[string]bool{"2024-Q1": true, "2024-Q2": false, "2024-Q4": false, "2024": true} {
		if got := counts(t, n, period, "P-7", book); got != want {
			t.Errorf("%s counts P-7: %v, want %v", period, got, want)
		}
	}
}
