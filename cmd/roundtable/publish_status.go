package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"roundtable/node/api"
	"roundtable/node/client"
	"roundtable/privacy"
)

// notFinished is a publish whose outcome is not final yet (exit status 3):
// the node finishes it by itself, or will when it starts again.
type notFinished struct{ msg string }

func (e *notFinished) Error() string { return e.msg }
func (e *notFinished) ExitCode() int { return 3 }

// newReservationID draws the reservation id the command asks the node to
// use, so that after a lost answer it can ask what became of it.
func newReservationID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func printPublished(w io.Writer, res api.PublishResult) {
	fmt.Fprintf(w, "published release %s\n  partner %s, period %s, leaf %d, spent %s on each quarter\n",
		res.ID, res.Partner, res.Period, res.Leaf, privacy.Budget(res.SpentMicro))
}

func statusHint(dir string) string {
	return fmt.Sprintf("See where it stands with: roundtable publish --status --data-dir %s", dir)
}

// publishInterrupted turns a publish that did not end with an answer into
// words: what happened to the budget and the release, and what to do. An
// answer of the API (a refusal, a bad parameter) is returned as it is.
func publishInterrupted(cmd *cobra.Command, dir, period string, budget privacy.Budget, reservation string, wait time.Duration, err error) error {
	var pe *api.PendingError
	if errors.As(err, &pe) {
		return &notFinished{pe.Pending.Message + "\n" + statusHint(dir)}
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "the connection to the node was lost before it answered the publish of %s; asking the node what became of reservation %s (waiting up to %s) …\n",
		period, reservation, wait)
	rep, ok := askPending(context.WithoutCancel(cmd.Context()), dir, reservation, wait)
	if !ok {
		return &notFinished{fmt.Sprintf(
			"The node did not answer within %s. It may have reserved %s for %s (reservation %s): if it did, it keeps the reservation in its store "+
				"and the release will be completed when the node starts again, with the same reservation, so nothing is spent twice. "+
				"Do not publish again. Start the node ('roundtable serve --data-dir %s'), then run 'roundtable publish --status --data-dir %s': "+
				"if it lists nothing for reservation %s, nothing was spent and you may publish again.",
			wait, budget, period, reservation, dir, dir, reservation)}
	}
	return explainReservation(cmd, dir, rep, reservation)
}

// askPending polls the node's operator socket until it answers
// GET /v1/releases/pending with reservation in it, or answers twice without
// it (a publish the node had not saved is never saved after the request
// died), or wait passes.
func askPending(ctx context.Context, dir, reservation string, wait time.Duration) (api.PendingReport, bool) {
	deadline := time.Now().Add(wait)
	misses := 0
	for {
		if cl, err := localClient(dir); err == nil {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			rep, err := cl.Pending(actx)
			cancel()
			if err == nil {
				if _, _, found := findReservation(rep, reservation); found {
					return rep, true
				}
				if misses++; misses == 2 {
					return rep, true
				}
			}
		}
		if time.Now().After(deadline) {
			return api.PendingReport{}, false
		}
		select {
		case <-ctx.Done():
			return api.PendingReport{}, false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func findReservation(rep api.PendingReport, id string) (*api.PendingRelease, *api.PublishEvent, bool) {
	for i := range rep.Pending {
		if rep.Pending[i].Reservation == id {
			return &rep.Pending[i], nil, true
		}
	}
	for i := range rep.Recent {
		if rep.Recent[i].Reservation == id {
			return nil, &rep.Recent[i], true
		}
	}
	return nil, nil, false
}

// explainReservation says what the node's report tells about reservation.
func explainReservation(cmd *cobra.Command, dir string, rep api.PendingReport, reservation string) error {
	p, ev, _ := findReservation(rep, reservation)
	switch {
	case p != nil:
		return &notFinished{p.Message + "\n" + statusHint(dir)}
	case ev != nil && (ev.Outcome == api.OutcomePublished || ev.Outcome == api.OutcomeCompleted):
		fmt.Fprintf(cmd.ErrOrStderr(), "the node finished the release (%s): %s\n", ev.How, ev.Message)
		fmt.Fprintf(cmd.OutOrStdout(), "published release %s\n  partner %s, period %s, spent %s on each quarter\n",
			ev.Release, rep.Partner, ev.Period, privacy.Budget(ev.SpentMicro))
		return nil
	case ev != nil:
		return errors.New(ev.Message)
	}
	return fmt.Errorf("the node has no record of reservation %s: it stopped before reserving anything, so nothing was spent; you may publish again", reservation)
}

// publishStatus prints the node's release in flight and latest publishes.
func publishStatus(cmd *cobra.Command, dir string) error {
	cl, err := localClient(dir)
	if err != nil {
		return fmt.Errorf("%w; a release left in flight is completed when the node starts, and --status shows it then", err)
	}
	rep, err := cl.Pending(cmd.Context())
	if err != nil {
		return err
	}
	writePendingReport(cmd.OutOrStdout(), rep)
	return nil
}

func writePendingReport(w io.Writer, rep api.PendingReport) {
	if len(rep.Pending) == 0 {
		fmt.Fprintf(w, "No release in flight on %s.\n", rep.Partner)
	} else {
		fmt.Fprintf(w, "Release in flight on %s:\n", rep.Partner)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  period\tstep\tspend\treservation\trelease\tstarted")
		for _, p := range rep.Pending {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Period, p.Step, privacy.Budget(p.SpentMicro), p.Reservation, dash(p.Release), p.Started)
		}
		tw.Flush()
		for _, p := range rep.Pending {
			fmt.Fprintf(w, "  %s\n", p.Message)
		}
	}
	if len(rep.Recent) == 0 {
		return
	}
	fmt.Fprintln(w, "\nLatest publishing, newest first:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  time\tperiod\toutcome\tspend\trelease\treservation")
	for _, ev := range rep.Recent {
		outcome := ev.Outcome
		if ev.How != api.HowAnswered {
			outcome += " " + ev.How
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", ev.Time, ev.Period, outcome, privacy.Budget(ev.SpentMicro), dash(ev.Release), ev.Reservation)
	}
	tw.Flush()
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
