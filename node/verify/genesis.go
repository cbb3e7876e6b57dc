package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
)

// Verifying from the genesis: the genesis file's hash is the consortium id;
// it names the coordinator keys and their threshold and the founding
// partners. The server's /v1/governance history is replayed from it
// (governance.Replay: every statement in sequence, each signed by the
// threshold of the coordinators in force), and partner keys come only from
// that replay. Nothing the server says about keys is trusted: a served key
// that differs is a failure naming the partner.

var (
	// ErrGovernance: the governance history does not replay from the
	// genesis (a statement under-signed, by unknown coordinators, out of
	// sequence, or changing a partner's key).
	ErrGovernance = errors.New("governance history does not verify from the genesis")
	// ErrConsortium: the server, a checkpoint, a release or the state file
	// belongs to another consortium than the one pinned.
	ErrConsortium = errors.New("another consortium")
	// ErrUnknownPartner: a release comes from a partner that governance
	// never added.
	ErrUnknownPartner = errors.New("partner not added by governance")
)

// pinnedGenesis is a genesis file as the researcher holds it.
type pinnedGenesis struct {
	raw    json.RawMessage // the file, kept in bundles
	g      governance.Genesis
	id     string
	source string // where it came from, for messages
}

// loadGenesis reads and parses a genesis file and computes its id. want,
// if set, is the consortium id the researcher was given: the file must
// hash to it.
func loadGenesis(path, want string) (pinnedGenesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pinnedGenesis{}, fmt.Errorf("genesis: %w", err)
	}
	return parseGenesis(b, path, want)
}

func parseGenesis(b []byte, source, want string) (pinnedGenesis, error) {
	g, err := governance.ParseGenesis(b)
	if err != nil {
		return pinnedGenesis{}, fmt.Errorf("%s: %w", source, err)
	}
	id, err := g.ID()
	if err != nil {
		return pinnedGenesis{}, fmt.Errorf("%s: %w", source, err)
	}
	if want != "" && want != id {
		return pinnedGenesis{}, fmt.Errorf("%w: %s hashes to consortium id %s, not %s: it is not the genesis you were told to trust", ErrConsortium, source, id, want)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return pinnedGenesis{}, fmt.Errorf("%s: %w", source, err)
	}
	return pinnedGenesis{raw: compact.Bytes(), g: g, id: id, source: source}, nil
}

// origin is the checkpoint origin of this consortium's ledger.
func (p pinnedGenesis) origin() string { return cluster.CheckpointOrigin(p.g.Name, p.id) }

// genesisTrust replays the served governance history from the pinned
// genesis and returns the trust it establishes: every partner key
// governance ever admitted (a removed partner's past releases still
// verify), and the partners active now, over which a checkpoint's majority
// is counted. served lists the releases with the keys the server reported;
// a key that differs from governance's, or a partner governance never
// added, is refused. pinned are keys an earlier run pinned in the state
// file (from statePath); they must agree with governance too.
func genesisTrust(pg pinnedGenesis, hist api.GovernanceHistory, served []bundleRelease, pinned Keys, statePath string) (trust, error) {
	tr := trust{consortium: pg.id, origin: pg.origin(), fromGenesis: true}
	if hist.Consortium != pg.id {
		return tr, fmt.Errorf("%w: the governance history served is for consortium %s, the genesis %s is consortium %s", ErrConsortium, hist.Consortium, pg.source, pg.id)
	}
	st, err := governance.Replay(pg.g, hist.Statements)
	if err != nil {
		return tr, fmt.Errorf("%w: %w", ErrGovernance, err)
	}
	tr.keys = st.Keys()
	tr.partners = st.Active()
	tr.governance = len(hist.Statements)
	tr.source = fmt.Sprintf("governance replayed from the genesis %s: %d signed statement(s), coordinators %d of %d now; partner keys from governance only",
		pg.source, len(hist.Statements), st.Set.Threshold, len(st.Set.Coordinators))
	for _, p := range keyCodes(pinned) {
		if k, ok := tr.keys[p]; ok && !k.Equal(pinned[p]) {
			return tr, fmt.Errorf("%w: partner %s: the key pinned in %s by an earlier run is %s, but governance from the genesis establishes %s: the server that earlier run trusted lied about %s's key; move the state file away to start again from the genesis",
				ErrKeyChanged, p, statePath, b64(pinned[p]), b64(k), p)
		}
	}
	for _, r := range served {
		if err := checkServedKey(r.Signed.Release.Partner, r.Signed.ID, r.PublicKey, tr.keys); err != nil {
			return tr, err
		}
	}
	return tr, nil
}

// checkServedKey compares the key the server reported with release id of
// partner p with the partner's key per governance.
func checkServedKey(p, id string, servedKey []byte, keys Keys) error {
	k, ok := keys[p]
	if !ok {
		return fmt.Errorf("%w: release %s comes from partner %s, which governance never added (the partners governance knows: %v)",
			ErrUnknownPartner, id, p, keyCodes(keys))
	}
	if len(servedKey) > 0 && !k.Equal(ed25519.PublicKey(servedKey)) {
		return fmt.Errorf("%w: partner %s: the server reports key %s with release %s, but governance from the genesis establishes %s: the server is not showing this consortium's ledger",
			ErrKeyChanged, p, b64(servedKey), id, b64(k))
	}
	return nil
}

// checkStateConsortium refuses to mix consortia in one state file.
func checkStateConsortium(st state, id, statePath string) error {
	if st.Consortium != "" && st.Consortium != id {
		return fmt.Errorf("%w: the state file %s is for consortium %s, this is consortium %s: use another --state file", ErrConsortium, statePath, st.Consortium, id)
	}
	return nil
}

// releaseConsortium is the consortium a run holds releases to: the pinned
// one, else the one the verified checkpoint's origin names.
func releaseConsortium(tr trust, origin string) (string, error) {
	if tr.consortium != "" {
		if origin != tr.origin {
			return "", fmt.Errorf("%w: %w: the checkpoint's origin is %q, this consortium's is %q", ErrCheckpoint, ErrConsortium, origin, tr.origin)
		}
		return tr.consortium, nil
	}
	id, ok := cluster.OriginConsortium(origin)
	if !ok {
		return "", fmt.Errorf("%w: origin %q does not name a consortium id (want %s<name>/<consortium id>)", ErrCheckpoint, origin, cluster.CheckpointOriginPrefix)
	}
	return id, nil
}

// servedReleases is every release with the key the server reported, from
// the list and the individual answers.
func servedReleases(m *material) []bundleRelease {
	return append(slices.Clone(m.Releases), m.listed...)
}
