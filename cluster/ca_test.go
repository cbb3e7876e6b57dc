package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/keyseal"
)

func TestCARoundTrip(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "Western Balkans Roundtable", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	if !ca.Cert.IsCA || ca.Cert.Subject.Organization[0] != "Western Balkans Roundtable" {
		t.Fatalf("CA cert: IsCA=%v subject=%v", ca.Cert.IsCA, ca.Cert.Subject)
	}
	loaded, err := LoadCA(dir, testCAPass)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Fatal("LoadCA returned a different certificate")
	}

	out := filepath.Join(t.TempDir(), "rs")
	if err := loaded.Issue("RS", nil, out); err != nil {
		t.Fatal(err)
	}
	assertMode(t, filepath.Join(out, NodeKeyFile), 0o600)
	caCopy, err := os.ReadFile(filepath.Join(out, CACertFile))
	if err != nil || !bytes.Equal(caCopy, ca.CertPEM()) {
		t.Fatalf("ca.crt copy: err=%v equal=%v", err, bytes.Equal(caCopy, ca.CertPEM()))
	}
	node, err := LoadNodeTLS(out)
	if err != nil {
		t.Fatal(err)
	}
	if node.ID() != "RS" {
		t.Fatalf("ID = %q, want RS", node.ID())
	}
	cert := leafOf(t, out)
	if got := cert.URIs[0].String(); got != "roundtable:node:RS" {
		t.Errorf("URI SAN = %q", got)
	}
	if cert.Subject.CommonName != "RS" {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	if len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "127.0.0.1" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "localhost" {
		t.Errorf("default SANs: IP %v DNS %v", cert.IPAddresses, cert.DNSNames)
	}
	if len(cert.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage = %v, want server and client auth", cert.ExtKeyUsage)
	}
	life := cert.NotAfter.Sub(time.Now())
	if life < DefaultNodeValidity-time.Hour || life > DefaultNodeValidity+time.Hour {
		t.Errorf("validity %v, want about %v", life, DefaultNodeValidity)
	}
	if cert.SerialNumber.BitLen() > 128 || cert.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v not a positive 128-bit number", cert.SerialNumber)
	}
	if id, err := IdentityOf(cert); err != nil || id != "RS" {
		t.Errorf("IdentityOf = %q, %v", id, err)
	}
}

func TestIssueHostsAndValidity(t *testing.T) {
	ca := newTestCA(t)
	ca.NodeValidity = 30 * 24 * time.Hour
	out := t.TempDir()
	if err := ca.Issue("replica-research1", []string{"10.0.0.7", "node.example.org"}, out); err != nil {
		t.Fatal(err)
	}
	cert := leafOf(t, out)
	if len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "10.0.0.7" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "node.example.org" {
		t.Errorf("SANs: IP %v DNS %v", cert.IPAddresses, cert.DNSNames)
	}
	if life := time.Until(cert.NotAfter); life > 31*24*time.Hour || life < 29*24*time.Hour {
		t.Errorf("validity %v, want 30 days", life)
	}
	// Serials are random: two certificates never share one.
	c1, _, err := ca.IssuePEM("BA", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := ca.IssuePEM("BA", nil)
	if err != nil {
		t.Fatal(err)
	}
	if mustParse(t, c1).SerialNumber.Cmp(mustParse(t, c2).SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestRefuseOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitCA(dir, "WB", testCAPass, keyseal.Minimum()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if _, err := InitCA(dir, "WB", testCAPass, keyseal.Minimum()); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second InitCA: err = %v, want refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("ca.key changed")
	}
	ca, err := LoadCA(dir, testCAPass)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ca.Issue("AL", nil, out); err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue("AL", nil, out); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second Issue: err = %v, want refusal", err)
	}
	if _, err := InitCA(t.TempDir(), "  ", testCAPass, keyseal.Minimum()); err == nil {
		t.Fatal("InitCA with an empty consortium name succeeded")
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"RS", true}, {"XK", true}, {"AL", true},
		{"replica-research1", true}, {"replica-a", true}, {"replica-" + strings.Repeat("a", 32), true},
		{"", false}, {"rs", false}, {"R", false}, {"RSS", false}, {"R1", false},
		{"replica-", false}, {"replica-UP", false}, {"replica-a_b", false},
		{"replica-" + strings.Repeat("a", 33), false}, {"replica", false}, {"node-1", false},
	}
	for _, tt := range tests {
		err := ValidateID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "replica-[a-z0-9-]{1,32}") {
			t.Errorf("ValidateID(%q) error does not say what is allowed: %v", tt.id, err)
		}
	}
}

func TestIssueBadIDWritesNothing(t *testing.T) {
	ca := newTestCA(t)
	out := t.TempDir()
	if err := ca.Issue("serbia", nil, out); err == nil {
		t.Fatal("Issue accepted a bad id")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("Issue with a bad id wrote %d files", len(entries))
	}
}

func TestIdentityOfRejects(t *testing.T) {
	tests := []struct {
		name string
		cn   string
		uris []string
	}{
		{"no URI SAN", "RS", nil},
		{"CN disagrees", "BA", []string{"roundtable:node:RS"}},
		{"two identities", "RS", []string{"roundtable:node:RS", "roundtable:node:BA"}},
		{"bad id", "rs", []string{"roundtable:node:rs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := selfSigned(t, tt.cn, tt.uris)
			if id, err := IdentityOf(cert); err == nil {
				t.Fatalf("IdentityOf = %q, want error", id)
			}
		})
	}
}

func TestLoadCAMismatchedKey(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := InitCA(a, "WB", testCAPass, keyseal.Minimum()); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(b, "WB", testCAPass, keyseal.Minimum()); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
	if err := os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(a, testCAPass); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("LoadCA with a foreign key: %v", err)
	}
}

func TestLoadNodeTLSForeignCA(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	out := t.TempDir()
	if err := ca.Issue("ME", nil, out); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, CACertFile), other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodeTLS(out); err == nil {
		t.Fatal("LoadNodeTLS accepted a node certificate from another CA")
	}
}

func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := InitCA(t.TempDir(), "Test Consortium", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode %o, want %o", path, got, want)
	}
}

func leafOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, b)
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func selfSigned(t *testing.T, cn string, uris []string) *x509.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
