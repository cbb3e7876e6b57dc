package cluster

import (
	"testing"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// Catalog v2 comes into a ledger founded on an older catalog through a
// coordinator-signed set_catalog; releases of both versions are admitted
// (each validated against its own catalog) and combine into one series.
func TestFSMCatalogV2BySignedGovernance(t *testing.T) {
	b := newFSMBase(t) // founded on the v1 fixture catalog, with a v1 release (2024-Q1)
	raw, err := aggregate.CatalogV2().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, b.f, b.log, govSetCatalog(raw))
	cur, _, err := b.f.CurrentCatalog()
	if err != nil || cur.Hash() != aggregate.CatalogV2().Hash() {
		t.Fatalf("current catalog after set_catalog: %v, %v", cur, err)
	}
	v2 := cur.Hash()
	r2 := fsmReservation(t, v2, "v2-year", "RS", "RS", "2022", 500_000)
	p2 := fixtureRelease(t, aggregate.CatalogV2(), r2.Reservation, fsmKey("RS"), 5)
	// A release under the old catalog is still admitted after the switch.
	r1 := fsmReservation(t, b.cat, "v1-late", "RS", "RS", "2024-Q3", 100_000)
	p1 := fsmRelease(t, r1.Reservation, "RS", 6)
	mustApply(t, b.f, b.log, NewReserve(r2), NewPublish(p2), NewReserve(r1), NewPublish(p1))

	// A v2 release that claims v1's shape is refused: each release is
	// validated against the catalog it names.
	bad := fsmReservation(t, v2, "v2-bad", "RS", "RS", "2021", 500_000)
	badRel := fixtureRelease(t, fixtureCatalog(t, b.cat), bad.Reservation, fsmKey("RS"), 7)
	mustApply(t, b.f, b.log, NewReserve(bad))
	if res := applyAll(t, b.f, b.log.add(t, NewPublish(badRel))); res[0].OK {
		t.Fatal("a release naming v2 but shaped by the v1 fixture was admitted")
	}

	var ms []aggregate.Measurement
	for _, s := range []privacy.Signed{b.p1, p2, p1} {
		for _, ir := range s.Release.Indicators {
			if ir.Name != "victims" {
				continue
			}
			for _, c := range ir.Cells {
				ms = append(ms, aggregate.Measurement{Partner: "RS", Period: s.Release.Period, Indicator: ir.Name,
					Dimensions: ir.Dimensions, Key: c.Key, Value: c.Value, Variance: 2 * c.Scale * c.Scale, ReleaseID: s.ID})
			}
		}
	}
	pts, err := aggregate.Series(ms, aggregate.SeriesQuery{Indicator: "victims"})
	if err != nil {
		t.Fatalf("combining v1 and v2 releases: %v", err)
	}
	got := map[aggregate.Period]bool{}
	for _, p := range pts {
		got[p.Period] = true
	}
	for _, per := range []string{"2022", "2024-Q1", "2024-Q3"} {
		if !got[period(t, per)] {
			t.Errorf("no victims point for %s in %v", per, got)
		}
	}
}
