package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"roundtable/node/api"
	"roundtable/node/api/apitest"
)

// pageAll follows next from the first page and returns every listed
// entry and the size of each page.
func pageAll(t *testing.T, e *env, query string) ([]api.ReleaseEntry, []int) {
	t.Helper()
	var all []api.ReleaseEntry
	var sizes []int
	path := "/v1/releases?" + query
	for range 1000 {
		code, body := e.do(t, "", "GET", path, nil, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		page := decode[api.ReleasesResponse](t, body)
		all = append(all, page.Releases...)
		sizes = append(sizes, len(page.Releases))
		if page.Next == nil {
			return all, sizes
		}
		path = "/v1/releases?" + query + "&after=" + strconv.FormatInt(*page.Next, 10)
	}
	t.Fatal("no end after 1000 pages")
	return nil, nil
}

// Every leaf is listed exactly once and in order across pages, no page
// holds more than its limit, the last page says there is no next, and each
// listed release is the ledger's (same id, leaf and signature as the
// whole list).
func TestReleasesPagination(t *testing.T) {
	e := newEnv(t, true, apitest.Options{})
	want, _, err := e.fake.Releases(context.Background(), false)
	if err != nil || len(want) <= api.PageDefaultLimit {
		t.Fatalf("fixture: %d releases (%v), want more than one default page", len(want), err)
	}
	for _, limit := range []int{0, 1, 7, 100, 1000} {
		q := "consistent=true"
		max := api.PageDefaultLimit
		if limit > 0 {
			q += "&limit=" + strconv.Itoa(limit)
			max = limit
		}
		got, sizes := pageAll(t, e, q)
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d releases over %d pages, want %d", limit, len(got), len(sizes), len(want))
		}
		for i, g := range got {
			w := want[i]
			if g.Leaf != int64(i) || g.Signed.ID != w.Signed.ID || !bytes.Equal(g.Signed.Signature, w.Signed.Signature) ||
				!g.Verified || !bytes.Equal(g.PublicKey, w.PublicKey) {
				t.Fatalf("limit %d: entry %d is leaf %d id %s, want leaf %d id %s", limit, i, g.Leaf, g.Signed.ID, w.Leaf, w.Signed.ID)
			}
		}
		for i, n := range sizes {
			if n > max || (n == 0 && len(sizes) > 1) || (i < len(sizes)-1 && n != max) {
				t.Errorf("limit %d: page sizes %v, want full pages of %d then the rest", limit, sizes, max)
				break
			}
		}
	}
}

// A filtered listing pages too, and gives exactly the filtered releases.
func TestReleasesPaginationFiltered(t *testing.T) {
	e := newEnv(t, true, apitest.Options{})
	all, _, _ := e.fake.Releases(context.Background(), false)
	var want []int64
	for _, r := range all {
		if r.Signed.Release.Partner == "ME" || r.Signed.Release.Partner == "AL" {
			want = append(want, r.Leaf)
		}
	}
	got, sizes := pageAll(t, e, "partner=ME,AL&limit=5")
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("%d releases of ME and AL over %d pages, want %d", len(got), len(sizes), len(want))
	}
	for i := range got {
		if got[i].Leaf != want[i] {
			t.Fatalf("entry %d is leaf %d, want %d", i, got[i].Leaf, want[i])
		}
	}
	code, body := e.do(t, "", "GET", "/v1/releases?period=2020-Q3&limit=1000", nil, "")
	page := decode[api.ReleasesResponse](t, body)
	if code != 200 || len(page.Releases) == 0 || page.Next != nil {
		t.Fatalf("period filter: %d, %d releases, next %v", code, len(page.Releases), page.Next)
	}
	for _, r := range page.Releases {
		if r.Signed.Release.Period.String() != "2020-Q3" {
			t.Errorf("period filter listed %s", r.Signed.Release.Period)
		}
	}
}

func TestReleasesBadCursor(t *testing.T) {
	e := newEnv(t, true, apitest.Options{FromYear: 2024, ToYear: 2024})
	for _, q := range []string{"after=-1", "after=x", "after=1.5", "limit=0", "limit=-3", "limit=1001",
		"limit=ten", "after=1&after=2", "limit=5&limit=6", "cursor=3"} {
		code, body := e.do(t, "", "GET", "/v1/releases?"+q, nil, "")
		if code != 400 {
			t.Errorf("?%s: %d %.200s, want 400", q, code, body)
			continue
		}
		var msg struct{ Error, Detail string }
		if json.Unmarshal(body, &msg) != nil || msg.Error == "" {
			t.Errorf("?%s: answer %s has no reason", q, body)
		}
	}
	// A cursor at or past the end is an empty last page, not an error.
	for _, after := range []string{"23", "24", "1000000"} {
		code, body := e.do(t, "", "GET", "/v1/releases?after="+after, nil, "")
		page := decode[api.ReleasesResponse](t, body)
		if code != 200 || len(page.Releases) != 0 || page.Next != nil || page.Total != 24 {
			t.Errorf("after=%s: %d, %d releases, next %v, total %d", after, code, len(page.Releases), page.Next, page.Total)
		}
	}
}

// A page holds at most PageMaxBytes of release JSON (but always one
// release, however large), and a filtered page stops after PageMaxScan
// leaves with a cursor past them, so no request costs more than a page.
func TestPagerBounds(t *testing.T) {
	big := func(partner string, size int) []byte {
		return fmt.Appendf(nil, `{"id":"x","release":{"version":2,"partner":%q,"period":"2024-Q1","indicators":[%q]}}`,
			partner, bytes.Repeat([]byte("a"), size))
	}
	keys := map[string][]byte{"AL": []byte("key")}
	pg := api.NewPager(api.PageQuery{After: -1, Limit: api.PageMaxLimit})
	rel := big("AL", 3<<20)
	var leaf int64
	for ; leaf < 10; leaf++ {
		more, err := pg.Offer(leaf, rel, keys)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	page := pg.Page(1, 10)
	held := 0
	for _, r := range page.Releases {
		held += len(r.Signed)
	}
	if len(page.Releases) != 2 || held > api.PageMaxBytes || page.Next != 1 || string(page.Releases[0].PublicKey) != "key" {
		t.Errorf("3 MiB releases: page of %d (%d bytes), next %d; want 2 within %d bytes, next 1", len(page.Releases), held, page.Next, api.PageMaxBytes)
	}
	pg = api.NewPager(api.PageQuery{After: -1, Limit: 1, Partners: []string{"AL"}})
	if more, err := pg.Offer(0, big("AL", 5*api.PageMaxBytes), keys); !more || err != nil {
		t.Fatalf("a single release larger than the byte bound: more %v, %v", more, err)
	}
	pg = api.NewPager(api.PageQuery{After: 4, Limit: 10, Partners: []string{"BA"}})
	small := big("AL", 10)
	for leaf = 5; ; leaf++ {
		more, err := pg.Offer(leaf, small, keys)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	page = pg.Page(1, 1<<40)
	if len(page.Releases) != 0 || page.Next != 4+api.PageMaxScan || leaf != 5+api.PageMaxScan {
		t.Errorf("filter matching nothing: %d releases, next %d after offering up to leaf %d; want 0, next %d", len(page.Releases), page.Next, leaf, 4+api.PageMaxScan)
	}
	if _, err := api.NewPager(api.PageQuery{After: -1, Limit: 1}).Offer(0, []byte(`{"id":"x"}`), keys); err == nil {
		t.Error("a release without partner and period was listed")
	}
}
