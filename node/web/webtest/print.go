package webtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// A4 in CSS pixels (96 per inch) and the brief's page margin.
const (
	mmPerInch    = 25.4
	a4WidthMM    = 210.0
	a4HeightMM   = 297.0
	briefMarginM = 14.0
)

func mmToPx(mm float64) float64 { return mm / mmPerInch * 96 }

// PrintReport is what CheckPrint measured.
type PrintReport struct {
	Pages    int      // pages in Chromium's A4 PDF
	Sections int      // section.page elements
	Network  []string // URLs the page asked for other than itself
	PDF      []byte
}

var pageObject = regexp.MustCompile(`/Type\s*/Page[^s]`)
var pageCount = regexp.MustCompile(`/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b`)

// CheckPrint opens a self-contained HTML page (the regional brief) from
// a file in headless Chromium, watching every network request it makes,
// and prints it to an A4 PDF. Under print media, at the printable width,
// it fails the test if any section.page is taller than one page's
// printable height, if any figure or chart is taller than that or sticks
// out sideways, or if the page scrolls sideways. The caller checks the
// page count and the network list. shots, if not empty, receives a PNG of
// each section as printed, for a human to look at.
func CheckPrint(t testing.TB, b *Browser, html []byte, name, shots string) PrintReport {
	t.Helper()
	ctx := b.Ctx
	var mu sync.Mutex
	var rep PrintReport
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			if u := e.Request.URL; !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") && u != "about:blank" {
				mu.Lock()
				rep.Network = append(rep.Network, u)
				mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	file := filepath.Join(t.TempDir(), name+".html")
	if err := os.WriteFile(file, html, 0o600); err != nil {
		t.Fatal(err)
	}
	printW := mmToPx(a4WidthMM - 2*briefMarginM)
	printH := mmToPx(a4HeightMM - 2*briefMarginM)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(printW), 9000) /* tall: no scrollbar narrows the layout */, chromedp.Navigate("file://"+file)); err != nil {
		t.Fatalf("open %s: %v", file, err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatalf("emulate print media: %v", err)
	}
	type box struct {
		What          string
		Height, Right float64
	}
	type measured struct {
		Sections    int
		ScrollWidth float64
		Boxes       []box
	}
	var m measured
	js := `(() => {
		const out = {sections: 0, scrollWidth: document.documentElement.scrollWidth, boxes: []};
		const label = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + (e.textContent || "").trim().slice(0, 40);
		for (const s of document.querySelectorAll("section.page")) {
			out.sections++;
			const r = s.getBoundingClientRect();
			out.boxes.push({what: "section " + s.id, height: r.height, right: r.right});
		}
		for (const e of document.querySelectorAll("figure, svg, table")) {
			const r = e.getBoundingClientRect();
			out.boxes.push({what: label(e), height: r.height, right: r.right});
		}
		return out;
	})()`
	m, err = chromedp.Run(ctx, chromedp.Evaluate[measured](js))
	if err != nil {
		t.Fatalf("measure %s: %v", name, err)
	}
	rep.Sections = m.Sections
	if m.ScrollWidth > printW+1 {
		t.Errorf("%s: the page is %.0f px wide under print media, wider than the printable %.0f px", name, m.ScrollWidth, printW)
	}
	for _, bx := range m.Boxes {
		if bx.Height > printH {
			t.Errorf("%s: %s is %.0f px tall, more than one page's printable %.0f px: it would be cut", name, bx.What, bx.Height, printH)
		}
		if bx.Right > printW+1 {
			t.Errorf("%s: %s ends at %.0f px, beyond the printable width %.0f px", name, bx.What, bx.Right, printW)
		}
	}
	if shots != "" {
		shootSections(t, b, name, shots)
	}
	yes := true
	res, err := chromedp.Call(ctx, page.PrintToPDF, page.PrintToPDFParams{PaperWidth: a4WidthMM / mmPerInch, PaperHeight: a4HeightMM / mmPerInch,
		PreferCSSPageSize: &yes, PrintBackground: &yes})
	if err != nil {
		t.Fatalf("print %s to PDF: %v", name, err)
	}
	rep.PDF = res.Data
	rep.Pages = len(pageObject.FindAll(res.Data, -1))
	// The page tree's /Count must agree with the page objects counted.
	if c := pageCount.FindSubmatch(res.Data); c != nil {
		n, _ := strconv.Atoi(string(bytes.Join(c[1:], nil)))
		if n != rep.Pages {
			t.Errorf("%s: PDF page tree says %d pages, %d page objects found", name, n, rep.Pages)
		}
	}
	// Late requests (none expected from a page with no script) get a moment.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	rep.Network = append([]string(nil), rep.Network...)
	return rep
}

// shootSections writes a PNG of each section.page as printed.
func shootSections(t testing.TB, b *Browser, name, dir string) {
	n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll("section.page").length`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sel := fmt.Sprintf("section.page:nth-of-type(%d)", i+1)
		png, err := chromedp.Run(b.Ctx, chromedp.Screenshot(sel))
		if err != nil {
			t.Fatalf("screenshot %s: %v", sel, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-page%d.png", name, i+1)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
