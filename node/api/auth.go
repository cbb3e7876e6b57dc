package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is what a token may do.
type Role string

// Roles, from DESIGN.md's table of users.
const (
	RoleOperator   Role = "operator"   // this node's partner staff: import, plan, publish
	RoleResearcher Role = "researcher" // read published aggregates
)

// retiredCoordinator is the role that once let a token govern. Governance
// now needs statements signed by the coordinators' own keys, so a node's
// tokens cannot govern; stored tokens of this role are ignored.
const retiredCoordinator Role = "coordinator"

// Roles lists every role in a stable order.
func Roles() []Role { return []Role{RoleOperator, RoleResearcher} }

// ParseRole accepts a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r == retiredCoordinator {
		return "", fmt.Errorf("role %q no longer exists: governance is signed with the coordinators' keys ('roundtable coordinator keygen'), not a node's token", s)
	}
	if !slices.Contains(Roles(), r) {
		return "", fmt.Errorf("role %q is not one of operator, researcher", s)
	}
	return r, nil
}

// TokenPrefix starts every API token so that a leaked one is easy to spot
// in logs and by secret scanners.
const TokenPrefix = "rt_"

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// TokenStore holds API tokens as SHA-256 hashes in a JSON file (mode 0600)
// in the node's data directory. The tokens themselves are shown once, at
// creation, and never stored: a copy of the data directory does not grant
// access to the API.
type TokenStore struct {
	path string
	mu   sync.Mutex
	toks []tokenEntry
	// mtime is the file's modification time when toks was read, so that a
	// token made by 'roundtable token create' while the node runs is seen
	// at the next request.
	mtime time.Time
}

type tokenEntry struct {
	Hash    string    `json:"sha256"` // hex SHA-256 of the token
	Role    Role      `json:"role"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// TokenFile is the token store's file name inside the data directory.
const TokenFile = "api-tokens.json"

// OpenTokenStore loads the store at path, or starts an empty one if the
// file does not exist yet (it is written on the first Create).
func OpenTokenStore(path string) (*TokenStore, error) {
	ts := &TokenStore{path: path}
	if err := ts.load(); err != nil {
		return nil, err
	}
	return ts, nil
}

// load reads the file if it changed since the last read. The caller holds
// mu (or owns ts exclusively).
func (ts *TokenStore) load() error {
	if ts.path == "" {
		return nil
	}
	fi, err := os.Stat(ts.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	if fi.ModTime().Equal(ts.mtime) && ts.toks != nil {
		return nil
	}
	b, err := os.ReadFile(ts.path)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	var toks []tokenEntry
	if err := json.Unmarshal(b, &toks); err != nil {
		return fmt.Errorf("token store %s: %w", ts.path, err)
	}
	toks = slices.DeleteFunc(toks, func(e tokenEntry) bool { return e.Role == retiredCoordinator })
	for i, e := range toks {
		if _, err := ParseRole(string(e.Role)); err != nil {
			return fmt.Errorf("token store %s: entry %d: %w", ts.path, i, err)
		}
		if len(e.Hash) != 2*sha256.Size {
			return fmt.Errorf("token store %s: entry %d: hash has %d hex digits, want %d", ts.path, i, len(e.Hash), 2*sha256.Size)
		}
	}
	ts.toks, ts.mtime = toks, fi.ModTime()
	return nil
}

// Create makes a new token for role and persists its hash. name says whom
// it was issued to (shown in logs, never secret).
func (ts *TokenStore) Create(role Role, name string) (string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	next := append(slices.Clone(ts.toks), tokenEntry{Hash: hashToken(tok), Role: role, Name: name, Created: time.Now().UTC()})
	if err := ts.save(next); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	ts.toks = next
	return tok, nil
}

// Lookup returns the role of token. It compares the token's hash with
// every entry in constant time and does not stop at a match, so timing
// reveals neither which entry matched nor how much of a hash did.
func (ts *TokenStore) Lookup(token string) (Role, string, bool) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return "", "", false
	}
	h := []byte(hashToken(token))
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// A failed reload keeps the tokens already loaded rather than lock
	// every user out; the file is replaced by rename, so it is rare.
	_ = ts.load()
	var role Role
	var name string
	found := 0
	for _, e := range ts.toks {
		if subtle.ConstantTimeCompare(h, []byte(e.Hash)) == 1 {
			role, name, found = e.Role, e.Name, 1
		}
	}
	return role, name, found == 1
}

// save writes the entries to a temporary file and renames it over the
// store, so a crash leaves the old or the new file, never half of one.
func (ts *TokenStore) save(toks []tokenEntry) error {
	if ts.path == "" {
		return nil // in-memory store (tests)
	}
	b, err := json.MarshalIndent(toks, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(ts.path), ".tokens-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), ts.path)
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return fmt.Sprintf("%x", sum)
}

// bearer extracts the token of an "Authorization: Bearer ..." header.
func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}
