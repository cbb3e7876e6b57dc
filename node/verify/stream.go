package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/privacy"
)

// A whole ledger is checked as it is listed (issue 10, item 5): 100,000
// whole-catalog releases are 2.8 GB, and holding them decoded took 13.7 GB.
// Each page is checked when it arrives, on every core, while the next page
// is fetched, and then dropped; what stays is a summary per leaf (index,
// id, partner, leaf hash, whether it failed: under 200 bytes) and the
// tree hashes the checkpoint's root is recomputed from (two per leaf).
//
// The checks are check's, in another order. Keys are known before the
// list is read (the genesis, a keys file, or keys pinned earlier), except
// that trusting on first use pins a partner's key at its first release in
// leaf order, as buildTrust does (one difference: a release listed before
// any key for its partner was served fails "no trusted key", where the
// whole-list path would use a key served with a later release; node/api
// serves the key with every release). The checkpoint is opened at the end, with
// every key, and must say what its served fields (origin, size) said while
// releases were checked against them. Only if the recomputed root differs
// from the signed one are proofs fetched, one release at a time (proveEach).

// ledgerCheck is the state of a whole-ledger check while the list streams.
type ledgerCheck struct {
	tr         *trust
	admit      func(partner, id string, servedKey []byte) error
	consortium string // releases must name it (the served origin's, until the note is opened)
	size       int64  // the checkpoint's size, as served
	leaves     []leafSummary
	tree       treeHasher
	errs       []error
	interned   map[string]string // partner codes, one string each
}

// leafSummary is what a whole-ledger run keeps of one listed release.
type leafSummary struct {
	leaf    int64
	id      string
	partner string
	hash    tlog.Hash // RFC 6962 leaf hash of the bytes as listed
	failed  bool      // a failure naming it is in errs
}

// listedCheck is one listed release while its page is checked.
type listedCheck struct {
	e     *listedRelease
	hash  tlog.Hash
	parts leafParts       // the release read in place (fast)
	fast  bool            // parts holds it; else full does
	full  *privacy.Signed // decoded: pending, or not in the leaf layout
	err   error
}

func (r *listedCheck) idPartnerConsortium() (id, partner, consortium string) {
	if r.fast {
		return r.parts.id, r.parts.partner, r.parts.consortium
	}
	if r.full == nil {
		return listedID(r.e.Signed), "", ""
	}
	return r.full.ID, r.full.Release.Partner, r.full.Release.Consortium
}

// verifyLedger verifies the whole ledger a page at a time.
func (c *client) verifyLedger(ctx context.Context, opts Options, st state, pg *pinnedGenesis) (Report, SavedCheckpoint, trust, error) {
	var ci api.ClusterInfo
	if err := c.getJSON(ctx, "/v1/cluster", &ci); err != nil {
		return Report{}, SavedCheckpoint{}, trust{}, err
	}
	var served api.Checkpoint
	if err := c.getJSON(ctx, "/v1/checkpoint", &served); err != nil {
		return Report{}, SavedCheckpoint{}, trust{}, err
	}
	lc, err := c.startLedgerCheck(ctx, opts, st, pg, served)
	if err != nil {
		return Report{Consortium: lc.tr.consortium}, SavedCheckpoint{}, *lc.tr, err
	}
	if err := c.streamPages(ctx, lc, opts.pageChecked); err != nil {
		return Report{Consortium: lc.tr.consortium}, SavedCheckpoint{}, *lc.tr, err
	}
	if pg == nil {
		lc.tr.partners = partnerSet(ci.Partners, st.Partners, keyCodes(lc.tr.keys))
	}
	c.logf("listed %d release(s); their leaves are checked against the checkpoint's root", len(lc.leaves))
	rep, cp, err := lc.finish(ctx, c, served)
	return rep, cp, *lc.tr, err
}

// startLedgerCheck establishes the trust a whole-ledger run starts from:
// the genesis (replaying the served governance history), else the keys
// file, else keys pinned earlier or, with TOFU, pinned as the list is read.
func (c *client) startLedgerCheck(ctx context.Context, opts Options, st state, pg *pinnedGenesis, served api.Checkpoint) (*ledgerCheck, error) {
	lc := &ledgerCheck{size: served.Size, interned: map[string]string{}}
	if pg != nil {
		lc.tr = &trust{consortium: pg.id}
		var hist api.GovernanceHistory
		if err := c.getJSON(ctx, "/v1/governance", &hist); err != nil {
			return lc, fmt.Errorf("governance history: %w", err)
		}
		pinned, err := decodeKeys(st.Keys, opts.StateFile)
		if err != nil {
			return lc, err
		}
		tr, err := genesisTrust(*pg, hist, nil, pinned, opts.StateFile)
		lc.tr = &tr
		if err != nil {
			return lc, err
		}
		c.logf("governance: %d statement(s) replayed from the genesis, consortium %s", len(hist.Statements), pg.id)
		lc.admit = func(p, id string, key []byte) error { return checkServedKey(p, id, key, tr.keys) }
		lc.consortium = tr.consortium
		return lc, nil
	}
	var fileKeys Keys
	if opts.Keys != "" {
		var err error
		if fileKeys, err = LoadKeys(opts.Keys); err != nil {
			lc.tr = &trust{}
			return lc, err
		}
	}
	sk, err := newServedKeys(fileKeys, opts.Keys, st, opts.StateFile, opts.TOFU)
	lc.tr = &sk.tr
	if err != nil {
		return lc, err
	}
	lc.admit = sk.admit
	// Until the note is opened, the origin is the server's word; finish
	// refuses a note whose origin names another consortium.
	lc.consortium, _ = cluster.OriginConsortium(served.Origin)
	return lc, nil
}

