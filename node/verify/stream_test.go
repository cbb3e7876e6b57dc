package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/privacy"
)

// longNode is a ledger of 30 releases, all checkpointed, served 3 to a
// page: what a whole-ledger run finds on its tenth page must be named as
// surely as what it finds on its first.
func longNode(t *testing.T) (*fakeNode, string, *ledger) {
	l := newLedger(t)
	l.publishN(t, 30, 100)
	n, url := startNode(t, l, l.checkpoint(t, majority...))
	return n, url, l
}

// runFails runs a whole-ledger verification that must fail with want,
// mentioning every one of mention, and leave no state file.
func runFails(t *testing.T, url string, want error, mention ...string) Report {
	t.Helper()
	o := opts(t, url)
	rep, err := Run(context.Background(), o)
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error does not mention %q: %v", m, err)
		}
	}
	if _, statErr := os.Stat(o.StateFile); statErr == nil {
		t.Error("state file written after a failed run")
	}
	return rep
}

func TestStreamLaterPageFailures(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, n *fakeNode, l *ledger)
		want    error
		mention []string
		failed  int // releases the report counts as failed
	}{
		{"tampered release on the ninth page", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			e := &n.rel[25]
			e.Signed.Release.Indicators = slices.Clone(e.Signed.Release.Indicators)
			cells := slices.Clone(e.Signed.Release.Indicators[0].Cells)
			cells[1].Value += 7
			e.Signed.Release.Indicators[0].Cells = cells
		}, ErrSignature, []string{"partner BA", "leaf 25", "ID and ed25519 signature"}, 1},
		{"validly signed release not in the tree, on the eighth page", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[22].Signed = mustSign(t, fixtureRelease("MK", 2, 777), l.keys["MK"])
			n.rel[22].PublicKey = l.keys["MK"].Public().(ed25519.PublicKey)
		}, ErrInclusion, []string{"partner MK", "leaf 22", "inclusion proof"}, 1},
		{"the proof of a release not in the tree answered for another leaf", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[22].Signed = mustSign(t, fixtureRelease("MK", 2, 777), l.keys["MK"])
			n.rel[22].PublicKey = l.keys["MK"].Public().(ed25519.PublicKey)
			id := n.rel[22].Signed.ID
			n.proof = func(r *api.ReleaseResponse) {
				if r.Signed.ID == id {
					r.Leaf = 21
				}
			}
		}, ErrInclusion, []string{"is at leaf 22 in the list but the server answered", "at leaf 21"}, 0},
		{"proofs, fetched to name a release not in the tree, from a tree that does not extend the checkpoint", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[22].Signed = mustSign(t, fixtureRelease("MK", 2, 777), l.keys["MK"])
			n.rel[22].PublicKey = l.keys["MK"].Public().(ed25519.PublicKey)
			// The same first 20 leaves, then others: leaves 0-19 prove
			// inclusion in this tree of 32, which is not the checkpoint's.
			other := newLedger(t)
			for _, e := range l.entries[:20] {
				other.publish(t, e.Signed.Release.Partner, e.Signed.Release.Period.Quarter, e.Signed.Release.Indicators[0].Cells[0].Value)
			}
			other.publishN(t, 12, 31337)
			n.proofs = other
		}, ErrInclusion, []string{"leaf 0", "leaf 19", "size 32/30", "not consistent with the checkpoint"}, 0},
		{"release withheld from the ninth page", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Delete(slices.Clone(l.entries), 26, 27)
		}, ErrIncomplete, []string{"leaf 26", "withheld"}, 0},
		{"last release withheld", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries[:29])
		}, ErrIncomplete, []string{"leaf 29", "withheld"}, 0},
		{"a later page repeats a leaf", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[19].Leaf = 18
		}, ErrIncomplete, []string{"both claim leaf 18"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, url, l := longNode(t)
			n.mu.Lock()
			tc.tamper(t, n, l)
			n.mu.Unlock()
			rep := runFails(t, url, tc.want, tc.mention...)
			if tc.failed > 0 && (rep.Failed != tc.failed || rep.Verified != 30-tc.failed) {
				t.Errorf("report: %d verified, %d failed; want %d, %d", rep.Verified, rep.Failed, 30-tc.failed, tc.failed)
			}
		})
	}
}

