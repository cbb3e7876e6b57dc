package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"

	"roundtable/aggregate"
)

// fullStore makes a store holding every kind of sealed value: cases (one
// updated, one removed by a replacing import, so the file has old versions
// and a tombstone until compaction), key/value entries and quarter-book
// entries.
func fullStore(t *testing.T, dir string) {
	t.Helper()
	if err := Init(dir, "RS", pass, testKDF); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctdc := ImportOptions{Source: "ctdc"}
	importFrom(t, st, ctdc, testCase("A", "v1"), testCase("B", "v1"), testCase("C", "v1"))
	importCases(t, st, 2, testCase("D", "v1"), testCase("E", "v1"), testCase("F", "v1"), testCase("G", "v1"))
	ctdc.Replace = true
	importFrom(t, st, ctdc, testCase("B", "v2"), testCase("C", "v1"))
	for _, kv := range [][2]string{{"pending/2024-Q1", "KV-SECRET-MARMOT"}, {"other", "x"}} {
		if err := st.Put(kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.FixQuarters([]aggregate.Assignment{{Person: "p:P-B", Year: 2023, Quarter: 2}, {Person: "p:P-D", Year: 2024, Quarter: 4}}); err != nil {
		t.Fatal(err)
	}
}

// snapshot is what a store holds, read through its API.
type snapshot struct {
	cases    map[string]aggregate.Case
	kv       map[string]string
	quarters map[string]int
	count    int
	pub      string
}

func readAll(t *testing.T, st *Store) snapshot {
	t.Helper()
	s := snapshot{cases: allCases(t, st), kv: map[string]string{}, quarters: map[string]int{}, pub: fmt.Sprintf("%x", st.PublicKey())}
	for _, name := range []string{"pending/2024-Q1", "other"} {
		v, err := st.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		s.kv[name] = string(v)
	}
	q, err := st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		person string
		year   int
	}{{"p:P-B", 2023}, {"p:P-D", 2024}, {"p:P-E", 2023}} {
		s.quarters[fmt.Sprintf("%s/%d", p.person, p.year)] = q.Quarter(p.person, p.year)
	}
	if s.count, err = st.Count(); err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedValues walks every bucket of the bbolt file at path and returns
// every key and value.
func fileEntries(t *testing.T, path string) (keys, vals map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, vals = map[string][]byte{}, map[string][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				id := string(name) + "/" + fmt.Sprintf("%x", k)
				keys[id], vals[id] = clone(k), clone(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, vals
}

// TestRekeyRotatesDataKey: after Rekey the old passphrase fails, the new
// one opens exactly what the store held, and the new file holds nothing
// the old data key opens: no sealed value, nonce, wrapped key or case key
// of the old file appears in its bytes, and no value in it decrypts under
// the old data key with any associated data the store uses. The rekey of
// before this change (re-wrapping the same data key in place) fails the
// last two checks: every record stayed sealed under the old data key.
func TestRekeyRotatesDataKey(t *testing.T) {
	dir := t.TempDir()
	fullStore(t, dir)
	st, err := Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	before := readAll(t, st)
	oldAEAD, oldMAC := st.aead, st.macKey
	st.Close()
	path := filepath.Join(dir, FileName)
	oldKeys, oldVals := fileEntries(t, path)
	if len(before.cases) != 6 || before.quarters["p:P-B/2023"] != 2 || before.kv["pending/2024-Q1"] != "KV-SECRET-MARMOT" {
		t.Fatalf("fixture: %+v", before)
	}

	newPass := []byte("an entirely new passphrase 42")
	if err := Rekey(context.Background(), dir, pass, newPass, testKDF); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, pass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after rekey: %v, want ErrWrongPassphrase", err)
	}
	st, err = Open(dir, newPass)
	if err != nil {
		t.Fatal(err)
	}
	after := readAll(t, st)
	st.Close()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("content changed by rekey:\nbefore %+v\nafter  %+v", before, after)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns := chacha20poly1305.NonceSizeX
	sealedSeen := 0
	unsealed := map[string]bool{}
	for _, k := range [][]byte{keyVersion, keyPartner, keyKDF, keyPublic, keyCommitted, keyCount} {
		unsealed["meta/"+fmt.Sprintf("%x", k)] = true
	}
	for id, v := range oldVals {
		if unsealed[id] || len(v) < ns+16 {
			continue // not sealed (a tombstone is empty)
		}
		sealedSeen++
		if bytes.Contains(raw, v[:ns]) {
			t.Errorf("old sealed value %s (its nonce) is still in the file", id)
		}
	}
	if sealedSeen < 6+2+2+2 {
		t.Fatalf("found %d sealed values in the old file, want at least 12", sealedSeen)
	}
	for id, k := range oldKeys {
		if strings.HasPrefix(id, "cases/") && bytes.Contains(raw, k[:caseKeyLen]) {
			t.Errorf("old case key %s is still in the file", id)
		}
	}
	keys, vals := fileEntries(t, path)
	for id, v := range vals {
		k := keys[id]
		for _, ad := range [][]byte{k, kvAD(string(k)), quarterAD(k), adSigningKey, adQuarterKey, adDataKey} {
			if _, err := open(oldAEAD, nil, v, ad); err == nil {
				t.Errorf("%s opens under the old data key", id)
			}
		}
	}
	// The case keys are new too: none is the old MAC of its case_id.
	oldKeyer := newCaseKeyer(oldMAC)
	for _, id := range []string{"B", "C", "D"} {
		k := oldKeyer.key(id, 0)
		if bytes.Contains(raw, k[:caseKeyLen]) {
			t.Errorf("case %s is still filed under its old key", id)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, FileName+".*")); len(left) != 0 {
		t.Errorf("files left beside the store: %v", left)
	}
}

// A node serving from the store holds it open: Rekey is refused with
// ErrInUse and the store still opens with its passphrase.
func TestRekeyRefusedWhileOpen(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 10, testCase("A", "x"))
	err := Rekey(context.Background(), dir, pass, []byte("another passphrase here"), testKDF)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("rekey of an open store: %v, want ErrInUse", err)
	}
	st.Close()
	st2, err := Open(dir, pass)
	if err != nil {
		t.Fatalf("the refused rekey changed the store: %v", err)
	}
	st2.Close()
}

// A store sealed below the floor (as Init allowed before) is refused by
// Open with the command that fixes it, and Rekey strengthens it.
func TestWeakStoreRefusedUntilRekeyed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	weak := kdf{KDFParams: KDFParams{Time: 1, MemoryKiB: 8, Threads: 1}}
	if err := initFile(path, "RS", pass, weak); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, pass)
	if err == nil || !strings.Contains(err.Error(), "below the minimum") || !strings.Contains(err.Error(), "roundtable rekey --data-dir "+dir) {
		t.Fatalf("open of a t=1, 8 KiB store: %v, want a refusal naming rekey", err)
	}
	if err := Rekey(context.Background(), dir, pass, pass, testKDF); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, pass)
	if err != nil {
		t.Fatalf("after rekey with stronger parameters: %v", err)
	}
	defer st.Close()
	if st.kdf.Time != testKDF.Time || st.kdf.MemoryKiB != testKDF.MemoryKiB {
		t.Errorf("stored parameters %s, want %s", st.kdf.KDFParams, testKDF)
	}
}

