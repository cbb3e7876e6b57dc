package cluster

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/privacy"
)

func TestStateReleasesAndProofs(t *testing.T) {
	b := newFSMBase(t)
	ids := []string{b.p1.ID}
	for i, per := range []string{"2024-Q3", "2024-Q4", "2022"} {
		r := fsmReservation(t, b.cat, fmt.Sprintf("q%d", i), "AL", "AL", per, 100_000)
		s := fsmRelease(t, r.Reservation, "AL", int64(i))
		mustApply(t, b.f, b.log, NewReserve(r), NewPublish(s))
		ids = append(ids, s.ID)
	}
	head, err := b.f.TreeHead()
	if err != nil || head.N != int64(len(ids)) {
		t.Fatalf("tree head %v, %v; want %d leaves", head, err, len(ids))
	}

	var got []string
	err = b.f.Releases(func(leaf int64, s privacy.Signed) error {
		if leaf != int64(len(got)) {
			t.Errorf("leaf %d out of order", leaf)
		}
		if err := s.Verify(fsmKey(s.Release.Partner).Public().(ed25519.PublicKey)); err != nil {
			t.Errorf("stored release %s no longer verifies: %v", s.ID, err)
		}
		got = append(got, s.ID)
		return nil
	})
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("Releases: %v, %v; want %v", got, err, ids)
	}
	stop := errors.New("stop")
	if err := b.f.Releases(func(int64, privacy.Signed) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Releases did not return fn's error: %v", err)
	}

	for i, id := range ids {
		s, leaf, err := b.f.Release(id)
		if err != nil || leaf != int64(i) || s.ID != id {
			t.Fatalf("Release(%s): leaf %d, %v", id, leaf, err)
		}
		data, _, err := b.f.ReleaseBytes(id)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := LeafData(&s); string(want) != string(data) {
			t.Errorf("ReleaseBytes(%s) is not LeafData of the release", id)
		}
		// A researcher's check: the stored bytes are in the tree.
		for size := int64(i + 1); size <= head.N; size++ {
			proof, err := b.f.InclusionProof(leaf, size)
			if err != nil {
				t.Fatal(err)
			}
			root := mustTreeHash(t, b, size)
			if err := VerifyInclusion(proof, size, root, leaf, data); err != nil {
				t.Errorf("leaf %d in size %d: %v", leaf, size, err)
			}
		}
	}
	if _, _, err := b.f.Release("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release(nope): %v, want ErrNotFound", err)
	}
	proof, err := b.f.ConsistencyProof(2, head.N)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(proof, 2, mustTreeHash(t, b, 2), head.N, head.Hash); err != nil {
		t.Errorf("consistency 2 -> %d: %v", head.N, err)
	}
}

func TestStateReservationAndSpend(t *testing.T) {
	b := newFSMBase(t)
	sr, usedBy, err := b.f.Reservation("r1")
	if err != nil || usedBy != b.p1.ID || sr.Reservation.SpendMicro != 800_000 {
		t.Errorf("Reservation(r1): %+v used by %q, %v", sr.Reservation, usedBy, err)
	}
	if _, usedBy, err := b.f.Reservation("r2"); err != nil || usedBy != "" {
		t.Errorf("Reservation(r2): used by %q, %v; want unused", usedBy, err)
	}
	if _, _, err := b.f.Reservation("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Reservation(nope): %v, want ErrNotFound", err)
	}
	spend, err := b.f.Spend("RS")
	if err != nil {
		t.Fatal(err)
	}
	want := []privacy.QuarterSpend{
		{Quarter: period(t, "2023-Q3"), SpentMicro: 800_000},
		{Quarter: period(t, "2024-Q1"), SpentMicro: 800_000},
		{Quarter: period(t, "2024-Q2"), SpentMicro: 300_000},
	}
	if !slices.Equal(spend, want) {
		t.Errorf("Spend(RS) = %v, want %v", spend, want)
	}
	if spend, err := b.f.Spend("AL"); err != nil || len(spend) != 0 {
		t.Errorf("Spend(AL) = %v, %v; want none", spend, err)
	}
	if p, err := b.f.Policy(); err != nil || p.CapMicro != privacy.Micro {
		t.Errorf("Policy: %+v, %v", p, err)
	}
}

