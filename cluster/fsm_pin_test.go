package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// The pin (fsm_pin.go) is otherwise tested only through a node's start
// (node.TestNodeRefusesAnotherConsortiumsGenesis); these tests drive it on
// an FSM, so that `make mutate` (which runs the FSM tests) sees every
// branch.

func genesisID(t *testing.T, c Command) string {
	t.Helper()
	id, err := c.Genesis.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func readPinFile(t *testing.T, dir string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, PinFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestFSMPinConsortium: the pin is written on first start, read on later
// ones, and refuses (writing nothing) an id that is not a consortium id, a
// start for another consortium than the pinned one, and a ledger of
// another consortium; a ledger from before pins pins its own consortium.
func TestFSMPinConsortium(t *testing.T) {
	ours := genesisID(t, fsmGenesis(t, "RS", "AL"))
	other := genesisID(t, fsmGenesis(t, "XK"))
	founded := func(t *testing.T) string { // a ledger of ours, no pin yet
		dir := t.TempDir()
		f := openTestFSM(t, dir)
		mustApply(t, f, &fsmLog{}, fsmGenesis(t, "RS", "AL"))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	pinned := func(t *testing.T, id string) string { // an empty ledger pinned to id
		dir := t.TempDir()
		f := openTestFSM(t, dir)
		if _, err := f.PinConsortium(id); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		want    string
		pinned  string // the id returned and in the pin file; "" for a refusal
		refusal string // substring of the refusal
	}{
		{"first start", func(t *testing.T) string { return t.TempDir() }, ours, ours, ""},
		{"restart reads the pin", func(t *testing.T) string { return pinned(t, ours) }, "", ours, ""},
		{"restart for the pinned consortium", func(t *testing.T) string { return pinned(t, ours) }, ours, ours, ""},
		{"restart for another consortium", func(t *testing.T) string { return pinned(t, ours) }, other, "", "it was started for consortium " + other},
		{"ledger from before pins", founded, "", ours, ""},
		{"ledger of the consortium given", founded, ours, ours, ""},
		{"ledger of another consortium", founded, other, "", "belongs to consortium " + ours + ", but this node is pinned to " + other},
		{"nothing to pin", func(t *testing.T) string { return t.TempDir() }, "", "", ErrNoConsortium.Error()},
		{"upper-case id", func(t *testing.T) string { return t.TempDir() }, strings.ToUpper(ours), "", "want 64 lowercase hex digits"},
		{"short id", func(t *testing.T) string { return t.TempDir() }, ours[:62], "", "want 64 lowercase hex digits"},
		{"not hex", func(t *testing.T) string { return t.TempDir() }, "x" + ours[1:], "", "want 64 lowercase hex digits"},
		{"damaged pin file", func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, PinFile), []byte(ours[:40]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ours, "", PinFile + ": consortium id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			before, hadPin := readPinFile(t, dir)
			f := openTestFSM(t, dir)
			got, err := f.PinConsortium(tc.want)
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("PinConsortium(%q) = %q, %v; want a refusal containing %q", tc.want, got, err, tc.refusal)
				}
				if after, has := readPinFile(t, dir); after != before || has != hadPin {
					t.Errorf("a refusal changed the pin file: %q (present %v), was %q (present %v)", after, has, before, hadPin)
				}
				if f.Pinned() != "" {
					t.Errorf("Pinned() = %q after a refusal", f.Pinned())
				}
				return
			}
			if err != nil || got != tc.pinned {
				t.Fatalf("PinConsortium(%q) = %q, %v; want %q", tc.want, got, err, tc.pinned)
			}
			if f.Pinned() != tc.pinned {
				t.Errorf("Pinned() = %q, want %q", f.Pinned(), tc.pinned)
			}
			if file, _ := readPinFile(t, dir); file != tc.pinned+"\n" {
				t.Errorf("pin file holds %q, want %q", file, tc.pinned+"\n")
			}
		})
	}
}

// TestFSMPinnedGenesis: a node pinned to one consortium stops, applying
// nothing, at a genesis entry of another; the genesis of its own
// consortium applies.
func TestFSMPinnedGenesis(t *testing.T) {
	own := fsmGenesis(t, "RS", "AL")
	for _, tc := range []struct {
		name    string
		genesis Command
		ok      bool
	}{
		{"own consortium", own, true},
		{"another consortium", fsmGenesis(t, "XK"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t)
			if _, err := f.PinConsortium(genesisID(t, own)); err != nil {
				t.Fatal(err)
			}
			data, err := tc.genesis.Encode()
			if err != nil {
				t.Fatal(err)
			}
			out := f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}})
			res, isResult := out[0].(ApplyResult)
			if tc.ok {
				if !isResult || !res.OK {
					t.Fatalf("own genesis: %v, want it applied", out[0])
				}
				return
			}
			err, isErr := out[0].(error)
			if !isErr || !strings.Contains(err.Error(), "but this node is pinned to consortium") {
				t.Fatalf("another consortium's genesis: %v, want the FSM stopped", out[0])
			}
			if f.Err() == nil || f.AppliedIndex() != 0 {
				t.Errorf("Err() = %v, applied index %d; want the FSM stopped at 0", f.Err(), f.AppliedIndex())
			}
			if _, err := f.ConsortiumID(); !errors.Is(err, ErrNotFound) {
				t.Errorf("ConsortiumID after a refused genesis: %v, want ErrNotFound", err)
			}
		})
	}
}