// A store file that others can read is refused with the chmod to run.
func TestOpenRefusesLooseMode(t *testing.T) {
	st, dir := newStore(t)
	st.Close()
	path := filepath.Join(dir, FileName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("node.db is readable by others (mode 0644): run chmod 600 %s", path)
	if _, err := Open(dir, pass); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("open of a 0644 store: %v, want %q", err, want)
	}
	if err := Rekey(context.Background(), dir, pass, pass, testKDF); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("rekey of a 0644 store: %v, want %q", err, want)
	}
}

const rekeyHelperEnv = "ROUNDTABLE_TEST_HELPER_REKEY" // "DIR|STAGE"

var newPassKilled = []byte("the passphrase of the killed rekey")

// TestHelperRekey is not a test: TestKilledMidRekey runs the test binary
// again with this test selected, to have a real process to SIGKILL. It
// rekeys with batches of two records and stops for good at the stage named.
func TestHelperRekey(t *testing.T) {
	arg := os.Getenv(rekeyHelperEnv)
	if arg == "" {
		t.Skip("helper process for TestKilledMidRekey")
	}
	dir, stage, _ := strings.Cut(arg, "|")
	h := rekeyHooks{batch: 2, pause: func(s string) {
		if s == stage {
			fmt.Println("paused")
			select {} // until SIGKILL
		}
	}}
	if err := rekey(context.Background(), dir, pass, newPassKilled, testKDF, h); err != nil {
		fmt.Println("rekey:", err)
		os.Exit(2)
	}
	fmt.Println("done")
}

// TestKilledMidRekey SIGKILLs a rekeying process at three moments: while
// it writes the re-sealed copy, after the copy is complete and synced, and
// after the rename. Before the rename the store opens with the old
// passphrase only, after it with the new one only; either way it holds
// exactly what it held, and no copy is left beside it.
func TestKilledMidRekey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	for _, tc := range []struct {
		stage   string
		renamed bool
	}{{"copying", false}, {"copied", false}, {"renamed", true}} {
		t.Run(tc.stage, func(t *testing.T) {
			dir := t.TempDir()
			fullStore(t, dir)
			st, err := Open(dir, pass)
			if err != nil {
				t.Fatal(err)
			}
			before := readAll(t, st)
			st.Close()
			runRekeyAndKill(t, dir, tc.stage)
			if _, err := os.Stat(filepath.Join(dir, rekeyTemp)); tc.renamed == (err == nil) {
				t.Fatalf("killed %s: copy present = %v", tc.stage, err == nil)
			}
			good, bad := pass, newPassKilled
			if tc.renamed {
				good, bad = bad, good
			}
			if _, err := Open(dir, bad); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("killed %s: the other passphrase: %v, want ErrWrongPassphrase", tc.stage, err)
			}
			st, err = Open(dir, good)
			if err != nil {
				t.Fatalf("killed %s: %v", tc.stage, err)
			}
			after := readAll(t, st)
			st.Close()
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("killed %s: content changed:\nbefore %+v\nafter  %+v", tc.stage, before, after)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, FileName+".*")); len(left) != 0 {
				t.Errorf("killed %s: files left after reopening: %v", tc.stage, left)
			}
		})
	}
}

func runRekeyAndKill(t *testing.T, dir, stage string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperRekey$", "-test.count=1")
	cmd.Env = append(os.Environ(), rekeyHelperEnv+"="+dir+"|"+stage)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		switch l := sc.Text(); {
		case l == "paused":
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			return
		case l == "done" || strings.HasPrefix(l, "rekey:"):
			t.Fatalf("helper did not pause at %s: %s", stage, l)
		}
	}
	t.Fatalf("helper exited without pausing at %s (ctx %v)", stage, ctx.Err())
}
