package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// importFormats lists the formats the backend accepts.
func importFormats() []string { return []string{"csv", "ctdc", "jsonl"} }

// handleImport takes a multipart upload (field "file", optional field
// "format") or a raw body (?format=, ?filename=). ?source=NAME labels the
// records, and with &replace=true the upload is the whole of that source;
// &allow_foreign=true stores records identified in another country.
// A file the importer refuses (a bad header, invalid or foreign rows) is
// refused whole: 422 with the importer's message and the per-line report.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePartner(); err != nil {
		return err
	}
	q := r.URL.Query()
	if err := allowParams(q, "format", "filename", "source", "replace", "allow_foreign"); err != nil {
		return err
	}
	src, err := importSource(q.Get("source"), q.Get("replace"))
	if err != nil {
		return err
	}
	if src.AllowForeign, err = boolParam(q.Get("allow_foreign"), "allow_foreign"); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes)
	format, name := q.Get("format"), q.Get("filename")
	var body io.Reader = r.Body
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		f, fname, fform, err := multipartFile(r.Body, params["boundary"])
		if err != nil {
			return err
		}
		body, name = f, fname
		if fform != "" {
			format = fform
		}
	}
	if format == "" {
		format = "csv"
	}
	if !contains(importFormats(), format) {
		return errParam("format", "allowed: "+strings.Join(importFormats(), ", "))
	}
	if name == "" {
		name = "upload." + format
	}
	name = path.Base(strings.ReplaceAll(name, "\\", "/")) // never a path from the client
	rep, err := s.cfg.Backend.Import(r.Context(), body, name, format, src)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err // 413, however deep in the file the limit was reached
	case errors.Is(err, ErrInvalid):
		return &httpError{Status: http.StatusUnprocessableEntity, Msg: "invalid file", Detail: err.Error(), Extra: rep}
	case err != nil:
		return err
	}
	if !rep.Imported {
		return &httpError{Status: http.StatusUnprocessableEntity, Msg: "invalid file",
			Detail: fmt.Sprintf("%s: %d of %d rows are invalid; nothing was imported", name, rep.Invalid, rep.Rows), Extra: rep}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// importSource reads ?source= and ?replace=.
func importSource(name, replace string) (ImportSource, error) {
	src := ImportSource{Name: name}
	switch replace {
	case "", "false":
	case "true":
		src.Replace = true
	default:
		return src, errParam("replace", "allowed: true, false")
	}
	if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return src, errParam("source", "a name of at most 64 bytes without control characters")
	}
	if src.Replace && name == "" {
		return src, errParam("replace", "needs source=NAME: the source whose records the upload replaces")
	}
	return src, nil
}

// multipartFile finds the "file" part (and a "format" part before it).
// It streams: the upload is never held in memory whole.
func multipartFile(body io.Reader, boundary string) (io.Reader, string, string, error) {
	if boundary == "" {
		return nil, "", "", errParam("Content-Type", "multipart/form-data needs a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	format := ""
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, "", "", errParam("file", "the multipart form has no part named file")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, "", "", err
			}
			return nil, "", "", errParam("file", "cannot read the multipart form: "+err.Error())
		}
		switch p.FormName() {
		case "format":
			b, err := io.ReadAll(io.LimitReader(p, 32))
			if err != nil {
				return nil, "", "", err
			}
			format = strings.TrimSpace(string(b))
		case "file":
			return p, p.FileName(), format, nil
		}
	}
}

// PlanRequest is POST /v1/plan: the accuracy a budget buys (Epsilon), or
// the budget an accuracy needs (TargetCI), never both.
type PlanRequest struct {
	Period     string   `json:"period"`
	Indicators []string `json:"indicators"`
	// Epsilon is the release's budget: ε, or ρ under zCDP, read exactly
	// from its decimal text (a JSON number or string, at most six
	// decimals), never through a float.
	Epsilon  privacy.Budget `json:"epsilon,omitempty"`
	TargetCI int64          `json:"target_ci,omitempty"` // the 95% half-width wanted for one cell, people
}

