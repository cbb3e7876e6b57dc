package aggregate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
