package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"roundtable/privacy"
)

// httpError is an error with the status and the public message to send.
type httpError struct {
	Status int
	Msg    string
	Detail string
	Extra  any // optional payload beside error/detail (e.g. an import report)
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Msg, e.Detail) }

func errUnauthorized(detail string) error {
	return &httpError{Status: http.StatusUnauthorized, Msg: "unauthorized", Detail: detail}
}

// errParam names the parameter and what would have been accepted.
func errParam(param, detail string) error {
	return &httpError{Status: http.StatusBadRequest, Msg: "bad parameter " + param, Detail: detail}
}

// statusClientClosed is the status recorded (in metrics and the log) for a
// request its client abandoned; as in nginx, no client ever sees it.
const statusClientClosed = 499

// ErrorBody is the JSON error model of every endpoint.
type ErrorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
	Report any    `json:"report,omitempty"`
}

func errorBody(msg, detail string) []byte {
	b, _ := json.Marshal(ErrorBody{Error: msg, Detail: detail})
	return append(b, '\n')
}

// writeError maps err to a status: an *httpError as it says, a backend
// sentinel by kind, anything else 500 with its text logged but not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	var ref *privacy.Refusal
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = &httpError{Status: http.StatusRequestEntityTooLarge, Msg: "request body too large",
			Detail: fmt.Sprintf("the limit is %d bytes", mbe.Limit)}
	case errors.As(err, &ref):
		s.metrics.refusal(ref.Reason)
		he = &httpError{Status: http.StatusConflict, Msg: "release refused", Detail: ref.Reason}
	case errors.Is(err, ErrNotFound):
		he = &httpError{Status: http.StatusNotFound, Msg: "not found", Detail: err.Error()}
	case errors.Is(err, ErrNotInCluster):
		he = &httpError{Status: http.StatusServiceUnavailable, Msg: "not in cluster", Detail: err.Error()}
	case errors.Is(err, ErrNotPartner), errors.Is(err, ErrConflict):
		he = &httpError{Status: http.StatusConflict, Msg: "conflict", Detail: err.Error()}
	case errors.Is(err, ErrInvalid):
		he = &httpError{Status: http.StatusUnprocessableEntity, Msg: "invalid", Detail: err.Error()}
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The client went away (or its deadline passed): nobody reads the
		// answer, and nothing is wrong with the node.
		s.log.Debug("request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{Status: statusClientClosed, Msg: "request cancelled", Detail: err.Error()}
	default:
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{Status: http.StatusInternalServerError, Msg: "internal error", Detail: "see the node's log"}
	}
	if he.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, he.Status, ErrorBody{Error: he.Msg, Detail: he.Detail, Report: he.Extra})
}

// writeJSON sends v with status; an encoding failure can only be logged,
// since the header is gone.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Debug("write json", "err", err)
	}
}
