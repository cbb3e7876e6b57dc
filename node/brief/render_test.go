package brief_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"roundtable/node/api/apitest"
	"roundtable/node/brief"
	"roundtable/node/client"
	"roundtable/node/web"
)

// TestBriefContent checks the English brief against the API's own
// numbers: the headline is the regional estimate for the year with its
// interval, every partner has a row with the API's change reading, every
// release of the year is listed by id with the checkpoint's root, and the
// verify command is there.
func TestBriefContent(t *testing.T) {
	url := fixture(t, apitest.Options{})
	d := fetch(t, url, 2024)
	page, err := brief.Render(d, brief.Options{Lang: "en", Date: briefDate, Server: url})
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	var region *brief.Point
	for i := range d.Region {
		if d.Region[i].Period == "2024" {
			region = &d.Region[i]
		}
	}
	if region == nil || region.Estimate == nil {
		t.Fatal("no regional estimate for 2024 in the fixture")
	}
	e := region.Estimate
	want := fmt.Sprintf("%s victims identified or presumed in the region in 2024 (95%% interval %s to %s).", group(e.Value), group(e.CILow), group(e.CIHigh))
	if !strings.Contains(html, want) {
		t.Errorf("the brief lacks the headline %q", want)
	}
	if len(d.Releases) != 24 || d.EarlierReleases != 120 {
		t.Errorf("brief rests on %d releases of 2024 and %d earlier, want 24 (6 partners × 4 quarters) and 120", len(d.Releases), d.EarlierReleases)
	}
	for _, r := range d.Releases {
		if !strings.Contains(html, r.ID) {
			t.Errorf("release %s is not listed", r.ID)
		}
	}
	for _, s := range []string{hex.EncodeToString(d.Checkpoint.Root), "roundtable verify --server " + url, "3 March 2025",
		"Changes from 2023 to 2024", "Albania", "North Macedonia", "Forms of exploitation in 2024", "Corridors in 2024"} {
		if !strings.Contains(html, s) {
			t.Errorf("the brief lacks %q", s)
		}
	}
	for _, c := range d.Countries {
		p := c.Points[len(c.Points)-1]
		if p.Change == nil {
			t.Fatalf("%s has no change for %s", c.Code, p.Period)
		}
		reading := map[string]string{"increase": "a detectable increase", "decrease": "a detectable decrease"}[p.Change.Reading]
		if reading == "" {
			reading = "not distinguishable from no change"
		}
		row := regexp.MustCompile(`<th scope="row">` + regexp.QuoteMeta(countryName(c.Code)) + `</th>.*?<td>([^<]*)</td></tr>`).FindStringSubmatch(html)
		if row == nil || row[1] != reading {
			t.Errorf("%s's row reads %v, want %q", c.Code, row, reading)
		}
	}
}

func countryName(code string) string {
	m, _ := web.Messages("en")
	return m["key."+code]
}

// group writes a rounded count as the English brief does.
func group(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "\u2212" + s
	}
	return s
}

// TestBriefIsDeterministicAndSelfContained: the same data and options
// give the same bytes in every language, and no page refers to anything
// outside itself (no src, href, url() or @import; no script).
func TestBriefIsDeterministicAndSelfContained(t *testing.T) {
	url := fixture(t, apitest.Options{})
	d1, d2 := fetch(t, url, 2024), fetch(t, url, 2024)
	langs, err := web.Languages()
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)\b(src|href|action|srcset)\s*=|url\(|@import|<script|<link|<iframe|<img`)
	for _, l := range langs {
		a, err := brief.Render(d1, brief.Options{Lang: l.Code, Date: briefDate, Server: url})
		if err != nil {
			t.Fatal(err)
		}
		b, err := brief.Render(d2, brief.Options{Lang: l.Code, Date: briefDate, Server: url})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two renders of the same data differ", l.Code)
		}
		if m := external.Find(a); m != nil {
			t.Errorf("%s: the brief refers outside itself: %q", l.Code, m)
		}
		if !bytes.Contains(a, []byte(`<html lang="`+l.Code+`">`)) {
			t.Errorf("%s: the page does not declare its language", l.Code)
		}
	}
}

// TestBriefRefusesBadInput: an unknown language, a year with nothing
// published, a year out of range.
func TestBriefRefusesBadInput(t *testing.T) {
	url := fixture(t, apitest.Options{FromYear: 2023})
	get := client.New(url, "").Get
	if _, err := brief.Fetch(context.Background(), get, 2019); err == nil || !strings.Contains(err.Error(), "no published victims for 2019; years with data: 2023, 2024") {
		t.Errorf("a year with no data: %v", err)
	}
	if _, err := brief.Fetch(context.Background(), get, 24); err == nil {
		t.Error("year 24 accepted")
	}
	d := fetch(t, url, 2024)
	if _, err := brief.Render(d, brief.Options{Lang: "de", Date: briefDate}); err == nil || !strings.Contains(err.Error(), "sr-Cyrl") {
		t.Errorf("language de: %v", err)
	}
}

// TestBriefRouteMatchesRender: GET /v1/brief serves what Render makes of
// the same node's data (the date aside), as an HTML attachment that the
// browser may not let load anything.
func TestBriefRouteMatchesRender(t *testing.T) {
	url := fixture(t, apitest.Options{})
	resp, err := http.Get(url + "/v1/brief?year=2024&lang=sr-Cyrl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	h := resp.Header
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(h.Get("Content-Disposition"), "roundtable-brief-2024-sr-Cyrl.html") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers %v", h)
	}
	d := fetch(t, url, 2024)
	want, err := brief.Render(d, brief.Options{Lang: "sr-Cyrl", Date: briefDate, Server: url})
	if err != nil {
		t.Fatal(err)
	}
	date := regexp.MustCompile(`Израђено [^<]*? из`)
	if got, w := date.ReplaceAll(body, nil), date.ReplaceAll(want, nil); !bytes.Equal(got, w) {
		os.WriteFile(t.TempDir()+"/got.html", body, 0o644)
		t.Errorf("the route's brief differs from Render's (%d vs %d bytes)", len(got), len(w))
	}
}

// TestBriefUsesItsMessages: every brief.* message the dashboard does not
// use is used by the brief, so the translation files carry no dead text.
func TestBriefUsesItsMessages(t *testing.T) {
	en, err := web.Messages("en")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range []string{"render.go", "locale.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	dashboard := map[string]bool{"brief.download": true, "brief.year": true, "brief.downloading": true, "brief.saved": true}
	for id := range en {
		if strings.HasPrefix(id, "brief.") && !dashboard[id] && !strings.Contains(src.String(), `"`+id+`"`) {
			t.Errorf("message %q is used by neither the brief nor the dashboard", id)
		}
	}
}
