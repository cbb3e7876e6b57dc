package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/privacy"
)

// bundleFormat names the bundle's JSON layout. Version 2 carries the
// genesis and the governance history, and releases that name their
// consortium.
const bundleFormat = "roundtable-verify-bundle/2"

// material is everything a verification looks at, as fetched or as read
// from a bundle: the same pure check runs on both.
type material struct {
	Format     string            `json:"format"`
	Server     string            `json:"server"`
	Checkpoint api.Checkpoint    `json:"checkpoint"`
	Partners   []string          `json:"partners"` // the consortium's partners, per the server
	Keys       map[string][]byte `json:"keys"`     // the keys the bundle was verified with
	Complete   bool              `json:"complete"` // Releases is the whole ledger, not a selection
	// Tree: Releases carry no inclusion proofs; the checkpoint's root is
	// recomputed from every leaf below its size instead (Complete only).
	Tree        bool                  `json:"tree,omitempty"`
	Releases    []bundleRelease       `json:"releases"`
	Consistency []consistencyResponse `json:"consistency,omitempty"`
	// Genesis and Governance, in a bundle made with --genesis: the genesis
	// file and the history replayed from it, so --offline replays them too.
	Genesis    json.RawMessage     `json:"genesis,omitempty"`
	Governance []governance.Signed `json:"governance,omitempty"`
	// listed is the server's release list, kept for the keys it reports
	// when only one release is verified.
	listed []bundleRelease
}

// bundleRelease is one release with its leaf and inclusion proof.
type bundleRelease struct {
	Signed    privacy.Signed `json:"signed"`
	Leaf      int64          `json:"leaf"`
	PublicKey []byte         `json:"public_key"` // the key the server reported, never trusted as such
	Proof     api.Proof      `json:"proof"`
}

// trust is the verification's trust anchor: partner keys and the partner
// set a majority is counted over, and, when a genesis is pinned, the
// consortium and its checkpoint origin.
type trust struct {
	keys     Keys
	partners []string // sorted, distinct
	source   string   // for the report
	pinned   []string // partners pinned for the first time on this run

	consortium  string // the pinned consortium id; "" without a genesis
	origin      string // the checkpoint origin that id implies
	fromGenesis bool   // keys come from governance replayed from the genesis
	governance  int    // statements replayed
}

// buildTrust picks the trust anchor for an online run: the --keys file if
// given, else the keys pinned in the state file plus, trust on first use,
// the server's keys for partners not yet pinned. A served key that differs
// from a trusted one is refused.
func buildTrust(m *material, fileKeys Keys, keysPath string, st state, statePath string, tofu bool) (trust, error) {
	sk, err := newServedKeys(fileKeys, keysPath, st, statePath, tofu)
	if err != nil {
		return sk.tr, err
	}
	for _, r := range servedReleases(m) {
		if err := sk.admit(r.Signed.Release.Partner, r.Signed.ID, r.PublicKey); err != nil {
			return sk.tr, err
		}
	}
	sk.tr.partners = partnerSet(m.Partners, st.Partners, keyCodes(sk.tr.keys))
	return sk.tr, nil
}

// servedKeys holds the trust of a run without a genesis while the server's
// release list is read, and checks each key the server reports with a
// release against it, in list order.
type servedKeys struct {
	tr                  trust
	fromFile            bool // keys come from a keys file: nothing is pinned
	keysPath, statePath string
}

// newServedKeys starts from the --keys file if given, else from the keys
// pinned in the state file; with none pinned, only TOFU lets a run start.
func newServedKeys(fileKeys Keys, keysPath string, st state, statePath string, tofu bool) (*servedKeys, error) {
	sk := &servedKeys{tr: trust{keys: Keys{}}, fromFile: fileKeys != nil, keysPath: keysPath, statePath: statePath}
	if fileKeys != nil {
		sk.tr.source = "--keys " + keysPath
		for p, k := range fileKeys {
			sk.tr.keys[p] = k
		}
		return sk, nil
	}
	pinned, err := decodeKeys(st.Keys, statePath)
	if err != nil {
		return sk, err
	}
	sk.tr.keys = pinned
	sk.tr.source = "pinned in " + statePath
	if len(pinned) == 0 {
		if !tofu {
			return sk, ErrNoTrustRoot
		}
		sk.tr.source = "WARNING: trust on first use: the keys are this server's word (now pinned in " + statePath + ")"
	}
	return sk, nil
}

