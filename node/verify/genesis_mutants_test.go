package verify

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file kill mutants of genesis.go and split.go that
// `make mutate` found alive or not covered (docs/testing.md).

// TestGenesisStateKeyPinnedEarlier: a key an earlier run pinned in the
// state file must agree with governance from the genesis. A changed key
// is refused (ErrKeyChanged, naming the state file); a pinned key of a
// partner governance never added is not governance's to contradict.
func TestGenesisStateKeyPinnedEarlier(t *testing.T) {
	for _, tc := range []struct {
		name, partner string
		refused       bool
	}{
		{"a partner's key changed", "RS", true},
		{"a partner governance never added", "QQ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hl, cp := honestLedger(t)
			_, url := startNode(t, hl, cp)
			o := genesisOpts(t, url)
			if _, err, _ := outcome(t, o); err != nil {
				t.Fatal(err)
			}
			var st state
			b, err := os.ReadFile(o.StateFile)
			if err != nil || json.Unmarshal(b, &st) != nil {
				t.Fatalf("state file: %v", err)
			}
			st.Keys[tc.partner] = b64(pub(partnerKey(tc.partner, "other")))
			if b, err = json.Marshal(st); err != nil || os.WriteFile(o.StateFile, b, 0o600) != nil {
				t.Fatal(err)
			}
			_, err, _ = outcome(t, o)
			switch {
			case tc.refused && (!errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "pinned in "+o.StateFile)):
				t.Fatalf("got %v, want %v naming the state file", err, ErrKeyChanged)
			case !tc.refused && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestCheckServedKeyAbsent: a release the server lists without a key is
// checked against governance's key alone (a key is compared only when
// one is served).
func TestCheckServedKeyAbsent(t *testing.T) {
	keys := Keys{"RS": pub(partnerKey("RS", ""))}
	if err := checkServedKey("RS", "r1", nil, keys); err != nil {
		t.Fatalf("no served key: %v", err)
	}
	if err := checkServedKey("RS", "r1", pub(partnerKey("RS", "other")), keys); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("another served key: %v, want %v", err, ErrKeyChanged)
	}
}

// TestRunAllOneServerKeepsStateFile: with one server, RunAll uses the
// state file named, not a per-server one beside it.
func TestRunAllOneServerKeepsStateFile(t *testing.T) {
	hl, cp := honestLedger(t)
	_, url := startNode(t, hl, cp)
	o := genesisOpts(t, url)
	if _, err := RunAll(context.Background(), o, []string{url}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.StateFile); err != nil {
		t.Fatalf("state file %s: %v", o.StateFile, err)
	}
	if others, _ := filepath.Glob(strings.TrimSuffix(o.StateFile, ".json") + "-*"); len(others) != 0 {
		t.Errorf("per-server state files for one server: %v", others)
	}
}

// TestWriteComparisonSkipsUnverified: a server that failed before it
// showed a checkpoint (no root) gets no report block, only the overall
// FAILED line naming the error.
func TestWriteComparisonSkipsUnverified(t *testing.T) {
	var out strings.Builder
	reps := []Report{{Server: "http://127.0.0.1:1"}}
	if err := WriteComparison(&out, reps, []string{"http://127.0.0.1:1"}, errors.New("connection refused")); err != nil {
		t.Fatal(err)
	}
	want := "FAILED:      connection refused\nresult:      FAILED (1 servers compared)\n"
	if out.String() != want {
		t.Fatalf("WriteComparison wrote %q, want %q", out.String(), want)
	}
}
