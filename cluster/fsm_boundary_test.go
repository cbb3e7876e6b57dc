package cluster

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/privacy"
)

// The ledger's budget cap is inclusive, as the accountant's: reservations
// that together spend exactly the cap are admitted, one micro more is
// refused and leaves no trace. The genesis cap is 1.0 (privacy.Micro).
func TestFSMBudgetCapBoundary(t *testing.T) {
	tests := []struct {
		name    string
		spends  []int64 // admitted first, in order
		last    int64
		per     string
		admit   bool
		refusal string
	}{
		{"five fifths fill the quarter", []int64{200_000, 200_000, 200_000, 200_000}, 200_000, "2024-Q3", true, ""},
		{"one micro past five fifths", []int64{200_000, 200_000, 200_000, 200_000, 200_000}, 1, "2024-Q3", false,
			"over budget: 2024-Q3 has 0.000000 left of 1.000000, release needs 0.000001"},
		{"the whole cap at once", nil, privacy.Micro, "2024-Q4", true, ""},
		{"the whole cap plus one micro at once", nil, privacy.Micro + 1, "2024-Q4", false,
			"over budget: 2024-Q4 has 1.000000 left of 1.000000, release needs 1.000001"},
		{"the exact remainder", []int64{123_457}, privacy.Micro - 123_457, "2024-Q3", true, ""},
		{"the remainder plus one micro", []int64{123_457}, privacy.Micro - 123_456, "2024-Q3", false,
			"over budget: 2024-Q3 has 0.876543 left of 1.000000, release needs 0.876544"},
		// RS holds 0.8 of 2024-Q1 in the base ledger: a year charge fits
		// only in what that quarter has left.
		{"a year in the fullest quarter's remainder", nil, 200_000, "2024", true, ""},
		{"a year one micro past the fullest quarter", nil, 200_001, "2024", false,
			"over budget: 2024-Q1 has 0.200000 left of 1.000000, release needs 0.200001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFSMBase(t)
			for i, s := range tc.spends {
				mustApply(t, b.f, b.log, NewReserve(fsmReservation(t, b.cat, fmt.Sprintf("fill%d", i), "RS", "RS", tc.per, s)))
			}
			before := stateHash(t, b.f)
			beforeSpend, err := b.f.Spend("RS")
			if err != nil {
				t.Fatal(err)
			}
			res := applyAll(t, b.f, b.log.add(t, NewReserve(fsmReservation(t, b.cat, "last", "RS", "RS", tc.per, tc.last))))[0]
			if !tc.admit {
				if res.OK {
					t.Fatalf("reservation of %d micro admitted (spend now %v), want refused", tc.last, res.Spend)
				}
				if res.Refusal != tc.refusal {
					t.Errorf("refusal %q, want %q", res.Refusal, tc.refusal)
				}
				if stateHash(t, b.f) != before {
					t.Error("a refused reservation changed the ledger")
				}
				if _, _, err := b.f.Reservation("last"); err == nil {
					t.Error("a refused reservation is stored")
				}
				return
			}
			if !res.OK {
				t.Fatalf("reservation of %d micro refused: %s", tc.last, res.Refusal)
			}
			want := map[string]int64{}
			for _, qs := range beforeSpend {
				want[qs.Quarter.String()] = qs.SpentMicro
			}
			for _, q := range period(t, tc.per).Quarters() {
				want[q.String()] += tc.last
			}
			after, err := b.f.Spend("RS")
			if err != nil {
				t.Fatal(err)
			}
			for _, qs := range after {
				if qs.SpentMicro != want[qs.Quarter.String()] {
					t.Errorf("%v spent %d, want %d", qs.Quarter, qs.SpentMicro, want[qs.Quarter.String()])
				}
				if qs.SpentMicro > privacy.Micro {
					t.Errorf("%v spent %d, over the cap %d", qs.Quarter, qs.SpentMicro, privacy.Micro)
				}
			}
		})
	}
}