// streamPages reads the list in one goroutine and checks each page in
// this one as it arrives, so fetching and decoding the next page overlaps
// checking this one. Three page buffers go round (one being read, one
// waiting, one being checked), so at most three pages are held at once.
// afterPage, if set, runs after each page is checked.
func (c *client) streamPages(ctx context.Context, lc *ledgerCheck, afterPage func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan listedPage, 1)
	bufs := make(chan []byte, 3)
	for range cap(bufs) {
		bufs <- nil
	}
	walked := make(chan error, 1)
	go func() {
		defer close(pages)
		walked <- c.walk(ctx, bufs, func(p listedPage) error {
			select {
			case pages <- p:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for p := range pages {
		if err := lc.checkPage(p); err != nil {
			cancel()
			for range pages { // let the reader see the cancel and stop
			}
			<-walked
			return err
		}
		bufs <- p.body // nothing kept points into it
		if afterPage != nil {
			afterPage()
		}
	}
	return <-walked
}

// checkPage checks one page's releases and keeps their summaries. Reading
// the bytes and checking signatures run on every core; the served keys are
// admitted in leaf order between the two, since trusting on first use pins
// the first key a partner is listed with.
func (lc *ledgerCheck) checkPage(p listedPage) error {
	rs := make([]listedCheck, len(p.Releases))
	parallel(len(rs), func(i int) { lc.read(&rs[i], &p.Releases[i]) })
	for i := range rs {
		r := &rs[i]
		if r.err != nil {
			continue
		}
		id, partner, _ := r.idPartnerConsortium()
		if err := lc.admit(partner, id, r.e.PublicKey); err != nil {
			return err
		}
	}
	parallel(len(rs), func(i int) {
		if rs[i].err == nil {
			rs[i].err = lc.judge(&rs[i])
		}
	})
	for i := range rs {
		if err := lc.keep(&rs[i]); err != nil {
			return err
		}
	}
	return nil
}

// read hashes a listed release's bytes and reads it: in place when it has
// the leaf layout and the checkpoint's root will bind it, else decoded.
func (lc *ledgerCheck) read(r *listedCheck, e *listedRelease) {
	r.e = e
	r.hash = tlog.RecordHash(e.Signed)
	if e.Leaf < lc.size {
		if e.parts != nil {
			r.parts, r.fast = *e.parts, true
			return
		}
		if r.parts, r.fast = splitLeaf(e.Signed); r.fast {
			return
		}
	}
	var s privacy.Signed
	if err := json.Unmarshal(e.Signed, &s); err != nil {
		r.err = fmt.Errorf("release at leaf %d: %w: the listed release does not decode: %w", e.Leaf, ErrSignature, err)
		return
	}
	r.full = &s
}

// judge checks a read release's consortium, key, id and signature and, for
// a decoded one, that the listed bytes are its leaf bytes.
func (lc *ledgerCheck) judge(r *listedCheck) error {
	id, p, consortium := r.idPartnerConsortium()
	fail := func(kind error, check string, err error) error {
		return releaseError(id, p, r.e.Leaf, kind, check, err)
	}
	if consortium != lc.consortium {
		return fail(ErrConsortium, fmt.Sprintf("signed for consortium %q, this is consortium %s", consortium, lc.consortium), nil)
	}
	key, ok := lc.tr.keys[p]
	switch {
	case !ok && lc.tr.fromGenesis:
		return fail(ErrUnknownPartner, "governance never added partner "+p, nil)
	case !ok:
		return fail(ErrSignature, "no trusted key for partner "+p, nil)
	}
	if r.fast {
		s := privacy.Signed{ID: id, Signature: r.parts.signature, Release: privacy.Release{Partner: p}}
		err := s.VerifyCanonical(key, r.parts.body)
		if err == nil {
			return nil
		}
		// Judged again decoded, so the failure is named as the full
		// path names it (e.g. bytes of a valid release, reformatted).
		var full privacy.Signed
		if json.Unmarshal(r.e.Signed, &full) != nil {
			return fail(ErrSignature, "ID and ed25519 signature", err)
		}
		r.fast, r.full = false, &full
		return lc.judge(r)
	}
	if err := r.full.Verify(key); err != nil {
		return fail(ErrSignature, "ID and ed25519 signature", err)
	}
	data, err := cluster.LeafData(r.full)
	if err != nil {
		return fail(ErrInclusion, "leaf bytes", err)
	}
	if !bytes.Equal(data, r.e.Signed) {
		return fail(ErrInclusion, "leaf bytes", errNotLeafBytes)
	}
	return nil
}

var errNotLeafBytes = errors.New("the listed bytes are not the ledger's encoding of the release (cluster.LeafData): their layout differs (whitespace, key order, escaping or a repeated key), so they are not the leaf the partners signed into the tree")

// keep folds a checked release into the run's summary: its leaf hash into
// the tree (while the leaves run on from 0 below the checkpoint's size)
// and its failure into the run's.
func (lc *ledgerCheck) keep(r *listedCheck) error {
	id, p, _ := r.idPartnerConsortium()
	if q, ok := lc.interned[p]; ok {
		p = q
	} else {
		lc.interned[p] = p
	}
	lc.leaves = append(lc.leaves, leafSummary{leaf: r.e.Leaf, id: strings.Clone(id), partner: p, hash: r.hash, failed: r.err != nil})
	if r.err != nil {
		lc.errs = append(lc.errs, r.err)
	}
	if r.e.Leaf == lc.tree.n && lc.tree.n < lc.size {
		return lc.tree.add(r.hash)
	}
	return nil
}

// finish opens the checkpoint with every key now trusted, checks that it
// says what the releases were checked against, and compares the root; if
// the root differs, proofs name the releases at fault. It returns the
// report as check does.
func (lc *ledgerCheck) finish(ctx context.Context, c *client, served api.Checkpoint) (Report, SavedCheckpoint, error) {
	tr := *lc.tr
	rep, cp, err := openRegional(served, tr)
	if err != nil {
		return rep, cp, err
	}
	if rep.Consortium != lc.consortium {
		return rep, cp, fmt.Errorf("%w: the server's fields say origin %q, its signed note says %q", ErrCheckpoint, served.Origin, cp.Origin)
	}
	rootErr := lc.tree.check(cp)
	switch {
	case errors.Is(rootErr, ErrInclusion):
		// The proofs name the releases at fault; the mismatch itself is
		// reported too, whatever they find.
		if err := lc.proveEach(ctx, c, cp); err != nil {
			return rep, cp, err
		}
		lc.errs = append(lc.errs, rootErr)
	case rootErr != nil:
		lc.errs = append(lc.errs, rootErr)
	}
	lc.withheld(cp.Size)
	for _, l := range lc.leaves {
		rep.Releases++
		switch {
		case l.failed:
			rep.Failed++
		case l.leaf >= cp.Size:
			rep.Pending++
		default:
			rep.Verified++
			rep.ByPartner[l.partner]++
		}
	}
	for _, e := range lc.errs {
		rep.Failures = append(rep.Failures, e.Error())
	}
	return rep, cp, errors.Join(lc.errs...)
}

// withheld names every leaf below the checkpoint's size the list skipped.
// Listed leaves rise strictly (walk), so the gaps are the withheld ones.
func (lc *ledgerCheck) withheld(size int64) {
	next := int64(0)
	miss := func(to int64) {
		for ; next < min(to, size); next++ {
			lc.errs = append(lc.errs, fmt.Errorf("%w: leaf %d of the checkpointed tree (size %d) is not in the server's release list: a release is withheld", ErrIncomplete, next, size))
		}
	}
	for _, l := range lc.leaves {
		miss(l.leaf)
		next = max(next, l.leaf+1)
	}
	miss(size)
}

// proofAnswer is what proveEach reads of GET /v1/releases/{id}: the
// release's id, leaf and proof; the release itself was checked as listed.
type proofAnswer struct {
	Signed struct {
		ID string `json:"id"`
	} `json:"signed"`
	Leaf  int64     `json:"leaf"`
	Proof api.Proof `json:"proof"`
}

// proveEach fetches the inclusion proof of every listed release that has
// not already failed, one at a time, and checks it against the leaf hash of
// the bytes as listed, for a run whose leaves did not hash to the
// checkpoint's root: the proofs name the releases at fault. Memory stays
// the summaries; time is one request per release, which only a server
// that lists something other than its signed tree makes a run pay.
func (lc *ledgerCheck) proveEach(ctx context.Context, c *client, cp SavedCheckpoint) error {
	c.logf("the listed releases do not hash to the checkpoint's root; fetching inclusion proofs to name the release(s) at fault")
	t := &tiedTrees{proven: map[int64]tlog.Hash{cp.Size: cp.root()}, refused: map[tlog.Tree]error{}}
	for i := range lc.leaves {
		l := &lc.leaves[i]
		if l.failed {
			continue
		}
		var got proofAnswer
		if err := c.getJSON(ctx, "/v1/releases/"+url.PathEscape(l.id), &got); err != nil {
			return fmt.Errorf("release %s: %w", l.id, err)
		}
		if got.Signed.ID != l.id || got.Leaf != l.leaf {
			return fmt.Errorf("%w: release %s is at leaf %d in the list but the server answered %s at leaf %d", ErrInclusion, l.id, l.leaf, got.Signed.ID, got.Leaf)
		}
		if err := lc.checkProof(ctx, c, l, got.Proof, cp, t); err != nil {
			l.failed = true
			lc.errs = append(lc.errs, err)
		}
	}
	return nil
}

// checkProof checks a listed release's inclusion proof against its leaf
// hash and ties the proof's tree to the checkpoint's (the same checks as
// checkReleaseProof, on the hash kept instead of the release).
func (lc *ledgerCheck) checkProof(ctx context.Context, c *client, l *leafSummary, pr api.Proof, cp SavedCheckpoint, t *tiedTrees) error {
	fail := func(check string, err error) error {
		return releaseError(l.id, l.partner, l.leaf, ErrInclusion, check, err)
	}
	if pr.Leaf != l.leaf {
		return fail(fmt.Sprintf("proof is for leaf %d", pr.Leaf), nil)
	}
	if len(pr.LeafHash) > 0 && !bytes.Equal(pr.LeafHash, l.hash[:]) {
		return fail(fmt.Sprintf("leaf hash: server says %s, the release's leaf bytes hash to %s", b64(pr.LeafHash), b64(l.hash[:])), nil)
	}
	if len(pr.Root) != tlog.HashSize {
		return fail(fmt.Sprintf("proof root has %d bytes, want %d", len(pr.Root), tlog.HashSize), nil)
	}
	root := tlog.Hash(pr.Root)
	if err := tlog.CheckRecord(toHashes(pr.Hashes), pr.TreeSize, root, l.leaf, l.hash); err != nil {
		return fail("inclusion proof", fmt.Errorf("verify inclusion of leaf %d in tree of size %d: %w", l.leaf, pr.TreeSize, err))
	}
	if l.leaf >= cp.Size {
		return nil // pending: in the node's tree, which no checkpoint covers yet
	}
	proven, err := t.tie(ctx, c, tlog.Tree{N: pr.TreeSize, Hash: root}, cp)
	if err != nil {
		return fail(fmt.Sprintf("the tree the inclusion proof uses (size %d/%d) is not consistent with the checkpoint", pr.TreeSize, cp.Size), err)
	}
	if proven != root {
		return fail(fmt.Sprintf("proof is against root %s at size %d, but the checkpoint proves root %s", b64(pr.Root), pr.TreeSize, b64(proven[:])), nil)
	}
	return nil
}

// tiedTrees are the trees proofs were made against that a consistency
// proof tied to the checkpoint's (proven, one root per size), and those it
// did not (refused), so each is asked about once.
type tiedTrees struct {
	proven  map[int64]tlog.Hash
	refused map[tlog.Tree]error
}

// tie returns the proven root of a tree of tree.N leaves, asking for the
// consistency proof between the checkpoint's tree and tree if no root of
// that size is proven yet. The first root that proves consistent is the
// root of that size; another root at the same size is then simply not it.
func (t *tiedTrees) tie(ctx context.Context, c *client, tree tlog.Tree, cp SavedCheckpoint) (tlog.Hash, error) {
	if h, ok := t.proven[tree.N]; ok {
		return h, nil
	}
	if err, ok := t.refused[tree]; ok {
		return tlog.Hash{}, err
	}
	from, to, oldRoot, newRoot := cp.Size, tree.N, cp.root(), tree.Hash
	if tree.N < cp.Size {
		from, to, oldRoot, newRoot = tree.N, cp.Size, tree.Hash, cp.root()
	}
	err := fmt.Errorf("a tree of size %d proves nothing", from)
	if from >= 1 {
		var p consistencyResponse
		if p, err = c.consistency(ctx, from, to); err == nil {
			err = cluster.VerifyConsistency(toHashes(p.Hashes), from, oldRoot, to, newRoot)
		}
	}
	if err != nil {
		t.refused[tree] = err
		return tlog.Hash{}, err
	}
	t.proven[tree.N] = tree.Hash
	return tree.Hash, nil
}
