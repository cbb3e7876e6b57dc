package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"roundtable/cluster"
	"roundtable/node/client"
	"roundtable/node/store"
)

// regionalTLSServer is a stand-in node whose API serves HTTPS with a
// certificate from a regional CA (as serve --tls-from-ca does); it
// answers /v1/series with an empty series and GET /v1/governance with an
// empty history, and counts the requests that
// got through the handshake. It returns the server, the CA's ca.crt and
// the request count.
func regionalTLSServer(t *testing.T) (*httptest.Server, string, *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	ca, err := cluster.InitCA(filepath.Join(dir, "ca"), "ca-cert-test", []byte("correct horse battery staple"), store.MinKDFParams())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssuePEM("RS", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/series":
			_, _ = w.Write([]byte(`{"applied_index":1,"series":[]}`))
			return
		case "/v1/governance":
			if r.Method == http.MethodGet {
				_, _ = w.Write([]byte(`{"consortium":"c0ffee","next":1,"coordinators":[],"threshold":1,"statements":[]}`))
				return
			}
		}
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, caFile, &served
}

// TestCACertFlag: every command that reaches a node with --server talks
// to a node whose certificate comes from the regional CA once given
// --ca-cert with that CA's certificate, and without it is refused at the
// handshake (the node sees no request) with an error that says to give
// --ca-cert.
func TestCACertFlag(t *testing.T) {
	srv, caFile, served := regionalTLSServer(t)
	work := t.TempDir()
	statement := filepath.Join(work, "statement.json")
	commands := []struct {
		name string
		args []string
	}{
		{"query", []string{"query", "--server", srv.URL, "--indicator", "victims"}},
		{"verify", []string{"verify", "--server", srv.URL, "--tofu", "--state", filepath.Join(work, "state.json")}},
		{"brief", []string{"brief", "--server", srv.URL, "--year", "2024", "--out", filepath.Join(work, "brief.html")}},
		// partner add --out writes the statement governance submit sends.
		{"partner add", []string{"partner", "add", "--server", srv.URL, "--out", statement, "--code", "ME", "--public-key", "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="}},
		{"governance submit", []string{"governance", "submit", "--server", srv.URL, statement}},
	}
	for _, tc := range commands {
		args := tc.args
		t.Run(tc.name, func(t *testing.T) {
			before := served.Load()
			_, _, err := runCLI(t, args...)
			if err == nil {
				t.Fatal("without --ca-cert the command succeeded")
			}
			if served.Load() != before {
				t.Fatalf("without --ca-cert the node served a request (%v)", err)
			}
			if _, ok := client.UntrustedCertificate(err); !ok {
				t.Fatalf("without --ca-cert: %v, want an unknown-authority error", err)
			}
			if hint := explain(err); !strings.Contains(hint, "--ca-cert") {
				t.Errorf("the printed error does not say to give --ca-cert: %q", hint)
			}
			_, _, err = runCLI(t, append(args, "--ca-cert", caFile)...)
			if served.Load() == before {
				t.Fatalf("with --ca-cert the node saw no request: %v", err)
			}
			var ua x509.UnknownAuthorityError
			if errors.As(err, &ua) {
				t.Fatalf("with --ca-cert: %v", err)
			}
		})
	}
	// query, whose fake answer is complete, succeeds outright.
	if out, _, err := runCLI(t, "query", "--server", srv.URL, "--indicator", "victims", "--ca-cert", caFile, "--format", "json"); err != nil {
		t.Fatalf("query with --ca-cert: %v (%s)", err, out)
	}
}

// TestCACertFlagBadFile: a --ca-cert that is not a certificate is refused
// before anything is sent, naming the file and what it should be.
func TestCACertFlagBadFile(t *testing.T) {
	srv, _, served := regionalTLSServer(t)
	bad := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "query", "--server", srv.URL, "--indicator", "victims", "--ca-cert", bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("--ca-cert with a key file: %v", err)
	}
	_, _, err = runCLI(t, "query", "--server", srv.URL, "--indicator", "victims", "--ca-cert", bad+".missing")
	if err == nil || !strings.Contains(err.Error(), "--ca-cert") {
		t.Fatalf("--ca-cert with a missing file: %v", err)
	}
	if served.Load() != 0 {
		t.Fatalf("the node saw %d request(s)", served.Load())
	}
}
