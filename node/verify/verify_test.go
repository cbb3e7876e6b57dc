package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"roundtable/node/api"
)

var majority = []string{"AL", "BA", "ME", "RS"}

func opts(t *testing.T, url string) Options {
	t.Helper()
	return Options{Server: url, StateFile: filepath.Join(t.TempDir(), "state.json"), TOFU: true}
}

// goodNode is a ledger of 10 releases checkpointed by a majority at 8, so
// two releases are newer than the checkpoint and the inclusion proofs
// (made against the tree of 10) must be tied to it by a consistency proof.
func goodNode(t *testing.T) (*fakeNode, string, *ledger) {
	l := newLedger(t)
	l.publishN(t, 8, 100)
	cp := l.checkpoint(t, majority...)
	l.publishN(t, 2, 500)
	n, url := startNode(t, l, cp)
	return n, url, l
}

func TestRunAllGood(t *testing.T) {
	_, url, _ := goodNode(t)
	o := opts(t, url)
	var progress bytes.Buffer
	o.Progress = &progress
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Releases != 10 || rep.Verified != 8 || rep.Pending != 2 || rep.Failed != 0 {
		t.Errorf("counts: releases %d verified %d pending %d failed %d, want 10 8 2 0", rep.Releases, rep.Verified, rep.Pending, rep.Failed)
	}
	if rep.Size != 8 || rep.Origin != origin || !slices.Equal(rep.Signers, majority) {
		t.Errorf("checkpoint: %s size %d signers %v", rep.Origin, rep.Size, rep.Signers)
	}
	if !slices.Equal(rep.Partners, partners) || !slices.Equal(rep.NewlyPinned, []string{"AL", "BA", "ME", "MK", "RS", "XK"}) {
		t.Errorf("partners %v, newly pinned %v", rep.Partners, rep.NewlyPinned)
	}
	if rep.ByPartner["AL"] != 2 || rep.ByPartner["XK"] != 1 {
		t.Errorf("by partner: %v", rep.ByPartner)
	}
	var out bytes.Buffer
	if err := rep.Write(&out, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"8 verified, 2 pending", "result:      OK", "AL BA ME RS (4 of 6 partners"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(progress.String(), "signed by AL, BA, ME, RS") {
		t.Errorf("progress: %q", progress.String())
	}
	st, err := loadState(o.StateFile)
	if err != nil || st.Checkpoint == nil || st.Checkpoint.Size != 8 || len(st.Keys) != 6 {
		t.Fatalf("state after run: %+v, %v", st, err)
	}
}

func TestRunSecondRunExtends(t *testing.T) {
	n, url, l := goodNode(t)
	o := opts(t, url)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	l.publishN(t, 3, 900)
	n.set(l, l.checkpoint(t, partners...))
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if rep.Size != 13 || rep.Verified != 13 || !strings.Contains(rep.History, "size 8 -> 13") {
		t.Errorf("second run: size %d verified %d history %q", rep.Size, rep.Verified, rep.History)
	}
	if !strings.Contains(rep.KeySource, "pinned in") || len(rep.NewlyPinned) != 0 {
		t.Errorf("second run trusts %q, newly pinned %v", rep.KeySource, rep.NewlyPinned)
	}
	rep, err = Run(context.Background(), o)
	if err != nil || !strings.Contains(rep.History, "same checkpoint") {
		t.Errorf("third run: %q, %v", rep.History, err)
	}
}

func TestRunOneRelease(t *testing.T) {
	_, url, l := goodNode(t)
	o := opts(t, url)
	o.ReleaseID = l.entries[3].Signed.ID
	rep, err := Run(context.Background(), o)
	if err != nil || rep.Releases != 1 || rep.Verified != 1 {
		t.Fatalf("one release: %+v, %v", rep, err)
	}
	o.ReleaseID = strings.Repeat("ab", 32)
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown release: %v", err)
	}
}

// A node that does not allow public reads is verified with a token.
func TestRunWithToken(t *testing.T) {
	n, url, _ := goodNode(t)
	n.mu.Lock()
	n.token = "rt_test"
	n.mu.Unlock()
	o := opts(t, url)
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a token: %v, want a 401 error", err)
	}
	o.Token = "rt_test"
	if rep, err := Run(context.Background(), o); err != nil || rep.Verified == 0 {
		t.Fatalf("with the token: %+v, %v", rep, err)
	}
}

