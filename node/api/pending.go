package api

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"roundtable/privacy"
)

// Steps of a release in flight, in order. The node saves each before the
// next leaves it, so whatever interrupts a publish, the node resumes it
// from the step it reached, with the same reservation and release ids.
const (
	// StepReserving: the reservation is saved and sent to the ledger;
	// whether the ledger admitted it is not known yet.
	StepReserving = "reserving"
	// StepReserved: the ledger admitted the reservation (the budget is
	// spent); noise is being drawn.
	StepReserved = "reserved"
	// StepSigned: the release is drawn, signed and saved; it is being
	// appended to the ledger.
	StepSigned = "signed"
	// StepPublished: the ledger holds the release.
	StepPublished = "published"
)

// PendingRelease is a release the node has started and not yet finished:
// GET /v1/releases/pending, and the answer to a publish the node could not
// finish before answering (202).
type PendingRelease struct {
	Reservation string   `json:"reservation"` // reservation id
	Partner     string   `json:"partner"`
	Period      string   `json:"period"`
	Indicators  []string `json:"indicators"`
	SpentMicro  int64    `json:"spend_micro"` // charged to each quarter of the period
	Step        string   `json:"step"`        // StepReserving, StepReserved, StepSigned
	Release     string   `json:"release,omitempty"`
	Started     string   `json:"started"` // RFC 3339, the node's clock
	// Message says in words what happened and what to do.
	Message string `json:"message"`
}

// PublishEvent is one finished publish, newest first in PendingReport.
type PublishEvent struct {
	Time        string `json:"time"` // RFC 3339, the node's clock
	Reservation string `json:"reservation"`
	Release     string `json:"release,omitempty"`
	Period      string `json:"period"`
	SpentMicro  int64  `json:"spend_micro"`
	// Outcome is OutcomePublished, OutcomeCompleted, OutcomeRefused or
	// OutcomeFailed.
	Outcome string `json:"outcome"`
	// How says when it finished: "answered", "after the caller left", or
	// "after a restart".
	How     string `json:"how"`
	Message string `json:"message"`
}

// Outcomes of a publish.
const (
	OutcomePublished = "published" // answered to the caller
	OutcomeCompleted = "completed" // finished after the caller stopped waiting, or after a restart
	OutcomeRefused   = "refused"   // the ledger refused the reservation: nothing spent
	OutcomeFailed    = "failed"    // reserved, but the node could not draw: spent, nothing published
)

// Ways a publish finished (PublishEvent.How).
const (
	HowAnswered   = "answered"
	HowCallerLeft = "after the caller left"
	HowRestart    = "after a restart"
)

// PendingReport is GET /v1/releases/pending: the release in flight, if any,
// and the latest finished ones.
type PendingReport struct {
	Partner string           `json:"partner"`
	Pending []PendingRelease `json:"pending"`
	Recent  []PublishEvent   `json:"recent"`
}

// PendingError is a publish the node accepted but had not finished when it
// answered; the node finishes it by itself. The API answers 202 with it.
type PendingError struct {
	Pending PendingRelease
}

func (e *PendingError) Error() string { return e.Pending.Message }

// Describe says in words where p stands and what the operator should do.
// running is whether the node is up to finish it now; if not, it finishes
// when started again.
func (p PendingRelease) Describe(running bool) string {
	spend := privacy.Budget(p.SpentMicro).String()
	when := "the node is completing the release now"
	if !running {
		when = "the release will be completed when the node starts again"
	}
	switch p.Step {
	case StepReserving:
		if running {
			when = "the node is completing it now"
		} else {
			when = "the node completes it when it starts again"
		}
		return fmt.Sprintf("%s is being reserved for %s (reservation %s): if the ledger admits it, %s; if it refuses, nothing is spent. Do not publish again.",
			spend, p.Period, p.Reservation, when)
	case StepReserved:
		return fmt.Sprintf("%s reserved for %s (reservation %s); %s. Do not publish again.", spend, p.Period, p.Reservation, when)
	case StepSigned:
		return fmt.Sprintf("%s reserved for %s and release %s signed; %s. Do not publish again.", spend, p.Period, p.Release, when)
	}
	return fmt.Sprintf("release %s for %s is in the ledger; %s spent. Do not publish again.", p.Release, p.Period, spend)
}

// Started formats t for PendingRelease.Started and PublishEvent.Time.
func Started(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// reservationID is what a client may choose as the reservation id: 16
// random bytes in hex, as the node itself draws.
var reservationID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *Server) handlePending(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePartner(); err != nil {
		return err
	}
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	rep, err := s.cfg.Backend.PendingReleases(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
