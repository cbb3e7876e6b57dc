package cluster

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/privacy"
)

// fsmBase is a small ledger most tests start from: partners AL, BA, RS and
// MK (MK since removed; XK never registered), RS has reserved 0.8 of
// 2024-Q1 (r1, published as p1), 0.3 of 2024-Q2 (r2, unused) and 0.8 of
// 2023-Q3 (r3, unused).
type fsmBase struct {
	f          *FSM
	log        *fsmLog
	cat        string
	r1, r2, r3 privacy.SignedReservation
	p1         privacy.Signed
}

func newFSMBase(t testing.TB) *fsmBase {
	t.Helper()
	b := &fsmBase{f: newTestFSM(t), log: &fsmLog{}, cat: fsmCatalogHash(t)}
	genesis := fsmGenesis(t, "AL", "BA", "RS", "MK") // first: the reservations name its consortium
	b.r1 = fsmReservation(t, b.cat, "r1", "RS", "RS", "2024-Q1", 800_000)
	b.r2 = fsmReservation(t, b.cat, "r2", "RS", "RS", "2024-Q2", 300_000)
	b.r3 = fsmReservation(t, b.cat, "r3", "RS", "RS", "2023-Q3", 800_000)
	b.p1 = fsmRelease(t, b.r1.Reservation, "RS", 1)
	mustApply(t, b.f, b.log,
		genesis,
		govRemovePartner("MK"),
		NewReserve(b.r1), NewReserve(b.r2), NewReserve(b.r3),
		NewPublish(b.p1),
	)
	return b
}

// signed encodes a governance placeholder signed at the base's next
// sequence number.
func (b *fsmBase) signed(t testing.TB, c Command) []byte { return signedAt(t, b.f, c) }

