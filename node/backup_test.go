package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/node/client"
	"roundtable/node/store"
)

// storeContent is what a store holds, read through its API: every case
// (canonical JSON, sorted), the quarter each person-year was fixed to, and
// the key/value entries.
type storeContent struct {
	cases    []string
	quarters map[string]int // person/year → fixed quarter (0: not fixed)
	pending  []byte
}

func readStore(t *testing.T, dir string) storeContent {
	t.Helper()
	st, err := store.Open(dir, []byte(testPassphrase))
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer st.Close()
	book, err := st.QuarterBook()
	if err != nil {
		t.Fatal(err)
	}
	c := storeContent{quarters: map[string]int{}}
	err = st.Cases(t.Context(), func(k *aggregate.Case) error {
		b, err := json.Marshal(k)
		if err != nil {
			return err
		}
		c.cases = append(c.cases, string(b))
		for y := 2023; y <= 2026; y++ {
			c.quarters[fmt.Sprintf("%s/%d", k.Person(), y)] = book.Quarter(k.Person(), y)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(c.cases)
	if c.pending, err = st.Get(pendingKey); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if n, err := st.Count(); err != nil || n != len(c.cases) {
		t.Fatalf("%s: Count %d (%v), Cases gave %d", dir, n, err, len(c.cases))
	}
	return c
}

// backupOnline takes a backup through the node's operator socket, as
// 'roundtable backup' does while the node serves.
func backupOnline(ctx context.Context, t *testing.T, n *Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := client.NewLocal(filepath.Join(n.cfg.DataDir, AdminSock)).Backup(ctx, &buf); err != nil {
		t.Fatalf("backup %s: %v", n.ID(), err)
	}
	return buf.Bytes()
}

// publishLoop publishes one small release after another on each node and
// period until stop is closed; it returns how many landed.
func publishLoop(ctx context.Context, t *testing.T, stop <-chan struct{}, nodes []*Node, periods []string) func() int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	landed := 0
	for _, n := range nodes {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i >= len(periods) {
					return
				}
				if _, err := n.Publish(ctx, mustPeriod(t, periods[i]), []string{"victims"}, 100_000); err != nil {
					t.Errorf("%s publish %s: %v", n.ID(), periods[i], err)
					return
				}
				mu.Lock()
				landed++
				mu.Unlock()
			}
		})
	}
	return func() int { wg.Wait(); return landed }
}

