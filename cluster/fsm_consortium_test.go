package cluster

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/privacy"
)

// twinConsortia founds two ledgers whose partners hold the same keys
// under the same consortium name; only their coordinators differ, so their
// genesis hashes (consortium ids) differ. It returns A (with RS's
// reservation r1 and release p1 admitted) and B (genesis only).
func twinConsortia(t *testing.T) (a, b *fsmBase, idA, idB string) {
	t.Helper()
	gA := fsmGenesis(t, "AL", "BA", "RS")
	gB := fsmGenesis(t, "AL", "BA", "RS")
	gB.Genesis.Coordinators = fsmCoordinators("d1", "d2", "d3")
	var err error
	if idA, err = gA.Genesis.ID(); err != nil {
		t.Fatal(err)
	}
	if idB, err = gB.Genesis.ID(); err != nil {
		t.Fatal(err)
	}
	if idA == idB {
		t.Fatal("the two geneses have the same id")
	}
	cat := fsmCatalogHash(t)
	a = &fsmBase{f: newTestFSM(t), log: &fsmLog{}, cat: cat}
	b = &fsmBase{f: newTestFSM(t), log: &fsmLog{}, cat: cat}
	mustApply(t, b.f, b.log, gB)
	mustApply(t, a.f, a.log, gA) // last: fsmReservation now binds to A
	a.r1 = fsmReservation(t, cat, "r1", "RS", "RS", "2024-Q1", 100_000)
	a.p1 = fsmRelease(t, a.r1.Reservation, "RS", 1)
	mustApply(t, a.f, a.log, NewReserve(a.r1), NewPublish(a.p1))
	return a, b, idA, idB
}

// rebind signs r for another consortium with the same partner key: what
// the partner itself would send to B.
func rebind(t *testing.T, r privacy.Reservation, consortium string) privacy.SignedReservation {
	t.Helper()
	r.Consortium = consortium
	sr, err := privacy.SignReservation(r, fsmKey(r.Partner))
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// TestEntriesBoundToConsortium: a reservation, a release and a checkpoint
// co-signature that RS validly signed for consortium A are refused when
// replayed into consortium B, where RS holds the same key: each is signed
// over A's id. The same entries signed by RS for B are admitted, so the
// consortium id is the only thing that refuses the replay; the refusals
// leave B's state hash and Merkle root unchanged.
func TestEntriesBoundToConsortium(t *testing.T) {
	a, b, idA, idB := twinConsortia(t)

	// The reservation and release A admitted, replayed into B.
	refusedUnchanged(t, b, NewReserve(a.r1), "reservation r1 is signed for consortium \""+idA+"\", this ledger is consortium "+idB)
	// B holds a reservation r1 of its own, so only the consortium can refuse
	// the release.
	own := rebind(t, a.r1.Reservation, idB)
	mustApply(t, b.f, b.log, NewReserve(own))
	refusedUnchanged(t, b, NewPublish(a.p1), "release "+a.p1.ID+" is signed for consortium \""+idA+"\"")
	// RS's release signed for B, from the same reservation content, is admitted.
	mustApply(t, b.f, b.log, NewPublish(fsmRelease(t, own.Reservation, "RS", 1)))

	// A checkpoint note RS signed for A over B's very tree head: same
	// partner key, same tree, only the origin names A.
	head, err := b.f.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	forA := b.cosignNote(t, "RS", CheckpointOrigin("western-balkans", idA), head)
	refusedUnchanged(t, b, NewCosign("RS", forA), "checkpoint is for \"roundtable/western-balkans/"+idA+"\"")
	forB := b.cosignNote(t, "RS", CheckpointOrigin("western-balkans", idB), head)
	if res := mustApply(t, b.f, b.log, NewCosign("RS", forB))[0]; res.Leaf != head.N {
		t.Errorf("B's own co-signature: %+v", res)
	}
}

// TestCheckpointOriginNamesConsortium: the origin carries the whole
// consortium id, and OriginConsortium reads it back; anything else is not
// a roundtable origin.
func TestCheckpointOriginNamesConsortium(t *testing.T) {
	id := strings.Repeat("ab", 32)
	o := CheckpointOrigin("western-balkans", id)
	if o != "roundtable/western-balkans/"+id {
		t.Fatalf("origin %q", o)
	}
	if got, ok := OriginConsortium(o); !ok || got != id {
		t.Errorf("OriginConsortium(%q) = %q, %v", o, got, ok)
	}
	for _, bad := range []string{
		"roundtable/western-balkans",              // the old form, no id
		"roundtable/western-balkans/" + id[:16],   // a prefix of the id
		"roundtable/" + id,                        // no name
		"other/western-balkans/" + id,             // not roundtable
		"roundtable/wb/" + strings.ToUpper(id),    // not lower-case hex
		"roundtable/wb/" + id[:62] + "zz",         // not hex
		"roundtable/western-balkans/" + id + "/x", // id not last
	} {
		if got, ok := OriginConsortium(bad); ok {
			t.Errorf("OriginConsortium(%q) = %q, want not ok", bad, got)
		}
	}
	// A checkpoint's text round-trips the long origin.
	msg, err := SignCheckpoint(o, tlog.Tree{N: 1, Hash: tlog.RecordHash([]byte("x"))}, testNoteSigner(t, "roundtable-RS"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err := OpenCheckpoint(msg, testNoteVerifiers(t, "roundtable-RS"))
	if err != nil || got != o {
		t.Errorf("OpenCheckpoint: %q, %v", got, err)
	}
}
