package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// FuzzSeriesParams feeds arbitrary query strings to GET /v1/series: the
// answer must be 200 or a 400 in the error model, never a 500 or a panic,
// whether or not the query string itself parses.
func FuzzSeriesParams(f *testing.F) {
	for _, s := range []string{
		"indicator=victims&by=sex,age_group&rollup=year,region",
		"indicator=corridors&by=citizenship_group,exploitation_country_group&from=2024&to=2024",
		"partner=RS,AL&from=2024-Q2&to=2024-Q3&rollup=year",
		"indicator=age&rollup=region",
		"by=&indicator=,&from=-Q1",
		"to=9999-Q4&from=1900-Q1",
		"%zz",
		"indicator=victims&%zz&by=sex",
		"indicator=victims;by=sex",
		"indicator=victims&pool=3&rollup=region",
		"pool=0&rollup=year",
		"pool=x",
		"pool=6&by=sex&indicator=victims",
	} {
		f.Add(s)
	}
	e := newEnv(f, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	f.Fuzz(func(t *testing.T, q string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/v1/series", nil)
		req.URL.RawQuery = q
		e.srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			decode[api.SeriesResponse](t, rec.Body.Bytes())
		case http.StatusBadRequest:
			if eb := decode[api.ErrorBody](t, rec.Body.Bytes()); eb.Error == "" {
				t.Errorf("400 without an error message for %q", q)
			}
		default:
			t.Errorf("query %q: status %d %s", q, rec.Code, rec.Body.String())
		}
	})
}
