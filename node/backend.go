package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/node/ingest"
	"roundtable/node/store"
	"roundtable/privacy"
)

// backend is the Node seen through the API's eyes: reads come from the
// ledger's state machine, writes go through the release workflow.
type backend Node

var _ api.Backend = (*backend)(nil)

func (b *backend) node() *Node { return (*Node)(b) }

func (b *backend) Partner() string {
	if b.st == nil {
		return ""
	}
	return b.st.Partner()
}

func (b *backend) AppliedIndex() uint64 { return b.ledger.FSM().AppliedIndex() }

func (b *backend) Health(ctx context.Context) api.Health {
	stats := b.ledger.Stats()
	leader, _ := b.ledger.Leader()
	h := api.Health{
		Partner:      b.Partner(),
		InCluster:    b.ledger.LeaderInTouch(), // a leader named and heard from
		CaughtUp:     b.ledger.CaughtUp(),
		RaftState:    b.ledger.State().String(),
		Leader:       leader,
		AppliedIndex: b.ledger.FSM().AppliedIndex(),
		LastContact:  stats["last_contact"],
		Version:      Version(),
		// Issue 8: raft RPCs whose sender was not the TLS peer or a voter.
		RaftRPCRefused:    b.ledger.RaftRPCRefusals(),
		HandshakesRefused: b.ledger.HandshakesRefused(),
	}
	h.ConsortiumID, _ = b.ledger.FSM().ConsortiumID()
	h.Status = api.StatusOK
	if r := b.ledger.FSM().SnapshotRefusal(); r != nil {
		h.Status = api.StatusSnapshotRefused
		h.SnapshotRefused = &api.SnapshotRefusal{Index: r.Index, Reason: r.Reason, Evidence: r.Evidence, Count: r.Count}
	}
	if b.ledger.FSM().Err() != nil {
		h.Status = api.StatusLedgerFailed
	}
	fmt.Sscan(stats["commit_index"], &h.CommitIndex)
	if t, err := b.ledger.FSM().TreeHead(); err == nil {
		h.TreeSize = t.N
		h.Releases = int(t.N)
	}
	return h
}

func (b *backend) Catalog(ctx context.Context) (*aggregate.Catalog, string, error) {
	cat, err := b.currentCatalog(ctx)
	if err != nil {
		return nil, "", err
	}
	return cat, cat.Hash(), nil
}

// currentCatalog reads the ledger's catalog; a node that has joined but not
// yet applied the genesis catches up with the leader first.
func (b *backend) currentCatalog(ctx context.Context) (*aggregate.Catalog, error) {
	cat, _, err := b.ledger.FSM().CurrentCatalog()
	if errors.Is(err, cluster.ErrNotFound) {
		if _, rerr := b.ledger.ConsistentRead(ctx); rerr == nil {
			cat, _, err = b.ledger.FSM().CurrentCatalog()
		}
	}
	if err != nil {
		return nil, ledgerErr(err)
	}
	return cat, nil
}

func (b *backend) Releases(ctx context.Context, consistent bool) ([]api.ReleaseEntry, uint64, error) {
	if consistent {
		if _, err := b.ledger.ConsistentRead(ctx); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", api.ErrNotInCluster, err)
		}
	}
	fsm := b.ledger.FSM()
	idx := fsm.AppliedIndex()
	keys, err := b.partnerKeys()
	if err != nil {
		return nil, 0, err
	}
	var out []api.ReleaseEntry
	err = fsm.Releases(func(leaf int64, s privacy.Signed) error {
		out = append(out, entry(leaf, s, keys))
		return nil
	})
	return out, idx, ledgerErr(err)
}

// entry is a release as the API lists it. Verified is the ledger's word:
// it admits a release only after its signature verified against the
// partner's registered key, so it is not checked again per request.
func entry(leaf int64, s privacy.Signed, keys map[string][]byte) api.ReleaseEntry {
	return api.ReleaseEntry{Signed: s, Leaf: leaf, PublicKey: keys[s.Release.Partner], Verified: true}
}