// admit checks the key served with release id of partner p: a key that
// differs from the trusted one is refused; a partner with no trusted key
// yet has the served key pinned (trust on first use), unless the keys come
// from a file.
func (sk *servedKeys) admit(p, id string, servedKey []byte) error {
	if len(servedKey) == 0 {
		return nil
	}
	served := ed25519.PublicKey(servedKey)
	known, ok := sk.tr.keys[p]
	switch {
	case ok && !known.Equal(served):
		where := "the key pinned in " + sk.statePath
		if sk.fromFile {
			where = "the key in " + sk.keysPath
		} else if slices.Contains(sk.tr.pinned, p) {
			where = "the key it reports with another release in this run"
		}
		return fmt.Errorf("%w: partner %s: release %s comes with key %s, but %s is %s; if the consortium really rotated %s's key, verify against a new --keys file",
			ErrKeyChanged, p, id, b64(served), where, b64(known), p)
	case !ok && !sk.fromFile:
		if len(served) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: partner %s: release %s comes with a %d-byte key, want %d", ErrSignature, p, id, len(served), ed25519.PublicKeySize)
		}
		sk.tr.keys[p] = served
		sk.tr.pinned = append(sk.tr.pinned, p)
	}
	return nil
}

// check verifies m against tr without any I/O and returns the report and
// the verified checkpoint. Release failures are all collected (joined), so
// one run names every bad release.
func check(m *material, tr trust) (Report, SavedCheckpoint, error) {
	rep, cp, err := openRegional(m.Checkpoint, tr)
	if err != nil {
		return rep, cp, err
	}
	consortium := rep.Consortium
	trees := map[int64]tlog.Hash{cp.Size: cp.root()}
	var errs []error
	for _, c := range m.Consistency {
		if err := tieTrees(c, trees, m.Releases); err != nil {
			errs = append(errs, err)
		}
	}
	if m.Tree && !m.Complete {
		return rep, cp, fmt.Errorf("%w: releases without inclusion proofs must be the whole ledger", ErrInclusion)
	}
	// Each release's checks stand alone (signature, leaf bytes, proof), so
	// they run on every core; results are taken in order.
	type result struct {
		pending bool
		leaf    tlog.Hash
		err     error
	}
	results := make([]result, len(m.Releases))
	parallel(len(m.Releases), func(i int) {
		r := &results[i]
		r.pending, r.leaf, r.err = checkRelease(&m.Releases[i], tr, consortium, cp, trees, m.Tree)
	})
	seen := map[int64]string{}
	for i := range m.Releases {
		r := &m.Releases[i]
		rep.Releases++
		if prev, dup := seen[r.Leaf]; dup {
			errs = append(errs, fmt.Errorf("%w: releases %s and %s both claim leaf %d", ErrIncomplete, prev, r.Signed.ID, r.Leaf))
			continue
		}
		seen[r.Leaf] = r.Signed.ID
		switch res := results[i]; {
		case res.err != nil:
			errs = append(errs, res.err)
			rep.Failed++
		case res.pending:
			rep.Pending++
		default:
			rep.Verified++
			rep.ByPartner[r.Signed.Release.Partner]++
		}
	}
	if m.Tree {
		leaves := make([]tlog.Hash, 0, cp.Size)
		for i := range m.Releases {
			if m.Releases[i].Leaf == int64(len(leaves)) && int64(len(leaves)) < cp.Size {
				leaves = append(leaves, results[i].leaf)
			}
		}
		if err := checkTreeRoot(leaves, cp); err != nil {
			errs = append(errs, err)
			rep.Failed, rep.Verified, rep.ByPartner = rep.Releases-rep.Pending, 0, map[string]int{}
		}
	}
	if m.Complete {
		for leaf := int64(0); leaf < cp.Size; leaf++ {
			if _, ok := seen[leaf]; !ok {
				errs = append(errs, fmt.Errorf("%w: leaf %d of the checkpointed tree (size %d) is not in the server's release list: a release is withheld", ErrIncomplete, leaf, cp.Size))
			}
		}
	}
	for _, e := range errs {
		rep.Failures = append(rep.Failures, e.Error())
	}
	return rep, cp, errors.Join(errs...)
}

// openRegional opens the served checkpoint with the trust anchor, finds
// the consortium its origin names, checks that a strict majority of the
// partners signed it, and starts the run's report from it.
func openRegional(served api.Checkpoint, tr trust) (Report, SavedCheckpoint, error) {
	rep := Report{KeySource: tr.source, Partners: tr.partners, NewlyPinned: tr.pinned, ByPartner: map[string]int{}, Governance: tr.governance}
	cp, signers, err := openCheckpoint(served, tr)
	if err != nil {
		return rep, cp, err
	}
	rep.Origin, rep.Size, rep.Root, rep.Signers = cp.Origin, cp.Size, cp.rootB64(), signers
	if rep.Consortium, err = releaseConsortium(tr, cp.Origin); err != nil {
		return rep, cp, err
	}
	if !cluster.IsRegional(signers, tr.partners) {
		return rep, cp, fmt.Errorf("%w: checkpoint of size %d is signed by %d of %d partners [%s] (signed: [%s]); a strict majority, %d, is needed",
			ErrNotRegional, cp.Size, len(signers), len(tr.partners), strings.Join(tr.partners, " "), strings.Join(signers, " "), len(tr.partners)/2+1)
	}
	return rep, cp, nil
}

