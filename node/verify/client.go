package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
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
	body, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s%s: decode: %w", c.base, path, err)
	}
	return nil
}

// get GETs path and returns a 200 answer's body.
func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	return c.getInto(ctx, path, nil)
}

// getInto is get reading the body into buf's storage (growing it if need
// be), so a reader of many pages can reuse a few buffers.
func (c *client) getInto(ctx context.Context, path string, buf []byte) ([]byte, error) {
	u := c.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := readAll(io.LimitReader(resp.Body, maxBody), buf[:0])
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("GET %s: %s: %s %s", u, resp.Status, e.Error, e.Detail)
		}
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, nil
}

// readAll is io.ReadAll appending to buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
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
	listed, err := c.list(ctx)
	if err != nil {
		return nil, err
	}
	m.Complete = id == ""
	if m.Complete {
		// Every leaf is here, so the checkpoint's root is recomputed from
		// them (check, m.Tree): one pass over what was already fetched
		// instead of a request and a proof per release.
		m.Releases, m.Tree = listed, true
		c.logf("listed %d release(s); their leaves are checked against the checkpoint's root", len(listed))
		return m, nil
	}
	listedLeaf := map[string]int64{}
	for _, e := range listed {
		listedLeaf[e.Signed.ID] = e.Leaf
		e.Signed.Release.Indicators = nil // only the key and the partner are needed
		m.listed = append(m.listed, e)
	}
	c.logf("fetching release %s with its inclusion proof", id)
	var r api.ReleaseResponse
	if err := c.getJSON(ctx, "/v1/releases/"+url.PathEscape(id), &r); err != nil {
		return nil, fmt.Errorf("release %s: %w", id, err)
	}
	if r.Signed.ID != id {
		return nil, fmt.Errorf("%w: asked for release %s, server answered with %s", ErrInclusion, id, r.Signed.ID)
	}
	if l, ok := listedLeaf[id]; ok && l != r.Leaf {
		return nil, fmt.Errorf("%w: release %s is at leaf %d in the list but at leaf %d in its own answer", ErrInclusion, id, l, r.Leaf)
	}
	m.Releases = append(m.Releases, bundleRelease{Signed: r.Signed, Leaf: r.Leaf, PublicKey: r.PublicKey, Proof: r.Proof})
	return m, nil
}

// fetchProofs fetches every listed release again with its inclusion
// proof, for a run whose leaves did not hash to the checkpoint's root:
// the proofs name the release that is not in the signed tree.
func (c *client) fetchProofs(ctx context.Context, m *material) error {
	c.logf("the listed releases do not hash to the checkpoint's root; fetching %d inclusion proof(s) to name the release(s) at fault", len(m.Releases))
	for i := range m.Releases {
		r := &m.Releases[i]
		var got api.ReleaseResponse
		if err := c.getJSON(ctx, "/v1/releases/"+url.PathEscape(r.Signed.ID), &got); err != nil {
			return fmt.Errorf("release %s: %w", r.Signed.ID, err)
		}
		if got.Signed.ID != r.Signed.ID || got.Leaf != r.Leaf {
			return fmt.Errorf("%w: release %s is at leaf %d in the list but the server answered %s at leaf %d", ErrInclusion, r.Signed.ID, r.Leaf, got.Signed.ID, got.Leaf)
		}
		r.Proof = got.Proof
	}
	m.Tree = false
	return c.fetchConsistency(ctx, m)
}

// listPage is the largest page verify asks for; the server may answer
// with fewer (it bounds a page's bytes too).
const listPage = 1000

// listedRelease is one entry of a page of the release list, its signed
// release kept as the bytes the server sent: the ledger's leaf bytes
// (node/api page.go passes them through).
type listedRelease struct {
	Signed    json.RawMessage `json:"signed"`
	Leaf      int64           `json:"leaf"`
	PublicKey []byte          `json:"public_key"`
	parts     *leafParts      // Signed read in place while the page was split, if in the leaf layout
}

// listedPage is one page of GET /v1/releases (api.ReleasesResponse).
type listedPage struct {
	Total    int64           `json:"total"`
	Next     *int64          `json:"next,omitempty"`
	Releases []listedRelease `json:"releases"`
	body     []byte          // the answer, which Releases may point into
}

// listedID is the id a listed release names, for messages.
func listedID(raw json.RawMessage) string {
	var s struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &s)
	return s.ID
}

// walk reads the whole release list a page at a time, following the
// server's cursor, and hands each page to fn in order. Leaves must rise
// strictly, across pages too, and each page must start after the last and
// move forward, so a server cannot list a leaf twice or keep the client
// reading the same leaves forever. If bufs is set, each page is read into
// a buffer taken from it (waiting for one), which the caller gives back
// when done with the page (listedPage.body).
func (c *client) walk(ctx context.Context, bufs <-chan []byte, fn func(listedPage) error) error {
	after, listed := int64(-1), 0
	var prev json.RawMessage
	for {
		path := "/v1/releases?limit=" + strconv.Itoa(listPage)
		if after >= 0 {
			path += "&after=" + strconv.FormatInt(after, 10)
		}
		var buf []byte
		if bufs != nil {
			select {
			case buf = <-bufs:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		body, err := c.getInto(ctx, path, buf)
		if err != nil {
			return err
		}
		page, err := parsePage(body)
		if err != nil {
			return fmt.Errorf("GET %s%s: decode: %w", c.base, path, err)
		}
		page.body = body
		for _, e := range page.Releases {
			switch {
			case e.Leaf == after:
				return fmt.Errorf("%w: releases %s and %s both claim leaf %d", ErrIncomplete, listedID(prev), listedID(e.Signed), e.Leaf)
			case e.Leaf < after:
				return fmt.Errorf("%w: release list: leaf %d listed after leaf %d", ErrIncomplete, e.Leaf, after)
			}
			after, prev = e.Leaf, e.Signed
		}
		prev = slices.Clone(prev) // the page's buffer will be reused
		listed += len(page.Releases)
		if err := fn(page); err != nil {
			return err
		}
		if page.Next == nil {
			return nil
		}
		if *page.Next < after || (len(page.Releases) == 0 && *page.Next <= after) {
			return fmt.Errorf("release list: the server's next page starts after leaf %d, which does not move past leaf %d", *page.Next, after)
		}
		after = *page.Next
		if listed%10_000 < len(page.Releases) {
			c.logf("listed %d of %d release(s)", listed, page.Total)
		}
	}
}

// list reads the whole release list, decoded, for a run that judges it
// whole (one release, or a bundle).
func (c *client) list(ctx context.Context) ([]bundleRelease, error) {
	var out []bundleRelease
	err := c.walk(ctx, nil, func(page listedPage) error {
		for _, e := range page.Releases {
			r := bundleRelease{Leaf: e.Leaf, PublicKey: e.PublicKey}
			if err := json.Unmarshal(e.Signed, &r.Signed); err != nil {
				return fmt.Errorf("release list: leaf %d: %w", e.Leaf, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
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
