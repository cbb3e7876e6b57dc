package cluster

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"roundtable/keyseal"
)

// Every node is pinned to one consortium: the id (the genesis hash) it was
// founded with (serve --bootstrap) or told to join (serve --genesis FILE or
// --consortium ID). The pin is written beside the ledger on first start and
// checked on every later start, on the genesis entry raft delivers, and on
// every snapshot offered to Restore (fsm_restore_check.go). Without it a
// node would take whatever genesis its first leader sent: a node pointed
// at the wrong address, or given a snapshot by a malicious leader, would
// silently become a member of another ledger. See DESIGN.md, "Snapshots".

// PinFile is the file, in the ledger's directory, that records the
// consortium id this node belongs to.
const PinFile = "consortium.pin"

// ErrNoConsortium is returned by PinConsortium when a node with an empty
// ledger was given no consortium to belong to.
var ErrNoConsortium = errors.New("no consortium pinned: a node joining for the first time needs the consortium's genesis file (serve --genesis FILE, from the coordinators) or its id (serve --consortium ID)")

// ValidConsortiumID reports whether id looks like a consortium id: the hex
// SHA-256 of a genesis (governance.Genesis.ID).
func ValidConsortiumID(id string) error {
	if b, err := hex.DecodeString(id); err != nil || len(b) != 32 || strings.ToLower(id) != id {
		return fmt.Errorf("consortium id %q: want 64 lowercase hex digits (the genesis hash, consortium_id in /v1/health)", id)
	}
	return nil
}

// PinConsortium pins the FSM to a consortium and returns the pinned id.
// want is the id the operator gave (from --bootstrap, --genesis or
// --consortium), or "" on a restart. It refuses, with what to do, a want
// that differs from the pin stored on first start, and a ledger that
// belongs to another consortium than the pin. A ledger founded before pins
// existed pins its own consortium. Call it before raft starts.
func (f *FSM) PinConsortium(want string) (string, error) {
	if want != "" {
		if err := ValidConsortiumID(want); err != nil {
			return "", err
		}
	}
	path := filepath.Join(f.dir, PinFile)
	stored, err := readPin(path)
	if err != nil {
		return "", err
	}
	ledger, err := f.ConsortiumID()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	if stored != "" && want != "" && stored != want {
		return "", fmt.Errorf("this node belongs to consortium %s (pinned in %s on its first start), but it was started for consortium %s: start it with the genesis of its own consortium, or give the other consortium a new --data-dir", stored, path, want)
	}
	id := stored
	if id == "" {
		id = want
	}
	switch {
	case id != "" && ledger != "" && ledger != id:
		return "", fmt.Errorf("the ledger in %s belongs to consortium %s, but this node is pinned to %s: the data dir holds another consortium's ledger; move it away and start again with an empty --data-dir", f.dir, ledger, id)
	case id == "" && ledger != "":
		id = ledger // founded before pins existed: its own genesis is the anchor
		f.logger.Warn("pinning the consortium of the existing ledger", "consortium_id", id)
	case id == "":
		return "", ErrNoConsortium
	}
	if stored == "" {
		if err := writePin(path, id); err != nil {
			return "", err
		}
	}
	f.pinned.Store(&id)
	return id, nil
}

// Pinned returns the consortium id this node is pinned to, "" if none.
func (f *FSM) Pinned() string {
	if p := f.pinned.Load(); p != nil {
		return *p
	}
	return ""
}

func readPin(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read consortium pin: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if err := ValidConsortiumID(id); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

func writePin(path, id string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("write consortium pin: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("write consortium pin: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write consortium pin: %w", err)
	}
	return keyseal.SyncDir(filepath.Dir(path))
}

func syncFile(path string) error {
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	return fh.Sync()
}

// checkGenesisPinned stops the FSM before it applies a genesis entry of
// another consortium than the pinned one. It is not a refusal (every other
// node of that ledger admits the entry): this node is in the wrong ledger,
// and the only safe thing is to stop applying and tell the operator.
func (f *FSM) checkGenesisPinned(index uint64, g *Genesis) error {
	pin := f.Pinned()
	if pin == "" || g == nil {
		return nil
	}
	id, err := g.ID()
	if err == nil && id == pin {
		return nil
	}
	if err != nil {
		id = "(no id: " + err.Error() + ")"
	}
	return fmt.Errorf("genesis entry %d founds consortium %s, but this node is pinned to consortium %s (%s): the cluster it joined is another consortium's ledger; nothing was applied. Stop this node and join a member of its own consortium, or start it with a new --data-dir and the other consortium's genesis",
		index, id, pin, filepath.Join(f.dir, PinFile))
}
