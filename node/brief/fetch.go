package brief

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Getter reads one path of a node's public API (e.g. "/v1/series?…") and
// returns the JSON body of a 200 answer; any other answer is an error.
// The CLI implements it over HTTP, the node's own /v1/brief route by
// calling its read handlers in-process, so both see the same bytes.
type Getter func(ctx context.Context, path string) ([]byte, error)

// Fetch reads everything the brief for year shows from the public API and
// nothing else: the catalog, the partners, the regional and national
// yearly series of victims, the year's corridors and forms of
// exploitation, the budget, the checkpoint and the releases the year's
// figures rest on. It fails if the year has no published data, or if a
// release the figures use is not yet covered by the signed checkpoint (a
// brief must be checkable by anyone). Reads that straddle a new release
// are retried, so every figure comes from the same ledger state.
func Fetch(ctx context.Context, get Getter, year int) (*Data, error) {
	if year < 1900 || year > 9999 {
		return nil, fmt.Errorf("year %d: want a year like 2024", year)
	}
	var err error
	for range 3 {
		var d *Data
		d, err = fetchOnce(ctx, get, year)
		if !errors.Is(err, errMoved) {
			return d, err
		}
	}
	return nil, err
}

// ErrNoData: nothing is published for the year the brief is asked for.
var ErrNoData = errors.New("no published data")

// errMoved: the ledger moved on while the brief was being read.
var errMoved = errors.New("the ledger changed while the brief was read")

func fetchOnce(ctx context.Context, get Getter, year int) (*Data, error) {
	d := &Data{Year: year}
	var cat struct {
		Catalog struct {
			Indicators []struct {
				Name       string `json:"name"`
				Kind       string `json:"kind"`
				Dimensions []struct {
					Name string   `json:"name"`
					Keys []string `json:"keys"`
				} `json:"dimensions"`
			} `json:"indicators"`
		} `json:"catalog"`
	}
	if err := getJSON(ctx, get, "/v1/catalog", &cat); err != nil {
		return nil, err
	}
	var cl struct {
		Consortium   string   `json:"consortium"`
		ConsortiumID string   `json:"consortium_id"`
		Partners     []string `json:"partners"`
	}
	if err := getJSON(ctx, get, "/v1/cluster", &cl); err != nil {
		return nil, err
	}
	d.Consortium, d.ConsortiumID, d.Partners = cl.Consortium, cl.ConsortiumID, cl.Partners
	y := strconv.Itoa(year)

	region, idx, err := series(ctx, get, url.Values{"indicator": {"victims"}, "rollup": {"year,region"}})
	if err != nil {
		return nil, err
	}
	d.Region = region
	if !slices.ContainsFunc(region, func(p Point) bool { return p.Period == y }) {
		years := make([]string, len(region))
		for i, p := range region {
			years[i] = p.Period
		}
		return nil, fmt.Errorf("%w: no published victims for %d; years with data: %s", ErrNoData, year, strings.Join(years, ", "))
	}
	countries, idx2, err := series(ctx, get, url.Values{"indicator": {"victims"}, "rollup": {"year"}})
	if err != nil {
		return nil, err
	}
	if idx2 != idx {
		return nil, errMoved
	}
	for _, partner := range d.Partners {
		var pts []Point
		for _, p := range countries {
			if p.Partner == partner {
				pts = append(pts, p)
			}
		}
		d.Countries = append(d.Countries, Country{Code: partner, Points: pts})
	}
	for _, t := range []struct {
		indicator string
		into      *Table
	}{{"corridors", &d.Corridors}, {"exploitation", &d.Forms}} {
		for _, ind := range cat.Catalog.Indicators {
			if ind.Name != t.indicator || len(ind.Dimensions) != 2 {
				continue
			}
			rows, cols := ind.Dimensions[0], ind.Dimensions[1]
			pts, i, err := series(ctx, get, url.Values{"indicator": {ind.Name}, "by": {rows.Name + "," + cols.Name},
				"rollup": {"year,region"}, "from": {y}, "to": {y}})
			if err != nil {
				return nil, err
			}
			if i != idx {
				return nil, errMoved
			}
			*t.into = Table{Indicator: ind.Name, RowDim: rows.Name, ColDim: cols.Name, Rows: rows.Keys, Cols: cols.Keys, Cells: pts}
		}
	}
	if err := getJSON(ctx, get, "/v1/budget", &d.Budget); err != nil {
		return nil, err
	}
	if err := getJSON(ctx, get, "/v1/checkpoint", &d.Checkpoint); err != nil {
		return nil, err
	}
	return d, fetchReleases(ctx, get, d)
}

// fetchReleases reads the releases the year's figures rest on and counts
// those of other years; every one must be inside the checkpoint.
func fetchReleases(ctx context.Context, get Getter, d *Data) error {
	y := strconv.Itoa(d.Year)
	all, ofYear := map[string]bool{}, map[string]bool{}
	add := func(pts []Point, year bool) {
		for _, p := range pts {
			for _, id := range p.ReleaseIDs {
				all[id] = true
				if year && p.Period == y {
					ofYear[id] = true
				}
			}
		}
	}
	add(d.Region, true)
	for _, c := range d.Countries {
		add(c.Points, true)
	}
	add(d.Corridors.Cells, true)
	add(d.Forms.Cells, true)
	for _, id := range slices.Sorted(maps.Keys(ofYear)) {
		if len(id) != 64 || !isHex(id) {
			return fmt.Errorf("series names release %q, which is not a release id", id)
		}
		var r struct {
			Signed struct {
				ID      string `json:"id"`
				Release struct {
					Partner    string `json:"partner"`
					Period     string `json:"period"`
					Accounting string `json:"accounting"`
					SpendMicro int64  `json:"spend_micro"`
				} `json:"release"`
			} `json:"signed"`
			Leaf int64 `json:"leaf"`
		}
		if err := getJSON(ctx, get, "/v1/releases/"+id, &r); err != nil {
			return err
		}
		if r.Leaf >= d.Checkpoint.Size {
			return fmt.Errorf("%w: release %s… (leaf %d) is not yet in a signed checkpoint (size %d)", errMoved, id[:16], r.Leaf, d.Checkpoint.Size)
		}
		d.Releases = append(d.Releases, Release{ID: r.Signed.ID, Partner: r.Signed.Release.Partner, Period: r.Signed.Release.Period,
			Leaf: r.Leaf, Accounting: r.Signed.Release.Accounting, SpendMicro: r.Signed.Release.SpendMicro})
	}
	slices.SortFunc(d.Releases, func(a, b Release) int { return int(a.Leaf - b.Leaf) })
	d.EarlierReleases = len(all) - len(ofYear)
	return nil
}

func series(ctx context.Context, get Getter, q url.Values) ([]Point, uint64, error) {
	var res struct {
		AppliedIndex uint64 `json:"applied_index"`
		Series       []struct {
			Points []Point `json:"points"`
		} `json:"series"`
	}
	if err := getJSON(ctx, get, "/v1/series?"+q.Encode(), &res); err != nil {
		return nil, 0, err
	}
	if len(res.Series) != 1 {
		return nil, 0, fmt.Errorf("/v1/series?%s: %d series, want 1", q.Encode(), len(res.Series))
	}
	return res.Series[0].Points, res.AppliedIndex, nil
}

func getJSON(ctx context.Context, get Getter, path string, out any) error {
	b, err := get(ctx, path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
