package verify

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/cluster"
)

// SavedCheckpoint is a verified checkpoint as the state file keeps it.
type SavedCheckpoint struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Root   []byte `json:"root"`
	Note   string `json:"note"` // the signed note, kept as evidence
}

func (c SavedCheckpoint) root() tlog.Hash {
	var h tlog.Hash
	copy(h[:], c.Root)
	return h
}

func (c SavedCheckpoint) rootB64() string { return b64(c.Root) }

// state is the researcher's memory between runs: the last checkpoint that
// verified, and the partner keys and partner set pinned so far.
type state struct {
	Server string `json:"server,omitempty"`
	// Consortium is the consortium id every run with this file verified;
	// a server of another consortium is refused.
	Consortium string            `json:"consortium,omitempty"`
	Checkpoint *SavedCheckpoint  `json:"checkpoint,omitempty"`
	Keys       map[string]string `json:"keys,omitempty"` // partner -> base64 ed25519 key
	Partners   []string          `json:"partners,omitempty"`
}

// loadState reads the state file; a missing file is the first run.
func loadState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s: %w (fix or move it away; moving it away forgets the pinned keys and checkpoint)", path, err)
	}
	return st, nil
}

// saveState writes the state atomically: a temp file in the same
// directory, synced, then renamed over the old one, so a crash leaves the
// old state or the new, never half of one.
func saveState(path string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeAtomic(path, append(b, '\n'))
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this is a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// LoadKeys reads a trusted partner-keys file, JSON
// {"RS": "<base64 ed25519 public key>", ...}.
func LoadKeys(path string) (Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("keys file %s: want JSON {\"RS\": \"<base64 ed25519 public key>\", ...}: %w", path, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("keys file %s: no keys", path)
	}
	return decodeKeys(raw, path)
}

func decodeKeys(raw map[string]string, source string) (Keys, error) {
	out := Keys{}
	for _, p := range slices.Sorted(maps.Keys(raw)) {
		k, err := base64.StdEncoding.DecodeString(raw[p])
		if err != nil {
			return nil, fmt.Errorf("%s: key of partner %s: not base64: %w", source, p, err)
		}
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: key of partner %s has %d bytes, want %d (an ed25519 public key)", source, p, len(k), ed25519.PublicKeySize)
		}
		out[p] = ed25519.PublicKey(k)
	}
	return out, nil
}

func encodeKeys(k Keys) map[string]string {
	out := make(map[string]string, len(k))
	for p, key := range k {
		out[p] = b64(key)
	}
	return out
}

// checkHistory compares the newly verified checkpoint with the saved one:
// same size must mean same root, a larger size must come with a valid
// consistency proof, a smaller size is a rollback. Any of these failing is
// a fork, and both notes are written beside the state file as evidence.
func (c *client) checkHistory(ctx context.Context, st state, seen SavedCheckpoint, statePath string) (string, error) {
	old := st.Checkpoint
	if old == nil {
		return "first run: checkpoint saved for the next run's consistency check", nil
	}
	if old.Origin != seen.Origin {
		return "", fmt.Errorf("state file %s is for ledger %q, this server serves %q: use another --state file", statePath, old.Origin, seen.Origin)
	}
	fork := func(reason string) error {
		e := &ForkError{Saved: *old, Seen: seen, Reason: reason}
		ev := strings.TrimSuffix(statePath, ".json") + ".fork-evidence.json"
		if b, err := json.MarshalIndent(map[string]any{"reason": reason, "saved": old, "seen": seen}, "", "  "); err == nil && writeAtomic(ev, b) == nil {
			e.Evidence = ev
		}
		return e
	}
	switch {
	case seen.Size < old.Size:
		return "", fork(fmt.Sprintf("rollback: the tree shrank from %d to %d leaves", old.Size, seen.Size))
	case seen.Size == old.Size:
		if seen.root() != old.root() {
			return "", fork(fmt.Sprintf("two different roots for the same size %d", seen.Size))
		}
		return fmt.Sprintf("same checkpoint as the last run (size %d)", seen.Size), nil
	}
	p, err := c.consistency(ctx, old.Size, seen.Size)
	if err != nil {
		return "", err
	}
	if err := cluster.VerifyConsistency(toHashes(p.Hashes), old.Size, old.root(), seen.Size, seen.root()); err != nil {
		return "", fork(fmt.Sprintf("the consistency proof from size %d to %d does not verify (%v)", old.Size, seen.Size, err))
	}
	return fmt.Sprintf("extends the last run's checkpoint (size %d -> %d, consistency proof verified)", old.Size, seen.Size), nil
}
