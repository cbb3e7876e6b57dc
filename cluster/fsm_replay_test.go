package cluster

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// randomLedger drives a reference FSM with a seeded random mix of valid and
// invalid commands, one entry per batch, and returns the entries and the
// results the reference produced. Commands that depend on the state (a
// co-signature of the current tree) are built from the reference.
func randomLedger(t *testing.T, seed uint64, n int) (*FSM, []*raft.Log, []ApplyResult) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	ref := newTestFSM(t)
	l := &fsmLog{}
	cat := fsmCatalogHash(t)
	var results []ApplyResult
	step := func(data []byte) {
		results = append(results, applyAll(t, ref, []*raft.Log{l.raw(data)})...)
	}
	step(enc(t, fsmGenesis(t, "AL", "BA", "RS", "MK")))

	partners := []string{"AL", "BA", "RS", "MK", "XK"}
	periods := []string{"2023", "2023-Q2", "2024", "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"}
	var reservations []privacy.SignedReservation
	var releases []privacy.Signed
	for i := 0; i < n; i++ {
		switch k := rng.IntN(100); {
		case k < 40:
			p := partners[rng.IntN(len(partners))]
			id := fmt.Sprintf("res-%d", rng.IntN(i+1)) // sometimes an id already used
			r := fsmReservation(t, cat, id, p, p, periods[rng.IntN(len(periods))], int64(50_000+rng.IntN(400_000)))
			reservations = append(reservations, r)
			step(enc(t, NewReserve(r)))
		case k < 75 && len(reservations) > 0:
			r := reservations[rng.IntN(len(reservations))]
			s := fsmRelease(t, r.Reservation, r.Reservation.Partner, int64(rng.IntN(3)))
			releases = append(releases, s)
			step(enc(t, NewPublish(s)))
		case k < 80 && len(releases) > 0:
			step(enc(t, NewPublish(releases[rng.IntN(len(releases))]))) // replay
		case k < 88:
			head, err := ref.TreeHead()
			if err != nil {
				t.Fatal(err)
			}
			if head.N > 0 {
				head.N = 1 + rng.Int64N(head.N)
				head.Hash = mustTreeHashOf(t, ref, head.N)
			}
			p := partners[rng.IntN(len(partners))]
			step(enc(t, NewCosign(p, (&fsmBase{}).cosignNote(t, p, CheckpointOrigin("western-balkans", fsmConsortium(t)), head))))
		case k < 92:
			step(signedAt(t, ref, govAddReplica(fmt.Sprintf("replica-%d", rng.IntN(3)))))
		case k < 94:
			step(signedAt(t, ref, govRemoveReplica(fmt.Sprintf("replica-%d", rng.IntN(3)))))
		case k < 96:
			step(signedAt(t, ref, govAddPartner(fsmPartner("XK"))))
		case k < 98:
			step(signedAt(t, ref, govSetPolicy(privacy.Policy{Accounting: privacy.PureDP, CapMicro: int64(800_000 + rng.IntN(400_000))})))
		default:
			step([]byte(fmt.Sprintf(`{"v":1,"type":"bogus-%d"}`, i)))
		}
	}
	if c, err := ref.Consortium(); err != nil || c.GovernanceSeq == 0 {
		t.Fatalf("the random ledger admitted no governance statement (%v): the sequence would not test it", err)
	}
	return ref, l.logs, results
}

func mustTreeHashOf(t *testing.T, f *FSM, n int64) tlog.Hash {
	t.Helper()
	return mustTreeHash(t, &fsmBase{f: f}, n)
}

// applyInBatches applies logs in random batch sizes (1..max) and returns
// the results in order.
func applyInBatches(t *testing.T, f *FSM, logs []*raft.Log, rng *rand.Rand, max int) []ApplyResult {
	t.Helper()
	var out []ApplyResult
	for len(logs) > 0 {
		n := min(1+rng.IntN(max), len(logs))
		out = append(out, applyAll(t, f, logs[:n])...)
		logs = logs[n:]
	}
	return out
}

func TestFSMDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			ref, logs, want := randomLedger(t, seed, 250)
			admitted := 0
			for _, r := range want {
				if r.OK && !r.Existing {
					admitted++
				}
			}
			if admitted < 50 || admitted > len(want)-20 {
				t.Fatalf("%d of %d commands admitted: the mix should exercise both paths", admitted, len(want))
			}
			refHash := stateHash(t, ref)
			refHead, _ := ref.TreeHead()

			for _, batch := range []int{7, 64} {
				f := newTestFSM(t)
				got := applyInBatches(t, f, logs, rand.New(rand.NewPCG(seed, uint64(batch))), batch)
				for i := range want {
					if !equalResult(got[i], want[i]) {
						t.Fatalf("batch %d: entry %d: %+v, reference %+v", batch, i+1, got[i], want[i])
					}
				}
				if h := stateHash(t, f); h != refHash {
					t.Errorf("batch %d: state hash differs from the reference", batch)
				}
				if head, _ := f.TreeHead(); head != refHead {
					t.Errorf("batch %d: tree head %v, reference %v", batch, head, refHead)
				}
				if f.AppliedIndex() != uint64(len(logs)) {
					t.Errorf("batch %d: applied %d, want %d", batch, f.AppliedIndex(), len(logs))
				}
			}

			// A snapshot restored into a fresh node gives the same state.
			snap := snapshotBytes(t, ref)
			c := newTestFSM(t)
			pinAs(t, c, ref)
			if err := c.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if h := stateHash(t, c); h != refHash {
				t.Error("restored state hash differs")
			}
			if head, _ := c.TreeHead(); head != refHead {
				t.Errorf("restored tree head %v, want %v", head, refHead)
			}
			if c.AppliedIndex() != ref.AppliedIndex() {
				t.Errorf("restored applied index %d, want %d", c.AppliedIndex(), ref.AppliedIndex())
			}
		})
	}
}

func TestFSMRestart(t *testing.T) {
	dir := t.TempDir()
	f := openTestFSM(t, dir)
	l := &fsmLog{}
	cat := fsmCatalogHash(t)
	genesis := fsmGenesis(t, "RS", "AL") // first: r1 names its consortium
	r1 := fsmReservation(t, cat, "r1", "RS", "RS", "2024-Q1", 100_000)
	mustApply(t, f, l, genesis, NewReserve(r1), NewPublish(fsmRelease(t, r1.Reservation, "RS", 1)))
	oldSnap := snapshotBytes(t, f) // at index 3
	r2 := fsmReservation(t, cat, "r2", "RS", "RS", "2024-Q2", 100_000)
	mustApply(t, f, l, NewReserve(r2), NewPublish(fsmRelease(t, r2.Reservation, "RS", 2)))
	newSnap := snapshotBytes(t, f) // at index 5
	wantHash, wantIndex := stateHash(t, f), f.AppliedIndex()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f = openTestFSM(t, dir)
	if f.AppliedIndex() != wantIndex || stateHash(t, f) != wantHash {
		t.Fatalf("after reopen: applied %d, want %d; state equal %v", f.AppliedIndex(), wantIndex, stateHash(t, f) == wantHash)
	}
	// Raft restores its latest snapshot on start; an older one than the
	// file is skipped, not applied over newer state.
	if err := f.Restore(io.NopCloser(bytes.NewReader(oldSnap))); err != nil {
		t.Fatalf("Restore(older): %v", err)
	}
	if f.AppliedIndex() != wantIndex || stateHash(t, f) != wantHash {
		t.Fatal("restoring an older snapshot rolled the ledger back")
	}
	// Raft then replays entries after its snapshot: all at or below the
	// applied index, so none of them changes anything.
	for i, r := range applyAll(t, f, l.logs) {
		if r.OK || !r.Existing || r.Index != uint64(i+1) {
			t.Errorf("replayed entry %d: %+v, want skipped", i+1, r)
		}
	}
	if stateHash(t, f) != wantHash {
		t.Fatal("replaying applied entries changed the state")
	}
	// Entries after the applied index still apply.
	res := mustApply(t, f, l, govAddReplica("after-restart"))[0]
	if res.Index != wantIndex+1 || f.AppliedIndex() != wantIndex+1 {
		t.Errorf("next entry: %+v, applied %d", res, f.AppliedIndex())
	}

	// A node that is behind takes a newer snapshot in full.
	behind := newTestFSM(t)
	pinAs(t, behind, f)
	if err := behind.Restore(io.NopCloser(bytes.NewReader(oldSnap))); err != nil {
		t.Fatal(err)
	}
	if err := behind.Restore(io.NopCloser(bytes.NewReader(newSnap))); err != nil {
		t.Fatal(err)
	}
	if behind.AppliedIndex() != wantIndex || stateHash(t, behind) != wantHash {
		t.Error("a newer snapshot did not replace the older state")
	}
}

