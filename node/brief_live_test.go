package node

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"roundtable/node/brief"
	"roundtable/node/client"
	"roundtable/node/web"
	"roundtable/node/web/webtest"
)

// TestBriefLiveRegion builds the regional brief for 2024 from a live
// region (real stores, ledger, signatures and checkpoints; every partner
// published 2023 and 2024 as closed years, the default cadence), the way
// 'roundtable brief --server' does, in each of the six languages, and
// prints each with Chromium on A4: five pages, nothing cut, nothing
// fetched. The node's own GET /v1/brief answers too, and its methods note
// names the ledger's checkpoint root and every release of 2024.
// BRIEF_SHOTS=DIR keeps PNGs of the printed pages.
func TestBriefLiveRegion(t *testing.T) {
	webtest.RequireChromium(t)
	ctx := t.Context()
	r := newRegion(t, "RS", "AL", "BA")
	for _, n := range r.nodes {
		for _, y := range []string{"2023", "2024"} {
			if _, err := n.Publish(ctx, mustPeriod(t, y), nil, testCap); err != nil {
				t.Fatalf("publish %s %s: %v", n.ID(), y, err)
			}
		}
	}
	var leader *Node
	for _, n := range r.nodes {
		if n.Ledger().State() == raft.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	cp := waitRegionalCheckpoint(ctx, t, leader)
	url := "http://" + leader.HTTPAddr()
	d, err := brief.Fetch(ctx, client.New(url, "").Get, 2024)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Releases) != 3 || d.EarlierReleases != 3 || d.Checkpoint.Size != cp.Size {
		t.Errorf("brief rests on %d releases of 2024 and %d earlier at checkpoint %d; want 3, 3 and %d", len(d.Releases), d.EarlierReleases, d.Checkpoint.Size, cp.Size)
	}
	langs, err := web.Languages()
	if err != nil {
		t.Fatal(err)
	}
	b := webtest.NewBrowser(t)
	day := time.Date(2025, time.March, 3, 0, 0, 0, 0, time.UTC)
	for _, l := range langs {
		t.Run(l.Code, func(t *testing.T) {
			page, err := brief.Render(d, brief.Options{Lang: l.Code, Date: day, Server: url})
			if err != nil {
				t.Fatal(err)
			}
			for _, rel := range d.Releases {
				if !strings.Contains(string(page), rel.ID) {
					t.Errorf("release %s of %s is not named", rel.ID[:16], rel.Partner)
				}
			}
			rep := webtest.CheckPrint(t, b, page, "live-brief-"+l.Code, os.Getenv("BRIEF_SHOTS"))
			if rep.Pages != brief.Pages || rep.Sections != brief.Pages {
				t.Errorf("%d sections on %d A4 pages, want %d", rep.Sections, rep.Pages, brief.Pages)
			}
			if len(rep.Network) > 0 {
				t.Errorf("the brief requested %v", rep.Network)
			}
		})
	}
	resp, err := http.Get(url + "/v1/brief?year=2024&lang=mk")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<html lang="mk">`) || !strings.Contains(string(body), "Регионален преглед 2024") {
		t.Errorf("GET /v1/brief: %d %.200s", resp.StatusCode, body)
	}
}
