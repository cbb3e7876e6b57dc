package api

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"roundtable/aggregate"
)

// GET /v1/releases is read a page at a time, by leaf index (issue 10,
// item 5): a ledger of years of releases is gigabytes, and an answer that
// holds all of it costs the node that much memory per request. A page
// costs what it holds: at most PageMaxLimit releases and PageMaxBytes of
// release JSON, whichever comes first, and a filtered page examines at
// most PageMaxScan leaves before it answers with what it found and a
// cursor to go on from.
const (
	PageDefaultLimit = 100
	PageMaxLimit     = 1000
	PageMaxBytes     = 8 << 20
	PageMaxScan      = 10_000
)

// PageQuery asks for one page of the ledger's releases.
type PageQuery struct {
	// After is the cursor: the page starts at the first leaf after it
	// (-1: at leaf 0).
	After int64
	// Limit is the most releases the page holds (1..PageMaxLimit).
	Limit int
	// Partners and Period filter the page ("" or nil: all).
	Partners []string
	Period   string
}

// RawRelease is one listed release: its leaf and its signed release as the
// ledger stores it (the exact bytes its Merkle leaf hashes), passed on
// without decoding.
type RawRelease struct {
	Leaf      int64
	Signed    []byte
	PublicKey []byte // the partner's registered key
}

// ReleasePage is one page of the listing.
type ReleasePage struct {
	AppliedIndex uint64
	Total        int64 // releases (leaves) in the ledger the page was read from
	Releases     []RawRelease
	// Next is the cursor for the following page (?after=Next), or -1 when
	// the page reached the end of the ledger.
	Next int64

	arena *[]byte // holds the Signed bytes; see Free
}

// pageArenas recycles the buffers pages copy releases into. A page of
// whole-catalog releases is 3 MB; on a node that also holds years of
// releases in its series view, a fresh 3 MB per request made the garbage
// collector run every few dozen pages and raised the listing's p99 past
// 20 ms. A few buffers are kept (at most PageMaxBytes and one release
// each); more concurrent pages than that allocate their own. A channel
// rather than a sync.Pool: a pool's per-processor slots missed often
// enough that pages kept growing fresh buffers.
var pageArenas = make(chan *[]byte, 2)

func getArena() *[]byte {
	select {
	case a := <-pageArenas:
		return a
	default:
		return new([]byte)
	}
}

// Free gives the page's buffer back for reuse by a later page: the page
// (every Releases[i].Signed) must not be used afterwards. A caller that
// keeps the releases just does not call it.
func (p *ReleasePage) Free() {
	if p.arena == nil {
		return
	}
	*p.arena = (*p.arena)[:0]
	select {
	case pageArenas <- p.arena:
	default: // enough kept
	}
	p.arena, p.Releases = nil, nil
}

// Pager fills a ReleasePage from releases offered in leaf order; a
// Backend's ReleasePage feeds it from its store. It applies the query's
// filter and every bound, so each backend pages the same way.
type Pager struct {
	q       PageQuery
	page    ReleasePage
	bytes   int
	scanned int
	last    int64 // the last leaf examined
}

// NewPager starts a page for q.
func NewPager(q PageQuery) *Pager {
	return &Pager{q: q, last: q.After, page: ReleasePage{Next: -1, Releases: []RawRelease{}}}
}

// Offer gives the pager the release at leaf (its stored bytes, which the
// pager copies; keys are the partners' registered keys) and says whether
// it wants the next one. A release whose head does not decode is an error:
// the ledger stores only releases it decoded on apply.
func (p *Pager) Offer(leaf int64, signed []byte, keys map[string][]byte) (more bool, err error) {
	if leaf <= p.q.After {
		return true, nil
	}
	n := len(p.page.Releases)
	if n >= p.q.Limit || p.scanned >= PageMaxScan || (n > 0 && p.bytes+len(signed) > PageMaxBytes) {
		// There is more: the next page starts after the last leaf looked at,
		// which a filtered page may have passed without keeping.
		p.page.Next = p.last
		return false, nil
	}
	p.scanned++
	p.last = leaf
	partner, period, err := releaseHead(signed)
	if err != nil {
		return false, fmt.Errorf("ledger corrupt: leaf %d: %w", leaf, err)
	}
	if len(p.q.Partners) > 0 && !contains(p.q.Partners, partner) || p.q.Period != "" && p.q.Period != period {
		return true, nil
	}
	if p.page.arena == nil {
		p.page.arena = getArena()
	}
	// Earlier releases keep pointing into the old array if this append
	// grows it: they stay valid (only the newest array is recycled).
	a := p.page.arena
	start := len(*a)
	*a = append(*a, signed...)
	p.page.Releases = append(p.page.Releases, RawRelease{Leaf: leaf, Signed: (*a)[start:len(*a):len(*a)], PublicKey: keys[partner]})
	p.bytes += len(signed)
	return true, nil
}

// Page returns the page, with the applied index and tree size it reflects.
func (p *Pager) Page(applied uint64, total int64) ReleasePage {
	p.page.AppliedIndex, p.page.Total = applied, total
	return p.page
}

// releaseHead reads a stored release's partner and period without decoding
// the rest: they come before the indicators, which are nearly all of its
// bytes, so a page of unfiltered whole-catalog releases costs a few
// hundred bytes of parsing each.
func releaseHead(data []byte) (partner, period string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := enterObject(dec); err != nil {
		return "", "", err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", "", err
		}
		if key != "release" {
			if err := skipValue(dec); err != nil {
				return "", "", err
			}
			continue
		}
		if err := enterObject(dec); err != nil {
			return "", "", err
		}
		var per aggregate.Period
		var havePartner, havePeriod bool
		for dec.More() && !(havePartner && havePeriod) {
			key, err := dec.Token()
			if err != nil {
				return "", "", err
			}
			switch key {
			case "partner":
				err, havePartner = dec.Decode(&partner), true
			case "period":
				err, havePeriod = dec.Decode(&per), true
			default:
				err = skipValue(dec)
			}
			if err != nil {
				return "", "", err
			}
		}
		if !havePartner || !havePeriod {
			return "", "", errors.New("release has no partner or period")
		}
		return partner, per.String(), nil
	}
	return "", "", errors.New("no release in the signed release")
}

func enterObject(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return fmt.Errorf("want an object, found %v", t)
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var v json.RawMessage
	return dec.Decode(&v)
}

// writePage writes a page as a ReleasesResponse, passing each release's
// stored bytes through: they are the ledger's canonical JSON already, and
// re-encoding a whole-catalog release costs more than reading it.
func writePage(w http.ResponseWriter, p ReleasePage, consistent bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	b := make([]byte, 0, 256)
	b = append(b, `{"applied_index":`...)
	b = strconv.AppendUint(b, p.AppliedIndex, 10)
	b = append(b, `,"consistent":`...)
	b = strconv.AppendBool(b, consistent)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, p.Total, 10)
	if p.Next >= 0 {
		b = append(b, `,"next":`...)
		b = strconv.AppendInt(b, p.Next, 10)
	}
	b = append(b, `,"releases":[`...)
	bw.Write(b)
	for i, e := range p.Releases {
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"signed":`...)
		bw.Write(b)
		bw.Write(e.Signed)
		b = append(b[:0], `,"leaf":`...)
		b = strconv.AppendInt(b, e.Leaf, 10)
		b = append(b, `,"verified":true,"public_key":`...)
		if e.PublicKey == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, e.PublicKey)
			b = append(b, '"')
		}
		b = append(b, '}')
		bw.Write(b)
	}
	bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		slog.Debug("write release page", "err", err)
	}
}
