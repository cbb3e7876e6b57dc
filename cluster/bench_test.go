package cluster

import (
	"context"
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
// "small" releases hold one indicator (referral_source, 8 cells, about
// 2 KB); "whole" releases hold every indicator of catalog v1 (321 cells
// and 3 quantiles, about 28 KB), which is what a partner publishes each
// quarter. Both run in the same invocation, so their figures compare.
//
//	go test -run '^$' -bench ClusterPublish -benchtime 1x ./cluster
func BenchmarkClusterPublish(b *testing.B) {
	var whole []string
	for _, ind := range aggregate.CatalogV1().Indicators {
		whole = append(whole, ind.Name)
	}
	for _, c := range []struct {
		name        string
		conc, count int
		indicators  []string
	}{
		{"small/c=1", 1, 300, []string{"referral_source"}},
		{"small/c=64", 64, 12_000, []string{"referral_source"}},
		{"whole/c=64", 64, 3_000, whole},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchPublish(b, c.conc, c.count*b.N, c.indicators)
		})
	}
}

func benchPublish(b *testing.B, conc, total int, indicators []string) {
	r := newTestRegion(b)
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(b, nodes)
	type pair struct {
		sr privacy.SignedReservation
		s  privacy.Signed
	}
	work := make([]pair, total)
	var bytes int64
	for i := range work {
		partner := testPartnerIDs[i%len(testPartnerIDs)]
		work[i].sr, work[i].s = makeReleaseOf(b, r.keys[partner], r.catalog.Hash(), partner,
			aggregate.Period{Year: 1990 + (i/4)%30, Quarter: 1 + (i/120)%4}, 1, indicators)
		data, err := LeafData(&work[i].s)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(data))
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
	b.ReportMetric(float64(bytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(bytes)/float64(total), "bytes/release")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	// CPU of all three nodes and the publishers per release: on a shared
	// machine it moves far less with other load than releases/s does.
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/release")
	b.ReportMetric(0, "ns/op") // the per-op figure of a fixed batch means nothing
}

// BenchmarkRestart100k measures how long a member whose ledger holds
// 100,000 releases takes to serve again after a restart: Open returns, a
// leader is known and a consistent read succeeds. The region runs with the
// production raft timeouts (DefaultHeartbeatTimeout and the rest), three
// voters, and the restarted node is a follower, as in a live consortium:
// it hears the leader's heartbeat rather than waiting out an election.
// (A lone node cannot do better than one randomized election timeout,
// 1.5–3 s with the defaults, whatever its ledger holds.) Building the
// ledger takes minutes (200,000 commands through raft); the timer covers
// only the restarts.
//
//	go test -run '^$' -bench Restart100k -benchtime 3x -timeout 60m ./cluster
func BenchmarkRestart100k(b *testing.B) {
	const releases = 100_000
	r := newTestRegion(b)
	r.production = true
	nodes := r.startCluster("AL", "BA", "XK")
	leader := leaderOf(b, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	t0 := time.Now()
	publishMany(b, ctx, leader, r, releases, 256)
	b.Logf("built a ledger of %d releases in %v", releases, time.Since(t0).Round(time.Millisecond))
	var n *Node
	for _, x := range nodes {
		if x != leader {
			n = x
		}
	}
	if _, err := n.ConsistentRead(ctx); err != nil {
		b.Fatal(err)
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		b.Fatal(err)
	}
	cfg := n.cfg
	cfg.Join, cfg.Bootstrap, cfg.RaftAddr = "", nil, n.Addr()
	var worst time.Duration
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
		worst = max(worst, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(worst.Milliseconds()), "worst-restart-ms")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "restart-ms")
	b.ReportMetric(0, "ns/op")
	tree, err := n.FSM().TreeHead()
	if err != nil {
		b.Fatal(err)
	}
	if tree.N != releases {
		b.Fatalf("restarted ledger has %d releases, want %d", tree.N, releases)
	}
}
