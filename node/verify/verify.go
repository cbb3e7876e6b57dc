// Package verify is the researcher's verifier behind `roundtable verify`:
// it proves that the aggregates a node serves were published by the partner
// that signed them and were never altered, trusting only the consortium's
// genesis.
//
// It checks, in order: the governance history the server serves, replayed
// from the genesis (cluster/governance.Replay: every statement signed by the
// threshold of coordinators), which alone gives the partner keys; that every
// key the server reports agrees; the checkpoint note's ed25519 signatures
// (golang.org/x/mod/sumdb/note, C2SP tlog-checkpoint), that its origin names
// this consortium and that a strict majority of the active partners signed
// it; each release's consortium, ID and signature (privacy.Signed.Verify);
// each release's RFC 6962 inclusion proof (section 2.1.1) for its leaf bytes
// cluster.LeafData; and the RFC 6962 consistency proof (section 2.1.2) from
// the checkpoint the last run saved to the new one, so a ledger that
// rewrites history is caught as a fork. State is written only after
// everything verified. Without a genesis, keys come from a keys file, an
// earlier run's state, or (with a warning) the server.
//
// A whole-ledger run checks the release list page by page as it arrives,
// keeping a summary per release (stream.go), and checks a release listed in
// the leaf layout on its bytes without decoding them: the checkpoint's
// root, recomputed from those bytes, binds them (leafbytes.go says why
// that is sound). See DESIGN.md.
package verify

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"roundtable/node/api"
)

// Errors a verification returns (wrapped, possibly joined), so a caller can
// tell the kinds of failure apart with errors.Is.
var (
	// ErrFork: the ledger's history disagrees with a checkpoint saved on an
	// earlier run (not an extension of it, or shorter). Fatal; see ForkError.
	ErrFork = errors.New("ledger fork")
	// ErrKeyChanged: a partner's key differs from the pinned one.
	ErrKeyChanged = errors.New("partner key changed")
	// ErrCheckpoint: the checkpoint note is malformed or a signature on it
	// does not verify.
	ErrCheckpoint = errors.New("checkpoint does not verify")
	// ErrNotRegional: fewer than a strict majority of partners signed.
	ErrNotRegional = errors.New("checkpoint is not regional")
	// ErrSignature: a release's ID or signature does not verify.
	ErrSignature = errors.New("release signature check failed")
	// ErrInclusion: a release is not proven to be in the checkpointed tree.
	ErrInclusion = errors.New("release inclusion check failed")
	// ErrIncomplete: the server's release list does not account for every
	// leaf of the checkpointed tree (a release is withheld) or repeats one.
	ErrIncomplete = errors.New("release list incomplete")
	// ErrNoTrustRoot: nothing says which partner keys to trust: no genesis,
	// no keys file, no keys pinned by an earlier run, and trust on first use
	// was not asked for.
	ErrNoTrustRoot = errors.New("no trust root: give --genesis FILE (the consortium's genesis, recommended), --keys FILE, or --tofu to trust this server's keys on first use")
	// ErrSplitView: two servers show checkpoints that cannot both be true:
	// the same size with different roots, or a larger tree that does not
	// extend the smaller one.
	ErrSplitView = errors.New("split view")
	// ErrExport: a row of an export CSV differs from the signed release.
	ErrExport = errors.New("export row does not match the signed release")
)

// Options configures an online verification.
type Options struct {
	// Server is the node's base URL, e.g. http://127.0.0.1:8080.
	Server string
	// StateFile holds the last verified checkpoint, the consortium id and
	// the pinned keys; default ~/.config/roundtable/verify-<host>.json.
	StateFile string
	// Genesis is the path of the consortium's genesis file: the trust
	// root. Its hash is the consortium id; the server's governance history
	// is replayed from it and partner keys come only from that replay.
	Genesis string
	// Consortium, if set, is the consortium id the coordinators published:
	// the genesis file must hash to it.
	Consortium string
	// Keys is an optional path to a trusted partner-keys file,
	// JSON {"RS": "<base64 ed25519 public key>", ...}: an alternative to
	// Genesis that trusts whoever wrote the file.
	Keys string
	// TOFU allows trusting the server's partner keys on first use when
	// neither a genesis nor a keys file is given and the state file has
	// none pinned. The report's key source then carries a warning.
	TOFU bool
	// ReleaseID, if set, verifies that one release instead of all.
	ReleaseID string
	// Token is sent as a bearer token, for nodes that require one to read.
	Token string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Progress, if set, receives one line per step.
	Progress io.Writer

	// pageChecked, if set, runs after each page of a whole-ledger run is
	// checked (a test's view of what the run holds).
	pageChecked func()
}

