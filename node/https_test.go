package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roundtable/cluster"
	"roundtable/node/store"
)

func TestCheckHTTPExposure(t *testing.T) {
	tests := []struct {
		addr            string
		https, insecure bool
		refused         bool
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "127.0.0.2:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "0.0.0.0:8080", refused: true},
		{addr: ":8080", refused: true},
		{addr: "[::]:8080", refused: true},
		{addr: "192.168.1.10:8080", refused: true},
		{addr: "rs.example.org:8080", refused: true},
		{addr: "0.0.0.0:8443", https: true},
		{addr: "192.168.1.10:8080", insecure: true},
	}
	for _, tt := range tests {
		err := checkHTTPExposure(tt.addr, tt.https, tt.insecure)
		if (err != nil) != tt.refused {
			t.Errorf("%s https=%v insecure=%v: %v, want refused=%v", tt.addr, tt.https, tt.insecure, err, tt.refused)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrClearTextHTTP) {
			t.Errorf("%s: %v does not wrap ErrClearTextHTTP", tt.addr, err)
		}
		for _, want := range []string{tt.addr, "--tls-cert", "--tls-from-ca", "127.0.0.1", "--insecure-http", "clear text"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the refusal does not say %q: %v", tt.addr, want, err)
			}
		}
	}
}

// TestOpenRefusesClearTextHTTP: serve on a non-loopback address without
// TLS stops before it opens anything: the data directory stays as it was.
func TestOpenRefusesClearTextHTTP(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(t.Context(), Config{DataDir: dir, HTTPAddr: "0.0.0.0:0", RaftAddr: "127.0.0.1:0", Passphrase: []byte(testPassphrase)})
	if !errors.Is(err, ErrClearTextHTTP) {
		t.Fatalf("Open with --http 0.0.0.0:0 and no TLS: %v, want ErrClearTextHTTP", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the refused start left %d files in the data directory", len(ents))
	}
	// With --insecure-http the check passes and Open goes on (here to
	// the missing node certificate).
	_, err = Open(t.Context(), Config{DataDir: dir, HTTPAddr: "0.0.0.0:0", RaftAddr: "127.0.0.1:0", InsecureHTTP: true})
	if err == nil || errors.Is(err, ErrClearTextHTTP) || !strings.Contains(err.Error(), "node certificate") {
		t.Errorf("with --insecure-http: %v, want it past the check, at the node certificate", err)
	}
}

// TestServeHTTPSFromCA runs a real node whose API serves HTTPS with its
// certificate from the regional CA: a client trusting ca.crt gets 200
// from /v1/health, plain HTTP to the same port gets nothing readable,
// and a client that does not trust the CA is refused.
func TestServeHTTPSFromCA(t *testing.T) {
	r := newRegion(t, "RS")
	r.stops[0]()
	cfg := r.cfgs[0]
	cfg.Genesis, cfg.Join, cfg.JoinGenesis = nil, "", nil
	cfg.TLSFromCA = true
	n := r.start(cfg)
	if !strings.HasPrefix(n.HTTPURL(), "https://") {
		t.Fatalf("HTTPURL %s, want https://", n.HTTPURL())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.ca.CertPEM()) {
		t.Fatal("CA certificate does not parse")
	}
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var status int
	var body []byte
	waitFor(t.Context(), t, 10*time.Second, "HTTPS /v1/health 200", func() error {
		resp, err := trusting.Get(n.HTTPURL() + "/v1/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		if status = resp.StatusCode; status != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	if !strings.Contains(string(body), `"in_cluster":true`) {
		t.Errorf("HTTPS /v1/health: %s", body)
	}
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + n.HTTPAddr() + "/v1/health")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK || strings.Contains(string(b), "in_cluster") {
			t.Errorf("plain HTTP to the HTTPS port served: %d %s", plain.StatusCode, b)
		}
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(n.HTTPURL() + "/v1/health"); err == nil {
		t.Error("a client that does not trust the regional CA was served")
	}
}

// TestHTTPSKeyFiles: --tls-cert and --tls-key must come together, and a
// key file others can read is refused with the chmod that fixes it.
func TestHTTPSKeyFiles(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	ca, err := cluster.InitCA(filepath.Join(dir, "ca"), "https-test", []byte(testPassphrase), store.MinKDFParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue("RS", []string{"127.0.0.1"}, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "node.crt"), crt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "node.key"), key); err != nil {
		t.Fatal(err)
	}
	if _, err := httpsConfig(Config{TLSCert: crt}, nil, nil); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("--tls-cert alone: %v", err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := httpsConfig(Config{TLSCert: crt, TLSKey: key}, nil, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("key with mode 0644: %v, want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := httpsConfig(Config{TLSCert: crt, TLSKey: key}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || got == nil || len(got.Certificate) == 0 {
		t.Fatalf("GetCertificate: %v, %v", got, err)
	}
}