// ReleasePage reads one page of releases as stored, from the cursor on,
// in one read of the ledger.
func (b *backend) ReleasePage(ctx context.Context, consistent bool, q api.PageQuery) (api.ReleasePage, error) {
	if consistent {
		if _, err := b.ledger.ConsistentRead(ctx); err != nil {
			return api.ReleasePage{}, fmt.Errorf("%w: %v", api.ErrNotInCluster, err)
		}
	}
	fsm := b.ledger.FSM()
	idx := fsm.AppliedIndex()
	keys, err := b.partnerKeys()
	if err != nil {
		return api.ReleasePage{}, err
	}
	pg := api.NewPager(q)
	read := 0
	size, err := fsm.ReleasesFrom(q.After+1, func(leaf int64, data []byte) (bool, error) {
		read += len(data)
		return pg.Offer(leaf, data, keys)
	})
	if err != nil {
		return api.ReleasePage{}, ledgerErr(err)
	}
	b.giveBackMapped(read)
	return pg.Page(idx, size), nil
}

// mappedBudget is how many ledger bytes pages may read before the node
// gives the file's mapped pages back (cluster.FSM.DropMappedPages): a pass
// over years of releases (the series view, the export) would otherwise
// keep the whole file resident in the node, 3 GB at 100,000 whole-catalog
// releases.
var mappedBudget int64 = 256 << 20 // a var for the test

func (b *backend) giveBackMapped(read int) {
	if b.pagedBytes.Add(int64(read)) < mappedBudget {
		return
	}
	b.pagedBytes.Store(0)
	if err := b.ledger.FSM().DropMappedPages(); err != nil {
		b.log.Debug("could not give back the ledger's mapped pages", "err", err)
	}
}

func (b *backend) partnerKeys() (map[string][]byte, error) {
	c, err := b.ledger.FSM().Consortium()
	if err != nil {
		return nil, ledgerErr(err)
	}
	keys := make(map[string][]byte, len(c.Partners))
	for _, p := range c.Partners {
		keys[p.ID] = p.PublicKey
	}
	return keys, nil
}

func (b *backend) Release(ctx context.Context, id string) (api.ReleaseEntry, api.Proof, error) {
	fsm := b.ledger.FSM()
	s, leaf, err := fsm.Release(id)
	if err != nil {
		return api.ReleaseEntry{}, api.Proof{}, ledgerErr(err)
	}
	keys, err := b.partnerKeys()
	if err != nil {
		return api.ReleaseEntry{}, api.Proof{}, err
	}
	tree, err := fsm.TreeHead()
	if err != nil {
		return api.ReleaseEntry{}, api.Proof{}, ledgerErr(err)
	}
	proof, err := fsm.InclusionProof(leaf, tree.N)
	if err != nil {
		return api.ReleaseEntry{}, api.Proof{}, ledgerErr(err)
	}
	data, err := cluster.LeafData(&s)
	if err != nil {
		return api.ReleaseEntry{}, api.Proof{}, err
	}
	lh := tlog.RecordHash(data)
	p := api.Proof{Leaf: leaf, TreeSize: tree.N, Root: tree.Hash[:], LeafHash: lh[:]}
	for _, h := range proof {
		p.Hashes = append(p.Hashes, h[:])
	}
	return entry(leaf, s, keys), p, nil
}

func (b *backend) Consistency(ctx context.Context, from, to int64) ([][]byte, error) {
	proof, err := b.ledger.FSM().ConsistencyProof(from, to)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	out := make([][]byte, len(proof))
	for i, h := range proof {
		out[i] = h[:]
	}
	return out, nil
}

