package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/keyseal"
)

// TestDefaultValidityIsShort: a node certificate issued with the defaults
// expires within DefaultNodeValidity (90 days), so a leaked node key stops
// working within a quarter even if nobody revokes it.
func TestDefaultValidityIsShort(t *testing.T) {
	if DefaultNodeValidity > 90*24*time.Hour {
		t.Fatalf("DefaultNodeValidity = %v, want at most 90 days", DefaultNodeValidity)
	}
	ca, err := InitCA(t.TempDir(), "WB", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ca.Issue("RS", nil, out); err != nil {
		t.Fatal(err)
	}
	n, err := LoadNodeTLS(out)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(n.NotAfter()); left > 90*24*time.Hour || left < 89*24*time.Hour {
		t.Errorf("certificate valid for %v, want 90 days", left)
	}
}

// TestRenew: renewal replaces key and certificate atomically, keeps the
// identity, and refuses a directory holding another node's certificate.
func TestRenew(t *testing.T) {
	ca, err := InitCA(t.TempDir(), "WB", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ca.Renew("RS", nil, out); err == nil || !strings.Contains(err.Error(), "use issue") {
		t.Fatalf("renew with no certificate: %v", err)
	}
	if err := ca.Issue("RS", nil, out); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := os.ReadFile(filepath.Join(out, NodeKeyFile))
	oldCert, _ := os.ReadFile(filepath.Join(out, NodeCertFile))
	ca.NodeValidity = 10 * 24 * time.Hour
	if err := ca.Renew("RS", []string{"rs.example.org"}, out); err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(filepath.Join(out, NodeKeyFile))
	newCert, _ := os.ReadFile(filepath.Join(out, NodeCertFile))
	if bytes.Equal(oldKey, newKey) || bytes.Equal(oldCert, newCert) {
		t.Fatal("renewal kept the old key or certificate")
	}
	n, err := LoadNodeTLS(out)
	if err != nil {
		t.Fatalf("renewed files do not load: %v", err)
	}
	if n.ID() != "RS" || time.Until(n.NotAfter()) > 10*24*time.Hour {
		t.Errorf("renewed: id %s, expires %v", n.ID(), n.NotAfter())
	}
	if info, err := os.Stat(filepath.Join(out, NodeKeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("renewed key mode: %v %v", info.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*.new")); len(m) != 0 {
		t.Errorf("leftover temporary files: %v", m)
	}
	// Renewing as another identity would swap a node's identity.
	if err := ca.Renew("AL", nil, out); err == nil || !strings.Contains(err.Error(), "never changes a node's identity") {
		t.Errorf("renew RS's directory as AL: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, NodeCertFile)); !bytes.Equal(after, newCert) {
		t.Error("a refused renewal changed the certificate")
	}
}
