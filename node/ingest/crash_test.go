package ingest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/store"
)

const helperEnv = "ROUNDTABLE_TEST_HELPER_IMPORT" // "DIR|FILE"

// TestHelperImport is not a test: TestKilledMidImport runs the test binary
// again with this test selected, to have a real process to SIGKILL.
func TestHelperImport(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("helper process for TestKilledMidImport")
	}
	dir, file, _ := strings.Cut(arg, "|")
	st, err := store.Open(dir, testPass)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	fmt.Println("started")
	if _, err := Run(context.Background(), st, Options{}, file); err != nil {
		fmt.Println("import:", err)
		os.Exit(2)
	}
	st.Close()
	fmt.Println("done")
}

// TestKilledMidImport kills an importing process at two moments (while it
// spills sorted runs, and while it writes records to the store before the
// commit) and checks the reopened store holds all of the file or none.
func TestKilledMidImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	const rows = 300_000
	file := filepath.Join(t.TempDir(), "big.csv")
	writeGenCSV(t, file, rows, 3)
	grown := func(dir string, than int64) bool {
		fi, err := os.Stat(filepath.Join(dir, store.FileName))
		return err == nil && fi.Size() > than
	}
	for _, tc := range []struct {
		name  string
		ready func(dir string, initSize int64) bool
	}{
		{"while spilling", func(dir string, _ int64) bool {
			m, _ := filepath.Glob(filepath.Join(dir, "*.spill"))
			return len(m) > 0
		}},
		// The file grows past its initial allocation only once records are
		// being inserted, several transactions before the commit.
		{"while inserting", grown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := store.Init(dir, "RS", testPass, testKDF); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, store.FileName))
			if err != nil {
				t.Fatal(err)
			}
			killed := runAndKill(t, dir, file, func(dir string) bool { return tc.ready(dir, fi.Size()) })
			st, err := store.Open(dir, testPass)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			n := count(t, st)
			seen := 0
			if err := st.Cases(context.Background(), func(*aggregate.Case) error { seen++; return nil }); err != nil {
				t.Fatal(err)
			}
			if (n != 0 && n != rows) || seen != n {
				t.Errorf("after kill: Count %d, iterated %d; want both 0 or both %d", n, seen, rows)
			}
			if killed && n != 0 {
				t.Logf("killed after the commit: all %d rows present", n)
			}
			if !killed {
				t.Logf("the import finished before the kill; all-or-nothing checked on the finished store")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.spill")); len(left) != 0 {
				t.Errorf("spill files left after reopen: %v", left)
			}
		})
	}
}

// runAndKill starts the helper and SIGKILLs it as soon as ready(dir)
// holds. It reports whether the process was killed before it finished.
func runAndKill(t *testing.T, dir, file string, ready func(string) bool) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperImport$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir+"|"+file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok || l == "done" {
				cmd.Wait()
				return false
			}
			if strings.HasPrefix(l, "open:") || strings.HasPrefix(l, "import:") {
				t.Fatalf("helper failed: %s", l)
			}
		case <-tick.C:
			if ready(dir) {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				return true
			}
		case <-ctx.Done():
			t.Fatal("helper did not finish in time")
		}
	}
}