// openCheckpoint verifies the note's signatures with the trusted keys and
// checks that the JSON fields beside the note say what the note says.
func openCheckpoint(c api.Checkpoint, tr trust) (SavedCheckpoint, []string, error) {
	var vs []note.Verifier
	byName := map[string]string{}
	for _, p := range keyCodes(tr.keys) {
		v, err := cluster.NewNoteVerifier(cluster.PartnerNoteName(p), tr.keys[p])
		if err != nil {
			return SavedCheckpoint{}, nil, fmt.Errorf("%w: partner %s's key: %w", ErrCheckpoint, p, err)
		}
		vs = append(vs, v)
		byName[v.Name()] = p
	}
	origin, tree, names, err := cluster.OpenCheckpoint([]byte(c.Note), note.VerifierList(vs...))
	if err != nil {
		return SavedCheckpoint{}, nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	if c.Size != tree.N || !bytes.Equal(c.Root, tree.Hash[:]) {
		return SavedCheckpoint{}, nil, fmt.Errorf("%w: the server's fields say size %d root %s, its signed note says size %d root %s",
			ErrCheckpoint, c.Size, b64(c.Root), tree.N, b64(tree.Hash[:]))
	}
	var signers []string
	for _, n := range names {
		if p, ok := byName[n]; ok {
			signers = append(signers, p)
		}
	}
	slices.Sort(signers)
	return SavedCheckpoint{Origin: origin, Size: tree.N, Root: tree.Hash[:], Note: c.Note}, signers, nil
}

// tieTrees verifies a consistency proof between the checkpoint's tree and
// a tree an inclusion proof was made against, and records that tree's root
// as proven. The proof's other root comes from the releases' proofs.
func tieTrees(c consistencyResponse, trees map[int64]tlog.Hash, rels []bundleRelease) error {
	rootOf := func(n int64) (tlog.Hash, bool) {
		if h, ok := trees[n]; ok {
			return h, true
		}
		for _, r := range rels {
			if r.Proof.TreeSize == n && len(r.Proof.Root) == tlog.HashSize {
				return tlog.Hash(r.Proof.Root), true
			}
		}
		return tlog.Hash{}, false
	}
	oldRoot, ok1 := rootOf(c.From)
	newRoot, ok2 := rootOf(c.To)
	if !ok1 || !ok2 {
		return nil // a proof nothing refers to proves nothing and harms nothing
	}
	if err := cluster.VerifyConsistency(toHashes(c.Hashes), c.From, oldRoot, c.To, newRoot); err != nil {
		return fmt.Errorf("%w: the tree the inclusion proofs use (size %d/%d) is not consistent with the checkpoint: %w", ErrInclusion, c.From, c.To, err)
	}
	trees[c.From], trees[c.To] = oldRoot, newRoot
	return nil
}

// checkRelease checks one release's consortium, signature and inclusion in
// the checkpointed tree. pending means the release is newer than the
// checkpoint: its signature verified, but no signed tree covers it yet.
//
// With tree set there is no proof: the caller recomputes the checkpoint's
// root from every release's leaf hash, which this returns.
func checkRelease(r *bundleRelease, tr trust, consortium string, cp SavedCheckpoint, trees map[int64]tlog.Hash, tree bool) (pending bool, leaf tlog.Hash, err error) {
	pending, err = checkReleaseProof(r, tr, consortium, cp, trees, tree, &leaf)
	return pending, leaf, err
}

func checkReleaseProof(r *bundleRelease, tr trust, consortium string, cp SavedCheckpoint, trees map[int64]tlog.Hash, tree bool, leaf *tlog.Hash) (pending bool, err error) {
	s := &r.Signed
	p := s.Release.Partner
	fail := func(kind error, check string, err error) error {
		return releaseError(s.ID, p, r.Leaf, kind, check, err)
	}
	if s.Release.Consortium != consortium {
		return false, fail(ErrConsortium, fmt.Sprintf("signed for consortium %q, this is consortium %s", s.Release.Consortium, consortium), nil)
	}
	key, ok := tr.keys[p]
	switch {
	case !ok && tr.fromGenesis:
		return false, fail(ErrUnknownPartner, "governance never added partner "+p, nil)
	case !ok:
		return false, fail(ErrSignature, "no trusted key for partner "+p, nil)
	}
	if err := s.Verify(key); err != nil {
		return false, fail(ErrSignature, "ID and ed25519 signature", err)
	}
	data, err := cluster.LeafData(s)
	if err != nil {
		return false, fail(ErrInclusion, "leaf bytes", err)
	}
	if *leaf = tlog.RecordHash(data); tree {
		return r.Leaf >= cp.Size, nil
	}
	pr := r.Proof
	if pr.Leaf != r.Leaf {
		return false, fail(ErrInclusion, fmt.Sprintf("proof is for leaf %d", pr.Leaf), nil)
	}
	if h := tlog.RecordHash(data); len(pr.LeafHash) > 0 && !bytes.Equal(pr.LeafHash, h[:]) {
		return false, fail(ErrInclusion, fmt.Sprintf("leaf hash: server says %s, the release's leaf bytes hash to %s", b64(pr.LeafHash), b64(h[:])), nil)
	}
	if len(pr.Root) != tlog.HashSize {
		return false, fail(ErrInclusion, fmt.Sprintf("proof root has %d bytes, want %d", len(pr.Root), tlog.HashSize), nil)
	}
	if err := cluster.VerifyInclusion(toHashes(pr.Hashes), pr.TreeSize, tlog.Hash(pr.Root), r.Leaf, data); err != nil {
		return false, fail(ErrInclusion, "inclusion proof", err)
	}
	if r.Leaf >= cp.Size {
		return true, nil
	}
	proven, ok := trees[pr.TreeSize]
	switch {
	case !ok:
		return false, fail(ErrInclusion, fmt.Sprintf("proof is against a tree of size %d with no consistency proof to the checkpoint's size %d", pr.TreeSize, cp.Size), nil)
	case proven != tlog.Hash(pr.Root):
		return false, fail(ErrInclusion, fmt.Sprintf("proof is against root %s at size %d, but the checkpoint proves root %s", b64(pr.Root), pr.TreeSize, b64(proven[:])), nil)
	}
	return false, nil
}

// releaseError names a release that failed a check: which release,
// partner and leaf, which check, and the kind of failure.
func releaseError(id, partner string, leaf int64, kind error, check string, err error) error {
	if err != nil {
		return fmt.Errorf("release %s (partner %s, leaf %d): %s: %w: %w", id, partner, leaf, check, kind, err)
	}
	return fmt.Errorf("release %s (partner %s, leaf %d): %s: %w", id, partner, leaf, check, kind)
}

// checkTreeRoot recomputes the RFC 6962 root of the tree of cp.Size from
// the leaf hashes of leaves 0, 1, … in order, and compares it with the
// checkpoint's: equal roots mean every one of those releases is, byte for
// byte, the leaf the partners signed into the tree, which is what an
// inclusion proof per release would show.
func checkTreeRoot(leaves []tlog.Hash, cp SavedCheckpoint) error {
	var t treeHasher
	for _, h := range leaves {
		if err := t.add(h); err != nil {
			return err
		}
	}
	return t.check(cp)
}

// treeHasher computes the RFC 6962 root of a tree from its leaf hashes,
// given in leaf order, keeping only the hashes tlog stores for it (about
// two per leaf).
type treeHasher struct {
	n      int64
	stored hashes
}

func (t *treeHasher) add(h tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, h, t.stored)
	if err != nil {
		return fmt.Errorf("%w: tree hashes at leaf %d: %w", ErrInclusion, t.n, err)
	}
	t.stored = append(t.stored, hs...)
	t.n++
	return nil
}