// TestBackupWhilePublishingRestoresAndRejoins takes backups of a serving
// node through its operator socket while every partner publishes, restores
// them into fresh directories, and checks that each restored ledger passes
// the snapshot checks (the online copy is consistent) and each restored
// store holds the same cases. Then, with a release in flight on RS, it
// backs RS up while the others publish, loses RS, restores the backup on a
// new address and starts it with --join: the cases, the quarter book and
// the release in flight come back with the store, the release lands once
// with the bytes signed before the backup, and the ledger catches up to the
// same state hash and Merkle root as the others. The backup opens only
// with the passphrase, and a damaged or truncated one is refused.
func TestBackupWhilePublishingRestoresAndRejoins(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, "RS", "AL", "BA")
	rs, al, ba := r.nodes[0], r.nodes[1], r.nodes[2]
	before := readStoreWhileServing(t, rs)

	// 1. Backups while all three publish, RS included (its store fixes
	// quarters and saves pending releases while it is copied).
	stop := make(chan struct{})
	wait := publishLoop(ctx, t, stop, []*Node{rs, al, ba}, []string{"2024-Q1", "2024-Q2", "2024-Q3", "2024-Q1", "2024-Q2", "2024-Q3"})
	done := make(chan int)
	go func() { done <- wait() }()
	var backups [][]byte
	applied := map[uint64]bool{}
	for landed := -1; landed < 0; {
		b := backupOnline(ctx, t, rs)
		m, err := VerifyBackup(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !applied[m.Applied] {
			backups, applied[m.Applied] = append(backups, b), true
		}
		select {
		case landed = <-done:
			if landed == 0 {
				t.Fatal("no release landed while the backups were taken")
			}
		default:
		}
	}
	close(stop)
	if len(applied) < 2 {
		t.Fatal("every backup at one ledger index: publishing did not run during them")
	}
	// Restoring is a full check of the ledger: a handful, spread over the run.
	if n := len(backups); n > 4 {
		backups = [][]byte{backups[0], backups[n/3], backups[2*n/3], backups[n-1]}
	}
	for i, b := range backups {
		dir := filepath.Join(t.TempDir(), "restored")
		m, err := Restore(ctx, bytes.NewReader(b), dir, []byte(testPassphrase))
		if err != nil {
			t.Fatalf("restore backup %d taken while publishing: %v", i, err)
		}
		if m.Partner != "RS" || m.Cases != len(before.cases) || m.Applied == 0 {
			t.Errorf("backup %d manifest %+v", i, m)
		}
		got := readStore(t, dir)
		if !slices.Equal(got.cases, before.cases) {
			t.Errorf("backup %d: %d cases restored, RS had %d (or their content differs)", i, len(got.cases), len(before.cases))
		}
	}

	// 2. A release in flight on RS (signed and saved, not yet in the
	// ledger, as a lost connection leaves it), then a backup while AL and
	// BA publish.
	p := interruptedPublish(ctx, t, rs, "2024-Q4", 250_000, afterSign)
	stop = make(chan struct{})
	wait = publishLoop(ctx, t, stop, []*Node{al, ba}, []string{"2025-Q1", "2025-Q2", "2025-Q3"})
	backup := backupOnline(ctx, t, rs)
	// The backup is served on the operator socket only, never over TCP.
	resp, err := http.Get("http://" + rs.HTTPAddr() + BackupPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s over TCP: %s, want 404", BackupPath, resp.Status)
	}
	if _, err := BackupStopped(ctx, rs.cfg.DataDir, []byte(testPassphrase), &bytes.Buffer{}); !errors.Is(err, store.ErrInUse) {
		t.Errorf("backup from the files of a serving node: %v, want ErrInUse", err)
	}
	close(stop)
	wait()

	// RS's disk is lost: stop it; what it held is the reference.
	r.stops[0]()
	orig := readStore(t, rs.cfg.DataDir)
	if orig.pending == nil {
		t.Fatal("RS has no release in flight; the test needs one")
	}
	// With the node stopped, its files are backed up read-only.
	var stopped bytes.Buffer
	if _, err := BackupStopped(ctx, rs.cfg.DataDir, []byte(testPassphrase), &stopped); err != nil {
		t.Fatalf("backup of the stopped node: %v", err)
	}
	if m, err := Restore(ctx, &stopped, filepath.Join(t.TempDir(), "offline"), []byte(testPassphrase)); err != nil ||
		m.Cases != len(orig.cases) || !slices.Contains(m.State, pendingKey) {
		t.Errorf("restore of the stopped node's backup: %+v, %v", m, err)
	}
	m, err := VerifyBackup(bytes.NewReader(backup))
	if err != nil || !slices.Contains(m.State, pendingKey) {
		t.Fatalf("verify: %+v, %v; want a manifest naming the release in flight", m, err)
	}

	checkRestoreRefusals(ctx, t, backup)

	dir := filepath.Join(t.TempDir(), "new-machine")
	if _, err := Restore(ctx, bytes.NewReader(backup), dir, []byte(testPassphrase)); err != nil {
		t.Fatal(err)
	}
	restored := readStore(t, dir)
	if !slices.Equal(restored.cases, orig.cases) || len(orig.cases) == 0 {
		t.Errorf("restored %d cases, RS had %d (or their content differs)", len(restored.cases), len(orig.cases))
	}
	if fixed := countFixed(orig.quarters); fixed == 0 || !maps.Equal(restored.quarters, orig.quarters) {
		t.Errorf("quarter book: restored %d fixed person-years, RS had %d, or a quarter differs", countFixed(restored.quarters), fixed)
	}
	if !bytes.Equal(restored.pending, orig.pending) {
		t.Errorf("the release in flight did not come back with the store")
	}

	// 3. The restored node joins again from a new address, with the same
	// certificate, and catches up; its release in flight lands once.
	cfg := r.config("RS")
	cfg.DataDir, cfg.Passphrase = dir, []byte(testPassphrase)
	cfg.Join, cfg.JoinGenesis = al.RaftAddr(), r.genesis
	rs2 := r.start(cfg)
	live := []*Node{al, ba, rs2}
	resID := p.Reservation.Reservation.ID
	for _, n := range live {
		waitFor(ctx, t, 30*time.Second, n.ID()+" has the resumed release", func() error {
			if got := releasesOf(t, n, resID); len(got) != 1 || got[0].ID != p.Release.ID {
				return fmt.Errorf("%d releases for the reservation", len(got))
			}
			return nil
		})
	}
	waitFor(ctx, t, 10*time.Second, "pending entry cleared", func() error {
		if _, err := rs2.st.Get(pendingKey); !errors.Is(err, store.ErrNotFound) {
			return errors.New("still pending")
		}
		return nil
	})
	if s := spentOn(t, rs2, "RS", "2024-Q4"); s != 250_000 {
		t.Errorf("RS spent %d µε on 2024-Q4, want the one reservation's 250000", s)
	}
	// The restored node signs again, as RS.
	if _, err := rs2.Publish(ctx, mustPeriod(t, "2025-Q1"), []string{"victims"}, 100_000); err != nil {
		t.Fatalf("publish from the restored node: %v", err)
	}
	waitSameLedger(ctx, t, live)
}

