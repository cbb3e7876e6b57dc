package cluster

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// The tests in this file kill mutants of the governance handlers
// (fsm_governance.go) that `make mutate` found alive or not covered
// (docs/testing.md).

// TestFSMPartnerAddress: a partner's raft address, if given, is host:port
// of at most 255 printable ASCII bytes; each part of that rule refuses on
// its own, and the longest address is accepted.
func TestFSMPartnerAddress(t *testing.T) {
	long := strings.Repeat("a", 250) + ".b:70" // 255 bytes
	for _, tc := range []struct {
		name, addr string
		ok         bool
	}{
		{"none", "", true},
		{"host and port", "10.0.0.7:7000", true},
		{"255 bytes", long, true},
		{"a tilde, the last printable byte", "h~st:7000", true},
		{"256 bytes", "a" + long, false},
		{"no port separator", "10.0.0.7", false},
		{"no host", ":7000", false},
		{"no port", "10.0.0.7:", false},
		{"a space", "my host:7000", false},
		{"a control character", "host\x01:7000", false},
		{"not ASCII", "hóst:7000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFSMBase(t)
			p := fsmPartner("XK")
			p.Address = tc.addr
			before := stateHash(t, b.f)
			res := applyAll(t, b.f, []*raft.Log{b.log.raw(b.signed(t, govAddPartner(p)))})[0]
			if res.OK != tc.ok {
				t.Fatalf("address %q: admitted %v (%s), want %v", tc.addr, res.OK, res.Refusal, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(res.Refusal, "must be host:port") {
					t.Errorf("refusal %q, want the address rule", res.Refusal)
				}
				if stateHash(t, b.f) != before {
					t.Error("a refused statement changed the ledger")
				}
			}
		})
	}
}
