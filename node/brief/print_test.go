package brief_test

import (
	"os"
	"testing"

	"roundtable/node/api/apitest"
	"roundtable/node/brief"
	"roundtable/node/web"
	"roundtable/node/web/webtest"
)

// TestBriefPrintsOnA4 prints the brief of the six-partner fixture region
// in every language with Chromium's print to PDF on A4 and checks that it
// is brief.Pages pages, that no section, figure, chart or table is taller
// than a page's printable height or wider than its printable width (so
// nothing is cut), and that opening it asked the network for nothing.
// BRIEF_SHOTS=DIR keeps a PNG of every printed page for a human to read.
func TestBriefPrintsOnA4(t *testing.T) {
	webtest.RequireChromium(t)
	url := fixture(t, apitest.Options{})
	d := fetch(t, url, 2024)
	langs, err := web.Languages()
	if err != nil {
		t.Fatal(err)
	}
	b := webtest.NewBrowser(t)
	for _, lang := range langs {
		t.Run(lang.Code, func(t *testing.T) {
			page, err := brief.Render(d, brief.Options{Lang: lang.Code, Date: briefDate, Server: url})
			if err != nil {
				t.Fatal(err)
			}
			rep := webtest.CheckPrint(t, b, page, "brief-"+lang.Code, os.Getenv("BRIEF_SHOTS"))
			if rep.Sections != brief.Pages || rep.Pages != brief.Pages {
				t.Errorf("%d sections printed on %d A4 pages, want %d and %d", rep.Sections, rep.Pages, brief.Pages, brief.Pages)
			}
			if len(rep.Network) > 0 {
				t.Errorf("opening the brief requested %v; it must be self-contained", rep.Network)
			}
			if p := b.Problems(); len(p) > 0 {
				t.Errorf("console: %v", p)
			}
		})
	}
}
