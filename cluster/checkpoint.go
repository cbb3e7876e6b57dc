package cluster

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A checkpoint is the signed statement "the ledger of <origin> has N leaves
// with root hash H". Its text is the C2SP tlog-checkpoint body: tlog.FormatTree
// with the first line replaced by the origin,
//
//	roundtable/<consortium name>/<consortium id>
//	N
//	base64(H)
//
// wrapped in a golang.org/x/mod/sumdb/note with one ed25519 signature line
// per partner node. A checkpoint is "regional" once a strict majority of the
// registered partners have signed the same text.
//
// The origin carries the whole consortium id (the 64 hex digits of the
// genesis hash), not a prefix: a co-signature is then bound to one genesis,
// and two consortia that share a name and partner keys still have different
// origins. A prefix of 16 hex digits would leave 64 bits, within reach of a
// birthday search by whoever drafts a genesis.

// CheckpointOriginPrefix starts every roundtable checkpoint origin.
const CheckpointOriginPrefix = "roundtable/"

// treeNoteHeader is the first line tlog.FormatTree writes; we swap it for
// the origin so tlog.ParseTree can still validate N and the hash for us.
const treeNoteHeader = "go.sum database tree"

// CheckpointOrigin returns the origin line for a consortium,
// "roundtable/<name>/<id>", where id is the consortium id (the genesis hash).
func CheckpointOrigin(name, id string) string {
	return CheckpointOriginPrefix + name + "/" + id
}

// OriginConsortium returns the consortium id an origin names (its last
// "/"-separated part), and false if the origin is not a roundtable origin
// of the form CheckpointOrigin writes.
func OriginConsortium(origin string) (string, bool) {
	rest, ok := strings.CutPrefix(origin, CheckpointOriginPrefix)
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 1 || len(rest)-i-1 != 64 {
		return "", false
	}
	id := rest[i+1:]
	if strings.Trim(id, "0123456789abcdef") != "" {
		return "", false
	}
	return id, true
}

// NewNoteSigner returns a note.Signer for a raw ed25519 private key under
// name (the partner node's key name, e.g. "roundtable-RS"). The key hash is
// note's: the first 4 bytes of SHA-256(name || "\n" || 0x01 || pubkey).
//
// It builds the "PRIVATE+KEY+name+hash+key" string note.NewSigner parses, so
// note itself checks that name, hash and key agree.
func NewNoteSigner(name string, priv ed25519.PrivateKey) (note.Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("note signer %q: private key has %d bytes, want %d", name, len(priv), ed25519.PrivateKeySize)
	}
	vkey, err := NewNoteVerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// vkey is "name+hash+base64(0x01||pub)"; the signer key reuses name+hash.
	// Split on the first two '+' only: base64 may itself contain '+'.
	parts := strings.SplitN(vkey, "+", 3)
	nameHash := parts[0] + "+" + parts[1]
	seed := append([]byte{0x01}, priv.Seed()...) // 0x01: note's ed25519 algorithm id
	s, err := note.NewSigner("PRIVATE+KEY+" + nameHash + "+" + base64.StdEncoding.EncodeToString(seed))
	if err != nil {
		return nil, fmt.Errorf("note signer %q: %w", name, err)
	}
	return s, nil
}

// NewNoteVerifierKey returns the encoded note verifier key
// "name+hash+base64(0x01||pub)" that NewNoteVerifier accepts and that a
// researcher can be given to check checkpoints offline.
func NewNoteVerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	if !validNoteName(name) {
		return "", fmt.Errorf("note key name %q: must be non-empty UTF-8 without spaces or '+'", name)
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", fmt.Errorf("note key %q: %w", name, err)
	}
	return vkey, nil
}

// NewNoteVerifier returns a note.Verifier for a raw ed25519 public key
// under name.
func NewNoteVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := NewNoteVerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("note verifier %q: %w", name, err)
	}
	return v, nil
}