func (b *backend) Checkpoint(ctx context.Context) (api.Checkpoint, error) {
	fsm := b.ledger.FSM()
	msg, _, regional, err := fsm.Checkpoint()
	if err != nil {
		return api.Checkpoint{}, ledgerErr(err)
	}
	c, err := fsm.Consortium()
	if err != nil {
		return api.Checkpoint{}, ledgerErr(err)
	}
	var vs []note.Verifier
	for _, p := range c.Partners {
		v, err := cluster.NewNoteVerifier(cluster.PartnerNoteName(p.ID), p.PublicKey)
		if err != nil {
			return api.Checkpoint{}, err
		}
		vs = append(vs, v)
	}
	origin, tree, signedBy, err := cluster.OpenCheckpoint(msg, note.VerifierList(vs...))
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("checkpoint does not verify: %w", err)
	}
	return api.Checkpoint{Note: string(msg), Origin: origin, Size: tree.N, Root: tree.Hash[:],
		Signers: signedBy, Regional: regional}, nil
}

func (b *backend) Budget(ctx context.Context, partner string) (privacy.Policy, []privacy.QuarterSpend, error) {
	fsm := b.ledger.FSM()
	pol, err := fsm.Policy()
	if err != nil {
		return privacy.Policy{}, nil, ledgerErr(err)
	}
	c, err := fsm.Consortium()
	if err != nil {
		return privacy.Policy{}, nil, ledgerErr(err)
	}
	known := false
	for _, p := range c.Partners {
		known = known || p.ID == partner
	}
	if !known {
		return privacy.Policy{}, nil, fmt.Errorf("partner %q: %w", partner, api.ErrNotFound)
	}
	spend, err := fsm.Spend(partner)
	return pol, spend, ledgerErr(err)
}

func (b *backend) Partners(ctx context.Context) ([]string, error) {
	c, err := b.ledger.FSM().Consortium()
	if err != nil {
		return nil, ledgerErr(err)
	}
	return c.Voters(), nil
}

func (b *backend) Cluster(ctx context.Context) (api.ClusterInfo, error) {
	c, err := b.ledger.FSM().Consortium()
	if err != nil {
		return api.ClusterInfo{}, ledgerErr(err)
	}
	leader, _ := b.ledger.Leader()
	info := api.ClusterInfo{Consortium: c.Name, ConsortiumID: c.ID, Partners: c.Voters(), Replicas: c.Replicas}
	for _, s := range b.ledger.Servers() {
		info.Servers = append(info.Servers, api.ServerInfo{ID: s.ID, Address: s.Address, Voter: s.Voter, Leader: s.ID == leader})
	}
	return info, nil
}

func (b *backend) Import(ctx context.Context, r io.Reader, filename, format string, src api.ImportSource) (api.ImportReport, error) {
	if b.st == nil {
		return api.ImportReport{}, api.ErrNotPartner
	}
	opts := ingest.Options{Format: format, Source: src.Name, Replace: src.Replace, AllowForeign: src.AllowForeign}
	rep, err := ingest.RunReader(ctx, b.st, opts, filename, r)
	out := api.ImportReport{Files: []string{filename}, Rows: rep.Rows, Invalid: rep.Invalid, Foreign: rep.Foreign,
		Imported: rep.Imported, Stored: rep.Stats.Added + rep.Stats.Updated, Removed: rep.Stats.Removed}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, lineError(e))
	}
	var ie *ingest.InputError
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, store.ErrImportBusy):
		return out, fmt.Errorf("%w: %v; try again when it has finished", api.ErrConflict, err)
	case errors.As(err, &ie):
		return out, inputError{err}
	}
	return out, err
}

// inputError marks the importer's refusal of an upload as the client's
// fault (api.ErrInvalid, a 422) and keeps its text, which names the file,
// line and field, and its chain (a body over its limit stays a 413).
type inputError struct{ error }

func (e inputError) Is(target error) bool { return target == api.ErrInvalid }
func (e inputError) Unwrap() error        { return e.error }

