package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"roundtable/aggregate"
	"roundtable/node/api"
	"roundtable/node/store"
	"roundtable/privacy"
)

// pendingKey names the store entry that holds a release in flight. The
// workflow writes it before each step that leaves the node, so a crash is
// resumed with the same reservation and the same signed bytes: noise is
// never drawn twice for a published release, and a retry never spends twice.
const pendingKey = "pending-release"

// pending is the release workflow's durable state.
type pending struct {
	Reservation privacy.SignedReservation `json:"reservation"`
	Release     *privacy.Signed           `json:"release,omitempty"` // set once noise is drawn and signed
}

// Publish runs the release workflow for this node's partner: check every
// parameter against the ledger (CheckPublish), reserve the budget in the
// ledger (before any noise exists), tabulate the records, draw noise and
// sign, and append the release. A refusal by the ledger is returned as a
// *privacy.Refusal.
func (n *Node) Publish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (api.PublishResult, error) {
	if n.st == nil {
		return api.PublishResult{}, api.ErrNotPartner
	}
	n.publishMu.Lock()
	defer n.publishMu.Unlock()
	if err := n.finishPending(ctx); err != nil {
		return api.PublishResult{}, fmt.Errorf("an earlier release is still in flight: %w", err)
	}
	charge, cat, err := n.checkRelease(ctx, period, indicators, budget)
	if err != nil {
		return api.PublishResult{}, err
	}
	consortium, err := n.ledger.FSM().ConsortiumID() // signed into the reservation and release
	if err != nil {
		return api.PublishResult{}, ledgerErr(err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return api.PublishResult{}, err
	}
	res := privacy.Reservation{
		ID: hex.EncodeToString(id), Consortium: consortium, Partner: charge.Partner, CatalogHash: cat.Hash(), Period: period,
		Accounting: charge.Accounting, SpendMicro: budget.Micro(), Indicators: charge.Indicators,
	}
	if err := res.Params().Validate(); err != nil {
		return api.PublishResult{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	sres, err := privacy.SignReservation(res, n.st.SigningKey())
	if err != nil {
		return api.PublishResult{}, err
	}
	p := pending{Reservation: sres}
	if err := n.savePending(&p); err != nil {
		return api.PublishResult{}, err
	}
	return n.runPending(ctx, &p)
}

// CheckPublish checks a release's parameters as Publish does, and says
// what it would spend; it reserves nothing.
func (n *Node) CheckPublish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (privacy.Charge, error) {
	if n.st == nil {
		return privacy.Charge{}, api.ErrNotPartner
	}
	c, _, err := n.checkRelease(ctx, period, indicators, budget)
	return c, err
}

// checkRelease checks everything about a release that can be checked
// before budget is reserved: the indicators (put in the catalog's order,
// the order the ledger admits), the budget (positive, within the cap and
// what is left on every quarter of the period) and the period, against
// the catalog, policy and spend the leader has. A request refused here
// has spent nothing and printed nothing. What the ledger admits can still
// change before the reservation lands (another release of this partner
// from elsewhere); the ledger's own check is final.
func (n *Node) checkRelease(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (privacy.Charge, *aggregate.Catalog, error) {
	// Read the catalog and policy the leader has, not a stale local copy
	// (a node that just joined may not have applied the genesis yet).
	if _, err := n.ledger.ConsistentRead(ctx); err != nil {
		return privacy.Charge{}, nil, fmt.Errorf("%w: %v", api.ErrNotInCluster, err)
	}
	fsm := n.ledger.FSM()
	cat, _, err := fsm.CurrentCatalog()
	if err != nil {
		return privacy.Charge{}, nil, ledgerErr(err)
	}
	pol, err := fsm.Policy()
	if err != nil {
		return privacy.Charge{}, nil, ledgerErr(err)
	}
	names, err := cat.Select(indicators)
	if err != nil {
		return privacy.Charge{}, nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	if period.Year < 1900 || period.Year > 9999 || period.Quarter < 0 || period.Quarter > 4 {
		return privacy.Charge{}, nil, fmt.Errorf("%w: period %v is not a quarter or a year", api.ErrInvalid, period)
	}
	spends, err := fsm.Spend(n.st.Partner())
	if err != nil {
		return privacy.Charge{}, nil, ledgerErr(err)
	}
	spent := func(q aggregate.Period) int64 {
		for _, s := range spends {
			if s.Quarter == q {
				return s.SpentMicro
			}
		}
		return 0
	}
	c, err := privacy.NewCharge(pol, n.st.Partner(), period, names, budget, spent)
	var refusal *privacy.Refusal
	if err != nil && !errors.As(err, &refusal) {
		return privacy.Charge{}, nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	return c, cat, err
}

// runPending drives p to the end: reserve, noise and sign, publish.
func (n *Node) runPending(ctx context.Context, p *pending) (api.PublishResult, error) {
	res := p.Reservation.Reservation
	if p.Release == nil {
		t0 := time.Now()
		ar, err := n.ledger.Reserve(ctx, p.Reservation)
		n.api.ObserveCommit(time.Since(t0))
		if err != nil {
			return api.PublishResult{}, fmt.Errorf("reserve budget: %w", err)
		}
		if !ar.OK {
			n.dropPending()
			return api.PublishResult{}, &privacy.Refusal{Reason: ar.Refusal}
		}
		signed, err := n.draw(ctx, res)
		if err != nil {
			// The budget stays reserved: that is the safe direction.
			n.dropPending()
			return api.PublishResult{}, err
		}
		p.Release = &signed
		if err := n.savePending(p); err != nil {
			return api.PublishResult{}, err
		}
	}
	t0 := time.Now()
	ar, err := n.ledger.Publish(ctx, *p.Release)
	n.api.ObserveCommit(time.Since(t0))
	if err != nil {
		return api.PublishResult{}, fmt.Errorf("publish release %s (it will be retried with the same id): %w", p.Release.ID, err)
	}
	n.dropPending()
	if !ar.OK {
		return api.PublishResult{}, &privacy.Refusal{Reason: ar.Refusal}
	}
	// Read-your-writes: on a follower, wait until the local copy has the
	// release, so the caller can fetch it from this node straight away.
	if _, err := n.ledger.ConsistentRead(ctx); err != nil {
		n.log.Warn("published, but this node has not caught up yet", "release", ar.ReleaseID, "err", err)
	}
	return api.PublishResult{
		ID: ar.ReleaseID, Leaf: ar.Leaf, Partner: res.Partner, Period: res.Period.String(),
		Indicators: res.Indicators, SpentMicro: res.SpendMicro, AppliedIndex: ar.Index,
	}, nil
}

// draw tabulates this node's records and builds the signed release. It is
// the only place where exact tables exist, and they do not outlive it.
func (n *Node) draw(ctx context.Context, res privacy.Reservation) (privacy.Signed, error) {
	cat, _, err := n.ledger.FSM().Catalog(res.CatalogHash)
	if err != nil {
		return privacy.Signed{}, ledgerErr(err)
	}
	each := func(fn func(*aggregate.Case) error) error { return n.st.Cases(ctx, fn) }
	book, err := n.st.QuarterBook()
	if err != nil {
		return privacy.Signed{}, err
	}
	tables, fixed, err := aggregate.TabulateFixed(ctx, cat, res.Period, res.Indicators, each, book)
	if err != nil {
		return privacy.Signed{}, fmt.Errorf("tabulate: %w", err)
	}
	// Durable before noise is drawn, so before the release can be saved as
	// pending or leave the node: node/store/DESIGN.md, "Fixed quarters".
	if err := n.st.FixQuarters(fixed); err != nil {
		return privacy.Signed{}, err
	}
	return privacy.BuildRelease(ctx, cat, tables, res.Params(), res, n.st.SigningKey())
}

func (n *Node) savePending(p *pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return n.st.Put(pendingKey, b)
}

func (n *Node) dropPending() {
	if err := n.st.Delete(pendingKey); err != nil {
		n.log.Error("clear pending release", "err", err)
	}
}

// finishPending completes a release left in flight by a crash or a lost
// connection, if any.
func (n *Node) finishPending(ctx context.Context) error {
	b, err := n.st.Get(pendingKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("pending release is unreadable: %w", err)
	}
	_, err = n.runPending(ctx, &p)
	var refusal *privacy.Refusal
	if errors.As(err, &refusal) {
		n.log.Warn("pending release refused", "reservation", p.Reservation.Reservation.ID, "reason", refusal.Reason)
		return nil
	}
	return err
}

// resumePending retries a pending release in the background after a
// restart, until it lands or the node stops.
func (n *Node) resumePending(ctx context.Context) {
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		n.publishMu.Lock()
		err := n.finishPending(ctx)
		n.publishMu.Unlock()
		if err == nil {
			return
		}
		n.log.Warn("pending release not yet published; will retry", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
