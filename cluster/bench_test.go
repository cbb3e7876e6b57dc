package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// BenchmarkClusterPublish measures signed releases committed per second
// through a 3-node mutual-TLS cluster on loopback. One release is two
// commands, reserve then publish, each acknowledged only after commit and
// apply; the latency reported is for the pair. Publishers call the leader.
//
//	go test -run '^$' -bench ClusterPublish -benchtime 1x ./cluster
func BenchmarkClusterPublish(b *testing.B) {
	for _, c := range []struct {
		conc, perRun int
	}{{1, 300}, {64, 12_000}} {
		b.Run(fmt.Sprintf("c=%d", c.conc), func(b *testing.B) {
			benchPublish(b, c.conc, c.perRun*b.N)
		})
	}
}

func benchPublish(b *testing.B, conc, total int) {
	r := newTestRegion(b)
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(b, nodes)
	type pair struct {
		sr privacy.SignedReservation
		s  privacy.Signed
	}
	work := make([]pair, total)
	for i := range work {
		partner := testPartnerIDs[i%len(testPartnerIDs)]
		work[i].sr, work[i].s = r.release(partner, aggregate.Period{Year: 1990 + (i/4)%30, Quarter: 1 + (i/120)%4}, 1)
	}
	lat := make([]time.Duration, total)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				t0 := time.Now()
				if _, err := publishOne(ctx, leader, work[i].sr, work[i].s); err != nil {
					failed.Add(1)
					b.Errorf("publish %d: %v", i, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if failed.Load() > 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "releases/s")
	b.ReportMetric(float64(2*total)/elapsed.Seconds(), "commands/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	// CPU of all three nodes and the publishers per release: on a shared
	// machine it moves far less with other load than releases/s does.
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/release")
	b.ReportMetric(0, "ns/op") // the per-op figure of a fixed batch means nothing
}

// BenchmarkRestart100k measures how long a node whose ledger holds 100,000
// releases takes to serve again after a restart: Open returns, a leader is
// known and a consistent read succeeds. Building the ledger takes a while
// (200,000 commands through raft); the timer covers only the restart. The
// node is a single-node cluster with the test timeouts, so the restart
// includes one election (300 ms here; 1.5 s with the production defaults,
// which a member of a live cluster does not wait for: it hears the
// leader's heartbeat instead).
//
//	go test -run '^$' -bench Restart100k -benchtime 1x -timeout 30m ./cluster
func BenchmarkRestart100k(b *testing.B) {
	const releases = 100_000
	r := newTestRegion(b)
	cfg := r.config("AL", b.TempDir())
	cfg.Bootstrap = r.genesis
	cfg.Signer = nil // co-signing is not what is measured
	n := r.open(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t0 := time.Now()
	publishMany(b, ctx, n, r, releases, 256)
	b.Logf("built a ledger of %d releases in %v", releases, time.Since(t0).Round(time.Millisecond))
	if err := n.raft.Snapshot().Error(); err != nil {
		b.Fatal(err)
	}
	cfg.RaftAddr = n.Addr()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n = r.open(cfg)
		if err := n.WaitForLeader(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := n.ConsistentRead(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "restart_ms")
	}
	b.StopTimer()
	tree, err := n.FSM().TreeHead()
	if err != nil {
		b.Fatal(err)
	}
	if tree.N != releases {
		b.Fatalf("restarted ledger has %d releases, want %d", tree.N, releases)
	}
}
