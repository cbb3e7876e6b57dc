package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"roundtable/aggregate"
)

// copyInto writes st's copy to dir/node.db and returns what Copy said.
func copyInto(t *testing.T, st *Store, dir string) CopyInfo {
	t.Helper()
	var buf bytes.Buffer
	var info CopyInfo
	err := st.Copy(func(i CopyInfo, write func(io.Writer) (int64, error)) error {
		info = i
		n, err := write(&buf)
		if err == nil && n != i.Bytes {
			err = fmt.Errorf("wrote %d bytes, Copy said %d", n, i.Bytes)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestCopyWhileImporting copies the store while an import commits in
// another goroutine: every copy opens (with the passphrase only) and holds
// exactly the cases of a committed generation, the count and state Copy
// reported; the sealed aside value opens only under its name.
func TestCopyWhileImporting(t *testing.T) {
	st, _ := newStore(t)
	if err := st.Put("pending-release", []byte("in flight")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for g := range 5 {
			var cs []*aggregate.Case
			for i := range 200 {
				cs = append(cs, testCase(fmt.Sprintf("g%d-%d", g, i), "note"))
			}
			importCases(t, st, 64, cs...)
		}
	}()
	// Copy as fast as possible while the imports run; open the copies after.
	copies := map[int]string{}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		dir := t.TempDir()
		info := copyInto(t, st, dir)
		if info.Partner != "RS" || !slices.Equal(info.State, []string{"pending-release"}) || info.Cases%200 != 0 {
			t.Fatalf("copy info %+v: want partner RS, the pending entry, whole imports of 200", info)
		}
		copies[info.Cases] = dir
	}
	if len(copies) < 3 {
		t.Fatalf("copies at case counts %v only: the imports did not run during the copies", slices.Sorted(maps.Keys(copies)))
	}
	for n, dir := range copies {
		if _, err := Open(dir, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("copy opened with a wrong passphrase: %v", err)
		}
		c, err := Open(dir, pass)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(allCases(t, c)); got != n {
			t.Errorf("copy holds %d cases, Copy said %d", got, n)
		}
		if v, err := c.Get("pending-release"); err != nil || string(v) != "in flight" {
			t.Errorf("pending entry in the copy: %q, %v", v, err)
		}
		c.Close()
	}

	sealed, err := st.SealAside("tls key", []byte("secret"))
	if err != nil || bytes.Contains(sealed, []byte("secret")) {
		t.Fatalf("SealAside: %v", err)
	}
	if v, err := st.OpenAside("tls key", sealed); err != nil || string(v) != "secret" {
		t.Errorf("OpenAside: %q, %v", v, err)
	}
	if _, err := st.OpenAside("other", sealed); err == nil {
		t.Error("a value sealed under one name opened under another")
	}
}

// TestOpenReadOnlyChangesNothing: a stopped store opened for a backup is
// not written, refuses writes, and still checks the passphrase.
func TestOpenReadOnlyChangesNothing(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 64, testCase("a", "x"), testCase("b", "y"))
	st.Close()
	before := fileHash(t, filepath.Join(dir, FileName))
	if _, err := OpenReadOnly(dir, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	ro, err := OpenReadOnly(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Put("x", []byte("y")); err == nil {
		t.Error("a read-only store accepted a write")
	}
	info := copyInto(t, ro, t.TempDir())
	ro.Close()
	if info.Cases != 2 {
		t.Errorf("copy of the stopped store: %d cases, want 2", info.Cases)
	}
	if fileHash(t, filepath.Join(dir, FileName)) != before {
		t.Error("opening read-only changed the store file")
	}
}