// A whole-ledger run pages through a list larger than one page (the fake
// node serves 3 to a page) and checks every leaf against the checkpoint's
// root without asking for a proof per release; a node that serves one
// page again (a cursor that does not move on) is refused rather than
// followed for ever.
func TestRunPagesThroughTheList(t *testing.T) {
	n, url, _ := goodNode(t)
	rep, err := Run(context.Background(), opts(t, url))
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	lists, singles := n.listRequests, n.releaseRequests
	n.mu.Unlock()
	if rep.Releases != 10 || rep.Verified != 8 || rep.Pending != 2 || lists != 4 || singles != 0 {
		t.Errorf("%d releases (%d verified, %d pending) from %d list pages and %d single-release requests; want 10 (8, 2) from 4 pages and none",
			rep.Releases, rep.Verified, rep.Pending, lists, singles)
	}

	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/releases" {
			http.NotFound(w, r)
			return
		}
		next := int64(2)
		writeJSON(w, 200, api.ReleasesResponse{Total: 10, Next: &next, Releases: []api.ReleaseEntry{}})
	}))
	defer stuck.Close()
	c := &client{base: stuck.URL, http: stuck.Client()}
	if _, err := c.list(context.Background()); err == nil || !strings.Contains(err.Error(), "does not move past") {
		t.Errorf("a cursor that does not move: %v", err)
	}
}

// TestRunFailures covers what a dishonest or broken node can serve; each
// case must fail with the right kind of error naming what failed, and
// leave the state file as it was.
func TestRunFailures(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, n *fakeNode, l *ledger)
		want    error
		mention []string
		// one verifies a single release (--release), the run that uses
		// the server's inclusion proofs; a whole-ledger run recomputes the
		// root from the leaves and fetches proofs only when it differs.
		one bool
	}{
		{"tampered cell value", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			e := &n.rel[2]
			e.Signed.Release.Indicators = slices.Clone(e.Signed.Release.Indicators)
			cells := slices.Clone(e.Signed.Release.Indicators[0].Cells)
			cells[0].Value++
			e.Signed.Release.Indicators[0].Cells = cells
		}, ErrSignature, []string{"partner ME", "leaf 2", "ID and ed25519 signature"}, false},
		{"swapped signature", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[0].Signed.Signature, n.rel[6].Signed.Signature = n.rel[6].Signed.Signature, n.rel[0].Signed.Signature
		}, ErrSignature, []string{"partner AL", "leaf 0", "leaf 6", "does not verify"}, false},
		{"release missing from the tree", func(t *testing.T, n *fakeNode, l *ledger) {
			// Validly signed by RS, but never appended: the node lists it
			// in place of leaf 4 and serves leaf 4's proof for it.
			n.rel = slices.Clone(l.entries)
			s := mustSign(t, fixtureRelease("RS", 3, 4242), l.keys["RS"])
			n.rel[4].Signed = s
		}, ErrInclusion, []string{"partner RS", "leaf 4", "inclusion proof"}, false},
		{"release withheld from the list", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Delete(slices.Clone(l.entries), 5, 6)
		}, ErrIncomplete, []string{"leaf 5", "withheld"}, false},
		{"two releases claim one leaf", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[1].Leaf = 0
		}, ErrIncomplete, []string{"both claim leaf 0"}, false},
		{"wrong leaf hash", func(t *testing.T, n *fakeNode, l *ledger) {
			n.proof = func(r *api.ReleaseResponse) { r.Proof.LeafHash = make([]byte, 32) }
		}, ErrInclusion, []string{"leaf hash"}, true},
		{"proof tree not consistent with checkpoint", func(t *testing.T, n *fakeNode, l *ledger) {
			n.proof = func(r *api.ReleaseResponse) { r.Proof.Root[0] ^= 1 }
		}, ErrInclusion, []string{"inclusion proof"}, true},
		{"proofs from a tree that does not extend the checkpoint", func(t *testing.T, n *fakeNode, l *ledger) {
			// Same first 7 leaves, a different 8th: leaves 0-6 prove
			// inclusion in this tree, which is not the checkpoint's.
			other := newLedger(t)
			for _, e := range l.entries[:7] {
				other.publish(t, e.Signed.Release.Partner, e.Signed.Release.Period.Quarter, e.Signed.Release.Indicators[0].Cells[0].Value)
			}
			other.publishN(t, 3, 31337)
			n.proofs = other
		}, ErrInclusion, []string{"size 8/10", "not consistent with the checkpoint"}, true},
		{"checkpoint signed by a minority (3 of 6)", func(t *testing.T, n *fakeNode, l *ledger) {
			cp := n.cp
			n.cp = signTree(t, l.keys, treeOfCheckpoint(t, cp), "AL", "BA", "RS")
		}, ErrNotRegional, []string{"3 of 6", "strict majority, 4"}, false},
		{"checkpoint signed by a stranger's key", func(t *testing.T, n *fakeNode, l *ledger) {
			keys := map[string]ed25519.PrivateKey{"AL": partnerKey("AL", "evil"), "BA": partnerKey("BA", "evil"), "ME": partnerKey("ME", "evil"), "RS": partnerKey("RS", "evil")}
			n.cp = signTree(t, keys, treeOfCheckpoint(t, n.cp), majority...)
		}, ErrCheckpoint, nil, false},
		{"checkpoint fields disagree with the note", func(t *testing.T, n *fakeNode, l *ledger) {
			n.cp.Size = 9
		}, ErrCheckpoint, []string{"size 9", "signed note says size 8"}, false},
		{"served key differs within a run", func(t *testing.T, n *fakeNode, l *ledger) {
			n.rel = slices.Clone(l.entries)
			n.rel[6].PublicKey = partnerKey("AL", "evil").Public().(ed25519.PublicKey)
		}, ErrKeyChanged, []string{"partner AL"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, url, l := goodNode(t)
			o := opts(t, url)
			n.mu.Lock()
			tc.tamper(t, n, l)
			n.mu.Unlock()
			if tc.one {
				o.ReleaseID = l.entries[3].Signed.ID
			}
			_, err := Run(context.Background(), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not mention %q: %v", m, err)
				}
			}
			if _, statErr := os.Stat(o.StateFile); statErr == nil {
				t.Errorf("state file written after a failed run")
			}
		})
	}
}

