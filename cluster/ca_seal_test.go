package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/keyseal"
)

// testCAPass seals the test CAs' keys.
var testCAPass = []byte("test CA passphrase, long enough")

// TestCAKeyEncryptedAtRest: ca.key holds no PKCS#8 key and no seed in the
// clear; LoadCA needs the passphrase, and refuses the wrong one and
// parameters below the floor.
func TestCAKeyEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "WB", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, ca.key.Seed()) {
		t.Fatal("ca.key holds the key in the clear")
	}
	if _, err := LoadCA(dir, []byte("not the CA passphrase")); !errors.Is(err, keyseal.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	loaded, err := LoadCA(dir, testCAPass)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.key.Equal(ca.key) {
		t.Fatal("LoadCA unsealed another key")
	}
	if _, err := InitCA(t.TempDir(), "WB", testCAPass, keyseal.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}); !errors.Is(err, keyseal.ErrBelowFloor) {
		t.Fatalf("InitCA with t=1, 8 MiB: %v, want ErrBelowFloor", err)
	}
	if _, err := InitCA(t.TempDir(), "WB", nil, keyseal.Minimum()); err == nil {
		t.Fatal("InitCA with an empty passphrase succeeded")
	}
}

// TestCAKeyUnencryptedRefusedThenSealed: a CA made before keys were sealed
// (ca.key a PKCS#8 PEM) is refused with the command to run; ResealCAKey
// seals the same key, after which the CA loads with the new passphrase.
// The passphrase can later be changed the same way.
func TestCAKeyUnencryptedRefusedThenSealed(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, "WB", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := marshalKeyPEM(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	if err := os.WriteFile(keyPath, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "ca.key is not encrypted: run 'roundtable ca rekey --dir " + dir + "'"
	if _, err := LoadCA(dir, testCAPass); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("LoadCA of an unencrypted key: %v, want %q", err, want)
	}
	first := []byte("first CA passphrase here")
	if err := ResealCAKey(dir, nil, first, keyseal.Minimum()); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(keyPath); bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("ca.key still unencrypted after ResealCAKey")
	}
	second := []byte("second CA passphrase here")
	if err := ResealCAKey(dir, first, second, keyseal.Minimum()); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir, first); !errors.Is(err, keyseal.ErrWrongPassphrase) {
		t.Fatalf("old CA passphrase after a change: %v", err)
	}
	loaded, err := LoadCA(dir, second)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.key.Equal(ca.key) {
		t.Fatal("re-sealing changed the CA key")
	}
}

// TestLooseKeyModesRefused: a node.key or ca.key that others can read is
// refused at load with the exact chmod to run; after it, they load.
func TestLooseKeyModesRefused(t *testing.T) {
	caDir := t.TempDir()
	ca, err := InitCA(caDir, "WB", testCAPass, keyseal.Minimum())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ca.Issue("RS", nil, out); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodeTLS(out); err != nil {
		t.Fatalf("a 0600 node.key: %v", err)
	}
	nodeKey := filepath.Join(out, NodeKeyFile)
	caKey := filepath.Join(caDir, CAKeyFile)
	for _, path := range []string{nodeKey, caKey} {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := "node.key is readable by others (mode 0644): run chmod 600 " + nodeKey
	if _, err := LoadNodeTLS(out); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadNodeTLS with node.key 0644: %v, want %q", err, want)
	}
	want = "ca.key is readable by others (mode 0644): run chmod 600 " + caKey
	if _, err := LoadCA(caDir, testCAPass); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadCA with ca.key 0644: %v, want %q", err, want)
	}
	for _, path := range []string{nodeKey, caKey} {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadNodeTLS(out); err != nil {
		t.Errorf("after chmod 600: %v", err)
	}
	if _, err := LoadCA(caDir, testCAPass); err != nil {
		t.Errorf("after chmod 600: %v", err)
	}
}