// readStoreWhileServing reads a serving node's store through the node's
// own handle.
func readStoreWhileServing(t *testing.T, n *Node) storeContent {
	t.Helper()
	var c storeContent
	err := n.st.Cases(t.Context(), func(k *aggregate.Case) error {
		b, err := json.Marshal(k)
		c.cases = append(c.cases, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(c.cases)
	return c
}

// waitSameLedger waits until the nodes have applied the same entries and
// then compares their state hashes and Merkle roots.
func waitSameLedger(ctx context.Context, t *testing.T, nodes []*Node) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, "the same ledger on every node", func() error {
		var hashes, roots []string
		for _, n := range nodes {
			h, err := n.ledger.FSM().StateHash()
			if err != nil {
				return err
			}
			head, err := n.ledger.FSM().TreeHead()
			if err != nil {
				return err
			}
			hashes, roots = append(hashes, h), append(roots, fmt.Sprintf("%d/%x", head.N, head.Hash[:4]))
		}
		if !allSame(hashes) || !allSame(roots) {
			return fmt.Errorf("state hashes %v, trees %v", hashes, roots)
		}
		return nil
	})
}

// checkRestoreRefusals: a wrong passphrase, a flipped byte, a cut-off file
// and a non-empty directory are each refused, and leave the directory as
// it was.
func checkRestoreRefusals(ctx context.Context, t *testing.T, backup []byte) {
	t.Helper()
	flipped := slices.Clone(backup)
	flipped[len(flipped)/3] ^= 1
	for _, c := range []struct {
		name string
		data []byte
		pass string
		want error
	}{
		{"wrong passphrase", backup, "not the passphrase", store.ErrWrongPassphrase},
		{"flipped byte", flipped, testPassphrase, ErrBackupDamaged},
		{"cut off", backup[:len(backup)-2048], testPassphrase, ErrBackupDamaged},
	} {
		dir := filepath.Join(t.TempDir(), "restore")
		_, err := Restore(ctx, bytes.NewReader(c.data), dir, []byte(c.pass))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %s left behind (%v)", c.name, dir, err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, bytes.NewReader(backup), dir, []byte(testPassphrase)); err == nil {
		t.Error("restore into a non-empty directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("non-empty directory: %d entries after the refused restore, want the 1 it had", len(entries))
	}
}

func countFixed(q map[string]int) int {
	n := 0
	for _, v := range q {
		if v != 0 {
			n++
		}
	}
	return n
}

func allSame(s []string) bool { return len(slices.Compact(slices.Clone(s))) == 1 }