// batchAddPartner is how a test puts "admit partner id" into a batch. It is
// the one place to change when partners are added by signed governance.
func batchAddPartner(t *testing.T, b *fsmBase, id string) Command {
	t.Helper()
	return govAddPartner(fsmPartner(id))
}

// A partner added earlier in the same ApplyBatch has no key when the batch's
// signatures are checked in parallel; its entries must still be checked,
// against the key registered by then, in the sequential step. A forged
// reservation or release in that position is refused, an honest one
// admitted, and the outcome is what applying the entries one batch each
// gives.
func TestFSMBatchSeamChecksNewPartnersSignatures(t *testing.T) {
	const id = "XK"
	tests := []struct {
		name    string
		entries func(t *testing.T, b *fsmBase) []Command
		ok      []bool
		refusal string // of the last entry, when refused
	}{
		{"honest reservation and release", func(t *testing.T, b *fsmBase) []Command {
			r := fsmReservation(t, b.cat, "xk1", id, id, "2024-Q3", 100_000)
			return []Command{batchAddPartner(t, b, id), NewReserve(r), NewPublish(fsmRelease(t, r.Reservation, id, 5))}
		}, []bool{true, true, true}, ""},
		{"reservation signed by another key", func(t *testing.T, b *fsmBase) []Command {
			r := fsmReservation(t, b.cat, "xk1", id, "forger", "2024-Q3", 100_000)
			return []Command{batchAddPartner(t, b, id), NewReserve(r)}
		}, []bool{true, false}, "signature does not verify: reservation xk1 is not signed by partner XK's registered key"},
		{"release signed by another key", func(t *testing.T, b *fsmBase) []Command {
			r := fsmReservation(t, b.cat, "xk1", id, id, "2024-Q3", 100_000)
			return []Command{batchAddPartner(t, b, id), NewReserve(r), NewPublish(fsmRelease(t, r.Reservation, "forger", 5))}
		}, []bool{true, true, false}, "signature does not verify: release"},
		{"release with a corrupted signature", func(t *testing.T, b *fsmBase) []Command {
			r := fsmReservation(t, b.cat, "xk1", id, id, "2024-Q3", 100_000)
			s := fsmRelease(t, r.Reservation, id, 5)
			s.Signature[0] ^= 1
			return []Command{batchAddPartner(t, b, id), NewReserve(r), NewPublish(s)}
		}, []bool{true, true, false}, "signature does not verify: release"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One batch.
			b := newFSMBase(t)
			cmds := tc.entries(t, b)
			res := applyAll(t, b.f, b.log.add(t, cmds...))
			for i, r := range res {
				if r.OK != tc.ok[i] {
					t.Fatalf("entry %d (%s): OK=%v refusal %q, want OK=%v", i, cmds[i].Type, r.OK, r.Refusal, tc.ok[i])
				}
			}
			if last := res[len(res)-1]; tc.refusal != "" && !strings.Contains(last.Refusal, tc.refusal) {
				t.Errorf("refusal %q, want it to contain %q", last.Refusal, tc.refusal)
			}
			head, err := b.f.TreeHead()
			if err != nil {
				t.Fatal(err)
			}

			// The same entries, one batch each.
			single := newFSMBase(t)
			for i, c := range tc.entries(t, single) {
				r := applyAll(t, single.f, []*raft.Log{single.log.add(t, c)[0]})[0]
				if r.OK != tc.ok[i] {
					t.Fatalf("entry %d alone: OK=%v refusal %q, want OK=%v", i, r.OK, r.Refusal, tc.ok[i])
				}
			}
			if stateHash(t, b.f) != stateHash(t, single.f) {
				t.Error("the state after one batch differs from the state after one entry per batch")
			}
			if h, _ := single.f.TreeHead(); h != head {
				t.Errorf("tree head %v in one batch, %v one entry per batch", head, h)
			}
		})
	}
}
