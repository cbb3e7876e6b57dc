package api_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"roundtable/aggregate"
	"slices"
	"strings"
	"testing"

	"roundtable/cluster/governance"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// probe is how the matrix calls one route and what a permitted call
// returns.
type probe struct {
	access api.Access // who may call it, stated here independently of the server
	path   string
	body   string
	ctype  string
	status int
}

// probes has one entry per route; a route added to the server without an
// entry here fails TestAuthMatrix.
func probes(e *env) map[string]func(i int) probe {
	rel := e.firstReleaseID()
	get := func(path string) func(int) probe {
		return func(int) probe { return probe{access: api.AccessRead, path: path, status: http.StatusOK} }
	}
	asset := func(path string) func(int) probe {
		return func(int) probe { return probe{access: api.AccessAsset, path: path, status: http.StatusOK} }
	}
	return map[string]func(int) probe{
		"GET /{$}":              asset("/"),
		"GET /static/":          asset("/static/app.js"),
		"GET /favicon.ico":      asset("/favicon.ico"),
		"GET /metrics":          get("/metrics"),
		"GET /v1/health":        get("/v1/health"),
		"GET /v1/catalog":       get("/v1/catalog"),
		"GET /v1/releases":      get("/v1/releases?consistent=true"),
		"GET /v1/releases/{id}": get("/v1/releases/" + rel),
		"GET /v1/releases/pending": func(int) probe {
			return probe{access: api.AccessOperator, path: "/v1/releases/pending", status: http.StatusOK}
		},
		"GET /v1/series":      get("/v1/series?indicator=victims&rollup=region&from=2024-Q1"),
		"GET /v1/export.csv":  get("/v1/export.csv"),
		"GET /v1/checkpoint":  get("/v1/checkpoint"),
		"GET /v1/consistency": get("/v1/consistency?from=1&to=2"),
		"GET /v1/budget":      get("/v1/budget?partner=RS"),
		"GET /v1/cluster":     get("/v1/cluster"),
		"GET /v1/whoami":      get("/v1/whoami"),
		"GET /v1/brief":       get("/v1/brief?year=2024&lang=sq"),
		"POST /v1/cases/import": func(int) probe {
			return probe{access: api.AccessOperator, path: "/v1/cases/import?filename=a.csv", body: "case_id,sex\n1,female\n", ctype: "text/csv", status: http.StatusOK}
		},
		"POST /v1/plan": func(int) probe {
			return probe{access: api.AccessOperator, path: "/v1/plan", body: `{"period":"2025-Q1","epsilon":0.5}`, ctype: "application/json", status: http.StatusOK}
		},
		"POST /v1/releases": func(int) probe {
			return probe{access: api.AccessOperator, path: "/v1/releases", body: `{"period":"2025-Q1","indicators":["victims"],"epsilon":0.01}`, ctype: "application/json", status: http.StatusCreated}
		},
		"GET /v1/governance": get("/v1/governance"),
		"POST /v1/governance": func(int) probe {
			return probe{access: api.AccessSigned, path: "/v1/governance", ctype: "application/json", status: http.StatusCreated, body: e.nextStatement()}
		},
	}
}