// PlanAnswer is POST /v1/plan's answer. On a partner node, Left is what
// remains of the cap on the period's most-spent quarter; Warnings name
// every budget (given, or proposed for a target) the ledger would refuse.
// Cadences compares, at the same budget, one yearly release with four
// quarterly ones.
type PlanAnswer struct {
	Period     string               `json:"period"`
	Accounting string               `json:"accounting"`
	Epsilon    privacy.Budget       `json:"epsilon,omitempty"`
	TargetCI   int64                `json:"target_ci,omitempty"`
	Rows       []privacy.PlanRow    `json:"rows"`
	Cadences   []privacy.CadenceRow `json:"cadences,omitempty"`
	Cap        privacy.Budget       `json:"cap"`
	Left       *privacy.Budget      `json:"left,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
}

// PublishRequest is POST /v1/releases. Epsilon is required (as in
// PlanRequest). With DryRun the node checks everything a release is
// checked for and answers what it would spend (200, a privacy.Charge),
// reserving nothing.
type PublishRequest struct {
	Period     string         `json:"period"`
	Indicators []string       `json:"indicators"`
	Epsilon    privacy.Budget `json:"epsilon"`
	DryRun     bool           `json:"dry_run,omitempty"`
	// Reservation optionally chooses the reservation id (32 lowercase hex
	// digits, random), so a client whose connection drops can find its
	// release in GET /v1/releases/pending; the node draws one if empty.
	Reservation string `json:"reservation,omitempty"`
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	var req PlanRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.TargetCI < 0:
		return errParam("target_ci", "must be a positive number of people")
	case req.TargetCI > 0 && req.Epsilon != 0:
		return errParam("epsilon", "give epsilon or target_ci, not both")
	case req.TargetCI == 0 && req.Epsilon == 0:
		return errParam("epsilon", "required (or target_ci): the budget to plan for, e.g. 0.5")
	case req.TargetCI == 0:
		if err := req.Epsilon.Check(); err != nil {
			return errParam("epsilon", err.Error())
		}
	}
	p, err := s.checkReleaseRequest(r, req.Period, req.Indicators)
	if err != nil {
		return err
	}
	ans, err := s.cfg.Backend.Plan(r.Context(), p, req.Indicators, req.Epsilon, req.TargetCI)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) error {
	if err := s.requirePartner(); err != nil {
		return err
	}
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	var req PublishRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Epsilon == 0 {
		return errParam("epsilon", "required and positive: the budget to spend on each quarter of the period (ε, or ρ under zCDP), e.g. 0.5; see POST /v1/plan for what it buys")
	}
	if err := req.Epsilon.Check(); err != nil {
		return errParam("epsilon", err.Error())
	}
	if req.Reservation != "" && !reservationID.MatchString(req.Reservation) {
		return errParam("reservation", "32 lowercase hex digits (16 random bytes), or leave it out")
	}
	p, err := s.checkReleaseRequest(r, req.Period, req.Indicators)
	if err != nil {
		return err
	}
	if req.DryRun {
		c, err := s.cfg.Backend.CheckPublish(r.Context(), p, req.Indicators, req.Epsilon)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	}
	res, err := s.cfg.Backend.Publish(r.Context(), p, req.Indicators, req.Epsilon, req.Reservation)
	var pe *PendingError
	if errors.As(err, &pe) {
		// Accepted and not finished: the node finishes it by itself.
		writeJSON(w, http.StatusAccepted, pe.Pending)
		return nil
	}
	if err != nil {
		return err
	}
	s.metrics.published.Inc()
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// checkReleaseRequest validates what the API can check itself, naming the
// field and what would be accepted; the backend checks the budget against
// the ledger before anything is reserved.
func (s *Server) checkReleaseRequest(r *http.Request, period string, indicators []string) (aggregate.Period, error) {
	p, err := aggregate.ParsePeriod(period)
	if err != nil {
		return p, errParam("period", "want a quarter like 2024-Q1 or a year like 2024")
	}
	cat, _, err := s.cfg.Backend.Catalog(r.Context())
	if err != nil {
		return p, err
	}
	if _, err := cat.Select(indicators); err != nil {
		return p, errParam("indicators", err.Error())
	}
	return p, nil
}

// requirePartner refuses partner-only writes on a replica before reading
// the body.
func (s *Server) requirePartner() error {
	if s.cfg.Backend.Partner() == "" {
		return fmt.Errorf("%w: imports and releases need a partner node", ErrNotPartner)
	}
	return nil
}

// handleGovernance serves the governance history.
func (s *Server) handleGovernance(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	h, err := s.cfg.Backend.Governance(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// handleGovern takes a statement signed by the coordinators. No token can
// stand in for the signatures, and none is needed: the node checks them
// (and the sequence number and consortium) before anything reaches the
// ledger, and every node's state machine checks them again.
func (s *Server) handleGovern(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBytes*16))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &httpError{Status: http.StatusBadRequest, Msg: "bad request body", Detail: err.Error()}
	}
	st, err := governance.ParseSigned(raw)
	if err != nil {
		return &httpError{Status: http.StatusBadRequest, Msg: "bad request body",
			Detail: "want a signed governance statement ('roundtable governance sign' writes one): " + err.Error()}
	}
	res, err := s.cfg.Backend.Govern(r.Context(), st)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Existing {
		status = http.StatusOK
	}
	writeJSON(w, status, res)
	return nil
}

// decodeJSON reads a bounded JSON body, refusing unknown fields and
// trailing data.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		var be *privacy.BudgetError // a request's one budget is its epsilon
		if errors.As(err, &be) {
			return errParam("epsilon", be.Error())
		}
		return &httpError{Status: http.StatusBadRequest, Msg: "bad request body", Detail: "want a JSON object: " + err.Error()}
	}
	if dec.More() {
		return &httpError{Status: http.StatusBadRequest, Msg: "bad request body", Detail: "trailing data after the JSON object"}
	}
	return nil
}

func indicatorNames(cat *aggregate.Catalog) []string {
	out := make([]string, len(cat.Indicators))
	for i, ind := range cat.Indicators {
		out[i] = ind.Name
	}
	return out
}