// A server that lists releases in bytes other than their leaf bytes fails
// them, whether they are checkpointed or pending, and never counts them
// (least of all under another partner); the checks that name them are the
// decoding path's, since the bytes are not in the leaf layout.
func TestStreamNonCanonicalBytes(t *testing.T) {
	leafOf := func(t *testing.T, l *ledger, leaf int) []byte {
		data, err := cluster.LeafData(&l.entries[leaf].Signed)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	replace := func(old, new string) func(t *testing.T, data []byte) []byte {
		return func(t *testing.T, data []byte) []byte {
			if !bytes.Contains(data, []byte(old)) {
				t.Fatalf("leaf bytes lack %q", old)
			}
			return bytes.Replace(data, []byte(old), []byte(new), 1)
		}
	}
	cases := []struct {
		name  string
		leaf  int // 13 is BA's and checkpointed, 31 is BA's and pending
		bytes func(t *testing.T, data []byte) []byte
		// want: ErrSignature when the bytes decode to another release
		// (the id is not its hash), else ErrInclusion (the bytes are not
		// its leaf).
		want error
	}{
		{"whitespace after a colon", 13, replace(`"partner":"BA"`, `"partner": "BA"`), ErrInclusion},
		{"whitespace, pending", 31, replace(`"partner":"BA"`, `"partner": "BA"`), ErrInclusion},
		{"keys reordered", 13, func(t *testing.T, data []byte) []byte {
			var s privacy.Signed
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			body, err := s.Release.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := json.Marshal(s.Signature)
			return fmt.Appendf(nil, `{"release":%s,"id":"%s","signature":%s}`, body, s.ID, sig)
		}, ErrInclusion},
		{"a second partner key, read last by encoding/json", 13, replace(`"partner":"BA",`, `"partner":"BA","partner":"AL",`), ErrSignature},
		{"a second partner key, pending", 31, replace(`"partner":"BA",`, `"partner":"BA","partner":"AL",`), ErrSignature},
		{"a key in another case", 13, replace(`"partner":"BA",`, `"partner":"BA","Partner":"AL",`), ErrSignature},
		{"HTML-escaped", 13, replace(`"victims <18"`, `"victims \u003c18"`), ErrInclusion},
		{"HTML-escaped, pending", 31, replace(`"victims <18"`, `"victims \u003c18"`), ErrInclusion},
		{"signature with an escaped newline", 13, func(t *testing.T, data []byte) []byte {
			i := bytes.LastIndex(data, []byte(`"signature":"`)) + len(`"signature":"`) + 8
			return slices.Concat(data[:i], []byte(`\n`), data[i:])
		}, ErrInclusion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t)
			var cp api.Checkpoint
			for i := range 32 {
				r := fixtureRelease(partners[i%len(partners)], 1+i/len(partners)%4, int64(100+i))
				r.Indicators[0].Name = "victims <18" // a name the HTML-escaping encoder would change
				l.appendSigned(t, mustSign(t, r, l.keys[r.Partner]))
				if i == 29 {
					cp = l.checkpoint(t, majority...)
				}
			}
			n, url := startNode(t, l, cp)
			honest := leafOf(t, l, tc.leaf)
			served := tc.bytes(t, slices.Clone(honest))
			if bytes.Equal(served, honest) {
				t.Fatal("the case serves the honest bytes")
			}
			n.mu.Lock()
			n.raw = map[int64][]byte{int64(tc.leaf): served}
			// Served without a key: a key served beside bytes that name
			// another partner is refused as a key change before any of
			// the checks this test is about.
			n.rel = slices.Clone(l.entries)
			n.rel[tc.leaf].PublicKey = nil
			n.mu.Unlock()
			rep := runFails(t, url, tc.want, fmt.Sprintf("leaf %d", tc.leaf))
			if rep.Failed != 1 || rep.Verified+rep.Pending != 31 {
				t.Errorf("report: %d verified, %d pending, %d failed; want 31 passed and 1 failed", rep.Verified, rep.Pending, rep.Failed)
			}
			if want := map[string]int{"AL": 5, "BA": 4, "ME": 5, "MK": 5, "RS": 5, "XK": 5}; tc.leaf == 13 && !mapsEqual(rep.ByPartner, want) {
				t.Errorf("by partner %v, want %v", rep.ByPartner, want)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A leaf the state machine would never append, but that a majority signed
// into its tree: bytes whose release carries two partner keys, signed by
// the partner the last one names. The root binds them, so only reading
// them can refuse them, and a reader that took the first key would count
// the release under AL.
func TestStreamAmbiguousLeafInSignedTree(t *testing.T) {
	l := newLedger(t)
	l.publishN(t, 10, 100)
	r := fixtureRelease("RS", 4, 4242)
	body, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte(`"partner":"RS",`), []byte(`"partner":"AL","partner":"RS",`), 1)
	sum := sha256.Sum256(body)
	sig := ed25519.Sign(l.keys["RS"], append([]byte("roundtable release v1\n"), body...))
	sigJSON, _ := json.Marshal(sig)
	leaf := fmt.Appendf(nil, `{"id":"%s","release":%s,"signature":%s}`, hex.EncodeToString(sum[:]), body, sigJSON)
	if err := l.db.Update(func(tx *bbolt.Tx) error {
		_, err := cluster.AppendLeaf(tx, leaf)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var s privacy.Signed
	if err := json.Unmarshal(leaf, &s); err != nil {
		t.Fatal(err)
	}
	l.entries = append(l.entries, api.ReleaseEntry{Signed: s, Leaf: 10, PublicKey: l.keys["RS"].Public().(ed25519.PublicKey)})
	l.publishN(t, 3, 900)
	n, url := startNode(t, l, l.checkpoint(t, majority...))
	n.mu.Lock()
	n.raw = map[int64][]byte{10: leaf}
	n.mu.Unlock()
	rep := runFails(t, url, ErrSignature, "leaf 10", "partner RS")
	if rep.Failed != 1 || rep.Verified != 13 || rep.ByPartner["AL"] != 3 || rep.ByPartner["RS"] != 1 {
		t.Errorf("report: %d verified, %d failed, by partner %v; want 13, 1, AL 3, RS 1", rep.Verified, rep.Failed, rep.ByPartner)
	}
}

// A page whose own JSON is not in node/api's layout is decoded by
// encoding/json; its releases are checked the same way.
func TestStreamPageInAnotherLayout(t *testing.T) {
	n, url, _ := longNode(t)
	n.mu.Lock()
	n.spaced = true
	n.mu.Unlock()
	rep, err := Run(context.Background(), opts(t, url))
	if err != nil || rep.Verified != 30 {
		t.Fatalf("spaced pages: %d verified, %v", rep.Verified, err)
	}
}

// The run keeps a summary per release, not the releases: after every page
// the live heap is within a few pages of what it was after the fourth
// (when the three page buffers that go round have been read into), though
// the list is 80 pages. A run that kept the listed bytes, or the decoded
// releases, grows by at least the list's size.
func TestStreamHoldsNoReleases(t *testing.T) {
	l := newLedger(t)
	for i := range 240 {
		r := fixtureRelease(partners[i%len(partners)], 1+i%4, int64(i))
		cells := r.Indicators[0].Cells
		for k := range 400 {
			cells = append(cells, privacy.Cell{Key: []string{"k", fmt.Sprint(k)}, Value: int64(k), Scale: 2, CILow: -3.5, CIHigh: 9.25})
		}
		r.Indicators[0].Cells = cells
		l.appendSigned(t, mustSign(t, r, l.keys[r.Partner]))
	}
	listBytes := 0
	for i := range l.entries {
		data, _ := cluster.LeafData(&l.entries[i].Signed)
		listBytes += len(data)
	}
	_, url := startNode(t, l, l.checkpoint(t, majority...))
	var first, peak uint64
	pages := 0
	o := opts(t, url)
	o.pageChecked = func() {
		if pages++; pages < 4 {
			return
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if first == 0 {
			first = ms.HeapAlloc
		}
		peak = max(peak, ms.HeapAlloc)
	}
	rep, err := Run(context.Background(), o)
	if err != nil || rep.Verified != 240 || pages != 80 {
		t.Fatalf("run: %d verified in %d pages, %v", rep.Verified, pages, err)
	}
	growth := int64(peak) - int64(first)
	t.Logf("list %d KB; live heap after the fourth page %d KB, grew by at most %d KB", listBytes>>10, first>>10, growth>>10)
	if growth > int64(listBytes)/4 {
		t.Errorf("the live heap grew by %d KB over a list of %d KB: the run keeps what it listed", growth>>10, listBytes>>10)
	}
}

// TestStreamPendingReadDecoded: a release above the checkpoint is judged
// decoded, never in place, since no signed root binds its bytes. Here the
// partner itself signed a non-canonical body (HTML-escaped, its id the
// hash of those bytes): read in place it would pass as pending, but
// decoded, its canonical encoding does not hash to its id, so it fails. At
// leaf 30, the first above the checkpoint of size 30, and at leaf 31.
func TestStreamPendingReadDecoded(t *testing.T) {
	for _, leaf := range []int{30, 31} {
		t.Run(fmt.Sprint("leaf ", leaf), func(t *testing.T) {
			l := newLedger(t)
			var cp api.Checkpoint
			for i := range 32 {
				r := fixtureRelease(partners[i%len(partners)], 1+i/len(partners)%4, int64(100+i))
				r.Indicators[0].Name = "victims <18"
				l.appendSigned(t, mustSign(t, r, l.keys[r.Partner]))
				if i == 29 {
					cp = l.checkpoint(t, majority...)
				}
			}
			n, url := startNode(t, l, cp)
			s := l.entries[leaf].Signed
			body, err := s.Release.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.Replace(body, []byte(`"victims <18"`), []byte(`"victims \u003c18"`), 1)
			sum := sha256.Sum256(body)
			id := hex.EncodeToString(sum[:])
			sig := ed25519.Sign(l.keys[s.Release.Partner], append([]byte("roundtable release v1\n"), body...))
			served := fmt.Appendf(nil, `{"id":"%s","release":%s,"signature":"%s"}`, id, body, base64.StdEncoding.EncodeToString(sig))
			if _, ok := splitLeaf(served); !ok {
				t.Fatal("the re-signed bytes are not in the leaf layout: the test does not reach the in-place path")
			}
			n.mu.Lock()
			n.raw = map[int64][]byte{int64(leaf): served}
			n.rel = slices.Clone(l.entries)
			n.rel[leaf].PublicKey = nil
			n.mu.Unlock()
			rep := runFails(t, url, ErrSignature, fmt.Sprintf("leaf %d", leaf))
			if rep.Failed != 1 {
				t.Errorf("report: %d verified, %d pending, %d failed; want 1 failed", rep.Verified, rep.Pending, rep.Failed)
			}
		})
	}
}