// TestStateReadsDuringApply runs readers against a ledger being written:
// every read sees a whole batch (a reservation and its release, applied
// together, are either both there or both absent).
func TestStateReadsDuringApply(t *testing.T) {
	b := newFSMBase(t)
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 1)
	var reads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := readsAgree(b.f); err != nil {
				errs <- err
				return
			}
			reads.Add(1)
		}
	}()
	for i := 0; i < 30; i++ {
		r := fsmReservation(t, b.cat, fmt.Sprintf("c%d", i), "BA", "BA", "2024-Q1", 10_000)
		mustApply(t, b.f, b.log, NewReserve(r), NewPublish(fsmRelease(t, r.Reservation, "BA", int64(i))))
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if reads.Load() == 0 {
		t.Fatal("no read completed while the batches applied")
	}
	if err := readsAgree(b.f); err != nil {
		t.Fatal(err)
	}
}

// readsAgree reads the tree head, the release list and the tree head
// again, as a reader racing the state machine would, and checks what a
// reader may rely on: the tree only grows (a consistency proof ties the
// two heads), the list is leaves 0…n−1 in order and lies between the two
// heads, and when it has as many releases as the first head, it is exactly
// that tree (its RFC 6962 root is the head's root).
func readsAgree(f *FSM) error {
	h1, err := f.TreeHead()
	if err != nil {
		return err
	}
	var leaves []tlog.Hash
	err = f.Releases(func(leaf int64, s privacy.Signed) error {
		if leaf != int64(len(leaves)) {
			return fmt.Errorf("release %s at leaf %d, after %d releases", s.ID, leaf, len(leaves))
		}
		data, err := LeafData(&s)
		if err != nil {
			return err
		}
		leaves = append(leaves, tlog.RecordHash(data))
		return nil
	})
	if err != nil {
		return err
	}
	h2, err := f.TreeHead()
	if err != nil {
		return err
	}
	n := int64(len(leaves))
	switch {
	case n < h1.N || n > h2.N:
		return fmt.Errorf("a tree of %d, then %d releases, then a tree of %d", h1.N, n, h2.N)
	case n == h1.N && n > 0 && rfc6962Root(leaves) != h1.Hash:
		return fmt.Errorf("the %d releases listed are not the tree of %d the head names", n, h1.N)
	}
	if h1.N > 0 && h2.N > h1.N {
		proof, err := f.ConsistencyProof(h1.N, h2.N)
		if err != nil {
			return err
		}
		if err := VerifyConsistency(proof, h1.N, h1.Hash, h2.N, h2.Hash); err != nil {
			return fmt.Errorf("tree %d does not extend tree %d: %w", h2.N, h1.N, err)
		}
	}
	return nil
}

// rfc6962Root is the Merkle tree hash of RFC 6962 §2.1 over leaf hashes,
// computed directly (not through the ledger's stored hashes).
func rfc6962Root(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:]))
}

func TestLeafDataFromMatchesLeafData(t *testing.T) {
	r := fsmReservation(t, "cat", "r", "RS", "RS", "2024-Q1", 1)
	signed := fsmRelease(t, r.Reservation, "RS", 3)
	noSig := signed
	noSig.Signature = nil
	emptySig := signed
	emptySig.Signature = []byte{}
	odd := signed
	odd.Release.Indicators[0].Name = `<victims & "co">` // characters JSON could escape
	odd.Release.Indicators[0].Cells[0].CILow = -0.000001234
	odd.Release.Indicators[0].Cells[0].Key = []string{"ü", "\u2028", "a\\b"}
	for _, s := range []privacy.Signed{signed, noSig, emptySig, odd} {
		body, err := s.Release.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		want, err := LeafData(&s)
		if err != nil {
			t.Fatal(err)
		}
		if got := leafDataFrom(s.ID, body, s.Signature); string(got) != string(want) {
			t.Errorf("leafDataFrom:\n%s\nLeafData:\n%s", got, want)
		}
	}
}