// nextStatement is a signed statement the fake ledger will admit next.
func (e *env) nextStatement() string {
	h, err := e.fake.Governance(context.Background())
	if err != nil {
		panic(err)
	}
	st := governance.Signed{Statement: governance.Statement{Consortium: h.Consortium, Seq: h.Next,
		Action: governance.Action{Type: governance.AddReplica, ID: fmt.Sprintf("replica-%d", h.Next)}}}
	seed := make([]byte, ed25519.SeedSize)
	if err := st.Sign(ed25519.NewKeyFromSeed(seed)); err != nil {
		panic(err)
	}
	b, err := st.Encode()
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (e *env) firstReleaseID() string {
	rels, _, err := e.fake.Releases(context.Background(), false)
	if err != nil || len(rels) == 0 {
		return strings.Repeat("0", 64)
	}
	return rels[0].Signed.ID
}

// TestAuthMatrix walks every route × {no token, bad token, each role} with
// PublicReads on and off and checks the status of each call.
func TestAuthMatrix(t *testing.T) {
	for _, public := range []bool{true, false} {
		t.Run(fmt.Sprintf("public=%v", public), func(t *testing.T) {
			e := newEnv(t, public, apitest.Options{FromYear: 2024, ToYear: 2024})
			ps := probes(e)
			n := 0
			for _, rt := range e.srv.Routes() {
				name := rt.Method + " " + rt.Pattern
				mk, ok := ps[name]
				if !ok {
					t.Errorf("route %s has no entry in the auth matrix", name)
					continue
				}
				for _, who := range []string{"", "bad", string(api.RoleOperator), string(api.RoleResearcher)} {
					n++
					p := mk(n)
					if p.access != rt.Access {
						t.Errorf("%s: server says access %v, the matrix says %v", name, rt.Access, p.access)
					}
					want := expect(p.access, public, who, p.status)
					got := e.call(t, who, rt.Method, p)
					if got != want {
						t.Errorf("%s as %q: status %d, want %d", name, who, got, want)
					}
				}
			}
			if len(ps) != len(e.srv.Routes()) {
				t.Errorf("matrix has %d entries for %d routes: remove stale ones", len(ps), len(e.srv.Routes()))
			}
		})
	}
}

func expect(a api.Access, public bool, who string, ok int) int {
	if who == "bad" {
		return http.StatusUnauthorized // a wrong token is refused even where none is needed
	}
	switch a {
	case api.AccessAsset:
		return ok
	case api.AccessRead:
		if who == "" && !public {
			return http.StatusUnauthorized
		}
		return ok
	case api.AccessSigned:
		return ok // the statement's signatures are the authority; no token needed
	case api.AccessOperator:
		switch who {
		case "":
			return http.StatusUnauthorized
		case "operator":
			return ok
		}
		return http.StatusForbidden
	}
	return -1
}

func (e *env) call(t *testing.T, who, method string, p probe) int {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+p.path, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.ctype != "" {
		req.Header.Set("Content-Type", p.ctype)
	}
	switch who {
	case "":
	case "bad":
		req.Header.Set("Authorization", "Bearer rt_notavalidtoken")
	default:
		req.Header.Set("Authorization", "Bearer "+e.tokens[api.Role(who)])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOpenAPIMatchesRoutes parses the paths section of docs/api.yaml and
// checks it documents exactly the server's routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	var want []string
	for _, rt := range e.srv.Routes() {
		want = append(want, strings.ToLower(rt.Method)+" "+openAPIPath(rt.Pattern))
	}
	got := specPaths(t, "../../docs/api.yaml")
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("docs/api.yaml paths differ from the route table\n doc: %v\nroutes: %v", got, want)
	}
}

// openAPIPath converts a ServeMux pattern to OpenAPI's path syntax.
func openAPIPath(p string) string {
	switch {
	case p == "/{$}":
		return "/"
	case strings.HasSuffix(p, "/"):
		return p + "{file}"
	}
	return p
}

// specPaths is a minimal line parser of an OpenAPI YAML file: under the
// top-level "paths:" key, two-space-indented "/...:" lines are paths and
// four-space-indented HTTP method keys are operations.
func specPaths(t *testing.T, file string) []string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	methods := []string{"get", "post", "put", "delete", "patch", "head", "options"}
	var out []string
	in, cur := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			in = strings.HasPrefix(line, "paths:")
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":") {
			cur = strings.Trim(strings.TrimSuffix(strings.TrimSpace(line), ":"), `"'`)
			continue
		}
		if strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") {
			k := strings.TrimSuffix(strings.TrimSpace(line), ":")
			if slices.Contains(methods, k) && cur != "" {
				out = append(out, k+" "+cur)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// catalogV1JSON is the v1 catalog as a coordinator would send it.
var catalogV1JSON = func() string {
	b, err := aggregate.CatalogV1().Canonical()
	if err != nil {
		panic(err)
	}
	return string(b)
}()
