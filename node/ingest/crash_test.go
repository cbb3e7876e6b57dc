package ingest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/store"
)

const helperEnv = "ROUNDTABLE_TEST_HELPER_IMPORT" // "DIR|FILE|PAUSE"

// pauseCtx is the helper's context: its Err, which the import calls
// between batches and before each write transaction, stops the import for
// good the first time pause(dir) holds, after saying so on stdout. The
// parent then SIGKILLs the process at exactly that point of the work.
type pauseCtx struct {
	context.Context
	dir   string
	pause func(dir string) bool
	once  sync.Once
}

func (c *pauseCtx) Err() error {
	if c.pause(c.dir) {
		c.once.Do(func() {
			fmt.Println("paused")
			select {} // until SIGKILL
		})
	}
	return nil
}

// pauses are the moments TestKilledMidImport kills an import at.
var pauses = map[string]func(dir string) bool{
	// Sorted runs are being spilled and nothing is in the store yet: the
	// import checks its context before every batch and before its first
	// write transaction, and a file of several batches spills before that.
	"spilling": func(dir string) bool {
		m, _ := filepath.Glob(filepath.Join(dir, "*.spill"))
		return len(m) > 0
	},
	// At least one write transaction of records is in the store file: it
	// has grown by more than 4 MiB (one transaction of 65,536 sealed
	// records is about 10 MB), and more are to come before the commit.
	"inserting": func(dir string) bool {
		fi, err := os.Stat(filepath.Join(dir, store.FileName))
		return err == nil && fi.Size() > initialStoreSize(dir)+4<<20
	},
}

// initialStoreSize is the size of the store file right after Init, which
// the parent records beside it.
func initialStoreSize(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, "..", "init-size"))
	if err != nil {
		return 1 << 62
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// TestHelperImport is not a test: TestKilledMidImport runs the test binary
// again with this test selected, to have a real process to SIGKILL.
func TestHelperImport(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("helper process for TestKilledMidImport")
	}
	parts := strings.Split(arg, "|")
	dir, file, pause := parts[0], parts[1], pauses[parts[2]]
	st, err := store.Open(dir, testPass)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	fmt.Println("started")
	ctx := &pauseCtx{Context: context.Background(), dir: dir, pause: pause}
	if _, err := Run(ctx, st, Options{}, file); err != nil {
		fmt.Println("import:", err)
		os.Exit(2)
	}
	st.Close()
	fmt.Println("done")
}

// TestKilledMidImport kills an importing process at two moments (while it
// spills sorted runs, and while it writes records to the store before the
// commit). The helper stops itself at each moment and the kill lands
// there, so both kills are before the commit: the reopened store must hold
// none of the file, read consistently, with no spill file left.
func TestKilledMidImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	const rows = 300_000
	file := filepath.Join(t.TempDir(), "big.csv")
	writeGenCSV(t, file, rows, 3)
	for _, pause := range []string{"spilling", "inserting"} {
		t.Run("while "+pause, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "store")
			if err := store.Init(dir, "RS", testPass, testKDF); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, store.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "init-size"), []byte(strconv.FormatInt(fi.Size(), 10)), 0o600); err != nil {
				t.Fatal(err)
			}
			runAndKill(t, dir, file, pause)
			if !pauses[pause](dir) {
				t.Fatalf("killed, but the store directory does not show the import %s", pause)
			}
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
			if n != 0 || seen != 0 {
				t.Errorf("killed before the commit: Count %d, iterated %d; want 0 (none of the %d rows)", n, seen, rows)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.spill")); len(left) != 0 {
				t.Errorf("spill files left after reopen: %v", left)
			}
		})
	}
}

// runAndKill starts the helper, waits until it reports that it paused
// mid-import, and SIGKILLs it. A helper that finishes or fails instead
// fails the test.
func runAndKill(t *testing.T, dir, file, pause string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperImport$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir+"|"+file+"|"+pause)
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
	for {
		select {
		case l, ok := <-lines:
			switch {
			case !ok || l == "done":
				cmd.Wait()
				t.Fatalf("the helper finished without pausing %s", pause)
			case strings.HasPrefix(l, "open:") || strings.HasPrefix(l, "import:"):
				t.Fatalf("helper failed: %s", l)
			case l == "paused":
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				return
			}
		case <-ctx.Done():
			t.Fatal("helper did not pause in time")
		}
	}
}
