package api

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	h := s.cfg.Backend.Health(r.Context())
	status := http.StatusOK
	if !h.InCluster {
		// The body still says why, so a load balancer and a human both
		// get what they need.
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, status, h)
	return nil
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	c := callerOf(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"role": c.Role, "name": c.Name, "partner": s.cfg.Backend.Partner(), "public_reads": s.cfg.PublicReads,
	})
	return nil
}

// CatalogResponse is GET /v1/catalog.
type CatalogResponse struct {
	Hash    string `json:"hash"`
	Catalog any    `json:"catalog"`
}

func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	cat, hash, err := s.cfg.Backend.Catalog(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, CatalogResponse{Hash: hash, Catalog: cat})
	return nil
}

// ReleasesResponse is GET /v1/releases: one page of the ledger's
// releases in leaf order. Every listed release is Verified: the ledger
// admits a release only after checking its signature against the
// partner's registered key, so the listing says so instead of checking
// again on every request; a reader checks for itself with PublicKey
// (roundtable verify, the dashboard).
type ReleasesResponse struct {
	AppliedIndex uint64         `json:"applied_index"`
	Consistent   bool           `json:"consistent"`
	Total        int64          `json:"total"`          // releases in the ledger
	Next         *int64         `json:"next,omitempty"` // ?after= for the next page; absent at the end
	Releases     []ReleaseEntry `json:"releases"`
}

func (s *Server) handleReleases(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowParams(q, "consistent", "partner", "period", "after", "limit"); err != nil {
		return err
	}
	consistent, err := boolParam(q.Get("consistent"), "consistent")
	if err != nil {
		return err
	}
	pq, err := pageQuery(q.Get("after"), q.Get("limit"))
	if err != nil {
		return err
	}
	if p := q.Get("partner"); p != "" {
		pq.Partners = strings.Split(p, ",")
	}
	pq.Period = q.Get("period")
	page, err := s.cfg.Backend.ReleasePage(r.Context(), consistent, pq)
	if err != nil {
		return err
	}
	defer page.Free() // written out below, not kept
	writePage(w, page, consistent)
	return nil
}

// pageQuery reads the cursor and the page size.
func pageQuery(after, limit string) (PageQuery, error) {
	pq := PageQuery{After: -1, Limit: PageDefaultLimit}
	if after != "" {
		v, err := strconv.ParseInt(after, 10, 64)
		if err != nil || v < 0 {
			return pq, errParam("after", "want a leaf index, a whole number of at least 0 (the next field of the previous page)")
		}
		pq.After = v
	}
	if limit != "" {
		v, err := strconv.Atoi(limit)
		if err != nil || v < 1 || v > PageMaxLimit {
			return pq, errParam("limit", "want a page size from 1 to "+strconv.Itoa(PageMaxLimit))
		}
		pq.Limit = v
	}
	return pq, nil
}

// ReleaseResponse is GET /v1/releases/{id}.
type ReleaseResponse struct {
	ReleaseEntry
	Proof Proof `json:"proof"`
}

var releaseID = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	id := r.PathValue("id")
	if !releaseID.MatchString(id) {
		return errParam("id", "a release id is 64 lowercase hex digits (the SHA-256 of the canonical release)")
	}
	e, p, err := s.cfg.Backend.Release(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ReleaseResponse{ReleaseEntry: e, Proof: p})
	return nil
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	cp, err := s.cfg.Backend.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cp)
	return nil
}

// ConsistencyResponse is GET /v1/consistency: the proof that the tree of
// size To extends the tree of size From. Hashes are base64.
type ConsistencyResponse struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query(), "from", "to"); err != nil {
		return err
	}
	var sizes [2]int64
	for i, name := range []string{"from", "to"} {
		v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
		if err != nil || v < 1 {
			return errParam(name, "want a tree size, a whole number of at least 1")
		}
		sizes[i] = v
	}
	if sizes[0] > sizes[1] {
		return errParam("from", "must not be larger than to")
	}
	hashes, err := s.cfg.Backend.Consistency(r.Context(), sizes[0], sizes[1])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ConsistencyResponse{From: sizes[0], To: sizes[1], Hashes: hashes})
	return nil
}

// BudgetResponse is GET /v1/budget: per partner, the cap and what is spent
// and left on each quarter that has any spend.
type BudgetResponse struct {
	Accounting string          `json:"accounting"`
	Cap        float64         `json:"cap"`
	CapMicro   int64           `json:"cap_micro"`
	Partners   []PartnerBudget `json:"partners"`
}

// PartnerBudget is one partner's spend.
type PartnerBudget struct {
	Partner  string          `json:"partner"`
	Quarters []QuarterBudget `json:"quarters"`
}

// QuarterBudget is spend and remaining budget on one quarter.
type QuarterBudget struct {
	Quarter    string  `json:"quarter"`
	Spent      float64 `json:"spent"`
	Left       float64 `json:"left"`
	SpentMicro int64   `json:"spent_micro"`
}

func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := allowParams(q, "partner"); err != nil {
		return err
	}
	all, err := s.cfg.Backend.Partners(r.Context())
	if err != nil {
		return err
	}
	want := all
	if p := q.Get("partner"); p != "" {
		want = strings.Split(p, ",")
		for _, p := range want {
			if !contains(all, p) {
				return errParam("partner", "unknown partner "+strconv.Quote(p)+"; registered: "+strings.Join(all, ", "))
			}
		}
	}
	out := BudgetResponse{Partners: []PartnerBudget{}}
	for _, p := range want {
		pol, spends, err := s.cfg.Backend.Budget(r.Context(), p)
		if err != nil {
			return err
		}
		out.Accounting, out.CapMicro, out.Cap = pol.Accounting, pol.CapMicro, float64(pol.CapMicro)/1e6
		pb := PartnerBudget{Partner: p, Quarters: []QuarterBudget{}}
		for _, sp := range spends {
			pb.Quarters = append(pb.Quarters, QuarterBudget{
				Quarter: sp.Quarter.String(), SpentMicro: sp.SpentMicro,
				Spent: float64(sp.SpentMicro) / 1e6, Left: float64(max(pol.CapMicro-sp.SpentMicro, 0)) / 1e6,
			})
		}
		out.Partners = append(out.Partners, pb)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) error {
	if err := allowParams(r.URL.Query()); err != nil {
		return err
	}
	ci, err := s.cfg.Backend.Cluster(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ci)
	return nil
}

// allowParams refuses unknown query parameters, so a typo ("partners=")
// is an error rather than a silently unfiltered answer.
func allowParams(q map[string][]string, allowed ...string) error {
	for _, k := range slices.Sorted(maps.Keys(q)) { // sorted: the same request gets the same error
		if !contains(allowed, k) {
			return errParam(k, "unknown parameter; allowed: "+strings.Join(allowed, ", "))
		}
	}
	for _, k := range allowed {
		if len(q[k]) > 1 {
			return errParam(k, "given more than once; give it once (lists are comma-separated)")
		}
	}
	return nil
}

func boolParam(v, name string) (bool, error) {
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, errParam(name, "must be true or false")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
