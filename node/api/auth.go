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
	"strconv"
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
// access to the API. A token may expire and may be revoked; both are
// checked at every request, and the file is re-read whenever another
// process (roundtable token create/revoke) replaced it, so a running node
// refuses a revoked token at the next request.
type TokenStore struct {
	path string
	mu   sync.Mutex
	toks []tokenEntry
	// file is the token file as it was when toks was read: another
	// process replaces it by rename, which gives it a new inode.
	file fs.FileInfo
}

type tokenEntry struct {
	Hash    string     `json:"sha256"` // hex SHA-256 of the token
	Role    Role       `json:"role"`
	Name    string     `json:"name"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Revoked *time.Time `json:"revoked,omitempty"`
	// Last4 are the token's last four characters, so an operator can tell
	// which token a list entry is (4 of 43 random characters).
	Last4 string `json:"last4,omitempty"`
}

// tokenIDLen is the length of a token's id: the first hex digits of its
// hash (48 bits; the hash of a 256-bit random token says nothing of it).
const tokenIDLen = 12

func (e tokenEntry) id() string { return e.Hash[:tokenIDLen] }

// TokenInfo describes a token for 'roundtable token list'; it never holds
// the token.
type TokenInfo struct {
	ID      string
	Role    Role
	Name    string
	Created time.Time
	Expires time.Time // zero: never
	Revoked time.Time // zero: not revoked
	Last4   string    // "" for tokens made before it was recorded
}

// Token errors, as returned by Check; each says why a request is refused.
var (
	ErrTokenUnknown = errors.New("token is not valid")
	ErrTokenExpired = errors.New("token has expired")
	ErrTokenRevoked = errors.New("token was revoked")
)

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
	if ts.file != nil && os.SameFile(fi, ts.file) && fi.ModTime().Equal(ts.file.ModTime()) && fi.Size() == ts.file.Size() {
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
	ts.toks, ts.file = toks, fi
	return nil
}

// Create makes a new token for role that never expires and persists its
// hash. name says whom it was issued to (shown in logs, never secret).
func (ts *TokenStore) Create(role Role, name string) (string, error) {
	return ts.CreateExpiring(role, name, time.Time{})
}

// CreateExpiring is Create with an expiry; the zero time means never. An
// expiry in the past is refused.
func (ts *TokenStore) CreateExpiring(role Role, name string, expires time.Time) (string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	now := time.Now().UTC()
	e := tokenEntry{Role: role, Name: name, Created: now}
	if !expires.IsZero() {
		if !expires.After(now) {
			return "", fmt.Errorf("create token: expiry %s is not in the future", expires.UTC().Format(time.RFC3339))
		}
		x := expires.UTC()
		e.Expires = &x
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	e.Hash, e.Last4 = hashToken(tok), tok[len(tok)-4:]
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	next := append(slices.Clone(ts.toks), e)
	if err := ts.save(next); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	ts.toks = next
	return tok, nil
}

// List describes every token, oldest first.
func (ts *TokenStore) List() ([]TokenInfo, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return nil, err
	}
	out := make([]TokenInfo, len(ts.toks))
	for i, e := range ts.toks {
		out[i] = e.info()
	}
	return out, nil
}

func (e tokenEntry) info() TokenInfo {
	ti := TokenInfo{ID: e.id(), Role: e.Role, Name: e.Name, Created: e.Created, Last4: e.Last4}
	if e.Expires != nil {
		ti.Expires = *e.Expires
	}
	if e.Revoked != nil {
		ti.Revoked = *e.Revoked
	}
	return ti
}

// Revoke marks the token with id (as List shows it) revoked, from now on,
// and returns it. The entry stays, so a request with the token is told it
// was revoked rather than that it is unknown.
func (ts *TokenStore) Revoke(id string) (TokenInfo, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.load(); err != nil {
		return TokenInfo{}, fmt.Errorf("revoke token: %w", err)
	}
	i := slices.IndexFunc(ts.toks, func(e tokenEntry) bool { return e.id() == strings.ToLower(strings.TrimSpace(id)) })
	if i < 0 {
		return TokenInfo{}, fmt.Errorf("revoke token: no token has id %q ('roundtable token list' shows the ids)", id)
	}
	if r := ts.toks[i].Revoked; r != nil {
		return TokenInfo{}, fmt.Errorf("revoke token: %s was already revoked on %s", id, r.Format(time.RFC3339))
	}
	next := slices.Clone(ts.toks)
	now := time.Now().UTC()
	next[i].Revoked = &now
	if err := ts.save(next); err != nil {
		return TokenInfo{}, fmt.Errorf("revoke token: %w", err)
	}
	ts.toks = next
	return next[i].info(), nil
}

// Lookup returns the role of token, if it is known, not expired and not
// revoked; Check says why not.
func (ts *TokenStore) Lookup(token string) (Role, string, bool) {
	role, name, err := ts.Check(token)
	return role, name, err == nil
}

// Check returns the role and name of token, or an error saying why it is
// refused (ErrTokenUnknown, or ErrTokenExpired or ErrTokenRevoked with the
// date and the token's id). It compares the token's hash with every entry
// in constant time and does not stop at a match, so timing reveals neither
// which entry matched nor how much of a hash did.
func (ts *TokenStore) Check(token string) (Role, string, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return "", "", ErrTokenUnknown
	}
	h := []byte(hashToken(token))
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// A failed reload keeps the tokens already loaded rather than lock
	// every user out; the file is replaced by rename, so it is rare.
	_ = ts.load()
	var match tokenEntry
	found := 0
	for _, e := range ts.toks {
		if subtle.ConstantTimeCompare(h, []byte(e.Hash)) == 1 {
			match, found = e, 1
		}
	}
	switch {
	case found == 0:
		return "", "", ErrTokenUnknown
	case match.Revoked != nil:
		return "", "", fmt.Errorf("%w on %s (token id %s)", ErrTokenRevoked, match.Revoked.Format(time.RFC3339), match.id())
	case match.Expires != nil && !time.Now().Before(*match.Expires):
		return "", "", fmt.Errorf("%w: it expired on %s (token id %s); ask for a new one", ErrTokenExpired, match.Expires.Format(time.RFC3339), match.id())
	}
	return match.Role, match.Name, nil
}

// ParseExpiry reads a token expiry given on the command line, relative to
// now: a number of days ("90d"), weeks ("12w") or a Go duration ("36h"),
// or a date ("2025-12-31", which the token outlives until that day ends in
// UTC) or an RFC 3339 time. The result must be in the future.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("expiry %q: give days (90d), weeks (12w), hours (36h), a date (2025-12-31) or an RFC 3339 time", s)
	var t time.Time
	switch {
	case s == "":
		return time.Time{}, bad
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n <= 0 || n > 10*366 {
			return time.Time{}, bad
		}
		days := n
		if strings.HasSuffix(s, "w") {
			days = 7 * n
		}
		t = now.AddDate(0, 0, days)
	default:
		if d, err := time.ParseDuration(s); err == nil {
			t = now.Add(d)
		} else if day, err := time.Parse(time.DateOnly, s); err == nil {
			t = day.AddDate(0, 0, 1)
		} else if at, err := time.Parse(time.RFC3339, s); err == nil {
			t = at
		} else {
			return time.Time{}, bad
		}
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("expiry %q is not in the future", s)
	}
	return t.UTC(), nil
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
