package systemtest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDemoCheck runs the whole demo region as a user would, headless.
func TestDemoCheck(t *testing.T) {
	t.Parallel()
	r := run(t.Context(), t, "", "demo", "--check", "--http", "127.0.0.1:0", "--dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "demo check passed") {
		t.Fatalf("demo --check: %s", r)
	}
	// It prints the researcher's command, verifying from the genesis, and
	// ran exactly that command line through the binary's own CLI.
	if !strings.Contains(r.stdout, "Verify it yourself: roundtable verify --genesis ") || !strings.Contains(r.stdout, "ran it: result OK") || strings.Contains(r.stdout, "--tofu") {
		t.Errorf("demo --check did not print and run 'roundtable verify --genesis …':\n%s", r.stdout)
	}
}

// initPartner makes a certificate and a store for partner RS in a fresh
// directory and returns it.
func initPartner(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	root := t.TempDir()
	dir := filepath.Join(root, "rs")
	mustRun(ctx, t, "", "ca", "init", "--dir", filepath.Join(root, "ca"), "--argon2-memory", "19456", "--argon2-time", "2")
	mustRun(ctx, t, "", "ca", "issue", "--dir", filepath.Join(root, "ca"), "--partner", "RS", "--out", filepath.Join(dir, "tls"))
	mustRun(ctx, t, passphrase, "init", "--data-dir", dir, "--partner", "RS", "--argon2-memory", "19456", "--argon2-time", "2")
	return dir
}

// TestServeWrongPassphrase: a node started with the wrong passphrase
// refuses, says why, and leaves the store file as it was.
func TestServeWrongPassphrase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := initPartner(t)
	db := filepath.Join(dir, "node.db")
	before := fileHash(t, db)
	r := run(ctx, t, "not the passphrase", "serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0")
	if r.code == 0 {
		t.Fatalf("serve with a wrong passphrase succeeded: %s", r)
	}
	if !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("serve with a wrong passphrase: stderr does not say so:\n%s", r.stderr)
	}
	if after := fileHash(t, db); after != before {
		t.Errorf("node.db changed after a refused start")
	}
	// And the right one still opens it (the refusal did not lock or damage it).
	mustRun(ctx, t, passphrase, "cases", "--data-dir", dir)
}

// TestImportBadRowChangesNothing: one bad row fails the whole file, the
// error names file, line and field, and the store is as before.
func TestImportBadRowChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := initPartner(t)
	good := mustRun(ctx, t, "", "synth", "--partner", "RS", "--from", "2024", "--to", "2024", "--seed", "3").stdout
	goodFile := filepath.Join(t.TempDir(), "good.csv")
	writeFile(t, goodFile, good)
	mustRun(ctx, t, passphrase, "import", "--data-dir", dir, goodFile)
	before := mustRun(ctx, t, passphrase, "cases", "--data-dir", dir).stdout

	// Three new cases, the third with a sex outside the schema.
	lines := strings.SplitN(good, "\n", 3)
	row := lines[1]
	var bad strings.Builder
	bad.WriteString(lines[0] + "\n")
	for i, sex := range []string{"Female", "Male", "Alien"} {
		fields := strings.Split(row, ",")
		fields[0] = "RS-NEW-" + string(rune('A'+i))
		fields[1] = ""
		fields[4] = sex
		bad.WriteString(strings.Join(fields, ",") + "\n")
	}
	badFile := filepath.Join(t.TempDir(), "bad.csv")
	writeFile(t, badFile, bad.String())
	r := run(ctx, t, passphrase, "import", "--data-dir", dir, badFile)
	if r.code == 0 {
		t.Fatalf("import of a bad file succeeded: %s", r)
	}
	want := regexp.MustCompile(regexp.QuoteMeta(badFile) + `:4: field "sex": "Alien" is not one of`)
	if !want.MatchString(r.stderr) {
		t.Errorf("import error does not name file, line and field (want %s):\n%s", want, r.stderr)
	}
	if after := mustRun(ctx, t, passphrase, "cases", "--data-dir", dir).stdout; after != before {
		t.Errorf("cases changed after a refused import:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return sha256.Sum256(b)
}
