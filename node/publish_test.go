package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"roundtable/node/api"
	"roundtable/node/store"
	"roundtable/privacy"
)

// crashPoint is where the release workflow is interrupted.
type crashPoint int

const (
	afterReserve crashPoint = iota // budget admitted, no noise drawn yet
	afterSign                      // release signed and saved, not yet sent
	afterPublish                   // release in the ledger, pending entry not yet cleared
)

func (c crashPoint) String() string {
	return [...]string{"after reserve", "after sign", "after publish"}[c]
}

// interruptedPublish runs the release workflow's steps (the same calls
// Publish and runPending make) up to stop, and leaves the pending entry
// as a crash at that point would.
func interruptedPublish(ctx context.Context, t *testing.T, n *Node, period string, budget privacy.Budget, stop crashPoint) pending {
	t.Helper()
	fsm := n.ledger.FSM()
	cat, _, err := fsm.CurrentCatalog()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := fsm.Policy()
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	consortium, err := fsm.ConsortiumID()
	if err != nil {
		t.Fatal(err)
	}
	res := privacy.Reservation{ID: hex.EncodeToString(id), Consortium: consortium, Partner: n.st.Partner(), CatalogHash: cat.Hash(),
		Period: mustPeriod(t, period), Accounting: pol.Accounting, SpendMicro: budget.Micro(),
		Indicators: []string{"victims", "exploitation"}}
	sres, err := privacy.SignReservation(res, n.st.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	p := pending{Reservation: sres}
	if err := n.savePending(&p); err != nil {
		t.Fatal(err)
	}
	ar, err := n.ledger.Reserve(ctx, sres)
	if err != nil || !ar.OK {
		t.Fatalf("reserve: %+v, %v", ar, err)
	}
	if stop == afterReserve {
		return p
	}
	signed, err := n.draw(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	p.Release = &signed
	if err := n.savePending(&p); err != nil {
		t.Fatal(err)
	}
	if stop == afterSign {
		return p
	}
	if ar, err := n.ledger.Publish(ctx, signed); err != nil || !ar.OK {
		t.Fatalf("publish: %+v, %v", ar, err)
	}
	return p
}

// releasesOf returns the ledger's releases that consume reservation id.
func releasesOf(t *testing.T, n *Node, reservation string) []privacy.Signed {
	t.Helper()
	var out []privacy.Signed
	err := n.ledger.FSM().Releases(func(_ int64, s privacy.Signed) error {
		if s.Release.Reservation == reservation {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPendingReleaseSurvivesCrash interrupts the release workflow at each
// durable step, restarts the node (or, without a restart, publishes
// again, as after a lost connection) and checks that the interrupted
// release lands exactly once, with the same id and the same noisy values
// when they had been drawn, and that the budget was spent once.
func TestPendingReleaseSurvivesCrash(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS", "AL", "BA")
	const budget privacy.Budget = 250_000
	cases := []struct {
		stop    crashPoint
		restart bool
		period  string
	}{
		{afterReserve, true, "2024-Q1"},
		{afterSign, true, "2024-Q2"},
		{afterPublish, true, "2024-Q3"},
		{afterSign, false, "2024-Q4"},
	}
	const al = 1 // AL is a follower: its reservations go through the leader
	for _, c := range cases {
		name := c.stop.String() + map[bool]string{true: ", restart", false: ", publish again"}[c.restart]
		t.Run(name, func(t *testing.T) {
			n := r.nodes[al]
			p := interruptedPublish(ctx, t, n, c.period, budget, c.stop)
			resID := p.Reservation.Reservation.ID
			var next privacy.Signed
			if c.restart {
				n = r.restart(al)
				waitFor(ctx, t, 20*time.Second, "pending release resumed", func() error {
					if _, err := n.st.Get(pendingKey); !errors.Is(err, store.ErrNotFound) {
						return errors.New("pending entry still there")
					}
					return nil
				})
				// The completion is recorded for the operator (publish
				// --status, the dashboard) with its release id.
				rep, err := n.PendingReleases(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Pending) != 0 || len(rep.Recent) == 0 {
					t.Fatalf("after the restart: pending %+v, recent %+v; want none pending and the completion recorded", rep.Pending, rep.Recent)
				}
				waitFor(ctx, t, 10*time.Second, "AL applied its release", func() error {
					if len(releasesOf(t, n, resID)) == 0 {
						return errors.New("not yet")
					}
					return nil
				})
				ev := rep.Recent[0]
				if ev.Reservation != resID || ev.Outcome != api.OutcomeCompleted || ev.How != api.HowRestart || len(releasesOf(t, n, resID)) != 1 || ev.Release != releasesOf(t, n, resID)[0].ID {
					t.Errorf("recorded %+v, want reservation %s completed %s with its release id", ev, resID, api.HowRestart)
				}
			} else {
				res, err := n.Publish(ctx, mustPeriod(t, "2025-Q1"), []string{"victims"}, 100_000)
				if err != nil {
					t.Fatalf("publish with a release pending: %v", err)
				}
				// The answer comes from the leader; this follower applies it a
				// heartbeat later (see the report: no read-your-writes yet).
				waitFor(ctx, t, 10*time.Second, "AL applied its release", func() error {
					if n.ledger.FSM().AppliedIndex() < res.AppliedIndex {
						return errors.New("not yet")
					}
					return nil
				})
				s, _, err := n.ledger.FSM().Release(res.ID)
				if err != nil {
					t.Fatal(err)
				}
				next = s
				if _, err := n.st.Get(pendingKey); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("pending entry left after Publish: %v", err)
				}
			}
			// The reservation is consumed by exactly one release, on every node.
			for _, m := range r.nodes {
				waitFor(ctx, t, 10*time.Second, m.ID()+" has the release", func() error {
					if len(releasesOf(t, m, resID)) == 0 {
						return errors.New("not yet")
					}
					return nil
				})
				got := releasesOf(t, m, resID)
				if len(got) != 1 {
					t.Fatalf("%s: %d releases for reservation %s, want 1", m.ID(), len(got), resID)
				}
				if p.Release != nil {
					// Same id means same canonical bytes: the noise was not redrawn.
					if got[0].ID != p.Release.ID {
						t.Errorf("%s: published release %s, want the signed pending one %s", m.ID(), got[0].ID, p.Release.ID)
					}
					a, _ := json.Marshal(got[0].Release)
					b, _ := json.Marshal(p.Release.Release)
					if !bytes.Equal(a, b) {
						t.Errorf("%s: published values differ from the signed pending release", m.ID())
					}
				}
				if s := spentOn(t, m, "AL", c.period); s != budget.Micro() {
					t.Errorf("%s: AL spent %d µε on %s, want one release's %d", m.ID(), s, c.period, budget.Micro())
				}
			}
			if !c.restart && next.Release.Reservation == resID {
				t.Errorf("the new publish reused the pending reservation %s", resID)
			}
		})
	}
}