// Keys maps a partner code ("RS") to its ed25519 public key, which signs
// both its releases and its node's checkpoint co-signatures.
type Keys map[string]ed25519.PublicKey

// ForkError is the fatal error for a ledger whose new checkpoint cannot
// descend from the one saved on an earlier run. Both checkpoints are
// signed by partners, so together they prove the ledger was rewritten.
type ForkError struct {
	Saved    SavedCheckpoint // the checkpoint from the state file
	Seen     SavedCheckpoint // the checkpoint the server serves now
	Reason   string          // what exactly disagrees
	Evidence string          // file both notes were written to, "" if writing failed
}

func (e *ForkError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FORK: %s: the ledger's checkpoint of size %d (root %s) is not an extension of the checkpoint of size %d (root %s) verified earlier. ",
		e.Reason, e.Seen.Size, e.Seen.rootB64(), e.Saved.Size, e.Saved.rootB64())
	b.WriteString("Keep BOTH signed checkpoints as evidence and tell the consortium; the state file was not updated")
	if e.Evidence != "" {
		fmt.Fprintf(&b, "; both notes are saved in %s", e.Evidence)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrFork) true.
func (e *ForkError) Unwrap() error { return ErrFork }

// Run verifies a node's published ledger online: see the package comment
// for the checks. On success it saves the new checkpoint to the state file
// (atomically) and returns the report; on failure the state file is left
// as it was and the error says which release, partner and check failed.
//
// A whole-ledger run checks the release list a page at a time as it
// arrives and keeps a small summary per release (stream.go), so its memory
// does not grow with the releases' size.
func Run(ctx context.Context, opts Options) (Report, error) {
	r, _, _, err := run(ctx, opts, false)
	return r, err
}

// run verifies online and returns the report and the verified checkpoint.
// keep asks for the verified material too (Bundle): a run that keeps it
// fetches everything, then judges it (check); a whole-ledger run that does
// not streams (verifyLedger).
func run(ctx context.Context, opts Options, keep bool) (Report, SavedCheckpoint, *material, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Report{}, SavedCheckpoint{}, nil, err
	}
	c := &client{base: opts.Server, token: opts.Token, http: opts.HTTPClient, progress: opts.Progress}
	st, err := loadState(opts.StateFile)
	if err != nil {
		return Report{}, SavedCheckpoint{}, nil, err
	}
	var pg *pinnedGenesis
	if opts.Genesis != "" {
		g, err := loadGenesis(opts.Genesis, opts.Consortium)
		if err != nil {
			return Report{}, SavedCheckpoint{}, nil, err
		}
		if err := checkStateConsortium(st, g.id, opts.StateFile); err != nil {
			return Report{}, SavedCheckpoint{}, nil, err
		}
		pg = &g
	}
	var (
		rep Report
		cp  SavedCheckpoint
		tr  trust
		m   *material
	)
	if opts.ReleaseID == "" && !keep {
		rep, cp, tr, err = c.verifyLedger(ctx, opts, st, pg)
	} else {
		rep, cp, tr, m, err = c.verifyMaterial(ctx, opts, st, pg)
	}
	rep.Server, rep.StateFile = opts.Server, opts.StateFile
	if err != nil {
		return rep, cp, m, err
	}
	if err := checkStateConsortium(st, rep.Consortium, opts.StateFile); err != nil {
		return rep, cp, m, err
	}
	c.logf("checkpoint %s size %d signed by %s", cp.Origin, cp.Size, strings.Join(rep.Signers, ", "))
	rep.History, err = c.checkHistory(ctx, st, cp, opts.StateFile)
	if err != nil {
		return rep, cp, m, err
	}
	if m != nil {
		// The bundle carries the trust this run used, so Offline can repeat it.
		m.Keys = map[string][]byte{}
		for p, k := range tr.keys {
			m.Keys[p] = k
		}
		m.Partners = tr.partners
	}
	st.Server = opts.Server
	st.Consortium = rep.Consortium
	st.Checkpoint = &cp
	st.Keys = encodeKeys(tr.keys)
	st.Partners = tr.partners
	if err := saveState(opts.StateFile, st); err != nil {
		return rep, cp, m, err
	}
	return rep, cp, m, nil
}

