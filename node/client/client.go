// Package client is a small Go client of a node's HTTP API, for the CLI
// (publish, plan, query, signed governance) and the demo's self-check.
// It speaks the same JSON as node/api and turns its error model back into
// Go errors that carry the server's message.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/privacy"
)

// Client talks to one node.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the node at base (http://host:port) that sends
// token (may be empty) as a bearer token.
func New(base, token string) *Client {
	return NewWith(base, token, &http.Client{Timeout: Timeout})
}

// Timeout bounds one request of a Client made by New.
const Timeout = 5 * time.Minute

// NewWith is New over hc, for a node whose HTTPS certificate needs more
// than the system's roots (see HTTPClient).
func NewWith(base, token string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}
}

// HTTPClient returns an HTTP client for a node's API with the given
// timeout. caFile, if set, is a PEM file of CA certificates trusted for
// https:// besides the system's roots: the regional CA's ca.crt for a
// node that serves its certificate from that CA (serve --tls-from-ca).
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	hc := &http.Client{Timeout: timeout}
	if caFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool() // no system pool (some platforms): the file alone
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in the file (want the CA's certificate, e.g. DATA-DIR/tls/ca.crt, not a key)", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	hc.Transport = tr
	return hc, nil
}

// UntrustedCertificate reports whether err is a node's HTTPS certificate
// signed by no CA this client trusts, and if so says what to do.
func UntrustedCertificate(err error) (string, bool) {
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		return "", false
	}
	return "the node's HTTPS certificate is not signed by a CA this machine trusts. If the node serves its certificate from the regional CA (serve --tls-from-ca), give --ca-cert with the regional CA's certificate (ca.crt, in any node's DATA-DIR/tls); otherwise ask the node's operator which CA signed it", true
}

// NewLocal returns a client that reaches a node through its operator
// socket (the node's data dir holds it), acting as the node's operator.
func NewLocal(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}
	return &Client{base: "http://local", http: &http.Client{Transport: tr, Timeout: Timeout}}
}

// Error is an error answer of the API.
type Error struct {
	Status int
	Body   api.ErrorBody
}