func (b *fsmBase) cosignNote(t testing.TB, signer, origin string, tree tlog.Tree) []byte {
	t.Helper()
	s, err := NewNoteSigner(PartnerNoteName(signer), fsmKey(signer))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := SignCheckpoint(origin, tree, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestFSMRefusals(t *testing.T) {
	origin := func(t *testing.T) string { return CheckpointOrigin("western-balkans", fsmConsortium(t)) }
	tests := []struct {
		name string
		cmd  func(t *testing.T, b *fsmBase) []byte // encoded command
		want string                                // substring of the refusal
	}{
		{"unregistered partner", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "x1", "XK", "XK", "2024-Q1", 100_000)))
		}, "partner XK is not registered"},
		{"removed partner", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "x1", "MK", "MK", "2024-Q1", 100_000)))
		}, "partner MK was removed from the consortium"},
		{"reservation signed by another partner's key", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "x1", "RS", "AL", "2024-Q3", 100_000)))
		}, "signature does not verify: reservation x1 is not signed by partner RS's registered key"},
		{"release signed by another partner's key", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewPublish(fsmRelease(t, b.r2.Reservation, "AL", 2)))
		}, "signature does not verify: release"},
		{"tampered release (id mismatch)", func(t *testing.T, b *fsmBase) []byte {
			s := fsmRelease(t, b.r2.Reservation, "RS", 2)
			s.Release.Indicators[0].Cells[0].Value += 10
			return enc(t, NewPublish(s))
		}, "is not the hash of its content"},
		{"tampered release with recomputed id", func(t *testing.T, b *fsmBase) []byte {
			s := fsmRelease(t, b.r2.Reservation, "RS", 2)
			s.Release.Indicators[0].Cells[0].Value += 10
			s.ID = releaseID(t, s.Release)
			return enc(t, NewPublish(s))
		}, "signature does not verify"},
		{"unknown catalog", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, "deadbeef", "x1", "RS", "RS", "2024-Q3", 100_000)))
		}, "unknown catalog deadbeef"},
		{"over budget: quarter", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "x1", "RS", "RS", "2024-Q1", 500_000)))
		}, "over budget: 2024-Q1 has 0.200000 left of 1.000000, release needs 0.500000"},
		{"over budget: a year spends on all four quarters", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "x1", "RS", "RS", "2023", 500_000)))
		}, "over budget: 2023-Q3 has 0.200000 left of 1.000000, release needs 0.500000"},
		{"reservation reused by a different release", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewPublish(fsmRelease(t, b.r1.Reservation, "RS", 99)))
		}, "reservation r1 was already used by release"},
		{"reservation of another partner", func(t *testing.T, b *fsmBase) []byte {
			r := b.r2.Reservation
			r.Partner = "AL"
			return enc(t, NewPublish(fsmRelease(t, r, "AL", 2)))
		}, "reservation r2 belongs to partner RS, not AL"},
		{"release spends other than reserved", func(t *testing.T, b *fsmBase) []byte {
			r := b.r2.Reservation
			r.SpendMicro = 400_000
			return enc(t, NewPublish(fsmRelease(t, r, "RS", 2)))
		}, "release does not match reservation r2: spends 400000 micro, reserved 300000"},
		{"release for another period than reserved", func(t *testing.T, b *fsmBase) []byte {
			r := b.r2.Reservation
			r.Period = period(t, "2024-Q4")
			return enc(t, NewPublish(fsmRelease(t, r, "RS", 2)))
		}, "period 2024-Q4, reserved 2024-Q2"},
		{"release without reservation", func(t *testing.T, b *fsmBase) []byte {
			r := b.r2.Reservation
			r.ID = "nope"
			return enc(t, NewPublish(fsmRelease(t, r, "RS", 2)))
		}, `reservation "nope" does not exist`},
		{"unsupported release format", func(t *testing.T, b *fsmBase) []byte {
			s := fsmRelease(t, b.r2.Reservation, "RS", 2)
			s.Release.Version = 1 // before releases named their consortium
			s2, err := privacy.Sign(s.Release, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			return enc(t, NewPublish(s2))
		}, "release format version 1 is not supported (this ledger accepts version 2)"},
		{"reservation id taken by a different reservation", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewReserve(fsmReservation(t, b.cat, "r2", "RS", "RS", "2024-Q2", 200_000)))
		}, "reservation id r2 is already taken"},
		{"indicator not in catalog", func(t *testing.T, b *fsmBase) []byte {
			sr := fsmReservation(t, b.cat, "x1", "RS", "RS", "2024-Q3", 100_000)
			sr.Reservation.Indicators = []string{"nope"}
			sr, err := privacy.SignReservation(sr.Reservation, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			return enc(t, NewReserve(sr))
		}, `indicator "nope" is not in catalog`},
		{"wrong accounting", func(t *testing.T, b *fsmBase) []byte {
			sr := fsmReservation(t, b.cat, "x1", "RS", "RS", "2024-Q3", 100_000)
			sr.Reservation.Accounting = privacy.ZCDP
			sr, err := privacy.SignReservation(sr.Reservation, fsmKey("RS"))
			if err != nil {
				t.Fatal(err)
			}
			return enc(t, NewReserve(sr))
		}, "release uses zcdp accounting but the consortium's policy is pure"},
		{"unknown command type", func(t *testing.T, b *fsmBase) []byte {
			return []byte(`{"v":1,"type":"drop_ledger","cosign":{}}`)
		}, `unknown command type "drop_ledger"`},
		{"newer command version", func(t *testing.T, b *fsmBase) []byte {
			return []byte(`{"v":2,"type":"cosign","cosign":{}}`)
		}, "command version 2 is not supported"},
		{"not JSON", func(t *testing.T, b *fsmBase) []byte { return []byte("DROP TABLE") }, "decode command"},
		{"genesis twice", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, fsmGenesis(t, "XK"))
		}, `genesis already applied: this ledger belongs to consortium "western-balkans"`},
		{"partner key already registered", func(t *testing.T, b *fsmBase) []byte {
			p := fsmPartner("XK")
			p.PublicKey = fsmPartner("RS").PublicKey
			return b.signed(t, govAddPartner(p))
		}, "public key is already registered to partner RS"},
		{"partner id not a country code", func(t *testing.T, b *fsmBase) []byte {
			p := fsmPartner("XK")
			p.ID = "Serbia"
			return b.signed(t, govAddPartner(p))
		}, "must be an ISO 3166-1 alpha-2 code"},
		{"removed partner rejoining with a new key", func(t *testing.T, b *fsmBase) []byte {
			p := fsmPartner("MK")
			p.PublicKey = fsmPartner("XK").PublicKey
			return b.signed(t, govAddPartner(p))
		}, "partner MK was removed; it can rejoin only with its old key"},
		{"catalog not newer", func(t *testing.T, b *fsmBase) []byte {
			raw := strings.Replace(string(fsmCatalogJSON(t)), `"title": "Age at identification: quartiles"`, `"title": "Age"`, 1)
			return b.signed(t, govSetCatalog([]byte(raw)))
		}, "catalog version 1 is not newer than the current version 1"},
		{"catalog with a bad kind", func(t *testing.T, b *fsmBase) []byte {
			raw := strings.Replace(string(fsmCatalogJSON(t)), `"version": 1`, `"version": 2`, 1)
			raw = strings.Replace(raw, `"kind": "quantiles"`, `"kind": "bogus"`, 1)
			return b.signed(t, govSetCatalog([]byte(raw)))
		}, `kind "bogus" is not one of count, quantiles`},
		{"switch accounting after spending", func(t *testing.T, b *fsmBase) []byte {
			return b.signed(t, govSetPolicy(privacy.Policy{Accounting: privacy.ZCDP, CapMicro: privacy.Micro}))
		}, "cannot change accounting from pure to zcdp"},
		{"invalid policy", func(t *testing.T, b *fsmBase) []byte {
			return b.signed(t, govSetPolicy(privacy.Policy{Accounting: privacy.PureDP, CapMicro: -1}))
		}, "cap must be positive"},
		{"remove unknown replica", func(t *testing.T, b *fsmBase) []byte {
			return b.signed(t, govRemoveReplica("ghost"))
		}, `replica "ghost" is not registered`},
		{"remove unknown partner", func(t *testing.T, b *fsmBase) []byte {
			return b.signed(t, govRemovePartner("XK"))
		}, "partner XK is not registered"},
		{"cosign beyond the tree", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewCosign("RS", b.cosignNote(t, "RS", origin(t), tlog.Tree{N: 5})))
		}, "checkpoint size 5 is not in the ledger (it has 1 releases)"},
		{"cosign a wrong root", func(t *testing.T, b *fsmBase) []byte {
			return enc(t, NewCosign("RS", b.cosignNote(t, "RS", origin(t), tlog.Tree{N: 1, Hash: tlog.RecordHash([]byte("x"))})))
		}, "does not match the ledger's"},
		{"cosign with another partner's key", func(t *testing.T, b *fsmBase) []byte {
			th, _ := b.f.TreeHead()
			return enc(t, NewCosign("RS", b.cosignNote(t, "AL", origin(t), th)))
		}, "signature does not verify: checkpoint is not signed by partner RS's registered key"},
		{"cosign another ledger's checkpoint", func(t *testing.T, b *fsmBase) []byte {
			th, _ := b.f.TreeHead()
			return enc(t, NewCosign("RS", b.cosignNote(t, "RS", CheckpointOrigin("elsewhere", fsmConsortium(t)), th)))
		}, `checkpoint is for "roundtable/elsewhere/`},
		{"cosign a checkpoint of another consortium of the same name", func(t *testing.T, b *fsmBase) []byte {
			th, _ := b.f.TreeHead()
			return enc(t, NewCosign("RS", b.cosignNote(t, "RS", CheckpointOrigin("western-balkans", strings.Repeat("0", 64)), th)))
		}, `checkpoint is for "roundtable/western-balkans/0000000000000000`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFSMBase(t)
			before := stateHash(t, b.f)
			data := tc.cmd(t, b)
			res := applyAll(t, b.f, []*raft.Log{b.log.raw(data)})[0]
			if res.OK || res.Existing {
				t.Fatalf("admitted (%+v), want refusal containing %q", res, tc.want)
			}
			if !strings.Contains(res.Refusal, tc.want) {
				t.Errorf("refusal %q, want it to contain %q", res.Refusal, tc.want)
			}
			if res.Index != b.log.next {
				t.Errorf("result index %d, want %d", res.Index, b.log.next)
			}
			if after := stateHash(t, b.f); after != before {
				t.Errorf("a refusal changed the state")
			}
			if got := b.f.AppliedIndex(); got != b.log.next {
				t.Errorf("applied index %d after a refusal, want %d", got, b.log.next)
			}
		})
	}
}

