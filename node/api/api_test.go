package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/privacy"
)

func TestTokenStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), api.TokenFile)
	ts, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	op, err := ts.Create(api.RoleOperator, "ana")
	if err != nil {
		t.Fatal(err)
	}
	re, err := ts.Create(api.RoleResearcher, "ben")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Create("admin", "x"); err == nil {
		t.Error("Create accepted an unknown role")
	}
	if !strings.HasPrefix(op, "rt_") || len(op) != 3+43 {
		t.Errorf("token %q: want rt_ and 43 base64url characters", op)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(op)) || bytes.Contains(raw, []byte(op[3:])) {
		t.Error("token file holds a token in clear")
	}
	reopened, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tok  string
		role api.Role
		name string
		ok   bool
	}{
		{op, api.RoleOperator, "ana", true},
		{re, api.RoleResearcher, "ben", true},
		{op + "x", "", "", false},
		{op[:len(op)-1], "", "", false},
		{"rt_", "", "", false},
		{strings.TrimPrefix(op, "rt_"), "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		role, name, ok := reopened.Lookup(tc.tok)
		if role != tc.role || name != tc.name || ok != tc.ok {
			t.Errorf("Lookup(%.10q…) = %q %q %v, want %q %q %v", tc.tok, role, name, ok, tc.role, tc.name, tc.ok)
		}
	}
	if err := os.WriteFile(path, []byte(`[{"sha256":"00","role":"operator"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.OpenTokenStore(path); err == nil {
		t.Error("OpenTokenStore accepted a malformed hash")
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	tests := []struct {
		name, method, path string
		status             int
		errContains        string // in error or detail
	}{
		{"unknown path", "GET", "/v1/nope", 404, "no such endpoint"},
		{"wrong method", "PUT", "/v1/series", 405, "GET"},
		{"unknown indicator", "GET", "/v1/series?indicator=nope", 400, "victims"},
		{"unknown dimension", "GET", "/v1/series?indicator=victims&by=colour", 400, "age_group"},
		{"repeated dimension", "GET", "/v1/series?indicator=victims&by=sex,sex", 400, "twice"},
		{"bad rollup", "GET", "/v1/series?rollup=decade", 400, "year,region"},
		{"bad from", "GET", "/v1/series?from=2024Q1", 400, "bad parameter from"},
		{"to before from", "GET", "/v1/series?from=2024-Q3&to=2024-Q1", 400, "before"},
		{"unknown partner", "GET", "/v1/series?partner=XX", 400, "AL, BA"},
		{"unknown param", "GET", "/v1/series?indicators=victims", 400, "bad parameter indicators"},
		{"repeated param", "GET", "/v1/series?by=sex&by=status", 400, "more than once"},
		{"bad bool", "GET", "/v1/releases?consistent=maybe", 400, "true or false"},
		{"bad cursor", "GET", "/v1/releases?after=-5", 400, "leaf index"},
		{"bad page size", "GET", "/v1/releases?limit=1001", 400, "page size"},
		{"bad release id", "GET", "/v1/releases/xyz", 400, "64 lowercase hex"},
		{"unknown release", "GET", "/v1/releases/" + strings.Repeat("ab", 32), 404, "not found"},
		{"unknown budget partner", "GET", "/v1/budget?partner=XX", 400, "registered"},
		{"age has no dimensions", "GET", "/v1/series?indicator=age&by=sex", 400, "no dimension"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "", tc.method, tc.path, nil, "")
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			eb := decode[api.ErrorBody](t, body)
			if eb.Error == "" || !strings.Contains(eb.Error+" "+eb.Detail, tc.errContains) {
				t.Errorf("error %+v does not mention %q", eb, tc.errContains)
			}
		})
	}
}

func multipartBody(t *testing.T, format, name, content string) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if format != "" {
		if err := mw.WriteField("format", format); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, content)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func TestImport(t *testing.T) {
	e := newEnv(t, false, apitest.Options{FromYear: 2024, ToYear: 2024})
	good, goodType := multipartBody(t, "csv", "cases.csv", "case_id,sex\n1,female\n2,male\n")
	bad, badType := multipartBody(t, "", "../../etc/bad.csv", "case_id,sex\n1,female\n2,BAD\n3,male,x\n")
	tests := []struct {
		name   string
		path   string
		body   []byte
		ctype  string
		status int
		rows   int
		errs   []int // lines reported
	}{
		{"multipart ok", "/v1/cases/import", good, goodType, 200, 2, nil},
		{"raw ok", "/v1/cases/import?filename=a.csv", []byte("case_id\n1\n"), "text/csv", 200, 1, nil},
		{"invalid rows", "/v1/cases/import", bad, badType, 422, 3, []int{3, 4}},
		{"bad format", "/v1/cases/import?format=xls", []byte("x"), "text/csv", 400, 0, nil},
		{"too large", "/v1/cases/import", bytes.Repeat([]byte("case_id\n"), 200_000), "text/csv", 413, 0, nil},
		{"multipart without file", "/v1/cases/import", []byte("--x--\r\n"), "multipart/form-data; boundary=x", 400, 0, nil},
		{"replace a source", "/v1/cases/import?source=ctdc&replace=true", []byte("case_id\n1\n"), "text/csv", 200, 1, nil},
		{"replace without source", "/v1/cases/import?replace=true", []byte("case_id\n1\n"), "text/csv", 400, 0, nil},
		{"replace not a boolean", "/v1/cases/import?source=ctdc&replace=yes", []byte("case_id\n1\n"), "text/csv", 400, 0, nil},
		{"source with a control character", "/v1/cases/import?source=a%0Ab", []byte("case_id\n1\n"), "text/csv", 400, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, api.RoleOperator, "POST", tc.path, tc.body, tc.ctype)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %.300s", code, tc.status, body)
			}
			var rep api.ImportReport
			switch code {
			case 200:
				rep = decode[api.ImportReport](t, body)
			case 422:
				eb := decode[struct {
					Report api.ImportReport `json:"report"`
				}](t, body)
				rep = eb.Report
			default:
				return
			}
			if rep.Rows != tc.rows {
				t.Errorf("rows %d, want %d", rep.Rows, tc.rows)
			}
			var lines []int
			for _, le := range rep.Errors {
				lines = append(lines, le.Line)
				if le.File != "bad.csv" {
					t.Errorf("error names file %q, want the base name bad.csv", le.File)
				}
			}
			if fmt.Sprint(lines) != fmt.Sprint(nonNilInts(tc.errs)) {
				t.Errorf("errors on lines %v, want %v", lines, tc.errs)
			}
		})
	}
	imports, _, _ := e.fake.Snapshot()
	if len(imports) != 4 {
		t.Fatalf("backend saw %d imports, want 4 (refused requests must not reach it)", len(imports))
	}
	if src := imports[3].Source; src != (api.ImportSource{Name: "ctdc", Replace: true}) {
		t.Errorf("backend got source %+v, want ctdc replaced", src)
	}
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

func TestPublishAndRefusal(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	e.fake.RaftRPCRefused = map[string]uint64{"id_mismatch": 2, "not_voter": 0}
	e.fake.HandshakesRefused = 3
	_, before := e.do(t, "", "GET", "/v1/series?indicator=victims&partner=RS&from=2025-Q1", nil, "")
	if n := len(decode[api.SeriesResponse](t, before).Series[0].Points); n != 0 {
		t.Fatalf("2025-Q1 has %d points before publishing", n)
	}
	code, body := e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(`{"period":"2025-Q1","indicators":["victims"],"epsilon":1.5}`), "application/json")
	if code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	res := decode[api.PublishResult](t, body)
	if res.Partner != "RS" || res.Period != "2025-Q1" || res.SpentMicro != 1_500_000 {
		t.Errorf("publish result %+v", res)
	}
	// The series cache is per applied index, so the new release shows.
	_, after := e.do(t, "", "GET", "/v1/series?indicator=victims&partner=RS&from=2025-Q1", nil, "")
	sr := decode[api.SeriesResponse](t, after)
	if sr.AppliedIndex != res.AppliedIndex || len(sr.Series[0].Points) != 1 || sr.Series[0].Points[0].ReleaseIDs[0] != res.ID {
		t.Errorf("series after publish: index %d (want %d), points %+v", sr.AppliedIndex, res.AppliedIndex, sr.Series[0].Points)
	}
	// Cap is 2 ε per quarter: another 1 ε is over budget.
	code, body = e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(`{"period":"2025-Q1","epsilon":1}`), "application/json")
	if code != 409 {
		t.Fatalf("over-budget publish: %d %s", code, body)
	}
	if eb := decode[api.ErrorBody](t, body); !strings.Contains(eb.Detail, "over budget") {
		t.Errorf("refusal detail %q does not give the reason", eb.Detail)
	}
	bad := []struct{ body, param string }{
		{`{"period":"2025-Q5","epsilon":1}`, "period"},
		{`{"period":"2025-Q1","epsilon":0}`, "epsilon"},
		{`{"period":"2025-Q1","epsilon":1,"indicators":["nope"]}`, "indicators"},
		{`{"period":"2025-Q1","epsilon":1,"extra":true}`, "body"},
		{`{"period":"2025-Q1","epsilon":1}{}`, "body"},
	}
	for _, b := range bad {
		code, body := e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(b.body), "application/json")
		if eb := decode[api.ErrorBody](t, body); code != 400 || !strings.Contains(eb.Error, b.param) {
			t.Errorf("%s: %d %+v, want 400 naming %s", b.body, code, eb, b.param)
		}
	}
	code, _ = e.do(t, api.RoleOperator, "POST", "/v1/plan", bytes.Repeat([]byte(" "), 100<<10), "application/json")
	if code != 413 {
		t.Errorf("oversized JSON body: %d, want 413", code)
	}
	_, metrics := e.do(t, "", "GET", "/metrics", nil, "")
	for _, want := range []string{
		`roundtable_release_refusals_total{reason="over_budget"} 1`,
		`roundtable_releases_published_total 1`,
		`roundtable_budget_spent{accounting="pure",partner="RS",quarter="2025-Q1"} 1.5`,
		`roundtable_http_request_seconds_count{code="201",route="POST /v1/releases"} 1`,
		`roundtable_raft_state{state="Leader"} 1`,
		`roundtable_raft_rpc_refused_total{reason="id_mismatch"} 2`,
		`roundtable_raft_rpc_refused_total{reason="not_voter"} 0`,
		`roundtable_tls_handshakes_refused_total 3`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReplicaRefusesWrites(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024, Replica: true})
	for _, p := range []struct{ path, body, ctype string }{
		{"/v1/releases", `{"period":"2025-Q1","epsilon":1}`, "application/json"},
		{"/v1/cases/import", "case_id\n1\n", "text/csv"},
	} {
		code, body := e.do(t, api.RoleOperator, "POST", p.path, []byte(p.body), p.ctype)
		if code != 409 || !strings.Contains(string(body), "replica") {
			t.Errorf("%s on a replica: %d %s, want 409", p.path, code, body)
		}
	}
}

func TestNotInCluster(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	e.fake.NotInCluster = true
	for _, p := range []string{"/v1/health", "/v1/catalog", "/v1/releases", "/v1/checkpoint"} {
		if code, body := e.do(t, "", "GET", p, nil, ""); code != 503 {
			t.Errorf("%s: %d %s, want 503", p, code, body)
		}
	}
}

func TestReleaseProof(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	_, body := e.do(t, "", "GET", "/v1/releases?consistent=true&partner=ME", nil, "")
	list := decode[api.ReleasesResponse](t, body)
	if len(list.Releases) != 4 || !list.Consistent || list.AppliedIndex == 0 {
		t.Fatalf("releases of ME: %d, consistent %v, index %d", len(list.Releases), list.Consistent, list.AppliedIndex)
	}
	id := list.Releases[2].Signed.ID
	_, body = e.do(t, "", "GET", "/v1/releases/"+id, nil, "")
	rr := decode[api.ReleaseResponse](t, body)
	if err := rr.Signed.Verify(rr.PublicKey); err != nil {
		t.Errorf("signature: %v", err)
	}
	canon, err := rr.Signed.Release.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var proof tlog.RecordProof
	for _, h := range rr.Proof.Hashes {
		proof = append(proof, tlog.Hash(h))
	}
	if err := tlog.CheckRecord(proof, rr.Proof.TreeSize, tlog.Hash(rr.Proof.Root), rr.Proof.Leaf, tlog.RecordHash(canon)); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	_, body = e.do(t, "", "GET", "/v1/checkpoint", nil, "")
	cp := decode[api.Checkpoint](t, body)
	if cp.Size != rr.Proof.TreeSize || !bytes.Equal(cp.Root, rr.Proof.Root) {
		t.Errorf("checkpoint (%d, %x) and proof (%d, %x) disagree", cp.Size, cp.Root, rr.Proof.TreeSize, rr.Proof.Root)
	}
}

// TestSeriesRollups checks the API's roll-ups are sums of their parts:
// region = Σ partners and year = Σ quarters, for the consistent estimates.
func TestSeriesRollups(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2023, ToYear: 2024})
	get := func(q string) []api.SeriesPoint {
		code, body := e.do(t, "", "GET", "/v1/series?indicator=victims&by=sex&"+q, nil, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		return decode[api.SeriesResponse](t, body).Series[0].Points
	}
	sum := map[string]float64{}
	for _, p := range get("") {
		sum[p.Period+"/"+p.Key[0]] += p.Estimate.Value
		sum[p.Partner+"/"+p.Period[:4]+"/"+p.Key[0]] += p.Estimate.Value
	}
	region := get("rollup=region")
	if len(region) != 8*4 {
		t.Fatalf("region points: %d, want 32", len(region))
	}
	for _, p := range region {
		if p.Partner != api.RegionPartner || p.Estimate.Value != sum[p.Period+"/"+p.Key[0]] {
			t.Errorf("region %s %v: %v, Σ partners %v", p.Period, p.Key, p.Estimate.Value, sum[p.Period+"/"+p.Key[0]])
		}
		if !(p.Estimate.CILow <= p.Estimate.Value && p.Estimate.Value <= p.Estimate.CIHigh) {
			t.Errorf("region %s %v: %v outside its interval [%v, %v]", p.Period, p.Key, p.Estimate.Value, p.Estimate.CILow, p.Estimate.CIHigh)
		}
	}
	for _, p := range get("rollup=year&partner=RS,AL") {
		if k := p.Partner + "/" + p.Period + "/" + p.Key[0]; p.Estimate.Value != sum[k] {
			t.Errorf("year %s: %v, Σ quarters %v", k, p.Estimate.Value, sum[k])
		}
	}
}

func TestExportCSV(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	code, body := e.do(t, "", "GET", "/v1/export.csv", nil, "")
	if code != 200 {
		t.Fatalf("export: %d", code)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != strings.Join(api.ExportColumns(), ",") {
		t.Errorf("header %v", rows[0])
	}
	rels, _, _ := e.fake.Releases(context.Background(), false)
	want := 0
	for _, r := range rels {
		for _, ir := range r.Signed.Release.Indicators {
			want += len(ir.Cells) + len(ir.Quantiles)
		}
	}
	if len(rows)-1 != want {
		t.Errorf("%d data rows, want one per published cell and quantile: %d", len(rows)-1, want)
	}
	first := rels[0].Signed.Release
	c := first.Indicators[0].Cells[0]
	row := rows[1]
	wantRow := []string{first.Partner, first.Period.String(), first.Indicators[0].Name, strings.Join(first.Indicators[0].Dimensions, "|"),
		strings.Join(c.Key, "|"), fmt.Sprint(c.Value)}
	if strings.Join(row[:6], ",") != strings.Join(wantRow, ",") || row[10] != "0.1" || row[11] != "0" || row[12] != rels[0].Signed.ID || row[13] != "0" {
		t.Errorf("first row %v, want %v … ε 0.1, ρ 0, %s 0", row, wantRow, rels[0].Signed.ID)
	}
}

// TestGovernance: governance goes through POST /v1/governance as a signed
// statement only. The old coordinator routes are gone (a node's token can
// no longer govern), a body that is not a signed statement is a 400 and a
// statement the ledger refuses a 409 with the reason, never a 500.
func TestGovernance(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	for _, old := range []struct{ method, path string }{
		{"POST", "/v1/partners"}, {"POST", "/v1/replicas"}, {"PUT", "/v1/policy"}, {"DELETE", "/v1/nodes/RS"},
	} {
		if code, _ := e.do(t, api.RoleOperator, old.method, old.path, []byte(`{}`), "application/json"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want the route gone", old.method, old.path, code)
		}
	}
	if code, _ := e.do(t, api.RoleOperator, "POST", "/v1/catalog", []byte(catalogV1JSON), "application/json"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/catalog: %d, want 405", code)
	}
	good := e.nextStatement()
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"not JSON", "add partner SI", 400, "want a signed governance statement"},
		{"unsigned legacy body", `{"code":"SI","public_key":"AAAA"}`, 400, "unknown field"},
		{"unknown action", strings.Replace(good, `"add_replica"`, `"drop_ledger"`, 1), 400, "unknown governance action"},
		{"signed", good, 201, `"seq":1`},
		{"replayed", good, 409, "not the next"},
	}
	for _, tc := range tests {
		code, body := e.do(t, "", "POST", "/v1/governance", []byte(tc.body), "application/json")
		if code != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, code, body, tc.status, tc.want)
		}
	}
	code, body := e.do(t, "", "GET", "/v1/governance", nil, "")
	var h api.GovernanceHistory
	if code != 200 || json.Unmarshal(body, &h) != nil || h.Next != 2 || len(h.Statements) != 1 || h.Consortium != apitest.FakeConsortium {
		t.Errorf("GET /v1/governance: %d %s", code, body)
	}
	if _, err := api.ParseRole("coordinator"); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("ParseRole(coordinator): %v", err)
	}
}

func TestServeShutsDown(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/v1/health"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestObserveCommit(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	e.srv.ObserveCommit(3 * time.Millisecond)
	_, m := e.do(t, "", "GET", "/metrics", nil, "")
	if !bytes.Contains(m, []byte("roundtable_raft_commit_seconds_count 1")) {
		t.Error("commit latency not exported")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil {
		t.Error("New accepted a config without backend")
	}
	fake, _ := apitest.New(apitest.Options{FromYear: 2024, ToYear: 2024})
	if _, err := api.New(api.Config{Backend: fake, Logger: slog.Default()}); err == nil || errors.Is(err, nil) {
		t.Error("New accepted a config without token store")
	}
}

func TestWhoami(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	_, body := e.do(t, api.RoleResearcher, "GET", "/v1/whoami", nil, "")
	var w map[string]any
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	if w["role"] != "researcher" || w["partner"] != "RS" {
		t.Errorf("whoami %v", w)
	}
}

// A token made by another process (roundtable token create) while the node
// runs is accepted at the next request without a restart.
func TestTokenStoreSeesTokensFromAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), api.TokenFile)
	running, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := api.OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cli.Create(api.RoleResearcher, "late")
	if err != nil {
		t.Fatal(err)
	}
	if role, name, ok := running.Lookup(tok); !ok || role != api.RoleResearcher || name != "late" {
		t.Fatalf("Lookup = %q %q %v, want researcher late true", role, name, ok)
	}
	if _, err := running.Create(api.RoleOperator, "second"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := cli.Lookup(tok); !ok {
		t.Fatal("a token vanished after another process created one")
	}
}

// Requests on the local socket act as the node's operator with no token;
// the same request over TCP without a token is refused.
func TestServeLocalActsAsOperator(t *testing.T) {
	fake, err := apitest.New(apitest.Options{Partner: "RS"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: mustTokens(t), PublicReads: true})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeLocal(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	body := `{"period":"2025-Q1","epsilon":0.5}`
	resp, err := client.Post("http://local/v1/plan", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("local plan: status %d, want 200", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/plan", strings.NewReader(body)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("tcp plan without token: status %d, want 401", rec.Code)
	}
}

func mustTokens(t *testing.T) *api.TokenStore {
	t.Helper()
	ts, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// POST /v1/releases reads epsilon exactly from its decimal text, requires
// it, and with dry_run answers the charge without publishing.
func TestPublishBudgetIsExact(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024, CapMicro: 5 * privacy.Micro})
	code, body := e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(`{"period":"2025","indicators":["exploitation","victims"],"epsilon":4.014,"dry_run":true}`), "application/json")
	if code != 200 {
		t.Fatalf("dry run: %d %s", code, body)
	}
	c := decode[privacy.Charge](t, body)
	if c.Budget != 4_014_000 || len(c.Quarters) != 4 || c.Quarters[3].Left != 986_000 ||
		strings.Join(c.Indicators, ",") != "victims,exploitation" ||
		c.Summary != "will spend ε 4.014 on each of 2025-Q1..Q4 of RS; 0.986 of 5 left in each after this" {
		t.Errorf("charge %+v", c)
	}
	code, b := e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(`{"period":"2025","epsilon":"4.014"}`), "application/json")
	if res := decode[api.PublishResult](t, b); code != 201 || res.SpentMicro != 4_014_000 {
		t.Errorf("epsilon \"4.014\": %d, spent %d micro, want exactly 4014000", code, res.SpentMicro)
	}
	for _, b := range []string{`{"period":"2026"}`, `{"period":"2026","epsilon":1e3}`, `{"period":"2026","epsilon":0.0000001}`, `{"period":"2026","epsilon":-1}`, `{"period":"2026","epsilon":1001}`} {
		code, body := e.do(t, api.RoleOperator, "POST", "/v1/releases", []byte(b), "application/json")
		if eb := decode[api.ErrorBody](t, body); code != 400 || !strings.Contains(eb.Error, "epsilon") {
			t.Errorf("%s: %d %+v, want 400 naming epsilon", b, code, eb)
		}
	}
	if _, publishes, _ := e.fake.Snapshot(); len(publishes) != 1 {
		t.Errorf("%d publishes reached the backend, want the one good one", len(publishes))
	}
}

// TestSeriesIDsFalse: ids=false leaves release_ids out of every point and
// changes nothing else; release_count is the number of ids either way,
// for count and quantile indicators alike. A bad ids value is a 400.
func TestSeriesIDsFalse(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2023, ToYear: 2024})
	get := func(q string) api.SeriesResponse {
		code, body := e.do(t, "", "GET", "/v1/series?"+q, nil, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		return decode[api.SeriesResponse](t, body)
	}
	for _, q := range []string{"rollup=year,region", "indicator=victims&by=sex", "indicator=victims&rollup=region"} {
		with, without := get(q), get(q+"&ids=false")
		if len(with.Series) == 0 || len(with.Series) != len(without.Series) {
			t.Fatalf("%s: %d series with ids, %d without", q, len(with.Series), len(without.Series))
		}
		points := 0
		for i := range with.Series {
			a, b := with.Series[i].Points, without.Series[i].Points
			if len(a) != len(b) {
				t.Fatalf("%s %s: %d points with ids, %d without", q, with.Series[i].Indicator, len(a), len(b))
			}
			for j := range a {
				points++
				if a[j].ReleaseCount != len(a[j].ReleaseIDs) || a[j].ReleaseCount == 0 {
					t.Errorf("%s: release_count %d, %d ids", q, a[j].ReleaseCount, len(a[j].ReleaseIDs))
				}
				if b[j].ReleaseIDs != nil || b[j].ReleaseCount != a[j].ReleaseCount {
					t.Errorf("%s: ids=false point has ids %v, count %d (want none, %d)", q, b[j].ReleaseIDs, b[j].ReleaseCount, a[j].ReleaseCount)
				}
				a[j].ReleaseIDs = nil
				if !reflect.DeepEqual(a[j], b[j]) {
					t.Errorf("%s: ids=false changed the point beyond its ids:\n%+v\n%+v", q, a[j], b[j])
				}
			}
		}
		if points == 0 {
			t.Fatalf("%s: no points", q)
		}
	}
	if code, body := e.do(t, "", "GET", "/v1/series?ids=no", nil, ""); code != 400 || !strings.Contains(string(body), "ids") {
		t.Errorf("ids=no: %d %s", code, body)
	}
}