// verifyMaterial fetches everything first and then judges it whole: one
// release (--release) with its proof, or the whole ledger for a bundle.
func (c *client) verifyMaterial(ctx context.Context, opts Options, st state, pg *pinnedGenesis) (Report, SavedCheckpoint, trust, *material, error) {
	m, err := c.fetch(ctx, opts.ReleaseID)
	if err != nil {
		return Report{}, SavedCheckpoint{}, trust{}, nil, err
	}
	tr, err := c.trust(ctx, opts, m, st, pg)
	if err != nil {
		return Report{Consortium: tr.consortium}, SavedCheckpoint{}, tr, m, err
	}
	if err := c.fetchConsistency(ctx, m); err != nil {
		return Report{}, SavedCheckpoint{}, tr, m, err
	}
	rep, cp, err := check(m, tr)
	if errors.Is(err, ErrInclusion) && m.Tree {
		if err := c.fetchProofs(ctx, m); err != nil {
			return Report{}, cp, tr, m, err
		}
		rep, cp, err = check(m, tr)
	}
	return rep, cp, tr, m, err
}

// trust picks the run's trust anchor: the genesis (replaying the server's
// governance history from it), else the keys file, else keys pinned by an
// earlier run or, with TOFU, on this one.
func (c *client) trust(ctx context.Context, opts Options, m *material, st state, pg *pinnedGenesis) (trust, error) {
	if pg == nil {
		var fileKeys Keys
		if opts.Keys != "" {
			var err error
			if fileKeys, err = LoadKeys(opts.Keys); err != nil {
				return trust{}, err
			}
		}
		return buildTrust(m, fileKeys, opts.Keys, st, opts.StateFile, opts.TOFU)
	}
	var hist api.GovernanceHistory
	if err := c.getJSON(ctx, "/v1/governance", &hist); err != nil {
		return trust{consortium: pg.id}, fmt.Errorf("governance history: %w", err)
	}
	pinned, err := decodeKeys(st.Keys, opts.StateFile)
	if err != nil {
		return trust{consortium: pg.id}, err
	}
	tr, err := genesisTrust(*pg, hist, servedReleases(m), pinned, opts.StateFile)
	if err != nil {
		return tr, err
	}
	m.Genesis, m.Governance = pg.raw, hist.Statements
	c.logf("governance: %d statement(s) replayed from the genesis, consortium %s", len(hist.Statements), pg.id)
	return tr, nil
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Genesis != "" && (o.Keys != "" || o.TOFU):
		return o, fmt.Errorf("verify: --genesis is the trust root; do not combine it with --keys or --tofu")
	case o.Consortium != "" && o.Genesis == "":
		return o, fmt.Errorf("verify: --consortium ID checks a genesis file: give --genesis FILE too (the server does not serve the genesis; a bundle made with --genesis carries it, for --offline)")
	}
	u, err := url.Parse(o.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("verify: server %q: want a URL like http://127.0.0.1:8080", o.Server)
	}
	o.Server = strings.TrimSuffix(o.Server, "/")
	if o.StateFile == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("verify: no state file given and no home directory: %w", err)
		}
		host := strings.NewReplacer(":", "_", "/", "_").Replace(u.Host)
		o.StateFile = filepath.Join(home, ".config", "roundtable", "verify-"+host+".json")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: defaultTimeout}
	}
	return o, nil
}