func TestFSMRestoreRejectsBadSnapshots(t *testing.T) {
	b := newFSMBase(t)
	good := snapshotBytes(t, b.f)
	target := newTestFSM(t)
	l := &fsmLog{}
	mustApply(t, target, l, fsmGenesis(t, "XK"))
	before := stateHash(t, target)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "read snapshot header"},
		{"wrong magic", append([]byte("NOTLEDGR"), good[8:]...), "not a ledger snapshot"},
		{"truncated", good[:len(good)/2], "restore ledger from snapshot"},
		{"damaged body", flipByte(good, len(good)/2), "snapshot checksum does not match"},
		{"header index lies", append(append([]byte(snapshotMagic), 0, 0, 0, 0, 0, 0, 0, 99), good[16:]...), "snapshot header says index 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := target.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v, want error containing %q", err, tc.want)
			}
			if stateHash(t, target) != before || target.AppliedIndex() != 1 {
				t.Error("a rejected snapshot changed the ledger")
			}
		})
	}
}

// TestFSMBudgetNeverExceedsCap checks the accountant inside the FSM against
// a model: a reservation is admitted exactly when every quarter it covers
// has room for it, and the recorded spend never passes the cap.
func TestFSMBudgetNeverExceedsCap(t *testing.T) {
	const capMicro = privacy.Micro
	partners := []string{"AL", "BA", "RS"}
	periods := []string{"2024", "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"}
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		f := newTestFSM(t)
		l := &fsmLog{}
		cat := fsmCatalogHash(t)
		mustApply(t, f, l, fsmGenesis(t, partners...))
		model := map[string]int64{} // "RS/2024-Q1" -> spent
		var logs []*raft.Log
		var res []privacy.SignedReservation
		for i := 0; i < 120; i++ {
			p := partners[rng.IntN(len(partners))]
			r := fsmReservation(t, cat, fmt.Sprintf("s%d", i), p, p, periods[rng.IntN(len(periods))], 1+rng.Int64N(capMicro/2))
			res = append(res, r)
			logs = append(logs, l.add(t, NewReserve(r))...)
		}
		got := applyInBatches(t, f, logs, rng, 16)
		for i, r := range res {
			fits := true
			for _, q := range r.Reservation.Period.Quarters() {
				if model[spendKey(r.Reservation.Partner, q)]+r.Reservation.SpendMicro > capMicro {
					fits = false
				}
			}
			if fits {
				for _, q := range r.Reservation.Period.Quarters() {
					model[spendKey(r.Reservation.Partner, q)] += r.Reservation.SpendMicro
				}
			}
			if got[i].OK != fits {
				t.Fatalf("seed %d, reservation %d (%s %s %d): admitted %v, model says %v (%s)", seed, i,
					r.Reservation.Partner, r.Reservation.Period, r.Reservation.SpendMicro, got[i].OK, fits, got[i].Refusal)
			}
		}
		for _, p := range partners {
			spend, err := f.Spend(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, qs := range spend {
				if qs.SpentMicro > capMicro || qs.SpentMicro != model[spendKey(p, qs.Quarter)] {
					t.Errorf("seed %d: %s %s spent %d, model %d, cap %d", seed, p, qs.Quarter, qs.SpentMicro, model[spendKey(p, qs.Quarter)], capMicro)
				}
			}
			if !slices.IsSortedFunc(spend, func(a, b privacy.QuarterSpend) int { return cmpPeriod(a.Quarter, b.Quarter) }) {
				t.Errorf("Spend(%s) not in quarter order: %v", p, spend)
			}
		}
	}
}

func cmpPeriod(a, b aggregate.Period) int {
	if a.Year != b.Year {
		return a.Year - b.Year
	}
	return a.Quarter - b.Quarter
}

func flipByte(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}
