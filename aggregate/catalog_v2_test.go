package aggregate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCatalogV2Shape(t *testing.T) {
	c := CatalogV2()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Version != 2 {
		t.Errorf("version %d, want 2", c.Version)
	}
	if _, ok := c.Indicator("age"); ok {
		t.Error("v2 still has the age quartiles")
	}
	v, _ := c.Indicator("victims")
	if d, ok := v.Dimension("age_group"); !ok || len(d.Keys) != 6 {
		t.Error("victims lost its age groups")
	}
	x, _ := c.Indicator("exploitation")
	if x.K != 1 || x.Dimensions[0].Name != "exploitation_form" || x.Dimensions[0].Multi {
		t.Errorf("exploitation: k %d, first dimension %+v; want k = 1 over single-valued exploitation_form", x.K, x.Dimensions[0])
	}
	if !slices.Contains(x.Dimensions[0].Keys, "several") {
		t.Error(`exploitation_form has no "several" key`)
	}
	sum := 0.0
	for _, ind := range c.Indicators {
		sum += ind.Weight
	}
	if sum < 0.9999999 || sum > 1.0000001 {
		t.Errorf("v2 weights sum to %v; they are fractions of a release and should sum to 1", sum)
	}
	if CatalogV2().Hash() == CatalogV1().Hash() {
		t.Error("v2 has v1's hash")
	}
}

// TestCatalogV2Hash pins v2 like v1: any change must be a new version.
func TestCatalogV2Hash(t *testing.T) {
	golden := filepath.Join("testdata", "catalog_v2.sha256")
	got := CatalogV2().Hash()
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		b, err := CatalogV2().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "catalog_v2.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden hash (UPDATE_GOLDEN=1 writes it): %v", err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("CatalogV2 hash = %s, golden %s: v2 changed; a changed catalog is a new version", got, want)
	}
	fixture, err := os.ReadFile(filepath.Join("testdata", "catalog_v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseCatalog(fixture)
	if err != nil {
		t.Fatalf("ParseCatalog(testdata/catalog_v2.json): %v", err)
	}
	if f.Hash() != got {
		t.Fatal("testdata/catalog_v2.json differs from CatalogV2()")
	}
}

// Under v2 a person is in exactly one exploitation cell: the one form,
// "several", or "unknown"; the table's L0 is 1.
func TestTabulateV2ExploitationForm(t *testing.T) {
	cases := []Case{
		mk("c1", "P1", 2024, time.January, 1, withForms(ForcedBegging), withAge(10)),
		mk("c2", "P2", 2024, time.January, 2, withForms(ForcedBegging, SexualExploitation), withAge(30)),
		mk("c3", "P3", 2024, time.January, 3, withAge(40)),
		// One form per case, two over the year: several.
		mk("c4", "P4", 2024, time.January, 4, withForms(ForcedMarriage), withAge(16)),
		mk("c5", "P4", 2024, time.February, 4, withForms(OrganRemoval)),
	}
	p, _ := ParsePeriod("2024")
	tables, err := Tabulate(context.Background(), CatalogV2(), p, []string{"exploitation"}, over(cases))
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]int64{
		{"begging", "child"}: 1, {"several", "adult"}: 1, {"unknown", "adult"}: 1, {"several", "child"}: 1,
	}
	var n int64
	for _, tb := range tables {
		if tb.L0() != 1 {
			t.Errorf("L0 = %d, want 1", tb.L0())
		}
		for i := 0; i < tb.NumCells(); i++ {
			k := tb.Key(i)
			if got := tb.Count(i); got != want[[2]string{k[0], k[1]}] {
				t.Errorf("cell %v = %d, want %d", k, got, want[[2]string{k[0], k[1]}])
			}
			n += tb.Count(i)
		}
	}
	if n != 4 {
		t.Errorf("%d people counted, want 4 (each once)", n)
	}
}
