package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"roundtable/node/api"
)

// walkProbe is one malformed request. want 0 means any 4xx; -1 means any
// status below 500 (for requests that are odd but not wrong, such as a
// query string that does not parse, which net/http drops).
type walkProbe struct {
	name   string
	method string // "" = the route's
	path   string // "" = the route's example path; may carry a query
	auth   string // raw Authorization header; "op" / "re" = the operator's / researcher's token
	ctype  string
	body   []byte
	want   int
	// detail, if set, must appear in the JSON error's detail.
	detail string
}

// walkCases are the route-specific probes, keyed by "METHOD PATTERN". A
// route missing here fails the test: a new route needs its own bad inputs.
func walkCases() map[string][]walkProbe {
	hex64 := strings.Repeat("0", 64)
	csv := func(name, body string, want int, detail string) walkProbe {
		return walkProbe{name: name, path: "/v1/cases/import?filename=cases.csv", auth: "op", ctype: "text/csv",
			body: []byte(body), want: want, detail: detail}
	}
	jsonBodies := func(path string) []walkProbe {
		return []walkProbe{
			{name: "empty body", path: path, auth: "op", want: 400},
			{name: "not JSON", path: path, auth: "op", body: []byte("period=2024-Q1"), want: 400},
			{name: "truncated JSON", path: path, auth: "op", body: []byte(`{"period":"2024-Q1"`), want: 400},
			{name: "JSON array", path: path, auth: "op", body: []byte(`[]`), want: 400},
			{name: "JSON null", path: path, auth: "op", body: []byte(`null`), want: 400},
			{name: "unknown field", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0.1,"budget":1}`), want: 400, detail: "budget"},
			{name: "wrong type period", path: path, auth: "op", body: []byte(`{"period":2024,"epsilon":0.1}`), want: 400},
			{name: "wrong type epsilon", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":true}`), want: 400},
			{name: "epsilon text not a number", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":"0.1x"}`), want: 400},
			{name: "epsilon seven decimals", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":"0.1234567"}`), want: 400},
			{name: "wrong type indicators", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0.1,"indicators":"victims"}`), want: 400},
			{name: "epsilon overflows", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":1e999}`), want: 400},
			{name: "epsilon zero", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0}`), want: 400, detail: "e.g. 0.5"},
			{name: "epsilon negative", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":-1}`), want: 400},
			{name: "bad period", path: path, auth: "op", body: []byte(`{"period":"2024-Q5","epsilon":0.1}`), want: 400, detail: "2024-Q1"},
			{name: "period far away", path: path, auth: "op", body: []byte(`{"period":"99999-Q1","epsilon":0.1}`), want: 400},
			{name: "unknown indicator", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0.1,"indicators":["nope"]}`), want: 400, detail: "victims"},
			{name: "indicator twice", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0.1,"indicators":["victims","victims"]}`), want: 400, detail: "twice"},
			{name: "trailing data", path: path, auth: "op", body: []byte(`{"period":"2024-Q1","epsilon":0.1} {}`), want: 400},
			{name: "huge body", path: path, auth: "op", body: bytes.Repeat([]byte(" "), 1<<20), want: 413},
		}
	}
	return map[string][]walkProbe{
		"GET /{$}":         {{name: "not a page", path: "/nope.html", want: 404}},
		"GET /static/":     {{name: "missing file", path: "/static/nope.js", want: 404}, {name: "dot-dot", path: "/static/..%2f..%2fgo.mod", want: -1}},
		"GET /favicon.ico": nil,
		"GET /metrics":     nil,
		"GET /v1/health":   nil,
		"GET /v1/catalog":  nil,
		"GET /v1/releases": {
			{name: "bad bool", path: "/v1/releases?consistent=maybe", want: 400, detail: "true or false"},
			{name: "param twice", path: "/v1/releases?partner=BA&partner=AL", want: 400, detail: "more than once"},
			{name: "negative cursor", path: "/v1/releases?after=-1", want: 400, detail: "leaf index"},
			{name: "cursor not a number", path: "/v1/releases?after=abc", want: 400, detail: "leaf index"},
			{name: "cursor overflow", path: "/v1/releases?after=99999999999999999999", want: 400, detail: "leaf index"},
			{name: "zero limit", path: "/v1/releases?limit=0", want: 400, detail: "page size"},
			{name: "limit over max", path: "/v1/releases?limit=100000", want: 400, detail: "page size"},
		},
		"GET /v1/releases/pending": {
			{name: "researcher token", path: "/v1/releases/pending", auth: "re", want: 403},
			{name: "unknown parameter", path: "/v1/releases/pending?period=2024", auth: "op", want: 400},
		},
		"GET /v1/releases/{id}": {
			{name: "not hex", path: "/v1/releases/xyz", want: 400, detail: "64 lowercase hex"},
			{name: "upper-case hex", path: "/v1/releases/" + strings.Repeat("AB", 32), want: 400},
			{name: "long id", path: "/v1/releases/" + strings.Repeat("a", 10000), want: 400},
			{name: "unknown id", path: "/v1/releases/" + hex64, want: 404},
			{name: "escaped slash", path: "/v1/releases/a%2fb", want: 400},
			{name: "NUL", path: "/v1/releases/%00", want: 400},
		},
		"GET /v1/series": {
			{name: "unknown indicator", path: "/v1/series?indicator=nope", want: 400},
			{name: "bad period", path: "/v1/series?from=2024Q1", want: 400},
			{name: "year overflow", path: "/v1/series?from=99999999999999999999-Q1", want: 400},
			{name: "unknown partner", path: "/v1/series?partner=XX", want: 400},
			{name: "bad rollup", path: "/v1/series?rollup=decade", want: 400},
		},
		"GET /v1/export.csv": nil,
		"GET /v1/checkpoint": nil,
		"GET /v1/consistency": {
			{name: "no sizes", path: "/v1/consistency", want: 400, detail: "tree size"},
			{name: "zero", path: "/v1/consistency?from=0&to=1", want: 400},
			{name: "not a number", path: "/v1/consistency?from=a&to=b", want: 400},
			{name: "overflow", path: "/v1/consistency?from=1&to=99999999999999999999", want: 400},
			{name: "from after to", path: "/v1/consistency?from=5&to=3", want: 400},
			{name: "beyond the tree", path: "/v1/consistency?from=1&to=1000000", want: 422},
		},
		"GET /v1/budget": {
			{name: "unknown partner", path: "/v1/budget?partner=XX", want: 400, detail: "registered"},
			{name: "empty partner in list", path: "/v1/budget?partner=BA,", want: 400},
		},
		"GET /v1/cluster": nil,
		"GET /v1/whoami":  nil,
		"GET /v1/brief": {
			{name: "no year", path: "/v1/brief", want: 400, detail: "year"},
			{name: "year not a number", path: "/v1/brief?year=twenty", want: 400, detail: "year like 2024"},
			{name: "unknown language", path: "/v1/brief?year=2024&lang=de", want: 400, detail: "sr-Cyrl"},
			{name: "year with nothing published", path: "/v1/brief?year=1999", want: 404, detail: "no published victims for 1999"},
		},
		"GET /v1/governance": nil,
		"POST /v1/cases/import": {
			csv("empty body", "", 422, "cases.csv: the file is empty"),
			csv("missing required column", "case_id,sex\nA-1,Female\n", 422, `cases.csv:1: missing required column "registered_on"`),
			csv("unknown column", "case_id,registered_on,colour\nA-1,2024-01-01,red\n", 422, `cases.csv:1: unknown column "colour"`),
			csv("invalid row", "case_id,registered_on,sex\nA-1,2024-01-01,Mle\n", 422, "1 of 1 rows were invalid"),
			csv("ragged row", "case_id,registered_on\nA-1,2024-01-01,extra\n", 422, "fields"),
			csv("bare quote", "case_id,registered_on\n\"A-1,2024-01-01\n", 422, "malformed CSV"),
			csv("not UTF-8", "case_id,registered_on\n\xff\xfe,2024-01-01\n", 422, "UTF-8"),
			csv("foreign records", "case_id,registered_on,citizenship,country_of_exploitation\nF-1,2024-01-01,AL,AL\nF-2,2024-01-01,BA,BA\n", 422,
				"1 of 2 records were identified in AL, not in this store's partner BA"),
			{name: "JSON lines that are not", path: "/v1/cases/import?format=jsonl", auth: "op", body: []byte("{\n[1,2]\nnull\n"), want: 422},
			{name: "JSON line too long", path: "/v1/cases/import?format=jsonl", auth: "op", body: bytes.Repeat([]byte("x"), 1<<20+10), want: 413},
			{name: "CSV sent as CTDC", path: "/v1/cases/import?format=ctdc", auth: "op", body: []byte("case_id,registered_on\nA,2024-01-01\n"), want: 422, detail: "CTDC"},
			{name: "unknown format", path: "/v1/cases/import?format=xlsx", auth: "op", body: []byte("x"), want: 400, detail: "csv, ctdc, jsonl"},
			{name: "bad replace", path: "/v1/cases/import?source=a&replace=maybe", auth: "op", body: []byte("x"), want: 400},
			{name: "replace without source", path: "/v1/cases/import?replace=true", auth: "op", body: []byte("x"), want: 400, detail: "source"},
			{name: "source with control character", path: "/v1/cases/import?source=a%0Ab", auth: "op", body: []byte("x"), want: 400},
			{name: "long source", path: "/v1/cases/import?source=" + strings.Repeat("s", 65), auth: "op", body: []byte("x"), want: 400},
			{name: "bad allow_foreign", path: "/v1/cases/import?allow_foreign=yes", auth: "op", body: []byte("x"), want: 400},
			{name: "huge body", path: "/v1/cases/import", auth: "op", body: append([]byte("case_id,registered_on\n"), bytes.Repeat([]byte("A,2024-01-01\n"), 1<<17)...), want: 413},
			{name: "huge field", path: "/v1/cases/import", auth: "op", body: append([]byte("case_id,registered_on\n\""), bytes.Repeat([]byte("x"), 2<<20)...), want: 422, detail: "longer than 64 KiB"},
			{name: "multipart without boundary", path: "/v1/cases/import", auth: "op", ctype: "multipart/form-data", body: []byte("x"), want: 400, detail: "boundary"},
			{name: "multipart without file", path: "/v1/cases/import", auth: "op", ctype: multipartType, body: multipartBody(false, ""), want: 400, detail: "no part named file"},
			{name: "multipart cut short", path: "/v1/cases/import", auth: "op", ctype: multipartType, body: multipartBody(true, "case_id,registered_on\nA-1,2024-01-01\n"), want: 0},
			{name: "multipart garbage", path: "/v1/cases/import", auth: "op", ctype: multipartType, body: []byte("--walk\r\nno headers end"), want: 0},
		},
		"POST /v1/plan":     jsonBodies("/v1/plan"),
		"POST /v1/releases": jsonBodies("/v1/releases"),
		"POST /v1/governance": {
			{name: "empty body", path: "/v1/governance", want: 400},
			{name: "not JSON", path: "/v1/governance", body: []byte("sign me"), want: 400},
			{name: "unsigned statement", path: "/v1/governance", body: []byte(`{"statement":{"consortium":"x","seq":1,"action":{"type":"set_policy"}},"signatures":[]}`), want: 0},
			{name: "wrong types", path: "/v1/governance", body: []byte(`{"statement":{"seq":"one"}}`), want: 400},
			{name: "huge body", path: "/v1/governance", body: bytes.Repeat([]byte(" "), 2<<20), want: 413},
		},
	}
}