func TestKeyChangedSinceFirstUse(t *testing.T) {
	n, url, _ := goodNode(t)
	o := opts(t, url)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(o.StateFile)
	// The node now claims RS has another key (and re-signs with it).
	l2 := newLedger(t)
	l2.keys["RS"] = partnerKey("RS", "rotated")
	l2.publishN(t, 8, 100)
	n.set(l2, l2.checkpoint(t, majority...))
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "partner RS") || !strings.Contains(err.Error(), "pinned in") {
		t.Fatalf("changed key: %v", err)
	}
	after, _ := os.ReadFile(o.StateFile)
	if !bytes.Equal(before, after) {
		t.Error("state file changed by a refused run")
	}
}

func TestKeysFile(t *testing.T) {
	_, url, l := goodNode(t)
	write := func(keys map[string]ed25519.PublicKey) string {
		m := map[string][]byte{}
		for p, k := range keys {
			m[p] = k
		}
		b, _ := json.Marshal(m)
		path := filepath.Join(t.TempDir(), "keys.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := map[string]ed25519.PublicKey{}
	for p, k := range l.keys {
		good[p] = k.Public().(ed25519.PublicKey)
	}
	o := opts(t, url)
	o.Keys = write(good)
	rep, err := Run(context.Background(), o)
	if err != nil || !strings.HasPrefix(rep.KeySource, "--keys ") || len(rep.NewlyPinned) != 0 {
		t.Fatalf("good keys file: %q %v, %v", rep.KeySource, rep.NewlyPinned, err)
	}
	bad := map[string]ed25519.PublicKey{}
	for p, k := range good {
		bad[p] = k
	}
	bad["BA"] = partnerKey("BA", "other").Public().(ed25519.PublicKey)
	o = opts(t, url)
	o.Keys = write(bad)
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "partner BA") {
		t.Errorf("keys file with a wrong key: %v", err)
	}
	o.Keys = filepath.Join(t.TempDir(), "none.json")
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "keys file") {
		t.Errorf("missing keys file: %v", err)
	}
}

// TestFork: a second run sees a different ledger whose checkpoint is
// signed by the same majority but does not extend the saved one.
func TestFork(t *testing.T) {
	cases := []struct {
		name   string
		leaves int
		reason string
	}{
		{"same size, different root", 8, "two different roots for the same size 8"},
		{"larger, not an extension", 11, "consistency proof from size 8 to 11 does not verify"},
		{"rollback to a smaller tree", 5, "rollback: the tree shrank from 8 to 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t)
			l.publishN(t, 8, 100)
			n, url := startNode(t, l, l.checkpoint(t, majority...))
			o := opts(t, url)
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(o.StateFile)
			other := newLedger(t)
			if tc.name == "rollback to a smaller tree" {
				other.publishN(t, tc.leaves, 100) // an honest prefix, but older than what we saw
			} else {
				other.publishN(t, tc.leaves, 7000)
			}
			n.set(other, other.checkpoint(t, partners...))
			_, err := Run(context.Background(), o)
			var fe *ForkError
			if !errors.Is(err, ErrFork) || !errors.As(err, &fe) {
				t.Fatalf("error %v, want a fork", err)
			}
			if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "Keep BOTH signed checkpoints as evidence") {
				t.Errorf("fork message: %v", err)
			}
			ev, rerr := os.ReadFile(fe.Evidence)
			if rerr != nil || !strings.Contains(string(ev), fe.Saved.Note[:20]) || fe.Seen.Size != int64(tc.leaves) {
				t.Errorf("evidence %s: %v", fe.Evidence, rerr)
			}
			after, _ := os.ReadFile(o.StateFile)
			if !bytes.Equal(before, after) {
				t.Error("state file changed by a fork")
			}
		})
	}
}

func TestStateFileForAnotherLedger(t *testing.T) {
	_, url, _ := goodNode(t)
	o := opts(t, url)
	if err := saveState(o.StateFile, state{Checkpoint: &SavedCheckpoint{Origin: "roundtable/elsewhere", Size: 1, Root: make([]byte, 32)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "roundtable/elsewhere") {
		t.Errorf("state for another ledger: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, s := range []string{"", "127.0.0.1:8080", "ftp://x"} {
		if _, err := Run(context.Background(), Options{Server: s, StateFile: "x"}); err == nil || !strings.Contains(err.Error(), "want a URL") {
			t.Errorf("server %q: %v", s, err)
		}
	}
}