func enc(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func releaseID(t *testing.T, r privacy.Release) string {
	t.Helper()
	body, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func TestFSMBeforeGenesis(t *testing.T) {
	f := newTestFSM(t)
	l := &fsmLog{}
	res := applyAll(t, f, l.add(t, govAddReplica("r1")))[0]
	if res.OK || !strings.Contains(res.Refusal, "genesis must come first") {
		t.Fatalf("got %+v, want refusal before genesis", res)
	}
	if _, err := f.Consortium(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Consortium before genesis: %v, want ErrNotFound", err)
	}
	// A one-partner consortium cannot lose its last partner.
	mustApply(t, f, l, fsmGenesis(t, "RS"))
	res = applyAll(t, f, l.add(t, govRemovePartner("RS")))[0]
	if res.OK || !strings.Contains(res.Refusal, "last voting partner") {
		t.Fatalf("got %+v, want refusal to remove the last partner", res)
	}
}

func TestFSMIdempotent(t *testing.T) {
	b := newFSMBase(t)
	before := stateHash(t, b.f)
	head, _ := b.f.TreeHead()
	tests := []struct {
		name string
		cmd  Command
		want ApplyResult // Index is ignored
	}{
		{"replayed release", NewPublish(b.p1), ApplyResult{OK: true, Existing: true, ReleaseID: b.p1.ID, Leaf: 0}},
		{"replayed reservation", NewReserve(b.r1), ApplyResult{OK: true, Existing: true,
			Spend: []privacy.QuarterSpend{{Quarter: period(t, "2024-Q1"), SpentMicro: 800_000}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := applyAll(t, b.f, b.log.add(t, tc.cmd))[0]
			res.Index = 0
			if !equalResult(res, tc.want) {
				t.Errorf("got %+v, want %+v", res, tc.want)
			}
			if stateHash(t, b.f) != before {
				t.Error("state changed")
			}
		})
	}
	if h, _ := b.f.TreeHead(); h != head {
		t.Errorf("tree head %v after replays, want %v", h, head)
	}
	// A repeated governance action changes nothing but is a new signed
	// statement: it is recorded in the history and takes the next number.
	cons, err := b.f.Consortium()
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range []Command{
		govAddPartner(fsmPartner("RS")),
		govRemovePartner("MK"),
		govSetCatalog(fsmCatalogJSON(t)),
		govSetPolicy(privacy.Policy{Accounting: privacy.PureDP, CapMicro: privacy.Micro}),
	} {
		res := applyAll(t, b.f, b.log.add(t, cmd))[0]
		if !res.OK || !res.Existing || res.Seq != cons.GovernanceSeq+uint64(i)+1 {
			t.Errorf("repeated %s: %+v, want OK, Existing, seq %d", cmd.Statement.Statement.Action.Type, res, cons.GovernanceSeq+uint64(i)+1)
		}
	}
	after, err := b.f.Consortium()
	if err != nil {
		t.Fatal(err)
	}
	after.GovernanceSeq = cons.GovernanceSeq
	if !reflect.DeepEqual(after, cons) {
		t.Errorf("repeated governance changed the consortium:\n%+v\n%+v", after, cons)
	}
	// A second release on a fresh reservation lands on the next leaf.
	p2 := fsmRelease(t, b.r2.Reservation, "RS", 2)
	res := mustApply(t, b.f, b.log, NewPublish(p2))[0]
	if res.Leaf != 1 || res.ReleaseID != p2.ID || res.Existing {
		t.Errorf("second release: %+v, want leaf 1, new", res)
	}
}

func equalResult(a, b ApplyResult) bool {
	return a.Index == b.Index && a.OK == b.OK && a.Refusal == b.Refusal && a.ReleaseID == b.ReleaseID &&
		a.Leaf == b.Leaf && a.Existing == b.Existing && slices.Equal(a.Spend, b.Spend)
}

func TestFSMPartnerLifecycle(t *testing.T) {
	b := newFSMBase(t)
	mustApply(t, b.f, b.log,
		govAddPartner(fsmPartner("XK")),
		govAddPartner(fsmPartner("MK")), // rejoins with its old key
		govAddReplica("researcher-1"),
		govAddReplica("researcher-0"),
		govRemoveReplica("researcher-1"),
	)
	c, err := b.f.Consortium()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Partners {
		got = append(got, p.ID+":"+p.Role)
	}
	want := []string{"AL:voter", "BA:voter", "MK:voter", "RS:voter", "XK:voter"}
	if !slices.Equal(got, want) {
		t.Errorf("partners %v, want %v", got, want)
	}
	if !slices.Equal(c.Replicas, []string{"researcher-0"}) {
		t.Errorf("replicas %v", c.Replicas)
	}
	if c.Name != "western-balkans" || c.CatalogHash != b.cat || c.Policy.CapMicro != privacy.Micro {
		t.Errorf("consortium %+v", c)
	}
	// XK can now reserve.
	mustApply(t, b.f, b.log, NewReserve(fsmReservation(t, b.cat, "xk1", "XK", "XK", "2024-Q1", 100_000)))
}

func TestFSMCatalogVersions(t *testing.T) {
	b := newFSMBase(t)
	v2 := strings.Replace(string(fsmCatalogJSON(t)), `"version": 1`, `"version": 2`, 1)
	mustApply(t, b.f, b.log, govSetCatalog([]byte(v2)))
	cur, raw, err := b.f.CurrentCatalog()
	if err != nil || cur.Version != 2 {
		t.Fatalf("current catalog %+v, %v", cur, err)
	}
	if cur.Hash() == b.cat || string(raw) == v2 {
		t.Error("current catalog should be v2, stored canonically (not as sent)")
	}
	// The old version stays known: releases under it still verify and a
	// reservation may still name it.
	if _, _, err := b.f.Catalog(b.cat); err != nil {
		t.Errorf("old catalog: %v", err)
	}
	if _, _, err := b.f.Catalog("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown catalog: %v, want ErrNotFound", err)
	}
	mustApply(t, b.f, b.log, NewReserve(fsmReservation(t, b.cat, "old", "RS", "RS", "2024-Q4", 100_000)))
	// Switching back to a known version is allowed.
	mustApply(t, b.f, b.log, govSetCatalog(fsmCatalogJSON(t)))
	if c, _ := b.f.Consortium(); c.CatalogHash != b.cat || len(c.Catalogs) != 2 {
		t.Errorf("after switching back: %+v", c)
	}
}

func TestFSMCheckpoints(t *testing.T) {
	b := newFSMBase(t)
	origin := CheckpointOrigin("western-balkans", fsmConsortium(t))
	mustApply(t, b.f, b.log, NewPublish(fsmRelease(t, b.r2.Reservation, "RS", 2)))
	if _, _, _, err := b.f.Checkpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Checkpoint before any cosign: %v, want ErrNotFound", err)
	}
	head, _ := b.f.TreeHead()
	old, err := b.f.ConsistencyProof(1, 2)
	if err != nil || len(old) == 0 {
		t.Fatalf("consistency proof: %v", err)
	}
	var verifiers []note.Verifier
	for _, id := range []string{"AL", "BA", "RS"} {
		v, err := NewNoteVerifier(PartnerNoteName(id), fsmKey(id).Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	// Three voters (MK is removed): two signatures make a majority.
	steps := []struct {
		signer   string
		tree     tlog.Tree
		existing bool
		size     int64
		regional bool
		signedBy []string
	}{
		{"RS", head, false, 2, false, []string{"roundtable-RS"}},
		{"RS", head, true, 2, false, []string{"roundtable-RS"}},
		{"AL", tlog.Tree{N: 1, Hash: mustTreeHash(t, b, 1)}, false, 2, false, []string{"roundtable-RS"}},
		{"BA", head, false, 2, true, []string{"roundtable-BA", "roundtable-RS"}},
	}
	for i, s := range steps {
		res := mustApply(t, b.f, b.log, NewCosign(s.signer, b.cosignNote(t, s.signer, origin, s.tree)))[0]
		if res.Existing != s.existing || res.Leaf != s.tree.N {
			t.Errorf("step %d: %+v", i, res)
		}
		msg, size, regional, err := b.f.Checkpoint()
		if err != nil {
			t.Fatalf("step %d: Checkpoint: %v", i, err)
		}
		if size != s.size || regional != s.regional {
			t.Errorf("step %d: size %d regional %v, want %d %v", i, size, regional, s.size, s.regional)
		}
		gotOrigin, tree, signedBy, err := OpenCheckpoint(msg, note.VerifierList(verifiers...))
		if err != nil {
			t.Fatalf("step %d: assembled checkpoint does not open: %v\n%s", i, err, msg)
		}
		if gotOrigin != origin || tree != head || !slices.Equal(signedBy, s.signedBy) {
			t.Errorf("step %d: %s %v %v, want %s %v %v", i, gotOrigin, tree, signedBy, origin, head, s.signedBy)
		}
	}
	// Removing BA leaves AL and RS as voters; RS alone is not a majority
	// of two, so the latest regional checkpoint is gone and the latest
	// signed one is returned instead.
	mustApply(t, b.f, b.log, govRemovePartner("BA"))
	if _, size, regional, _ := b.f.Checkpoint(); regional || size != 2 {
		t.Errorf("after removing BA: size %d regional %v, want 2 false", size, regional)
	}
}

func mustTreeHash(t *testing.T, b *fsmBase, n int64) tlog.Hash {
	t.Helper()
	// The root of the ledger's tree at an older size, read with tlog.
	var h tlog.Hash
	err := b.f.view(func(tx *bbolt.Tx) error {
		_, r, err := openMerkle(tx)
		if err != nil {
			return err
		}
		h, err = tlog.TreeHash(n, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFSMStorageFailureIsAnError(t *testing.T) {
	b := newFSMBase(t)
	if err := b.f.Close(); err != nil {
		t.Fatal(err)
	}
	r := b.f.ApplyBatch(b.log.add(t, govAddReplica("x")))[0]
	if _, ok := r.(error); !ok {
		t.Fatalf("apply on a closed ledger returned %T %v, want an error", r, r)
	}
}
