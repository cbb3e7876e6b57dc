package aggregate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Kinds of indicator.
const (
	KindCount     = "count"     // person counts per cell over public key sets
	KindQuantiles = "quantiles" // bounded quantiles of a numeric value
)

// Catalog is a version of the regional indicator catalog. The consortium
// sets it in the ledger, so every node computes the same tables with the
// same bins; its hash identifies the version in every release.
type Catalog struct {
	Version    int         `json:"version"`
	Indicators []Indicator `json:"indicators"`
}

// Indicator is one published table.
type Indicator struct {
	Name       string      `json:"name"`
	Title      string      `json:"title"`
	Kind       string      `json:"kind"`
	Dimensions []Dimension `json:"dimensions,omitempty"`
	// K bounds how many cells of this indicator one person contributes to
	// (1 unless a dimension is multi-valued). It is the L0 sensitivity.
	K int `json:"k"`
	// Lower, Upper bound a numeric value (quantile indicators).
	Lower float64 `json:"lower,omitempty"`
	Upper float64 `json:"upper,omitempty"`
	// Ranks are the quantiles published (quantile indicators).
	Ranks []float64 `json:"ranks,omitempty"`
	// Weight sets this indicator's share of a release's budget (default 1).
	Weight float64 `json:"weight,omitempty"`
	// Value names the numeric attribute a quantile indicator summarises
	// ("age"); empty for count indicators.
	Value string `json:"value,omitempty"`
	// Margins are extra measurements published beside the full cross table
	// so that post-processing can make the hierarchy consistent: each margin
	// lists the dimensions it keeps (in the indicator's dimension order) and
	// sums out the others; an empty margin is the grand total.
	Margins [][]string `json:"margins,omitempty"`
	// Shares split the indicator's budget over its measurements: Shares[0]
	// is the full table's, Shares[1+i] is Margins[i]'s; they sum to 1. Empty
	// means an equal split.
	Shares []float64 `json:"shares,omitempty"`
}

// NumMeasurements is how many tables the indicator publishes: the full
// cross table and one per margin.
func (ind *Indicator) NumMeasurements() int { return 1 + len(ind.Margins) }

// Share is measurement m's share of the indicator's budget (m = 0 is the
// full table, m = 1+i is Margins[i]).
func (ind *Indicator) Share(m int) float64 {
	if len(ind.Shares) == ind.NumMeasurements() && m >= 0 && m < len(ind.Shares) {
		return ind.Shares[m]
	}
	return 1 / float64(ind.NumMeasurements())
}

// Kept lists the dimensions measurement m keeps: all of them for m = 0,
// Margins[m-1] otherwise.
func (ind *Indicator) Kept(m int) []string {
	if m == 0 {
		names := make([]string, len(ind.Dimensions))
		for i, d := range ind.Dimensions {
			names[i] = d.Name
		}
		return names
	}
	return ind.Margins[m-1]
}

// Dimension returns the named dimension, or false.
func (ind *Indicator) Dimension(name string) (*Dimension, bool) {
	for i := range ind.Dimensions {
		if ind.Dimensions[i].Name == name {
			return &ind.Dimensions[i], true
		}
	}
	return nil, false
}

// Dimension is one breakdown with its public key set.
type Dimension struct {
	Name  string   `json:"name"`
	Keys  []string `json:"keys"`
	Multi bool     `json:"multi,omitempty"` // a person may fall in several keys
}

// Canonical is the catalog's canonical JSON encoding: struct field order,
// no maps, no HTML escaping.
func (c *Catalog) Canonical() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode catalog: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Hash identifies the catalog version: hex SHA-256 of Canonical.
func (c *Catalog) Hash() string {
	b, err := c.Canonical()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Indicator returns the named indicator, or false.
func (c *Catalog) Indicator(name string) (*Indicator, bool) {
	for i := range c.Indicators {
		if c.Indicators[i].Name == name {
			return &c.Indicators[i], true
		}
	}
	return nil, false
}

// Select returns the named indicators in catalog order, the order a
// release and its reservation list them in, or every indicator when none
// is named. It refuses a name the catalog does not have, naming the ones
// it does, and a name given twice.
func (c *Catalog) Select(names []string) ([]string, error) {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if _, ok := c.Indicator(n); !ok {
			all := make([]string, len(c.Indicators))
			for i := range c.Indicators {
				all[i] = c.Indicators[i].Name
			}
			return nil, fmt.Errorf("indicator %q is not in catalog version %d; it has %s", n, c.Version, strings.Join(all, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("indicator %q is named twice", n)
		}
		seen[n] = true
	}
	var out []string
	for i := range c.Indicators {
		if len(names) == 0 || seen[c.Indicators[i].Name] {
			out = append(out, c.Indicators[i].Name)
		}
	}
	return out, nil
}