// SignCheckpoint formats (origin, tree) as checkpoint text and signs it with
// every signer. It needs at least one signer and an origin that is one line
// of printable UTF-8.
func SignCheckpoint(origin string, tree tlog.Tree, signers ...note.Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("sign checkpoint: no signers")
	}
	text, err := formatCheckpoint(origin, tree)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint %s@%d: %w", origin, tree.N, err)
	}
	return msg, nil
}

// AddCheckpointSignature adds signer's co-signature to a signed checkpoint.
// The signatures already on the note are carried over as they are, without
// being verified here (OpenCheckpoint verifies them); if signer had signed
// before, its old signature is replaced. The caller must first check that
// the checkpoint's tree matches its own ledger: signing is an attestation.
func AddCheckpointSignature(signedNote []byte, signer note.Signer) ([]byte, error) {
	// With no known verifiers every signature lands in UnverifiedSigs, and
	// note.Open hands the parsed note back inside UnverifiedNoteError.
	_, err := note.Open(signedNote, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("co-sign checkpoint: %w", err)
	}
	n := unverified.Note
	if _, _, err := parseCheckpoint([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("co-sign checkpoint: %w", err)
	}
	msg, err := note.Sign(n, signer)
	if err != nil {
		return nil, fmt.Errorf("co-sign checkpoint as %s: %w", signer.Name(), err)
	}
	return msg, nil
}

// OpenCheckpoint verifies a signed checkpoint and returns its origin, tree
// and the sorted names of the known verifiers whose signatures are valid.
// Signatures by unknown keys are ignored (not counted, not an error); a bad
// signature by a known key, a malformed note, or a note with no valid known
// signature is an error.
func OpenCheckpoint(msg []byte, verifiers note.Verifiers) (origin string, tree tlog.Tree, signedBy []string, err error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return "", tlog.Tree{}, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	origin, tree, err = parseCheckpoint([]byte(n.Text))
	if err != nil {
		return "", tlog.Tree{}, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	for _, s := range n.Sigs {
		signedBy = append(signedBy, s.Name)
	}
	slices.Sort(signedBy)
	return origin, tree, slices.Compact(signedBy), nil
}

// IsRegional reports whether signedBy includes a strict majority of the
// distinct names in partners. Names in signedBy that are not partners, and
// repeats, do not count.
func IsRegional(signedBy []string, partners []string) bool {
	members := make(map[string]bool, len(partners))
	for _, p := range partners {
		members[p] = true
	}
	if len(members) == 0 {
		return false
	}
	counted := make(map[string]bool, len(signedBy))
	for _, s := range signedBy {
		if members[s] {
			counted[s] = true
		}
	}
	return 2*len(counted) > len(members)
}

func formatCheckpoint(origin string, tree tlog.Tree) ([]byte, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	if tree.N < 0 {
		return nil, fmt.Errorf("checkpoint tree size %d is negative", tree.N)
	}
	body := tlog.FormatTree(tree)
	return append([]byte(origin), bytes.TrimPrefix(body, []byte(treeNoteHeader))...), nil
}

func parseCheckpoint(text []byte) (string, tlog.Tree, error) {
	origin, rest, ok := bytes.Cut(text, []byte("\n"))
	if !ok {
		return "", tlog.Tree{}, errors.New("checkpoint text has no origin line")
	}
	if err := checkOrigin(string(origin)); err != nil {
		return "", tlog.Tree{}, err
	}
	tree, err := tlog.ParseTree(append([]byte(treeNoteHeader+"\n"), rest...))
	if err != nil {
		return "", tlog.Tree{}, fmt.Errorf("checkpoint of %q: %w", origin, err)
	}
	return string(origin), tree, nil
}

func checkOrigin(origin string) error {
	if origin == "" || !utf8.ValidString(origin) || strings.ContainsFunc(origin, unicode.IsControl) {
		return fmt.Errorf("checkpoint origin %q: must be non-empty printable UTF-8 on one line", origin)
	}
	return nil
}

// validNoteName mirrors note's rule for key names, so we can say which rule
// a bad name broke instead of note's generic "malformed verifier id".
func validNoteName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.ContainsFunc(name, unicode.IsSpace) && !strings.Contains(name, "+")
}
