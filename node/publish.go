package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
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
	// Reserved is set once the ledger admitted the reservation.
	Reserved bool            `json:"reserved,omitempty"`
	Release  *privacy.Signed `json:"release,omitempty"` // set once noise is drawn and signed
	Started  time.Time       `json:"started"`
}

// step is how far p got.
func (p *pending) step() string {
	switch {
	case p.Release != nil:
		return api.StepSigned
	case p.Reserved:
		return api.StepReserved
	}
	return api.StepReserving
}

// status is p as the API shows it.
func (p *pending) status(running bool) api.PendingRelease {
	r := p.Reservation.Reservation
	s := api.PendingRelease{Reservation: r.ID, Partner: r.Partner, Period: r.Period.String(), Indicators: r.Indicators,
		SpentMicro: r.SpendMicro, Step: p.step(), Started: api.Started(p.Started)}
	if p.Release != nil {
		s.Release = p.Release.ID
	}
	s.Message = s.Describe(running)
	return s
}

// Publish runs the release workflow for this node's partner: check every
// parameter against the ledger (CheckPublish), reserve the budget in the
// ledger (before any noise exists), tabulate the records, draw noise and
// sign, and append the release. A refusal by the ledger is returned as a
// *privacy.Refusal.
func (n *Node) Publish(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget) (api.PublishResult, error) {
	return n.PublishReservation(ctx, period, indicators, budget, "")
}

