package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"

	"roundtable/privacy"
)

// The release list serves each release as the ledger stores it: its leaf
// bytes, cluster.LeafData, which is the json.Encoder encoding (HTML
// escaping off, no trailing newline) of privacy.Signed:
//
//	{"id":"<64 hex>","release":<the release's canonical encoding>,"signature":"<base64>"}
//
// When a listed release has exactly that layout, the verifier checks it on
// those bytes without decoding it: the release's canonical body is the
// slice between the two fixed parts, so the id is SHA-256 of the slice and
// the signature is over the slice (privacy.Signed.VerifyCanonical), and
// the leaf hash is of the bytes as listed. Only the release's partner and
// consortium are decoded, from their own values. That replaces a decode and
// two re-encodes of every release (about 28 KB for a whole-catalog one)
// with two hashes and one scan.
//
// Why that is sound (the argument is repeated in DESIGN.md):
//
//   - The checkpoint's root, recomputed from the leaf hashes of the bytes as
//     listed, binds those exact bytes: if it equals the root a majority
//     signed, every listed leaf below the checkpoint's size is byte for byte
//     the leaf the ledger's state machine appended, and the state machine
//     appends only LeafData of a release it decoded, that is the canonical
//     encoding. So for those bytes the fast reading (id, partner,
//     consortium, body, signature) is the full decode's, and the body is
//     Canonical() of the release: the checks are the full path's checks.
//     If the root differs, each release is proven on its own (an inclusion
//     proof of the same leaf hash), and any release not in the signed tree
//     fails, named.
//   - Releases newer than the checkpoint (pending) are bound by no root, so
//     they always take the full path: decode, Verify (which re-encodes),
//     and the listed bytes must equal LeafData of the decoded release.
//   - Bytes that are not in the layout (whitespace, another key order,
//     HTML escaping, a duplicate or extra key, a case variant of a key, a
//     signature in another base64 form) also take the full path, and fail
//     there: listed bytes that are not the release's LeafData are not its
//     leaf, whatever they decode to. A server that reformats a release
//     therefore fails it; it never passes, and never counts it under
//     another partner.
//   - Even inside a checkpoint a dishonest majority signed (a tree holding
//     bytes the state machine would not have appended), the partner the
//     fast path counts is unambiguous: the body must have exactly the
//     release's keys, in order, each once and unescaped, so every JSON
//     reader finds the same partner and consortium, and that partner's key
//     must have signed exactly these bytes.
//   - Bytes read in place are not validated as JSON beyond their layout
//     (validating is a third pass): below the checkpoint's size the root
//     binds them to bytes the state machine encoded; bytes a dishonest
//     majority appended that are not JSON name no partner to a reader that
//     checks, and their signature is still their partner's.
//   - A release that fails a check in place is judged again decoded, so a
//     failure is named as the full path names it.

var (
	leafHead    = []byte(`{"id":"`)
	leafRelease = []byte(`","release":`)
	leafSig     = []byte(`,"signature":"`)
	leafTail    = []byte(`"}`)
)

// releaseKeys are privacy.Release's JSON keys in field order: the only
// keys, in the only order, its canonical encoding has.
var releaseKeys = jsonKeys(reflect.TypeFor[privacy.Release]())

// jsonKeys lists a struct's JSON keys in field order (encoding/json's
// rules for a flat struct of tagged fields).
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		keys = append(keys, name)
	}
	return keys
}

// leafParts is a listed release read in place, without decoding it.
type leafParts struct {
	id         string
	body       []byte // the release's canonical body: what the id hashes and the signature covers
	signature  []byte
	partner    string
	consortium string
}

// splitLeaf reads raw as the ledger's leaf layout (see above). ok is false
// for anything else, which the caller checks by decoding instead.
func splitLeaf(raw []byte) (p leafParts, ok bool) {
	p, end, ok := leafAt(raw, 0)
	return p, ok && end == len(raw)
}

// leafAt reads b[i:] as starting with a release in the leaf layout and
// returns it and the index just past it. Finding where the release ends
// and reading it is one scan, done as a page is split.
func leafAt(b []byte, i int) (p leafParts, end int, ok bool) {
	rest, ok := bytes.CutPrefix(b[i:], leafHead)
	if !ok || len(rest) < 64 || !isLowerHex(rest[:64]) {
		return p, 0, false
	}
	p.id = string(rest[:64])
	if rest, ok = bytes.CutPrefix(rest[64:], leafRelease); !ok {
		return p, 0, false
	}
	vals, n, ok := objectValues(rest, releaseKeys)
	if !ok {
		return p, 0, false
	}
	p.body = rest[:n]
	sig, ok := bytes.CutPrefix(rest[n:], leafSig)
	q := bytes.IndexByte(sig, '"')
	if !ok || q < 0 || !bytes.HasPrefix(sig[q:], leafTail) {
		return p, 0, false
	}
	// Only the encoder's form: StdEncoding.Decode would also skip
	// newlines (escaped in JSON), which the leaf bytes never hold.
	var err error
	if p.signature, err = base64.StdEncoding.DecodeString(string(sig[:q])); err != nil || base64.StdEncoding.EncodeToString(p.signature) != string(sig[:q]) {
		return p, 0, false
	}
	for k, key := range releaseKeys {
		var dst *string
		switch key {
		case "partner":
			dst = &p.partner
		case "consortium":
			dst = &p.consortium
		default:
			continue
		}
		if json.Unmarshal(vals[k], dst) != nil {
			return p, 0, false
		}
	}
	end = len(b) - len(sig) + q + len(leafTail)
	return p, end, true
}

