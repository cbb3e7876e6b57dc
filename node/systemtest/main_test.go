package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the roundtable executable built by TestMain; tests only read it.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "roundtable-systemtest-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systemtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "systemtest:", err)
		return 1
	}
	binary = filepath.Join(dir, "roundtable")
	build := exec.Command("go", "build", "-o", binary, "./cmd/roundtable")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "systemtest: go build ./cmd/roundtable: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the roundtable module")
	}
	return filepath.Dir(mod), nil
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int // exit status; -1 if it did not exit normally
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the binary to completion with the passphrase in the
// environment ("" leaves it unset). It must be called from the test's
// goroutine; others use runCmd.
func run(ctx context.Context, t testing.TB, passphrase string, args ...string) result {
	t.Helper()
	r, err := runCmd(ctx, passphrase, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runCmd is run for any goroutine: an error means the binary could not be
// run at all, not that it exited non-zero.
func runCmd(ctx context.Context, passphrase string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env(passphrase)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("roundtable %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// mustRun is run that fails the test on a non-zero exit.
func mustRun(ctx context.Context, t testing.TB, passphrase string, args ...string) result {
	t.Helper()
	r := run(ctx, t, passphrase, args...)
	if r.code != 0 {
		t.Fatalf("roundtable %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// caPassphrase seals the system tests' CA keys (ca init and ca issue read
// it from the environment).
const caPassphrase = "systemtest CA passphrase"

func env(passphrase string) []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROUNDTABLE_PASSPHRASE=") && !strings.HasPrefix(kv, "ROUNDTABLE_CA_PASSPHRASE=") {
			e = append(e, kv)
		}
	}
	e = append(e, "ROUNDTABLE_CA_PASSPHRASE="+caPassphrase)
	if passphrase != "" {
		e = append(e, "ROUNDTABLE_PASSPHRASE="+passphrase)
	}
	return e
}

// proc is a long-running roundtable process (serve).
type proc struct {
	cmd  *exec.Cmd
	log  string // its stderr
	done chan struct{}
	err  error // set when done is closed
}

// start launches the binary in the background; t.Cleanup kills it.
func start(t testing.TB, passphrase, logFile string, args ...string) *proc {
	t.Helper()
	return startEnv(t, passphrase, nil, logFile, args...)
}

// startEnv is start with extra environment variables (KEY=VALUE).
func startEnv(t testing.TB, passphrase string, extraEnv []string, logFile string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(env(passphrase), extraEnv...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start roundtable %s: %v", strings.Join(args, " "), err)
	}
	p := &proc{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill SIGKILLs the process (a crash, not a shutdown) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// freeAddr returns a loopback address nothing listens on right now. Another
// process may take it before we do; the ports are picked per test run, so
// a clash shows up as a failed start with "address already in use".
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getJSON GETs url and decodes the answer, which must be 200.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// eventually polls cond until it returns nil or timeout passes, and then
// fails the test with cond's last error.
func eventually(ctx context.Context, t testing.TB, timeout time.Duration, what string, cond func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = cond(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncLog is a goroutine-safe list of lines, for what concurrent
// publishers saw.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