func (b *backend) Plan(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, target int64) (api.PlanAnswer, error) {
	cat, err := b.currentCatalog(ctx)
	if err != nil {
		return api.PlanAnswer{}, err
	}
	pol, err := b.ledger.FSM().Policy()
	if err != nil {
		return api.PlanAnswer{}, ledgerErr(err)
	}
	rows, err := privacy.Plan(cat, indicators, privacy.PlanParams{Accounting: pol.Accounting, Budget: budget, TargetHalfWidth: target})
	if err != nil {
		return api.PlanAnswer{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	ans := api.PlanAnswer{Period: period.String(), Accounting: pol.Accounting, Epsilon: budget, TargetCI: target,
		Rows: rows, Cadences: privacy.CompareCadences(rows), Cap: privacy.Budget(pol.CapMicro)}
	left := privacy.Budget(-1)
	if b.st != nil {
		spends, err := b.ledger.FSM().Spend(b.st.Partner())
		if err != nil {
			return api.PlanAnswer{}, ledgerErr(err)
		}
		left = privacy.Budget(pol.CapMicro)
		for _, s := range spends {
			if slices.Contains(period.Quarters(), s.Quarter) {
				left = min(left, privacy.Budget(pol.CapMicro-s.SpentMicro))
			}
		}
		ans.Left = &left
	}
	ans.Warnings = privacy.PlanWarnings(pol.Accounting, budget, rows, ans.Cap, left)
	return ans, nil
}

func (b *backend) CheckPublish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (privacy.Charge, error) {
	return b.node().CheckPublish(ctx, period, indicators, budget)
}

func (b *backend) Publish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, reservation string) (api.PublishResult, error) {
	return b.node().PublishReservation(ctx, period, indicators, budget, reservation)
}

func (b *backend) PendingReleases(ctx context.Context) (api.PendingReport, error) {
	return b.node().PendingReleases(ctx)
}

func (b *backend) Governance(ctx context.Context) (api.GovernanceHistory, error) {
	// A coordinator signs the next sequence number this answer gives, so
	// it must not lag the leader: read at the leader's commit index. The
	// history itself verifies from the genesis, so with no leader the local
	// copy is still worth serving (a stale next number is then refused with
	// a clear reason when the statement is submitted).
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, _ = b.ledger.ConsistentRead(rctx)
	cancel()
	h, set, err := b.ledger.FSM().Governance()
	if err != nil {
		return api.GovernanceHistory{}, ledgerErr(err)
	}
	return api.GovernanceHistory{Consortium: h.Consortium, Next: h.Next, Coordinators: set.Coordinators,
		Threshold: set.Threshold, Statements: h.Statements}, nil
}

func (b *backend) Govern(ctx context.Context, s governance.Signed) (api.GovernResult, error) {
	res, err := b.ledger.Govern(ctx, s)
	if err != nil {
		return api.GovernResult{}, fmt.Errorf("%w: %v", api.ErrNotInCluster, err)
	}
	if !res.OK {
		return api.GovernResult{}, fmt.Errorf("%w: governance statement %d refused: %s", api.ErrConflict, s.Statement.Seq, res.Refusal)
	}
	return api.GovernResult{Seq: res.Seq, Action: s.Statement.Action.Type, Existing: res.Existing}, nil
}

// ledgerErr maps the ledger's not-found to the API's.
func ledgerErr(err error) error {
	if errors.Is(err, cluster.ErrNotFound) {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

// lineError splits an importer message "FILE:LINE: field "f": …" into the
// API's structured form; a message of another shape is kept whole.
func lineError(msg string) api.LineError {
	e := api.LineError{Message: msg}
	file, rest, ok := strings.Cut(msg, ":")
	if !ok {
		return e
	}
	line, rest, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(line)
	if !ok || err != nil {
		return e
	}
	e.File, e.Line, e.Message = file, n, rest
	if f, _, ok := strings.Cut(strings.TrimPrefix(rest, "field "), ":"); ok && strings.HasPrefix(rest, "field ") {
		e.Field = strings.Trim(f, `"`)
	}
	return e
}