// PublishReservation is Publish with the reservation id chosen by the
// caller ("" draws one), so a caller that lost the answer can find the
// release by it. Once the reservation is saved the node finishes the
// release whatever happens to the caller: if ctx ends first, the answer is
// a *api.PendingError saying where it stands, and the workflow goes on in
// the background (and, if the node stops, resumes when it starts again).
func (n *Node) PublishReservation(ctx context.Context, period aggregate.Period, indicators []string, budget privacy.Budget, reservation string) (api.PublishResult, error) {
	if n.st == nil {
		return api.PublishResult{}, api.ErrNotPartner
	}
	if err := n.lockPublish(ctx); err != nil {
		return api.PublishResult{}, err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			n.unlockPublish()
		}
	}()
	if err := n.finishPending(ctx, api.HowCallerLeft); err != nil {
		return api.PublishResult{}, fmt.Errorf("an earlier release is still in flight: %w", err)
	}
	if ev, ok := n.recentEvent(reservation); ok {
		return api.PublishResult{}, fmt.Errorf("%w: reservation %s was used already: %s", api.ErrConflict, reservation, ev.Message)
	}
	charge, cat, err := n.checkRelease(ctx, period, indicators, budget)
	if err != nil {
		return api.PublishResult{}, err
	}
	consortium, err := n.ledger.FSM().ConsortiumID() // signed into the reservation and release
	if err != nil {
		return api.PublishResult{}, ledgerErr(err)
	}
	if reservation == "" {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return api.PublishResult{}, err
		}
		reservation = hex.EncodeToString(id)
	}
	res := privacy.Reservation{
		ID: reservation, Consortium: consortium, Partner: charge.Partner, CatalogHash: cat.Hash(), Period: period,
		Accounting: charge.Accounting, SpendMicro: budget.Micro(), Indicators: charge.Indicators,
	}
	if err := res.Params().Validate(); err != nil {
		return api.PublishResult{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	sres, err := privacy.SignReservation(res, n.st.SigningKey())
	if err != nil {
		return api.PublishResult{}, err
	}
	p := pending{Reservation: sres, Started: time.Now()}
	if err := n.savePending(&p); err != nil {
		return api.PublishResult{}, err
	}
	// From here the node owns the release: it runs on the node's context,
	// not the caller's, and keeps the publish lock until it ends.
	type outcome struct {
		res api.PublishResult
		err error
	}
	done := make(chan outcome, 1)
	var callerLeft atomic.Bool
	handedOver = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.unlockPublish()
		how := func() string {
			if callerLeft.Load() {
				return api.HowCallerLeft
			}
			return api.HowAnswered
		}
		r, err := n.runPending(n.bg, &p, how)
		done <- outcome{r, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		callerLeft.Store(true)
		select {
		case o := <-done: // finished at the same moment
			return o.res, o.err
		default:
		}
		n.log.Warn("publish: the caller stopped waiting; the node finishes the release", "reservation", reservation, "period", period.String())
		return api.PublishResult{}, &api.PendingError{Pending: n.pendingStatus(&p)}
	}
}

// pendingStatus reads p's latest saved state (the workflow goroutine
// updates the store, not p's copy the caller holds).
func (n *Node) pendingStatus(fallback *pending) api.PendingRelease {
	if p, err := n.loadPending(); err == nil && p != nil {
		return p.status(true)
	}
	return fallback.status(true)
}

// lockPublish takes the node's one publish slot (pending state is per
// node), or gives up when ctx ends.
func (n *Node) lockPublish(ctx context.Context) error {
	select {
	case n.publishSlot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: another release is being published on this node: %v", api.ErrConflict, ctx.Err())
	}
}

func (n *Node) unlockPublish() { <-n.publishSlot }

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

// runPending drives p to the end: reserve, noise and sign, publish. how
// says, when it finishes, whether anyone is waiting for the answer (for the
// record of recent publishing).
func (n *Node) runPending(ctx context.Context, p *pending, how func() string) (api.PublishResult, error) {
	res := p.Reservation.Reservation
	if p.Release == nil {
		if !p.Reserved {
			t0 := time.Now()
			ar, err := n.ledger.Reserve(ctx, p.Reservation)
			n.api.ObserveCommit(time.Since(t0))
			if err != nil {
				return api.PublishResult{}, fmt.Errorf("reserve budget: %w", err)
			}
			if !ar.OK {
				n.record(p, api.OutcomeRefused, how(), fmt.Sprintf("the ledger refused the reservation of %s for %s: %s; nothing was spent",
					privacy.Budget(res.SpendMicro), res.Period, ar.Refusal))
				n.dropPending()
				return api.PublishResult{}, &privacy.Refusal{Reason: ar.Refusal}
			}
			p.Reserved = true
			if err := n.savePending(p); err != nil {
				return api.PublishResult{}, err
			}
			n.reached(api.StepReserved)
		}
		signed, err := n.draw(ctx, res)
		if err != nil {
			// The budget stays reserved: that is the safe direction.
			n.record(p, api.OutcomeFailed, how(), fmt.Sprintf("%s was reserved for %s, but drawing the release failed (%v); the budget stays spent and nothing was published",
				privacy.Budget(res.SpendMicro), res.Period, err))
			n.dropPending()
			return api.PublishResult{}, err
		}
		p.Release = &signed
		if err := n.savePending(p); err != nil {
			return api.PublishResult{}, err
		}
		n.reached(api.StepSigned)
	}
	t0 := time.Now()
	ar, err := n.ledger.Publish(ctx, *p.Release)
	n.api.ObserveCommit(time.Since(t0))
	if err != nil {
		return api.PublishResult{}, fmt.Errorf("publish release %s (it will be retried with the same id): %w", p.Release.ID, err)
	}
	n.reached(api.StepPublished)
	// The record is written before the pending entry is dropped, so a crash
	// between the two leaves the release findable (resumed, it is recorded
	// again; the ledger answers Existing).
	if !ar.OK {
		n.record(p, api.OutcomeRefused, how(), fmt.Sprintf("the ledger refused release %s for %s: %s; the reservation of %s stays spent",
			p.Release.ID, res.Period, ar.Refusal, privacy.Budget(res.SpendMicro)))
		n.dropPending()
		return api.PublishResult{}, &privacy.Refusal{Reason: ar.Refusal}
	}
	h := how()
	outcome, msg := api.OutcomePublished, fmt.Sprintf("published release %s for %s, leaf %d, %s spent", ar.ReleaseID, res.Period, ar.Leaf, privacy.Budget(res.SpendMicro))
	if h != api.HowAnswered {
		outcome = api.OutcomeCompleted
		msg = fmt.Sprintf("completed release %s for %s %s, leaf %d, %s spent once", ar.ReleaseID, res.Period, h, ar.Leaf, privacy.Budget(res.SpendMicro))
		n.log.Info("publish: release completed "+h, "release", ar.ReleaseID, "reservation", res.ID, "period", res.Period.String(), "leaf", ar.Leaf)
	}
	n.record(p, outcome, h, msg)
	n.dropPending()
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

// reached tells the test hook (Config.PublishStep) that the workflow got to
// step; production nodes have none.
func (n *Node) reached(step string) {
	if n.cfg.PublishStep != nil {
		n.cfg.PublishStep(step)
	}
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

// loadPending returns the release in flight, or nil.
func (n *Node) loadPending() (*pending, error) {
	b, err := n.st.Get(pendingKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("pending release is unreadable: %w", err)
	}
	return &p, nil
}

func (n *Node) dropPending() {
	if err := n.st.Delete(pendingKey); err != nil {
		n.log.Error("clear pending release", "err", err)
	}
}

// finishPending completes a release left in flight by a crash or a lost
// connection, if any; how says which (for the record).
func (n *Node) finishPending(ctx context.Context, how string) error {
	p, err := n.loadPending()
	if err != nil || p == nil {
		return err
	}
	n.log.Info("publish: resuming a release left in flight", "reservation", p.Reservation.Reservation.ID,
		"period", p.Reservation.Reservation.Period.String(), "step", p.step())
	_, err = n.runPending(ctx, p, func() string { return how })
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
		if err := n.lockPublish(ctx); err != nil {
			return
		}
		err := n.finishPending(ctx, api.HowRestart)
		n.unlockPublish()
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
