package aggregate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCatalogV1IsValid(t *testing.T) {
	c := CatalogV1()
	if err := c.Validate(); err != nil {
		t.Fatalf("CatalogV1 does not validate: %v", err)
	}
	want := map[string]struct {
		kind  string
		k     int
		cells []int // cells per measurement
	}{
		"victims":          {KindCount, 1, []int{48, 1, 4, 6, 2}},
		"exploitation":     {KindCount, 3, []int{24}},
		"citizenship":      {KindCount, 1, []int{48}},
		"corridors":        {KindCount, 1, []int{108}},
		"referral_source":  {KindCount, 1, []int{8}},
		"migration":        {KindCount, 1, []int{10}},
		"services":         {KindCount, 8, []int{8}},
		"means_of_control": {KindCount, 3, []int{8}},
		"recruitment":      {KindCount, 1, []int{45}},
		"age":              {KindQuantiles, 1, []int{0}},
	}
	if len(c.Indicators) != len(want) {
		t.Fatalf("got %d indicators, want %d", len(c.Indicators), len(want))
	}
	for i := range c.Indicators {
		ind := &c.Indicators[i]
		w, ok := want[ind.Name]
		if !ok {
			t.Errorf("unexpected indicator %q", ind.Name)
			continue
		}
		if ind.Kind != w.kind || ind.K != w.k || ind.NumMeasurements() != len(w.cells) {
			t.Errorf("%s: kind %s k %d measurements %d, want %s %d %d", ind.Name, ind.Kind, ind.K, ind.NumMeasurements(), w.kind, w.k, len(w.cells))
			continue
		}
		sum := 0.0
		for m := range w.cells {
			tb, _ := newTable(ind, Period{2024, 1}, m)
			if tb.NumCells() != w.cells[m] {
				t.Errorf("%s measurement %d: %d cells, want %d", ind.Name, m, tb.NumCells(), w.cells[m])
			}
			sum += ind.Share(m)
		}
		if sum < 1-1e-12 || sum > 1+1e-12 {
			t.Errorf("%s: shares sum to %v", ind.Name, sum)
		}
	}
	age, _ := c.Indicator("age")
	if age.Lower != 0 || age.Upper != 90 || len(age.Ranks) != 3 || age.Ranks[1] != 0.5 {
		t.Errorf("age bounds/ranks = %v %v %v", age.Lower, age.Upper, age.Ranks)
	}
}

func TestCatalogV1Hash(t *testing.T) {
	golden := filepath.Join("testdata", "catalog_v1.sha256")
	got := CatalogV1().Hash()
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden hash (UPDATE_GOLDEN=1 writes it): %v", err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("CatalogV1 hash = %s, golden %s: v1 changed; a changed catalog is a new version", got, want)
	}
	if again := CatalogV1().Hash(); again != got {
		t.Fatalf("hash not stable across calls: %s vs %s", again, got)
	}

	// Any change anywhere must change the hash.
	changes := map[string]func(c *Catalog){
		"version":     func(c *Catalog) { c.Version = 2 },
		"title":       func(c *Catalog) { c.Indicators[0].Title += "." },
		"key order":   func(c *Catalog) { k := c.Indicators[0].Dimensions[1].Keys; k[0], k[1] = k[1], k[0] },
		"k":           func(c *Catalog) { c.Indicators[1].K = 2 },
		"weight":      func(c *Catalog) { c.Indicators[2].Weight = 2 },
		"margin":      func(c *Catalog) { c.Indicators[0].Margins = c.Indicators[0].Margins[:3] },
		"share":       func(c *Catalog) { c.Indicators[0].Shares[0] = 0.5 },
		"upper bound": func(c *Catalog) { c.Indicators[9].Upper = 100 },
		"rank":        func(c *Catalog) { c.Indicators[9].Ranks[0] = 0.2 },
		"indicator order": func(c *Catalog) {
			c.Indicators[0], c.Indicators[1] = c.Indicators[1], c.Indicators[0]
		},
	}
	for name, change := range changes {
		c := CatalogV1()
		change(c)
		if c.Hash() == got {
			t.Errorf("changing the %s left the hash unchanged", name)
		}
	}
}