const multipartType = "multipart/form-data; boundary=walk"

// multipartBody is a form with a "format" part and, if file is set, a
// "file" part holding content that is cut off before its closing boundary.
func multipartBody(file bool, content string) []byte {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	_ = w.SetBoundary("walk")
	_ = w.WriteField("format", "csv")
	if !file {
		_ = w.Close()
		return b.Bytes()
	}
	f, _ := w.CreateFormFile("file", "cases.csv")
	_, _ = f.Write([]byte(content))
	return b.Bytes() // no closing boundary: the upload ends mid-part
}

// examplePath fills a route pattern's wildcards with well-formed values.
func examplePath(pattern string) string {
	switch {
	case pattern == "/{$}":
		return "/"
	case strings.HasSuffix(pattern, "/"):
		return pattern + "app.js"
	}
	return strings.ReplaceAll(pattern, "{id}", strings.Repeat("0", 64))
}

// genericProbes are the bad inputs every route gets: wrong methods, bad
// or missing tokens, unknown or oversized query strings, oversized headers.
func genericProbes(rt api.Route, all []api.Route) []walkProbe {
	path := examplePath(rt.Pattern)
	var out []walkProbe
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		taken := slices.ContainsFunc(all, func(o api.Route) bool { return o.Pattern == rt.Pattern && o.Method == m })
		if !taken {
			out = append(out, walkProbe{name: "method " + m, method: m, path: path, auth: "op", want: 405})
		}
	}
	out = append(out, walkProbe{name: "huge header", path: path, auth: "Bearer rt_" + strings.Repeat("x", 2<<20), want: 431})
	if rt.Access == api.AccessAsset {
		return out
	}
	out = append(out,
		walkProbe{name: "unknown token", path: path, auth: "Bearer rt_notatoken", want: 401},
		walkProbe{name: "not a bearer token", path: path, auth: "Basic Zm9vOmJhcg==", want: 401},
		walkProbe{name: "empty bearer", path: path, auth: "Bearer ", want: 401},
		walkProbe{name: "unknown parameter", path: path + "?no_such_parameter=1", auth: "op", want: 400, detail: "unknown parameter"},
		walkProbe{name: "huge query", path: path + "?no_such_parameter=" + strings.Repeat("q", 100<<10), auth: "op", want: 400},
		walkProbe{name: "query that does not parse", path: path + "?%zz", auth: "op", want: -1},
	)
	if rt.Access == api.AccessOperator {
		out = append(out,
			walkProbe{name: "no token", path: path, want: 401},
			walkProbe{name: "researcher token", path: path, auth: "re", want: 403, detail: "operator"})
	}
	return out
}

