package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitFile = "../../packaging/roundtable.service"

// readUnit returns the [Service] section's settings (a key may repeat).
func readUnit(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", unitFile, line)
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestUnitIsSandboxed checks that the systemd unit runs the node as its own
// user, without privileges, on a read-only system with only the data
// directory writable and only IP and Unix sockets; that the flags in its
// ExecStart are serve's; and, where systemd-analyze exists, that systemd
// accepts every line.
func TestUnitIsSandboxed(t *testing.T) {
	unit := readUnit(t)
	want := map[string]string{
		"User":                    "roundtable",
		"Group":                   "roundtable",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ReadWritePaths":          "/var/lib/roundtable",
		"StateDirectory":          "roundtable",
		"StateDirectoryMode":      "0700",
		"UMask":                   "0077",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictRealtime":        "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"LoadCredential":          "passphrase:/etc/roundtable/passphrase",
	}
	for k, v := range want {
		got, ok := unit[k]
		switch {
		case !ok:
			t.Errorf("%s: no %s= (want %s=%s)", unitFile, k, k, v)
		case len(got) != 1 || got[0] != v:
			t.Errorf("%s: %s=%q, want %q once", unitFile, k, got, v)
		}
	}
	if f := unit["SystemCallFilter"]; len(f) != 2 || f[1] != "~@privileged" {
		t.Errorf("SystemCallFilter = %q, want @system-service then ~@privileged", f)
	}
	checkExecStart(t, unit["ExecStart"][0])
	verifyWithSystemd(t)
}

// checkExecStart checks the unit runs `roundtable serve` with flags that
// serve has, on the data directory the sandbox lets it write.
func checkExecStart(t *testing.T, line string) {
	t.Helper()
	words := strings.Fields(line)
	if len(words) < 2 || words[0] != "/usr/local/bin/roundtable" || words[1] != "serve" {
		t.Fatalf("ExecStart=%s: want /usr/local/bin/roundtable serve …", line)
	}
	serve := newServeCmd()
	flags := map[string]string{}
	for i := 2; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			continue
		}
		if serve.Flags().Lookup(strings.TrimPrefix(w, "--")) == nil {
			t.Errorf("ExecStart passes %s, which serve does not have", w)
		}
		if i+1 < len(words) {
			flags[w] = words[i+1]
		}
	}
	if flags["--data-dir"] != "/var/lib/roundtable" {
		t.Errorf("ExecStart --data-dir %q, want the unit's writable /var/lib/roundtable", flags["--data-dir"])
	}
	if flags["--passphrase-file"] != "${CREDENTIALS_DIRECTORY}/passphrase" {
		t.Errorf("ExecStart --passphrase-file %q, want the credential systemd hands the service", flags["--passphrase-file"])
	}
}

// verifyWithSystemd runs systemd-analyze verify on the unit (with an
// executable that exists here): a misspelt key or a bad value is reported
// on stderr, which must stay empty.
func verifyWithSystemd(t *testing.T) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit's syntax is not checked by systemd")
		return
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "roundtable.service")
	unit := strings.Replace(string(b), "/usr/local/bin/roundtable", "/bin/true", 1)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}
