package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSplitView plays a server that shows this researcher its own history:
// every check a single-server run makes passes (the checkpoint is signed by
// a majority, every proof verifies), and only comparing servers catches it.
func TestSplitView(t *testing.T) {
	cases := []struct {
		name         string
		honest, fake func(t *testing.T) *ledger
		want         string
	}{
		{"same size, different root", ledgerOf(8, 100), ledgerOf(8, 9000), "both show a regional checkpoint of size 8"},
		{"larger tree that does not extend", ledgerOf(8, 100), ledgerOf(11, 9000), "is not extended by"},
		{"smaller tree that is not a prefix", ledgerOf(11, 100), ledgerOf(6, 9000), "is not extended by"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hl, fl := tc.honest(t), tc.fake(t)
			_, honest := startNode(t, hl, hl.checkpoint(t, majority...))
			_, fake := startNode(t, fl, fl.checkpoint(t, majority...))
			o := opts(t, honest)
			keys := writeKeys(t, hl)
			o.Keys, o.TOFU = keys, false

			// Each server alone passes: this is what a one-server run sees.
			for _, s := range []string{honest, fake} {
				one := o
				one.Server, one.StateFile = s, filepath.Join(t.TempDir(), "one.json")
				if _, err := Run(context.Background(), one); err != nil {
					t.Fatalf("%s alone: %v (the attack needs each view to verify on its own)", s, err)
				}
			}
			reps, err := RunAll(context.Background(), o, []string{honest, fake})
			if !errors.Is(err, ErrSplitView) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RunAll: %v, want a split view (%q)", err, tc.want)
			}
			if !strings.Contains(err.Error(), "split-view-evidence.json") {
				t.Errorf("no evidence file named: %v", err)
			}
			ev, rerr := os.ReadFile(filepath.Join(filepath.Dir(o.StateFile), "split-view-evidence.json"))
			if rerr != nil || !bytes.Contains(ev, []byte(honest)) || !bytes.Contains(ev, []byte(fake)) {
				t.Errorf("evidence: %v\n%s", rerr, ev)
			}
			var out bytes.Buffer
			if werr := WriteComparison(&out, reps, []string{honest, fake}, err); werr != nil {
				t.Fatal(werr)
			}
			if !strings.HasSuffix(out.String(), "result:      FAILED (2 servers compared)\n") || strings.Contains(out.String(), "views:") {
				t.Errorf("a split view must end in FAILED:\n%s", out.String())
			}
		})
	}
}

// TestSplitViewAgreeing: two servers at different points of one history
// agree, in either order.
func TestSplitViewAgreeing(t *testing.T) {
	l := newLedger(t)
	l.publishN(t, 6, 100)
	early := l.checkpoint(t, majority...)
	behind := newLedger(t)
	behind.publishN(t, 6, 100)
	l.publishN(t, 4, 700)
	_, ahead := startNode(t, l, l.checkpoint(t, majority...))
	_, lagging := startNode(t, behind, early)
	for _, order := range [][]string{{ahead, lagging}, {lagging, ahead}} {
		o := opts(t, ahead)
		o.Keys, o.TOFU = writeKeys(t, l), false
		reps, err := RunAll(context.Background(), o, order)
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		var out bytes.Buffer
		if err := WriteComparison(&out, reps, order, nil); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(out.String(), "views:       2 servers show one history\nresult:      OK\n") {
			t.Errorf("agreeing servers:\n%s", out.String())
		}
	}
}

// TestFatalPrintsFailed: an error that is not a per-release failure (a
// fork, a changed key) still ends the report in FAILED, never OK.
func TestFatalPrintsFailed(t *testing.T) {
	l := newLedger(t)
	l.publishN(t, 8, 100)
	n, url := startNode(t, l, l.checkpoint(t, majority...))
	o := opts(t, url)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	other := newLedger(t)
	other.publishN(t, 8, 7000)
	n.set(other, other.checkpoint(t, partners...))
	rep, err := Run(context.Background(), o)
	if !errors.Is(err, ErrFork) {
		t.Fatalf("want a fork, got %v", err)
	}
	var out bytes.Buffer
	if werr := rep.Write(&out, err); werr != nil {
		t.Fatal(werr)
	}
	s := out.String()
	if strings.Contains(s, "result:      OK") || !strings.HasSuffix(s, "result:      FAILED\n") || !strings.Contains(s, "FAILED:      FORK") {
		t.Errorf("fatal report:\n%s", s)
	}
}

// TestNoTrustRoot: with no keys file, nothing pinned and no --tofu, a
// first run refuses instead of trusting whatever the server says.
func TestNoTrustRoot(t *testing.T) {
	_, url, _ := goodNode(t)
	o := opts(t, url)
	o.TOFU = false
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrNoTrustRoot) {
		t.Fatalf("first run without a trust root: %v", err)
	}
	if _, serr := os.Stat(o.StateFile); serr == nil {
		t.Error("state file written although nothing was trusted")
	}
	o.TOFU = true
	rep, err := Run(context.Background(), o)
	if err != nil || !strings.HasPrefix(rep.KeySource, "WARNING: trust on first use") {
		t.Fatalf("--tofu: %v, key source %q", err, rep.KeySource)
	}
	// The keys are pinned now: a second run needs no --tofu.
	o.TOFU = false
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("second run with pinned keys: %v", err)
	}
}

func ledgerOf(n int, v int64) func(t *testing.T) *ledger {
	return func(t *testing.T) *ledger {
		l := newLedger(t)
		l.publishN(t, n, v)
		return l
	}
}

// writeKeys writes l's partner keys as a --keys file.
func writeKeys(t *testing.T, l *ledger) string {
	t.Helper()
	k := Keys{}
	for p, priv := range l.keys {
		k[p] = priv.Public().(ed25519.PublicKey)
	}
	data, err := json.Marshal(encodeKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