// objectValues reads a compact JSON object at the start of b whose keys
// are exactly keys, in that order, each once, written without escapes, and
// returns its values and the index just past it. ok is false for any other
// object and for whitespace between tokens.
func objectValues(b []byte, keys []string) (vals [][]byte, end int, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return nil, 0, false
	}
	i := 1
	vals = make([][]byte, 0, len(keys))
	for k, key := range keys {
		if k > 0 {
			if i >= len(b) || b[i] != ',' {
				return nil, 0, false
			}
			i++
		}
		end := i + 1 + len(key)
		if end+1 >= len(b) || b[i] != '"' || string(b[i+1:end]) != key || b[end] != '"' || b[end+1] != ':' {
			return nil, 0, false
		}
		i = end + 2
		j, ok := skipValue(b, i)
		if !ok || j == i {
			return nil, 0, false
		}
		vals = append(vals, b[i:j])
		i = j
	}
	if i >= len(b) || b[i] != '}' {
		return nil, 0, false
	}
	return vals, i + 1, true
}

// skipValue returns the index just past the JSON value starting at obj[i],
// refusing whitespace outside strings. The value is trusted to be valid
// JSON; only its extent is found.
func skipValue(obj []byte, i int) (int, bool) {
	depth := 0
	for ; i < len(obj); i++ {
		switch jsonClass[obj[i]] {
		case plain:
			continue
		case quote:
			end, ok := stringEnd(obj, i)
			if !ok {
				return 0, false
			}
			if i = end; depth == 0 {
				return i + 1, true
			}
		case open:
			depth++
		case closing:
			if depth == 0 {
				return i, true
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case comma:
			if depth == 0 {
				return i, true
			}
		case space:
			return 0, false
		}
	}
	return i, depth == 0
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at obj[i]: the first quote after it not escaped by an odd run of
// backslashes.
func stringEnd(obj []byte, i int) (int, bool) {
	for j := i + 1; ; {
		k := bytes.IndexByte(obj[j:], '"')
		if k < 0 {
			return 0, false
		}
		q := j + k
		b := q - 1
		for b > i && obj[b] == '\\' {
			b--
		}
		if (q-1-b)%2 == 0 {
			return q, true
		}
		j = q + 1
	}
}

// Byte classes for skipValue.
const (
	plain = iota
	quote
	open
	closing
	comma
	space
)

var jsonClass = func() (c [256]uint8) {
	c['"'] = quote
	c['{'], c['['] = open, open
	c['}'], c[']'] = closing, closing
	c[','] = comma
	c[' '], c['\t'], c['\n'], c['\r'] = space, space, space, space
	return c
}()

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// parsePage reads a page of the release list. The server writes every page
// in one layout (node/api page.go, writePage); a page in that layout is
// split here, each release's bytes found by one scan, instead of by the
// JSON decoder's two passes over every byte (checking, then copying),
// which were most of the cost of reading a whole ledger. Any other page is
// decoded by encoding/json. The releases' bytes are not validated as JSON
// here: those checked in place are bound by the checkpoint's root (see
// above), and the rest are decoded.
func parsePage(b []byte) (listedPage, error) {
	if p, ok := splitPage(b); ok {
		return p, nil
	}
	var p listedPage
	err := json.Unmarshal(b, &p)
	return p, err
}

// splitPage reads a page in writePage's layout; ok is false for any other.
func splitPage(b []byte) (p listedPage, ok bool) {
	c := pageCursor{b: bytes.TrimRight(b, " \t\r\n"), ok: true}
	c.lit(`{"applied_index":`)
	c.scalar(nil)
	c.lit(`,"consistent":`)
	c.scalar(nil)
	c.lit(`,"total":`)
	c.scalar(&p.Total)
	if c.next(`,"next":`) {
		c.scalar(&p.Next)
	}
	c.lit(`,"releases":[`)
	p.Releases = []listedRelease{}
	for c.ok && !c.next("]}") {
		if len(p.Releases) > 0 {
			c.lit(",")
		}
		var e listedRelease
		c.lit(`{"signed":`)
		if parts, end, ok := leafAt(c.b, c.i); c.ok && ok {
			e.Signed, e.parts, c.i = c.b[c.i:end], &parts, end
		} else {
			e.Signed = c.value()
		}
		c.lit(`,"leaf":`)
		c.scalar(&e.Leaf)
		c.lit(`,"verified":`)
		c.scalar(nil)
		c.lit(`,"public_key":`)
		c.scalar(&e.PublicKey)
		c.lit("}")
		p.Releases = append(p.Releases, e)
	}
	return p, c.ok && c.i == len(c.b)
}

// pageCursor walks a page in a known layout; any surprise clears ok.
type pageCursor struct {
	b  []byte
	i  int
	ok bool
}

// lit consumes s.
func (c *pageCursor) lit(s string) {
	if c.ok && !c.next(s) {
		c.ok = false
	}
}

// next consumes s if the page continues with it.
func (c *pageCursor) next(s string) bool {
	if c.ok && bytes.HasPrefix(c.b[c.i:], []byte(s)) {
		c.i += len(s)
		return true
	}
	return false
}

// value consumes a JSON value and returns its bytes.
func (c *pageCursor) value() []byte {
	if !c.ok {
		return nil
	}
	j, ok := skipValue(c.b, c.i)
	if !ok || j == c.i {
		c.ok = false
		return nil
	}
	v := c.b[c.i:j]
	c.i = j
	return v
}

// scalar consumes a small value and decodes it into dst (or only checks
// it, if dst is nil) with encoding/json.
func (c *pageCursor) scalar(dst any) {
	v := c.value()
	switch {
	case !c.ok:
	case dst == nil:
		c.ok = json.Valid(v)
	default:
		c.ok = json.Unmarshal(v, dst) == nil
	}
}
