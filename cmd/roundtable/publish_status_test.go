package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"roundtable/aggregate"
	"roundtable/node"
	"roundtable/node/api"
	"roundtable/privacy"
)

// droppingNode serves a data dir's operator socket like a node that checks
// a publish, then drops the connection of the real publish request without
// an answer (as a node killed mid-publish does). Afterwards it answers
// GET /v1/releases/pending with report(reservation) — or, when gone, closes
// the socket for good, as a node that does not come back.
func droppingNode(t *testing.T, gone bool, report func(reservation string) api.PendingReport) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, node.AdminSock))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reservation := ""
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/releases":
			var req api.PublishRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if req.DryRun {
				_ = json.NewEncoder(w).Encode(privacy.Charge{Partner: "RS", Period: aggregate.Period{Year: 2024, Quarter: 1}, Summary: "RS 2024-Q1: 0.5 on each quarter", Indicators: []string{"victims"}})
				return
			}
			mu.Lock()
			reservation = req.Reservation
			mu.Unlock()
			c, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
			if gone {
				ln.Close() // also removes the socket file
			}
		case r.Method == http.MethodGet && r.URL.Path == "/v1/releases/pending":
			mu.Lock()
			rep := report(reservation)
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(rep)
		default:
			http.NotFound(w, r)
		}
	})
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return dir
}

// A publish whose connection to the node drops is never reported as a raw
// transport error: the command asks the node what became of its
// reservation and says, in words, what happened and what to do.
func TestPublishLostConnectionSaysWhatHappened(t *testing.T) {
	pending := func(step string) func(string) api.PendingReport {
		return func(res string) api.PendingReport {
			p := api.PendingRelease{Reservation: res, Partner: "RS", Period: "2024-Q1", SpentMicro: 500_000, Step: step, Release: "feed"}
			p.Message = p.Describe(true)
			return api.PendingReport{Partner: "RS", Pending: []api.PendingRelease{p}}
		}
	}
	cases := []struct {
		name     string
		gone     bool
		report   func(string) api.PendingReport
		wantErr  bool
		want     []string // in stdout+stderr
		wantCode int
	}{
		{name: "node answers: reserved", report: pending(api.StepReserved), wantErr: true, wantCode: 3,
			want: []string{"0.5 reserved for 2024-Q1", "the node is completing the release now", "Do not publish again", "roundtable publish --status --data-dir"}},
		{name: "node answers: signed", report: pending(api.StepSigned), wantErr: true, wantCode: 3,
			want: []string{"0.5 reserved for 2024-Q1 and release feed signed", "Do not publish again"}},
		{name: "node answers: finished after the drop", report: func(res string) api.PendingReport {
			return api.PendingReport{Partner: "RS", Recent: []api.PublishEvent{{Reservation: res, Release: "beef", Period: "2024-Q1", SpentMicro: 500_000,
				Outcome: api.OutcomeCompleted, How: api.HowCallerLeft, Message: "completed release beef"}}}
		}, want: []string{"published release beef", "the node finished the release"}},
		{name: "node answers: never reserved", report: func(string) api.PendingReport { return api.PendingReport{Partner: "RS"} },
			wantErr: true, want: []string{"no record of reservation", "nothing was spent; you may publish again"}},
		{name: "node does not come back", gone: true, wantErr: true, wantCode: 3,
			want: []string{"did not answer within 1s", "0.5 for 2024-Q1", "release will be completed when the node starts again", "Do not publish again", "roundtable publish --status --data-dir"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			report := c.report
			if report == nil {
				report = func(string) api.PendingReport { return api.PendingReport{} }
			}
			dir := droppingNode(t, c.gone, report)
			stdout, stderr, err := runCLI(t, "publish", "--data-dir", dir, "--period", "2024-Q1", "--epsilon", "0.5", "--reconnect-wait", "1s")
			all := stdout + stderr
			if err != nil {
				all += err.Error()
			}
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v\n%s", err, c.wantErr, all)
			}
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not say %q:\n%s", w, all)
				}
			}
			if err != nil && strings.Contains(err.Error(), "EOF") {
				t.Errorf("the error is a raw transport error: %v", err)
			}
			var ec exitCoder
			code := 0
			if errors.As(err, &ec) {
				code = ec.ExitCode()
			} else if err != nil {
				code = 1
			}
			if c.wantErr && code != max(c.wantCode, 1) {
				t.Errorf("exit status %d, want %d", code, max(c.wantCode, 1))
			}
		})
	}
}

// publish --status prints the node's release in flight with its message
// and the latest finished publishes.
func TestPublishStatus(t *testing.T) {
	p := api.PendingRelease{Reservation: "ab12", Partner: "RS", Period: "2024-Q2", SpentMicro: 200_000, Step: api.StepSigned, Release: "cafe"}
	p.Message = p.Describe(true)
	dir := droppingNode(t, false, func(string) api.PendingReport {
		return api.PendingReport{Partner: "RS", Pending: []api.PendingRelease{p}, Recent: []api.PublishEvent{
			{Time: "2024-05-01T10:00:00Z", Reservation: "cd34", Release: "d00d", Period: "2024-Q1", SpentMicro: 500_000, Outcome: api.OutcomeCompleted, How: api.HowRestart}}}
	})
	stdout, _, err := runCLI(t, "publish", "--data-dir", dir, "--status")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Release in flight on RS", "2024-Q2", "signed", "0.2", "ab12", "cafe",
		"0.2 reserved for 2024-Q2 and release cafe signed", "Latest publishing", "completed after a restart", "d00d", "cd34"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("--status does not show %q:\n%s", w, stdout)
		}
	}
}
