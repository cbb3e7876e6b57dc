package cluster

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"roundtable/cluster/governance"
)

// handshakeAccepted dials addr as holder over the forward protocol and
// reports whether the connection survives the handshake. In TLS 1.3 the
// client finishes its side before the server has checked the client
// certificate, so a refusal shows on the first read.
func handshakeAccepted(t *testing.T, holder *NodeTLS, addr string) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := dialTLS(ctx, holder, addr, ProtoForward, "", 2*time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "timeout") {
		return true, nil // the server kept the connection open, waiting for a request
	}
	return false, err
}

func serialOf(t *testing.T, n *NodeTLS) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(n.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// TestDeniedCertificateRefusedAtHandshake: a certificate the regional CA
// issued keeps verifying until it expires; the ledger's deny-list is what
// turns it away. A revoked serial is refused by every node while a fresh
// certificate for the same node is accepted; a removed replica is refused
// whatever certificate it holds; and the honest nodes' state is the same
// on all of them afterwards.
func TestDeniedCertificateRefusedAtHandshake(t *testing.T) {
	rig := startIdentityRig(t, false)
	r := rig.region
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stolen := rig.replicaTLS
	for _, p := range rig.partners {
		if ok, err := handshakeAccepted(t, stolen, p.Addr()); !ok {
			t.Fatalf("before revocation, %s refused the replica's certificate: %v", p.ID(), err)
		}
	}

	before := make([]uint64, len(rig.partners))
	for i, p := range rig.partners {
		before[i] = p.tls.HandshakesRefused()
	}
	r.govern(ctx, rig.partners[0], governance.Action{Type: governance.Revoke,
		Revoke: &governance.Revocation{Serial: serialOf(t, stolen), Reason: "laptop stolen"}})
	converge(t, rig.all)
	for i, p := range rig.partners {
		if ok, err := handshakeAccepted(t, stolen, p.Addr()); ok {
			t.Errorf("%s accepted a revoked certificate", p.ID())
		} else if err == nil {
			t.Errorf("%s: refused without an error", p.ID())
		}
		if got := p.tls.HandshakesRefused(); got <= before[i] {
			t.Errorf("%s counted %d refusals, want more than %d", p.ID(), got, before[i])
		}
	}
	renewed := r.nodeTLS(rigReplica)
	if ok, err := handshakeAccepted(t, renewed, rig.partners[1].Addr()); !ok {
		t.Fatalf("a fresh certificate for the same replica was refused: %v", err)
	}

	// Outbound too: a node does not talk to a server whose certificate is
	// revoked (the replica's own listener still presents the stolen one).
	if _, err := handshakeAccepted(t, rig.partners[0].tls, rig.replica.Addr()); err == nil ||
		!strings.Contains(err.Error(), "deny-list") {
		t.Errorf("dialing the revoked replica: %v, want a deny-list refusal", err)
	}

	// Removing the replica denies its id: any certificate for it is refused.
	r.govern(ctx, rig.partners[0], governance.Action{Type: governance.RemoveReplica, ID: rigReplica})
	honest := rig.partners
	converge(t, honest)
	for _, p := range honest {
		if ok, _ := handshakeAccepted(t, renewed, p.Addr()); ok {
			t.Errorf("%s accepted a removed replica's fresh certificate", p.ID())
		}
	}
	// Partners still talk to each other.
	if ok, err := handshakeAccepted(t, rig.partners[1].tls, rig.partners[2].Addr()); !ok {
		t.Errorf("partners refused each other after the revocations: %v", err)
	}
}
