package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"roundtable/node/api"
)

const (
	defaultTimeout = 30 * time.Second
	// maxBody bounds what one response may make us hold in memory.
	maxBody = 256 << 20
)

// consistencyResponse is GET /v1/consistency?from=N&to=M.
type consistencyResponse struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// client reads a node's public API. It only fetches; every judgement is
// made by check on the complete material, so nothing is trusted half-read.
type client struct {
	base     string
	token    string // bearer token for nodes that do not allow public reads
	http     *http.Client
	progress io.Writer
}

func (c *client) logf(format string, args ...any) {
	if c.progress != nil {
		fmt.Fprintf(c.progress, format+"\n", args...)
	}
}

// getJSON GETs path and decodes a 200 answer into v; any other status is
// an error quoting the API's {"error", "detail"} body.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	u := c.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("GET %s: %s: %s %s", u, resp.Status, e.Error, e.Detail)
		}
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return nil
}

// fetch reads the cluster, the checkpoint and the releases with their
// inclusion proofs (one release if id is set).
func (c *client) fetch(ctx context.Context, id string) (*material, error) {
	m := &material{Format: bundleFormat, Server: c.base}
	var ci api.ClusterInfo
	if err := c.getJSON(ctx, "/v1/cluster", &ci); err != nil {
		return nil, err
	}
	m.Partners = ci.Partners
	if err := c.getJSON(ctx, "/v1/checkpoint", &m.Checkpoint); err != nil {
		return nil, err
	}
	// The list is read even for one release: it carries the partners'
	// keys, which a first run pins for checking the checkpoint.
	var list api.ReleasesResponse
	if err := c.getJSON(ctx, "/v1/releases", &list); err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range list.Releases {
		ids = append(ids, e.Signed.ID)
		m.listed = append(m.listed, bundleRelease{Signed: e.Signed, Leaf: e.Leaf, PublicKey: e.PublicKey})
	}
	m.Complete = id == ""
	if id != "" {
		ids = []string{id}
	}
	c.logf("fetching %d release(s) with inclusion proofs", len(ids))
	listedLeaf := map[string]int64{}
	for _, e := range list.Releases {
		listedLeaf[e.Signed.ID] = e.Leaf
	}
	for _, rid := range ids {
		var r api.ReleaseResponse
		if err := c.getJSON(ctx, "/v1/releases/"+url.PathEscape(rid), &r); err != nil {
			return nil, fmt.Errorf("release %s: %w", rid, err)
		}
		if r.Signed.ID != rid {
			return nil, fmt.Errorf("%w: asked for release %s, server answered with %s", ErrInclusion, rid, r.Signed.ID)
		}
		if l, ok := listedLeaf[rid]; ok && l != r.Leaf {
			return nil, fmt.Errorf("%w: release %s is at leaf %d in the list but at leaf %d in its own answer", ErrInclusion, rid, l, r.Leaf)
		}
		m.Releases = append(m.Releases, bundleRelease{Signed: r.Signed, Leaf: r.Leaf, PublicKey: r.PublicKey, Proof: r.Proof})
	}
	return m, nil
}

// fetchConsistency adds the consistency proofs that tie each inclusion
// proof's tree (the node's current tree, often newer than the signed
// checkpoint) to the checkpoint's tree.
func (c *client) fetchConsistency(ctx context.Context, m *material) error {
	seen := map[[2]int64]bool{}
	for _, r := range m.Releases {
		from, to := r.Proof.TreeSize, m.Checkpoint.Size
		if from == to || r.Leaf >= m.Checkpoint.Size {
			continue // same tree, or not yet checkpointed: nothing to tie
		}
		if from > to {
			from, to = to, from
		}
		if seen[[2]int64{from, to}] || from < 1 {
			continue
		}
		seen[[2]int64{from, to}] = true
		p, err := c.consistency(ctx, from, to)
		if err != nil {
			return err
		}
		m.Consistency = append(m.Consistency, p)
	}
	return nil
}

func (c *client) consistency(ctx context.Context, from, to int64) (consistencyResponse, error) {
	var p consistencyResponse
	path := "/v1/consistency?from=" + strconv.FormatInt(from, 10) + "&to=" + strconv.FormatInt(to, 10)
	if err := c.getJSON(ctx, path, &p); err != nil {
		return p, fmt.Errorf("consistency proof %d -> %d: %w", from, to, err)
	}
	if p.From != from || p.To != to {
		return p, fmt.Errorf("consistency proof: asked for %d -> %d, server answered %d -> %d", from, to, p.From, p.To)
	}
	return p, nil
}
