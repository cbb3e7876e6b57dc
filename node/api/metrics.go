package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"roundtable/privacy"
)

// metrics live in a registry per server, never the global one: two nodes
// in one process (the demo, the tests) must not share counters.
type metrics struct {
	reg       *prometheus.Registry
	published prometheus.Counter
	refusals  *prometheus.CounterVec
	commit    prometheus.Histogram
	httpDur   *prometheus.HistogramVec
	handler   http.Handler
}

func newMetrics(b Backend) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.published = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "roundtable_releases_published_total",
		Help: "Releases this node published through its API.",
	})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roundtable_release_refusals_total",
		Help: "Publish requests the ledger's accountant refused, by reason class.",
	}, []string{"reason"})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "roundtable_raft_commit_seconds",
		Help:    "Time from submitting a ledger command to its commit.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.httpDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "roundtable_http_request_seconds",
		Help:    "HTTP request latency by route pattern (never the raw path, which would explode the label set).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"route", "code"})
	for _, r := range []string{"over_budget", "policy", "other"} {
		m.refusals.WithLabelValues(r) // export zeros so rate() works from the start
	}
	m.reg.MustRegister(m.published, m.refusals, m.commit, m.httpDur,
		newBackendCollector(b),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

func (m *metrics) observeHTTP(route, method string, code int, d time.Duration) {
	_ = method // the route label already includes the method
	m.httpDur.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}

// refusal classifies an accountant refusal. The classes are coarse on
// purpose: the reason text names quarters and amounts.
func (m *metrics) refusal(reason string) {
	class := "other"
	switch {
	case strings.Contains(reason, "over budget"):
		class = "over_budget"
	case strings.Contains(reason, "accounting"), strings.Contains(reason, "policy"):
		class = "policy"
	}
	m.refusals.WithLabelValues(class).Inc()
}

// backendCollector reads the ledger's state at scrape time, so the gauges
// are never stale and the server keeps no copy of them.
type backendCollector struct {
	b                                                      Backend
	spent, cap, raft, applied, commit, inCluster, releases *prometheus.Desc
	raftRefused, denied, snapshotsRefused                  *prometheus.Desc
}

func newBackendCollector(b Backend) *backendCollector {
	return &backendCollector{
		b: b,
		spent: prometheus.NewDesc("roundtable_budget_spent",
			"Privacy budget (ε or ρ) a partner has spent on a quarter.", []string{"partner", "quarter", "accounting"}, nil),
		cap: prometheus.NewDesc("roundtable_budget_cap",
			"Budget cap per partner per quarter set by the consortium's policy.", []string{"accounting"}, nil),
		raft:      prometheus.NewDesc("roundtable_raft_state", "1 for the node's current raft state.", []string{"state"}, nil),
		applied:   prometheus.NewDesc("roundtable_raft_applied_index", "Ledger index this node has applied.", nil, nil),
		commit:    prometheus.NewDesc("roundtable_raft_commit_index", "Ledger index this node knows committed.", nil, nil),
		inCluster: prometheus.NewDesc("roundtable_in_cluster", "1 if the node has a leader and a configuration.", nil, nil),
		releases:  prometheus.NewDesc("roundtable_ledger_releases", "Releases in the ledger.", nil, nil),
		raftRefused: prometheus.NewDesc("roundtable_raft_rpc_refused_total",
			"Inbound raft RPCs refused because the sender was not the TLS peer, not a voter, or (TimeoutNow) not the leader.", []string{"reason"}, nil),
		denied: prometheus.NewDesc("roundtable_tls_handshakes_refused_total",
			"Peers refused at the TLS handshake because the ledger's deny-list names their certificate.", nil, nil),
		snapshotsRefused: prometheus.NewDesc("roundtable_ledger_snapshots_refused_total",
			"Snapshots this node refused to install because their content did not check out.", nil, nil),
	}
}

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.spent, c.cap, c.raft, c.applied, c.commit, c.inCluster, c.releases, c.raftRefused, c.denied, c.snapshotsRefused} {
		ch <- d
	}
}

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := c.b.Health(ctx)
	for _, st := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
		v := 0.0
		if h.RaftState == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.raft, prometheus.GaugeValue, v, st)
	}
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(h.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(h.CommitIndex))
	ch <- prometheus.MustNewConstMetric(c.inCluster, prometheus.GaugeValue, boolFloat(h.InCluster))
	ch <- prometheus.MustNewConstMetric(c.releases, prometheus.GaugeValue, float64(h.Releases))
	ch <- prometheus.MustNewConstMetric(c.denied, prometheus.CounterValue, float64(h.HandshakesRefused))
	for reason, n := range h.RaftRPCRefused {
		ch <- prometheus.MustNewConstMetric(c.raftRefused, prometheus.CounterValue, float64(n), reason)
	}
	refused := 0.0
	if h.SnapshotRefused != nil {
		refused = float64(h.SnapshotRefused.Count)
	}
	ch <- prometheus.MustNewConstMetric(c.snapshotsRefused, prometheus.CounterValue, refused)
	partners, err := c.b.Partners(ctx)
	if err != nil {
		return // the scrape still carries the raft gauges
	}
	for i, p := range partners {
		pol, spends, err := c.b.Budget(ctx, p)
		if err != nil {
			continue
		}
		if i == 0 {
			ch <- prometheus.MustNewConstMetric(c.cap, prometheus.GaugeValue, float64(pol.CapMicro)/privacy.Micro, pol.Accounting)
		}
		for _, q := range spends {
			ch <- prometheus.MustNewConstMetric(c.spent, prometheus.GaugeValue,
				float64(q.SpentMicro)/privacy.Micro, p, q.Quarter.String(), pol.Accounting)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