// TestVerifyCanonicalMatchesVerify: the FSM checks releases with
// VerifyCanonical on the canonical bytes it already holds; it must accept
// and refuse exactly what Verify does.
func TestVerifyCanonicalMatchesVerify(t *testing.T) {
	r := fsmReservation(t, "cat", "r", "RS", "RS", "2024-Q1", 1)
	good := fsmRelease(t, r.Reservation, "RS", 3)
	key := func(id string) ed25519.PublicKey { return fsmKey(id).Public().(ed25519.PublicKey) }
	altered := good
	altered.Release.Indicators = slices.Clone(good.Release.Indicators)
	altered.Release.Indicators[0].Cells = slices.Clone(good.Release.Indicators[0].Cells)
	altered.Release.Indicators[0].Cells[0].Value++
	rehashed := altered // id fixed up to the altered content, signature not
	if body, err := altered.Release.Canonical(); err != nil {
		t.Fatal(err)
	} else {
		sum := sha256.Sum256(body)
		rehashed.ID = hex.EncodeToString(sum[:])
	}
	badSig := good
	badSig.Signature = slices.Clone(good.Signature)
	badSig.Signature[0] ^= 1
	short := good
	short.Signature = good.Signature[:10]
	noSig := good
	noSig.Signature = nil
	tests := []struct {
		name string
		s    privacy.Signed
		pub  ed25519.PublicKey
		ok   bool
	}{
		{"valid", good, key("RS"), true},
		{"other partner's key", good, key("BA"), false},
		{"short key", good, key("RS")[:16], false},
		{"content altered", altered, key("RS"), false},
		{"content altered, id recomputed", rehashed, key("RS"), false},
		{"signature flipped", badSig, key("RS"), false},
		{"signature truncated", short, key("RS"), false},
		{"no signature", noSig, key("RS"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := tt.s.Release.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			errV := tt.s.Verify(tt.pub)
			errC := tt.s.VerifyCanonical(tt.pub, body)
			if (errV == nil) != tt.ok || (errC == nil) != tt.ok {
				t.Fatalf("Verify = %v, VerifyCanonical = %v, want ok=%v", errV, errC, tt.ok)
			}
			if errV != nil && errC.Error() != errV.Error() {
				t.Errorf("refusals differ: Verify %q, VerifyCanonical %q", errV, errC)
			}
		})
	}
}

// TestStateReleasesManyChunks crosses Releases' decoding chunks: order,
// content and early stop must hold across them.
func TestStateReleasesManyChunks(t *testing.T) {
	b := newFSMBase(t)
	ids := []string{b.p1.ID}
	var cmds []Command
	for i := 0; i < 600; i++ {
		r := fsmReservation(t, b.cat, fmt.Sprintf("m%d", i), "BA", "BA", fmt.Sprintf("%d-Q%d", 1990+i/4, 1+i%4), 1_000)
		s := fsmRelease(t, r.Reservation, "BA", int64(i))
		cmds = append(cmds, NewReserve(r), NewPublish(s))
		ids = append(ids, s.ID)
	}
	mustApply(t, b.f, b.log, cmds...)

	var got []string
	if err := b.f.Releases(func(leaf int64, s privacy.Signed) error {
		if leaf != int64(len(got)) {
			return fmt.Errorf("leaf %d at position %d", leaf, len(got))
		}
		got = append(got, s.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("Releases returned %d ids, want %d in leaf order", len(got), len(ids))
	}
	var raw []string
	if err := b.f.ReleasesRaw(func(leaf int64, data []byte) error {
		want, _, err := b.f.ReleaseBytes(ids[leaf])
		if err != nil || string(want) != string(data) {
			return fmt.Errorf("leaf %d: raw bytes differ from ReleaseBytes (%v)", leaf, err)
		}
		raw = append(raw, ids[leaf])
		return nil
	}, nil); err != nil || len(raw) != len(ids) {
		t.Fatalf("ReleasesRaw: %d, %v", len(raw), err)
	}
	n := 0
	stop := errors.New("stop")
	if err := b.f.Releases(func(int64, privacy.Signed) error {
		n++
		if n == 300 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 300 {
		t.Errorf("early stop: %d calls, %v", n, err)
	}
}
