package cluster

import (
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// Content checks of reservations and releases on apply (DESIGN.md,
// "Validation on apply"). A signature proves who sent an entry, not that
// it is well formed: a partner's key can sign anything. So every node
// checks, before the first write, that a release is exactly what its
// catalog and its reservation allow (privacy.Validator: indicators,
// dimensions, cell keys and counts, mechanism, scales, intervals, spend),
// and that a reservation names indicators a release could match. All of
// it is a pure function of the entry and the stored catalog and
// reservation, so every node reaches the same verdict.

// validator returns the release validator of a stored catalog version,
// built once per catalog for the life of the FSM (70 µs for catalog v1,
// against 3 µs to validate one of its releases). Catalogs are addressed by
// their content, so one built earlier can never be stale; the catalog must
// still be stored in this ledger for a release to name it.
func (c *batchCache) validator(tx *bbolt.Tx, hash string) (*privacy.Validator, error) {
	if bucket(tx, bucketCatalogs).Get([]byte(hash)) == nil {
		return nil, refuse("unknown catalog %s", hash)
	}
	if v, ok := c.validators.Load(hash); ok {
		return v.(*privacy.Validator), nil
	}
	cat, err := c.catalog(tx, hash)
	if err != nil {
		return nil, err
	}
	v, err := privacy.NewValidator(cat)
	if err != nil {
		// The ledger admits only valid catalogs: a stored one that is not
		// is a corrupt file, not a property of the entry.
		return nil, refuse("catalog %s cannot check releases: %v", hash, err)
	}
	c.validators.Store(hash, v)
	return v, nil
}

// checkConsortium refuses a reservation or release signed for another
// consortium than this ledger's (the genesis hash stored at genesis). The
// id is signed content, so an entry validly signed by a partner for
// consortium A, replayed into consortium B where the same partner holds
// the same key, is refused here rather than admitted on its signature.
func checkConsortium(tx *bbolt.Tx, kind, id, consortium string) error {
	ours := string(bucket(tx, bucketMeta).Get([]byte(keyConsortiumID)))
	if consortium != ours {
		return refuse("%s %s is signed for consortium %q, this ledger is consortium %s", kind, id, consortium, ours)
	}
	return nil
}

// checkReservationContent refuses a reservation no release could match:
// its indicators must be the catalog's, each once, in the catalog's order
// (the order of a release's indicators), and its spend one a release may
// have.
func checkReservationContent(cat *aggregate.Catalog, hash string, r *privacy.Reservation) error {
	if len(r.Indicators) == 0 {
		return refuse("no indicators: a release must publish at least one")
	}
	next := 0
	for _, n := range r.Indicators {
		pos := slices.IndexFunc(cat.Indicators, func(ind aggregate.Indicator) bool { return ind.Name == n })
		switch {
		case pos < 0:
			return refuse("indicator %q is not in catalog %s", n, hash)
		case pos < next:
			return refuse("indicator %q is listed twice or out of the catalog's order", n)
		}
		next = pos + 1
	}
	if r.SpendMicro > privacy.MaxSpendMicro {
		return refuse("reservation %s spends %d micro; a release may spend at most %d", r.ID, r.SpendMicro, int64(privacy.MaxSpendMicro))
	}
	return nil
}

// checkReleaseContent refuses a release that is not exactly what its
// catalog allows (privacy.Validator).
func checkReleaseContent(v *privacy.Validator, s *privacy.Signed) error {
	if err := v.Validate(&s.Release); err != nil {
		return refuse("release %s does not match catalog %s: %v", s.ID, v.CatalogHash(), err)
	}
	return nil
}

// matchReservation checks that a release is what its reservation paid for:
// same partner, period, accounting, spend, catalog, and the same
// indicators in the same order.
func matchReservation(s *privacy.Signed, rec reservationRecord) error {
	rel, res := &s.Release, &rec.Reservation.Reservation
	if res.Partner != rel.Partner {
		return refuse("reservation %s belongs to partner %s, not %s", res.ID, res.Partner, rel.Partner)
	}
	if rec.Release != "" {
		return refuse("reservation %s was already used by release %s", res.ID, rec.Release)
	}
	names := make([]string, len(rel.Indicators))
	for i, ind := range rel.Indicators {
		names[i] = ind.Name
	}
	switch {
	case rel.Period != res.Period:
		return refuse("release does not match reservation %s: period %s, reserved %s", res.ID, rel.Period, res.Period)
	case rel.Accounting != res.Accounting:
		return refuse("release does not match reservation %s: accounting %q, reserved %s", res.ID, rel.Accounting, res.Accounting)
	case rel.SpendMicro != res.SpendMicro:
		return refuse("release does not match reservation %s: spends %d micro, reserved %d", res.ID, rel.SpendMicro, res.SpendMicro)
	case rel.CatalogHash != res.CatalogHash:
		return refuse("release does not match reservation %s: catalog %s, reserved %s", res.ID, rel.CatalogHash, res.CatalogHash)
	case !slices.Equal(names, res.Indicators):
		return refuse("release does not match reservation %s: indicators %q, reserved [%s]", res.ID, names, strings.Join(res.Indicators, " "))
	}
	return nil
}
