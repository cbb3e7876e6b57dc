package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"roundtable/node"
	"roundtable/node/api"
	"roundtable/node/api/apitest"
	"roundtable/privacy"
)

// fakeNode serves the API over the fake backend on a data dir's operator
// socket, as 'roundtable serve' would: partner RS, 2024's quarters
// published at ε 1 each, a cap of ε 5 per quarter. The fake records every
// Publish call, so a test sees whether a command reached the spending step.
func fakeNode(t *testing.T) (string, *apitest.Fake) {
	t.Helper()
	fake, err := apitest.New(apitest.Options{Partner: "RS", FromYear: 2024, ToYear: 2024, CapMicro: 5 * privacy.Micro})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := api.OpenTokenStore(filepath.Join(t.TempDir(), api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Backend: fake, Tokens: tokens, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, node.AdminSock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeLocal(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return dir, fake
}

// runCLI runs the roundtable command line in process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// Every request publish refuses for its parameters is refused before
// anything is printed or reserved: the error says what to give, stdout
// and stderr stay empty, and the node never sees a publish.
func TestPublishRefusesBeforeReserving(t *testing.T) {
	dir, fake := fakeNode(t)
	base := []string{"publish", "--data-dir", dir}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no epsilon", []string{"--period", "2025"}, "publish needs --epsilon: the budget to spend on each quarter of the period"},
		{"epsilon 0", []string{"--period", "2025", "--epsilon", "0"}, `budget "0" is not positive`},
		{"epsilon -1", []string{"--period", "2025", "--epsilon=-1"}, `budget "-1" is negative`},
		{"epsilon 1e-7", []string{"--period", "2025", "--epsilon", "1e-7"}, "has an exponent"},
		{"epsilon 1e3", []string{"--period", "2025", "--epsilon", "1e3"}, "has an exponent"},
		{"epsilon abc", []string{"--period", "2025", "--epsilon", "abc"}, "is not a number"},
		{"seven decimals", []string{"--period", "2025", "--epsilon", "0.0000001"}, "has 7 decimals, finer than one micro unit"},
		{"above the most", []string{"--period", "2025", "--epsilon", "1000.5"}, "is above 1000"},
		{"above the cap", []string{"--period", "2025", "--epsilon", "6"}, "over budget: ε 6 is above the consortium's cap of 5 per quarter"},
		{"above what is left", []string{"--period", "2024", "--epsilon", "4.5"}, "over budget: 2024-Q1 has 4.000000 left of 5.000000, release needs 4.500000"},
		{"bad period", []string{"--period", "2025-Q5", "--epsilon", "1"}, `period "2025-Q5"`},
		{"unknown indicator", []string{"--period", "2025", "--epsilon", "1", "--indicator", "nope"}, `indicator "nope" is not in catalog version 1; it has victims, exploitation`},
		{"indicator twice", []string{"--period", "2025", "--epsilon", "1", "--indicator", "victims", "--indicator", "victims"}, `indicator "victims" is named twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append(base, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed before refusing:\nstdout %q\nstderr %q", stdout, stderr)
			}
		})
	}
	if _, publishes, _ := fake.Snapshot(); len(publishes) != 0 {
		t.Errorf("refused requests reached Publish: %+v", publishes)
	}
}

// A good request says what it will spend, then spends exactly the typed
// decimal: 4.014 arrives as 4,014,000 micro, not one micro more.
func TestPublishSaysWhatItSpends(t *testing.T) {
	dir, fake := fakeNode(t)
	stdout, _, err := runCLI(t, "publish", "--data-dir", dir, "--period", "2025", "--epsilon", "0.5", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if want := "will spend ε 0.5 on each of 2025-Q1..Q4 of RS; 4.5 of 5 left in each after this"; !strings.Contains(stdout, want) {
		t.Errorf("dry run says %q, want %q", stdout, want)
	}
	if _, publishes, _ := fake.Snapshot(); len(publishes) != 0 {
		t.Fatalf("a dry run published: %+v", publishes)
	}

	stdout, stderr, err := runCLI(t, "publish", "--data-dir", dir, "--period", "2025-Q2", "--epsilon", "4.014",
		"--indicator", "exploitation", "--indicator", "victims")
	if err != nil {
		t.Fatal(err)
	}
	will := strings.Index(stdout, "will spend ε 4.014 on 2025-Q2 of RS; 0.986 of 5 left after this")
	if will < 0 || !strings.Contains(stderr, "reserving budget") || !strings.Contains(stdout, "published release") {
		t.Errorf("stdout %q\nstderr %q", stdout, stderr)
	}
	if !strings.Contains(stdout, "indicators: victims, exploitation") {
		t.Errorf("indicators not in catalog order: %q", stdout)
	}
	_, publishes, _ := fake.Snapshot()
	if len(publishes) != 1 || publishes[0].Epsilon != 4_014_000 || publishes[0].Period != "2025-Q2" {
		t.Errorf("the node was asked for %+v, want one release of exactly 4014000 micro on 2025-Q2", publishes)
	}
}

// plan warns about budgets the ledger would refuse, and shows the two
// cadences side by side at the same ε.
func TestPlanWarnsAndComparesCadences(t *testing.T) {
	dir, _ := fakeNode(t)
	stdout, _, err := runCLI(t, "plan", "--data-dir", dir, "--period", "2025", "--epsilon", "6")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "WARNING: the budget ε 6 is above the consortium's cap of 5 per quarter") {
		t.Errorf("no cap warning:\n%s", stdout)
	}
	stdout, _, err = runCLI(t, "plan", "--data-dir", dir, "--period", "2025", "--epsilon", "1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, "WARNING") || !strings.Contains(stdout, "Yearly or quarterly, at ε 1 per quarter") ||
		!strings.Contains(stdout, "one yearly release") || !strings.Contains(stdout, "four quarterly releases, summed") {
		t.Errorf("plan at ε 1:\n%s", stdout)
	}
	stdout, _, err = runCLI(t, "plan", "--data-dir", dir, "--period", "2025", "--target-ci", "1", "--indicator", "victims")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "WARNING: victims needs ε") || !strings.Contains(stdout, "above the consortium's cap of 5") {
		t.Errorf("a target needing more than the cap gives no warning:\n%s", stdout)
	}
	if _, _, err := runCLI(t, "plan", "--data-dir", dir, "--period", "2025"); err == nil || !strings.Contains(err.Error(), "plan needs --epsilon E") {
		t.Errorf("plan with no budget and no target: %v", err)
	}
}