func (e *Error) Error() string {
	if e.Body.Detail != "" {
		return fmt.Sprintf("%s: %s (HTTP %d)", e.Body.Error, e.Body.Detail, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Body.Error, e.Status)
}

// Do sends a request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	return c.do(ctx, method, path, body, ctype, out, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any, status *int) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Error = strings.TrimSpace(string(b))
		}
		return e
	}
	if status != nil {
		*status = resp.StatusCode
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// postJSONStatus is postJSON that also returns the success status.
func (c *Client) postJSONStatus(ctx context.Context, path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	status := 0
	err = c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out, &status)
	return status, err
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

// Publish asks the node to release indicators for period at budget (ε, or
// ρ under zCDP). Empty indicators means the whole catalog.
func (c *Client) Publish(ctx context.Context, period string, indicators []string, budget privacy.Budget) (api.PublishResult, error) {
	return c.PublishReservation(ctx, period, indicators, budget, "")
}

// PublishReservation is Publish with the reservation id chosen here (32
// hex digits; "" lets the node choose), so that after a lost answer
// Pending can say what became of it. If the node accepted the release but
// had not finished it when it answered (202), the error is a
// *api.PendingError saying where it stands; the node finishes it by itself.
func (c *Client) PublishReservation(ctx context.Context, period string, indicators []string, budget privacy.Budget, reservation string) (api.PublishResult, error) {
	var answer json.RawMessage
	req := api.PublishRequest{Period: period, Indicators: indicators, Epsilon: budget, Reservation: reservation}
	status, err := c.postJSONStatus(ctx, "/v1/releases", req, &answer)
	if err != nil {
		return api.PublishResult{}, err
	}
	if status == http.StatusAccepted {
		var p api.PendingRelease
		if err := json.Unmarshal(answer, &p); err != nil {
			return api.PublishResult{}, fmt.Errorf("POST /v1/releases: decode answer: %w", err)
		}
		return api.PublishResult{}, &api.PendingError{Pending: p}
	}
	var res api.PublishResult
	if err := json.Unmarshal(answer, &res); err != nil {
		return api.PublishResult{}, fmt.Errorf("POST /v1/releases: decode answer: %w", err)
	}
	return res, nil
}

// Pending fetches GET /v1/releases/pending: the release in flight on the
// node, if any, and the latest finished ones.
func (c *Client) Pending(ctx context.Context) (api.PendingReport, error) {
	var rep api.PendingReport
	err := c.Do(ctx, http.MethodGet, "/v1/releases/pending", nil, "", &rep)
	return rep, err
}

// CheckPublish asks the node to check a release as it would before
// reserving budget, and what it would spend; nothing is reserved.
func (c *Client) CheckPublish(ctx context.Context, period string, indicators []string, budget privacy.Budget) (privacy.Charge, error) {
	var ch privacy.Charge
	err := c.postJSON(ctx, "/v1/releases", api.PublishRequest{Period: period, Indicators: indicators, Epsilon: budget, DryRun: true}, &ch)
	return ch, err
}

// Plan asks the node for the expected accuracy of a release at budget,
// or (budget 0) for the budget a 95% half-width of target people needs.
func (c *Client) Plan(ctx context.Context, period string, indicators []string, budget privacy.Budget, target int64) (api.PlanAnswer, error) {
	var res api.PlanAnswer
	err := c.postJSON(ctx, "/v1/plan", api.PlanRequest{Period: period, Indicators: indicators, Epsilon: budget, TargetCI: target}, &res)
	return res, err
}

// Import uploads a file of case records (format csv, ctdc or jsonl).
func (c *Client) Import(ctx context.Context, name, format string, r io.Reader) (api.ImportReport, error) {
	var rep api.ImportReport
	q := url.Values{"filename": {name}, "format": {format}}
	err := c.Do(ctx, http.MethodPost, "/v1/cases/import?"+q.Encode(), r, "text/csv", &rep)
	return rep, err
}

// Series fetches GET /v1/series with the given query.
func (c *Client) Series(ctx context.Context, q url.Values) (api.SeriesResponse, error) {
	var res api.SeriesResponse
	err := c.Do(ctx, http.MethodGet, "/v1/series?"+q.Encode(), nil, "", &res)
	return res, err
}

// Health fetches GET /v1/health.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	err := c.Do(ctx, http.MethodGet, "/v1/health", nil, "", &h)
	return h, err
}

// Governance fetches GET /v1/governance: the governance history and the
// number the next statement must carry.
func (c *Client) Governance(ctx context.Context) (api.GovernanceHistory, error) {
	var h api.GovernanceHistory
	err := c.Do(ctx, http.MethodGet, "/v1/governance", nil, "", &h)
	return h, err
}

// Prepare returns an unsigned statement of action for the node's ledger:
// its consortium id and next sequence number come from GET /v1/governance.
func (c *Client) Prepare(ctx context.Context, a governance.Action) (governance.Signed, error) {
	if err := a.Check(); err != nil {
		return governance.Signed{}, err
	}
	h, err := c.Governance(ctx)
	if err != nil {
		return governance.Signed{}, fmt.Errorf("read the governance history: %w", err)
	}
	return governance.Signed{Statement: governance.Statement{Consortium: h.Consortium, Seq: h.Next, Action: a}}, nil
}

// Govern submits a signed statement (POST /v1/governance).
func (c *Client) Govern(ctx context.Context, s governance.Signed) (api.GovernResult, error) {
	var res api.GovernResult
	b, err := s.Encode()
	if err != nil {
		return res, err
	}
	err = c.Do(ctx, http.MethodPost, "/v1/governance", bytes.NewReader(b), "application/json", &res)
	return res, err
}

// Get reads path (e.g. "/v1/series?indicator=victims") and returns the
// body of a 200 answer; other answers are an *Error. It is the
// brief.Getter of 'roundtable brief'.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.Do(ctx, http.MethodGet, path, nil, "", &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Backup streams a backup of the node to w (GET /local/backup on the
// operator socket; see node.Backup) and returns how many bytes it wrote.
// Only the context bounds it: a large store takes as long as it takes.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/local/backup", nil)
	if err != nil {
		return 0, err
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Error = strings.TrimSpace(string(b))
		}
		return 0, e
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup: the node stopped sending after %d bytes: %w", n, err)
	}
	return n, nil
}
