package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"roundtable/aggregate"
	"roundtable/privacy"
)

// BenchmarkRelease1M is a node's whole publish path for one quarter over
// 1,000,000 case records, reading them from the encrypted store as
// node.draw does: Cases (open and decrypt every record), the quarter book,
// TabulateFixed, then BuildRelease (noise and sign) of every indicator of
// catalog v1. As the baseline in the same run it tabulates the same
// records held in memory. The targets (README): a release under 1 s and
// within 1.5× of tabulation. Filling the store takes a minute or so and is
// not timed.
//
//	go test -run '^$' -bench Release1M -benchtime 3x -timeout 30m ./node/store
func BenchmarkRelease1M(b *testing.B) {
	const n = 1_000_000
	period := aggregate.Period{Year: 2024, Quarter: 2}
	dir := b.TempDir()
	pass := []byte("correct horse battery staple")
	if err := Init(dir, "RS", pass, MinKDFParams()); err != nil {
		b.Fatal(err)
	}
	st, err := Open(dir, pass)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var mem []aggregate.Case
	imp, err := st.BeginImport(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := benchCases(n, period, func(c *aggregate.Case) error {
		mem = append(mem, *c)
		return imp.Add(c)
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := imp.Commit(); err != nil {
		b.Fatal(err)
	}
	cat := aggregate.CatalogV1()
	res := privacy.Reservation{ID: "bench", Consortium: "bench", Partner: "RS", CatalogHash: cat.Hash(), Period: period,
		Accounting: privacy.PureDP, SpendMicro: privacy.Micro}
	for _, ind := range cat.Indicators {
		res.Indicators = append(res.Indicators, ind.Name)
	}
	fromMemory := func(fn func(*aggregate.Case) error) error {
		for i := range mem {
			if err := fn(&mem[i]); err != nil {
				return err
			}
		}
		return nil
	}
	runtime.GC()
	var scan, draw, memTab, drawCPU time.Duration
	b.ResetTimer()
	for range b.N {
		// Decrypting alone: what the store adds before any counting.
		t0 := time.Now()
		count := 0
		if err := st.Cases(ctx, func(*aggregate.Case) error { count++; return nil }); err != nil || count != n {
			b.Fatalf("store holds %d cases (%v), want %d", count, err, n)
		}
		t1, c1 := time.Now(), cpuTime()
		if _, err := drawRelease(ctx, st, cat, res); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		drawCPU += cpuTime() - c1
		if _, err := aggregate.Tabulate(ctx, cat, period, res.Indicators, fromMemory); err != nil {
			b.Fatal(err)
		}
		scan, draw, memTab = scan+t1.Sub(t0), draw+t2.Sub(t1), memTab+time.Since(t2)
	}
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(draw), "release-ms/op")
	// CPU time moves far less than wall time when other work shares the
	// machine (the release decrypts and tabulates on every core).
	b.ReportMetric(per(drawCPU), "release-cpu-ms/op")
	b.ReportMetric(per(scan), "decrypt-scan-ms/op")
	b.ReportMetric(per(memTab), "tabulate-in-memory-ms/op")
	b.ReportMetric(float64(draw)/float64(memTab), "release/tabulate-in-memory")
	b.ReportMetric(n*float64(b.N)/draw.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drawRelease is node.draw without the ledger: the store's records, the
// quarter book, tabulation, and the signed release.
func drawRelease(ctx context.Context, st *Store, cat *aggregate.Catalog, res privacy.Reservation) (privacy.Signed, error) {
	each := func(fn func(*aggregate.Case) error) error { return st.Cases(ctx, fn) }
	book, err := st.QuarterBook()
	if err != nil {
		return privacy.Signed{}, err
	}
	tables, _, err := aggregate.TabulateFixed(ctx, cat, res.Period, res.Indicators, each, book)
	if err != nil {
		return privacy.Signed{}, err
	}
	return privacy.BuildRelease(ctx, cat, tables, res.Params(), res, ed25519.PrivateKey(st.SigningKey()))
}

// benchCases makes n varied records registered in period, one person in
// ten with a second case (the shape of privacy's benchmark data).
func benchCases(n int, period aggregate.Period, fn func(*aggregate.Case) error) error {
	citizenships := []aggregate.Country{"AL", "BA", "XK", "ME", "MK", "RS", "DE", "SY", "CN", "NG", "BR", ""}
	r := rand.New(rand.NewPCG(99, 7))
	start := aggregate.DateOf(period.Year, 1, 1) + aggregate.Date((period.Quarter-1)*91)
	for i := range n {
		c := aggregate.NewCase()
		c.CaseID = fmt.Sprintf("c%07d", i)
		if i%10 == 1 {
			c.PersonID = fmt.Sprintf("p%07d", i-1)
		}
		c.RegisteredOn = start + aggregate.Date(r.IntN(90))
		c.Status = aggregate.Status(r.IntN(2))
		c.Sex = aggregate.Sex(r.IntN(4))
		if r.IntN(10) > 0 {
			c.Age = min(90, 8+r.IntN(40)+r.IntN(20))
		}
		c.Citizenship = citizenships[r.IntN(len(citizenships))]
		c.ExploitedIn = citizenships[r.IntN(len(citizenships))]
		for range 1 + r.IntN(3) {
			c.Forms = c.Forms.With(aggregate.Form(r.IntN(10)))
			c.Control = c.Control.With(aggregate.Control(r.IntN(17)))
			c.Services = c.Services.With(aggregate.Service(r.IntN(8)))
		}
		c.Recruitment = aggregate.Recruitment(r.IntN(15))
		c.RecruiterRelation = aggregate.Relation(r.IntN(5))
		c.ReferralSource = aggregate.Referral(r.IntN(8))
		c.MigrantStatus = aggregate.Migration(r.IntN(5))
		c.Unaccompanied = r.IntN(20) == 0
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}
