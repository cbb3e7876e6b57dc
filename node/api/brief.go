package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"roundtable/node/brief"
	"roundtable/node/web"
)

// handleBrief is GET /v1/brief?year=2024&lang=sq: the regional brief as
// one self-contained HTML file, built by node/brief from this node's own
// public read routes (called in-process with the caller's credentials),
// so it holds exactly what 'roundtable brief --server' would fetch.
func (s *Server) handleBrief(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowParams(q, "year", "lang"); err != nil {
		return err
	}
	year, err := strconv.Atoi(q.Get("year"))
	if err != nil || year < 1900 || year > 9999 {
		return errParam("year", "want a year like 2024")
	}
	lang := q.Get("lang")
	if lang == "" {
		lang = web.SourceLanguage
	}
	if _, err := web.Messages(lang); err != nil {
		return errParam("lang", err.Error())
	}
	d, err := brief.Fetch(r.Context(), s.readInProcess(r), year)
	if errors.Is(err, brief.ErrNoData) {
		return &httpError{Status: http.StatusNotFound, Msg: "not found", Detail: err.Error()}
	}
	if err != nil {
		return err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	page, err := brief.Render(d, brief.Options{Lang: lang, Date: time.Now(), Server: scheme + "://" + r.Host})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="roundtable-brief-%d-%s.html"`, year, lang))
	// The brief is self-contained; say so to a browser that opens it here.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(page)
	return nil
}

// readInProcess returns a brief.Getter that sends GET requests through
// this server's own routes with r's credentials, so the brief reads the
// public API exactly as an outside client would, authorisation included.
func (s *Server) readInProcess(r *http.Request) brief.Getter {
	return func(ctx context.Context, path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		if a := r.Header.Get("Authorization"); a != "" {
			req.Header.Set("Authorization", a)
		}
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		s.ServeHTTP(rec, req)
		if rec.code != http.StatusOK {
			var body ErrorBody
			_ = json.Unmarshal(rec.body.Bytes(), &body)
			return nil, &httpError{Status: rec.code, Msg: body.Error, Detail: path + ": " + body.Detail}
		}
		return rec.body.Bytes(), nil
	}
}

// recorder is the ResponseWriter of an in-process read.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header         { return w.header }
func (w *recorder) WriteHeader(code int)        { w.code = code }
func (w *recorder) Write(b []byte) (int, error) { return w.body.Write(b) }
