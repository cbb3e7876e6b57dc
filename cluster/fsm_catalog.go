package cluster

import (
	"roundtable/aggregate"
)

// parseCatalog decodes and validates a catalog sent to the ledger with
// aggregate.ParseCatalog, the one definition of a valid catalog, and
// returns it with its canonical encoding, which is what the ledger stores
// and what its hash (the id every release names) is computed over. Any
// problem is a refusal: a catalog some node could not tabulate must never
// become current.
func parseCatalog(raw []byte) (*aggregate.Catalog, []byte, error) {
	c, err := aggregate.ParseCatalog(raw)
	if err != nil {
		return nil, nil, refuse("%v", err)
	}
	canon, err := c.Canonical()
	if err != nil {
		return nil, nil, refuse("catalog: %v", err)
	}
	return c, canon, nil
}
