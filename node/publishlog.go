package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"roundtable/node/api"
	"roundtable/node/store"
)

// publishLogKey names the store entry that keeps the latest finished
// publishes, so an operator whose command lost its answer (and the
// dashboard) can see what became of it.
const publishLogKey = "publish-log"

// publishLogSize is how many finished publishes the log keeps.
const publishLogSize = 20

// record adds a finished publish to the log. Only the workflow, which holds
// the publish slot, writes it.
func (n *Node) record(p *pending, outcome, how, msg string) {
	r := p.Reservation.Reservation
	ev := api.PublishEvent{Time: api.Started(time.Now()), Reservation: r.ID, Period: r.Period.String(),
		SpentMicro: r.SpendMicro, Outcome: outcome, How: how, Message: msg}
	if p.Release != nil {
		ev.Release = p.Release.ID
	}
	log, err := n.publishLog()
	if err != nil {
		n.log.Error("publish log unreadable; starting a new one", "err", err)
	}
	log = append([]api.PublishEvent{ev}, log...)
	if len(log) > publishLogSize {
		log = log[:publishLogSize]
	}
	b, err := json.Marshal(log)
	if err == nil {
		err = n.st.Put(publishLogKey, b)
	}
	if err != nil {
		n.log.Error("record publish", "reservation", r.ID, "err", err)
	}
}

func (n *Node) publishLog() ([]api.PublishEvent, error) {
	b, err := n.st.Get(publishLogKey)
	if errors.Is(err, store.ErrNotFound) {
		return []api.PublishEvent{}, nil
	}
	if err != nil {
		return nil, err
	}
	var log []api.PublishEvent
	if err := json.Unmarshal(b, &log); err != nil {
		return nil, err
	}
	return log, nil
}

// recentEvent finds reservation id in the log.
func (n *Node) recentEvent(id string) (api.PublishEvent, bool) {
	if id == "" {
		return api.PublishEvent{}, false
	}
	log, _ := n.publishLog()
	for _, ev := range log {
		if ev.Reservation == id {
			return ev, true
		}
	}
	return api.PublishEvent{}, false
}

// PendingReleases reports the release in flight, if any, and the latest
// finished publishes, newest first.
func (n *Node) PendingReleases(ctx context.Context) (api.PendingReport, error) {
	if n.st == nil {
		return api.PendingReport{}, api.ErrNotPartner
	}
	rep := api.PendingReport{Partner: n.st.Partner(), Pending: []api.PendingRelease{}}
	p, err := n.loadPending()
	if err != nil {
		return rep, err
	}
	if p != nil {
		rep.Pending = append(rep.Pending, p.status(true))
	}
	if rep.Recent, err = n.publishLog(); err != nil {
		return rep, err
	}
	return rep, nil
}