// check compares the root of the leaves added with the checkpoint's.
func (t *treeHasher) check(cp SavedCheckpoint) error {
	if t.n != cp.Size {
		return fmt.Errorf("%w: the list holds leaves 0 to %d in order, the checkpointed tree %d: its root cannot be recomputed", ErrIncomplete, t.n-1, cp.Size)
	}
	root, err := tlog.TreeHash(cp.Size, t.stored)
	if err != nil {
		return fmt.Errorf("%w: tree root: %w", ErrInclusion, err)
	}
	if root != cp.root() {
		return fmt.Errorf("%w: the %d listed releases below the checkpoint's size hash to root %s, the checkpoint signed %s: some listed release is not the one in the signed tree (verify one with --release ID for its own proof)",
			ErrInclusion, cp.Size, b64(root[:]), cp.rootB64())
	}
	return nil
}

// hashes is an in-memory tlog.HashReader over stored hashes.
type hashes []tlog.Hash

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("hash %d not stored (%d are)", x, len(h))
		}
		out[i] = h[x]
	}
	return out, nil
}

// parallel runs work(0..n-1) on every core and waits for all of it.
func parallel(n int, work func(i int)) {
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				work(i)
			}
		})
	}
	wg.Wait()
}

func toHashes(bs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		copy(out[i][:], b) // a short hash just fails the proof
	}
	return out
}

// partnerSet is the sorted union of partner lists: a server cannot shrink
// the set a majority is counted over below what this researcher has seen.
func partnerSet(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func keyCodes(k Keys) []string {
	out := make([]string, 0, len(k))
	for p := range k {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
