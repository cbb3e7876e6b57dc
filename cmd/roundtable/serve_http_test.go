package main

import (
	"os"
	"strings"
	"testing"
)

// TestServeRefusesClearTextHTTP: `serve --http` on an address other
// machines reach, without TLS, stops with what to do instead, before it
// opens anything; half a TLS pair or both TLS sources are refused too.
func TestServeRefusesClearTextHTTP(t *testing.T) {
	t.Setenv("ROUNDTABLE_PASSPHRASE", "correct horse battery staple")
	dir := t.TempDir()
	_, _, err := runCLI(t, "serve", "--data-dir", dir, "--http", "0.0.0.0:0", "--raft", "127.0.0.1:0")
	if err == nil {
		t.Fatal("serve on 0.0.0.0 without TLS started")
	}
	for _, want := range []string{"0.0.0.0:0", "clear text", "--tls-cert", "--tls-from-ca", "--insecure-http"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the refused serve left %d files in the data directory", len(ents))
	}
	for _, args := range [][]string{
		{"--tls-cert", "a.crt"},
		{"--tls-from-ca", "--tls-cert", "a.crt", "--tls-key", "a.key"},
	} {
		_, _, err := runCLI(t, append([]string{"serve", "--data-dir", dir, "--http", "0.0.0.0:0"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "tls-") {
			t.Errorf("serve %v: %v, want a refusal naming the TLS flags", args, err)
		}
	}
}