func TestParseCatalogRoundTrip(t *testing.T) {
	c := CatalogV1()
	b, err := c.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseCatalog(b)
	if err != nil {
		t.Fatalf("ParseCatalog(canonical v1): %v", err)
	}
	if p.Hash() != c.Hash() {
		t.Fatalf("round trip changed the hash")
	}
	fixture, err := os.ReadFile(filepath.Join("testdata", "catalog_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseCatalog(fixture)
	if err != nil {
		t.Fatalf("ParseCatalog(testdata/catalog_v1.json): %v", err)
	}
	if f.Hash() != c.Hash() {
		t.Fatalf("testdata/catalog_v1.json differs from CatalogV1()")
	}
}

func TestParseCatalogRejects(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *Catalog)
		want   string
	}{
		{"no version", func(c *Catalog) { c.Version = 0 }, "version"},
		{"duplicate indicator", func(c *Catalog) { c.Indicators[1].Name = "victims" }, `"victims" appears twice`},
		{"empty name", func(c *Catalog) { c.Indicators[1].Name = "" }, "has no name"},
		{"bad kind", func(c *Catalog) { c.Indicators[1].Kind = "sum" }, `kind "sum"`},
		{"k zero", func(c *Catalog) { c.Indicators[1].K = 0 }, "k must be ≥ 1"},
		{"k without multi", func(c *Catalog) { c.Indicators[0].K = 2 }, "k must be 1 without"},
		{"k too big", func(c *Catalog) { c.Indicators[1].K = 9 }, "exceeds the 8 keys"},
		{"duplicate key", func(c *Catalog) { c.Indicators[0].Dimensions[1].Keys[1] = "female" }, `key "female" appears twice`},
		{"empty key", func(c *Catalog) { c.Indicators[0].Dimensions[1].Keys[1] = "" }, "empty key"},
		{"missing key", func(c *Catalog) {
			d := &c.Indicators[0].Dimensions[1]
			d.Keys = d.Keys[:3]
		}, `key "unknown" is missing`},
		{"unknown key", func(c *Catalog) { c.Indicators[0].Dimensions[1].Keys[1] = "men" }, `key "men" is not one of`},
		{"star key", func(c *Catalog) { c.Indicators[0].Dimensions[1].Keys[1] = "*" }, "reserved"},
		{"unknown dimension", func(c *Catalog) { c.Indicators[0].Dimensions[1].Name = "gender" }, `dimension "gender" is not one`},
		{"duplicate dimension", func(c *Catalog) { c.Indicators[0].Dimensions[2] = c.Indicators[0].Dimensions[1] }, "appears twice"},
		{"multi flag", func(c *Catalog) { c.Indicators[1].Dimensions[0].Multi = false }, "multi must be true"},
		{"margin names nothing", func(c *Catalog) { c.Indicators[0].Margins[1] = []string{"gender"} }, `keeps "gender"`},
		{"margin order", func(c *Catalog) { c.Indicators[0].Margins[1] = []string{"sex", "status"} }, "indicator's order"},
		{"margin is full", func(c *Catalog) { c.Indicators[0].Margins[1] = []string{"status", "sex", "age_group"} }, "full table"},
		{"margin repeated", func(c *Catalog) { c.Indicators[0].Margins[2] = []string{"sex"} }, "repeats"},
		{"margin sums out multi", func(c *Catalog) { c.Indicators[1].Margins = [][]string{{"age_class"}} }, "multi-valued"},
		{"shares length", func(c *Catalog) { c.Indicators[0].Shares = []float64{0.5, 0.5} }, "shares has 2"},
		{"shares sum", func(c *Catalog) { c.Indicators[0].Shares[0] = 0.7 }, "sum to"},
		{"negative share", func(c *Catalog) { c.Indicators[0].Shares = []float64{1.2, -0.05, -0.05, -0.05, -0.05} }, "positive"},
		{"negative weight", func(c *Catalog) { c.Indicators[0].Weight = -1 }, "weight"},
		{"bounds reversed", func(c *Catalog) { c.Indicators[9].Lower, c.Indicators[9].Upper = 90, 0 }, "lower < upper"},
		{"bounds too wide", func(c *Catalog) { c.Indicators[9].Upper = 200 }, "within 0–120"},
		{"rank out of range", func(c *Catalog) { c.Indicators[9].Ranks[2] = 1 }, "strictly between"},
		{"ranks unsorted", func(c *Catalog) { c.Indicators[9].Ranks[0] = 0.6 }, "strictly increasing"},
		{"no ranks", func(c *Catalog) { c.Indicators[9].Ranks = nil }, "at least one"},
		{"quantile value", func(c *Catalog) { c.Indicators[9].Value = "height" }, `value "height"`},
		{"quantile with dims", func(c *Catalog) { c.Indicators[9].Dimensions = c.Indicators[0].Dimensions }, "no dimensions"},
		{"count with ranks", func(c *Catalog) { c.Indicators[0].Ranks = []float64{0.5} }, "quantile indicators only"},
		{"no indicators", func(c *Catalog) { c.Indicators = nil }, "no indicators"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := CatalogV1()
			tc.change(c)
			b, err := c.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseCatalog(b)
			if err == nil {
				t.Fatalf("ParseCatalog accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	for _, bad := range []string{`{`, `{"version":1,"indicators":[],"extra":1}`, `{"version":1} {}`, `[]`} {
		if _, err := ParseCatalog([]byte(bad)); err == nil {
			t.Errorf("ParseCatalog(%s) accepted it", bad)
		}
	}
}

func TestCountryGroups(t *testing.T) {
	cases := []struct {
		c           Country
		citizenship string
		exploited   string
	}{
		{"XK", "XK", "XK"}, // never folded into RS
		{"RS", "RS", "RS"},
		{"AL", "AL", "AL"},
		{"DE", "other_europe", "other_europe"},
		{"TR", "other_europe", "other_europe"},
		{"SY", "middle_east", keyOther},
		{"AF", "asia", keyOther},
		{"AU", "asia", keyOther},
		{"NG", "africa", keyOther},
		{"EG", "africa", keyOther},
		{"US", "americas", keyOther},
		{CountryUnknown, keyUnknown, keyUnknown},
	}
	for _, tc := range cases {
		if got := citizenshipKeys[citizenshipGroup(tc.c)]; got != tc.citizenship {
			t.Errorf("citizenship group of %q = %s, want %s", tc.c, got, tc.citizenship)
		}
		if got := exploitedInKeys[exploitedInGroup(tc.c)]; got != tc.exploited {
			t.Errorf("exploitation group of %q = %s, want %s", tc.c, got, tc.exploited)
		}
	}
	// Every code in a group list is a real code and in one list only.
	seen := map[string]string{}
	for name, list := range map[string]string{"europe": otherEuropeCodes, "middle_east": middleEastCodes, "africa": africaCodes, "americas": americasCodes} {
		for _, code := range strings.Fields(list) {
			if !knownCountry(code) {
				t.Errorf("%s lists unknown code %s", name, code)
			}
			if prev, ok := seen[code]; ok {
				t.Errorf("%s is in %s and %s", code, prev, name)
			}
			seen[code] = name
		}
	}
}

func TestFormMask(t *testing.T) {
	L := func(ls ...LabourType) (s Set[LabourType]) {
		for _, l := range ls {
			s = s.With(l)
		}
		return s
	}
	F := func(fs ...Form) (s Set[Form]) {
		for _, f := range fs {
			s = s.With(f)
		}
		return s
	}
	cases := []struct {
		name   string
		forms  Set[Form]
		labour Set[LabourType]
		sexual Set[SexType]
		want   []string
	}{
		{"nothing", 0, 0, 0, nil},
		{"forced begging", F(ForcedBegging), 0, 0, []string{"begging"}},
		{"labour type begging", F(ForcedLabour), L(Begging), 0, []string{"begging"}},
		{"begging and agriculture", F(ForcedLabour), L(Begging, Agriculture), 0, []string{"forced_labour", "begging"}},
		{"plain forced labour", F(ForcedLabour), 0, 0, []string{"forced_labour"}},
		{"illicit activities", 0, L(IllicitActivities), 0, []string{"forced_criminality"}},
		{"domestic work", F(ForcedLabour), L(DomesticWork), 0, []string{"domestic_servitude"}},
		{"sexual type only", 0, 0, Set[SexType](0).With(Prostitution), []string{"sexual"}},
		{"military slavery other", F(ForcedMilitary, SlaveryAndPractices, FormOther), 0, 0, []string{"other"}},
		{"marriage organ", F(ForcedMarriage, OrganRemoval), 0, 0, []string{"forced_marriage", "organ_removal"}},
	}
	for _, tc := range cases {
		m := formMask(tc.forms, tc.labour, tc.sexual)
		var got []string
		for i, k := range formKeys {
			if m&(1<<i) != 0 {
				got = append(got, k)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: forms %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestControlGroupsCoverHTCDS(t *testing.T) {
	counts := make([]int, len(controlKeys))
	for c := Control(0); int(c) < len(controlVocab.names); c++ {
		counts[controlGroupOf(c)]++
	}
	for i, n := range counts {
		if n == 0 {
			t.Errorf("control group %s has no HTCDS method", controlKeys[i])
		}
	}
}

// TestCaseSchemaDoc keeps docs/case-schema.md complete: every column, every
// vocabulary value and every catalog key must appear in it (as `code`).
func TestCaseSchemaDoc(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "case-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, col := range Columns {
		if !strings.Contains(doc, "| `"+col+"` |") {
			t.Errorf("column %s has no row in docs/case-schema.md", col)
		}
		for _, v := range Vocabulary(col) {
			if !strings.Contains(doc, "`"+v+"`") {
				t.Errorf("value %s of %s is not in docs/case-schema.md", v, col)
			}
		}
	}
	for _, ind := range append(CatalogV1().Indicators, CatalogV2().Indicators...) {
		for _, d := range ind.Dimensions {
			if !strings.Contains(doc, "`"+d.Name+"`") {
				t.Errorf("dimension %s is not in docs/case-schema.md", d.Name)
			}
			for _, k := range d.Keys {
				if !strings.Contains(doc, k) {
					t.Errorf("key %s of %s is not in docs/case-schema.md", k, d.Name)
				}
			}
		}
	}
}

// FuzzParseCatalog: no input panics, and whatever is accepted validates and
// survives a canonical round trip with the same hash.
func FuzzParseCatalog(f *testing.F) {
	v1, err := CatalogV1().Canonical()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v1)
	f.Add([]byte(`{"version":1,"indicators":[{"name":"x","kind":"count","k":1,"dimensions":[{"name":"status","keys":["identified","presumed"]}]}]}`))
	f.Add([]byte(`{"version":1,"indicators":[{"name":"a","kind":"quantiles","k":1,"value":"age","lower":0,"upper":90,"ranks":[0.5]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalog(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted catalog does not validate: %v", err)
		}
		canon, err := c.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseCatalog(canon)
		if err != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		if again.Hash() != c.Hash() {
			t.Fatalf("hash changed in a round trip")
		}
	})
}

func TestKnownDimensionsAgree(t *testing.T) {
	for _, name := range strings.Split(knownDims, ", ") {
		spec, ok := lookupDim(name)
		if !ok || dimID(name) < 0 {
			t.Errorf("dimension %s listed as known but lookupDim %v, dimID %d", name, ok, dimID(name))
		}
		if len(spec.keys) > 32 {
			t.Errorf("dimension %s has %d keys; the multi-valued masks hold 32", name, len(spec.keys))
		}
	}
	if n := len(strings.Split(knownDims, ", ")); n != numDims {
		t.Errorf("knownDims lists %d dimensions, the tabulator computes %d", n, numDims)
	}
}