// TestAPIBadInputIs4xx walks every route of a live partner node's API
// (the route table itself, so a new route is walked the day it appears,
// and must get route-specific bad inputs in walkCases) with malformed,
// missing and oversized input: every answer is a 4xx in the JSON error
// model with a reason, never a 5xx, and the node logs no internal error.
func TestAPIBadInputIs4xx(t *testing.T) {
	r := newRegion(t, "BA")
	n := r.nodes[0]
	tokens := map[string]string{}
	for key, role := range map[string]api.Role{"op": api.RoleOperator, "re": api.RoleResearcher} {
		tok, err := n.Tokens().Create(role, "walk-"+key)
		if err != nil {
			t.Fatal(err)
		}
		tokens[key] = tok
	}
	// The node's own backend and tokens behind a server with a 1 MiB upload
	// limit, so the oversized cases stay small.
	logs := &lockedBuffer{}
	srv, err := api.New(api.Config{Backend: (*backend)(n), Tokens: n.Tokens(), PublicReads: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), MaxImportBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(srv.Routes(), n.api.Routes(), func(a, b api.Route) bool {
		return a.Method == b.Method && a.Pattern == b.Pattern && a.Access == b.Access
	}) {
		t.Fatal("the test server's routes differ from the node's")
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	cases := walkCases()
	routes := srv.Routes()
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		specific, ok := cases[key]
		if !ok {
			t.Errorf("route %s has no bad inputs in walkCases: add them", key)
		}
		delete(cases, key)
		for _, p := range append(genericProbes(rt, routes), specific...) {
			t.Run(key+"/"+p.name, func(t *testing.T) {
				if p.method == "" {
					p.method = rt.Method
				}
				if p.path == "" {
					p.path = examplePath(rt.Pattern)
				}
				if tok, ok := tokens[p.auth]; ok {
					p.auth = "Bearer " + tok
				}
				walk(t, ts, p)
			})
		}
	}
	for key := range cases {
		t.Errorf("walkCases names %s, which is not a route", key)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the API logged errors:\n%s", logs.String())
	}
}

func walk(t *testing.T, ts *httptest.Server, p walkProbe) {
	t.Helper()
	req, err := http.NewRequest(p.method, ts.URL+p.path, bytes.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	if p.ctype != "" {
		req.Header.Set("Content-Type", p.ctype)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	code := resp.StatusCode
	switch {
	case code >= 500:
		t.Fatalf("%s %.80s: %d %s", p.method, p.path, code, body)
	case p.want == -1:
		return
	case p.want == 0 && (code < 400 || code >= 500), p.want > 0 && code != p.want:
		t.Fatalf("%s %.80s: status %d, want %s: %.300s", p.method, p.path, code, wantText(p.want), body)
	}
	if code == http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(p.path, "/v1/") && code == 404 {
		return // net/http and the file server answer these in plain text
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" || eb.Detail == "" {
		t.Fatalf("%d without an error and a reason in the JSON error model: %.300s", code, body)
	}
	if p.detail != "" && !strings.Contains(eb.Detail, p.detail) {
		t.Fatalf("detail %q does not say %q", eb.Detail, p.detail)
	}
}

func wantText(want int) string {
	if want == 0 {
		return "a 4xx"
	}
	return fmt.Sprint(want)
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
