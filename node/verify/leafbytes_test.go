package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"roundtable/cluster"
	"roundtable/node/api"
	"roundtable/privacy"
)

// leafSeeds are real leaf bytes and variants of them a server might list.
func leafSeeds(t testing.TB) [][]byte {
	s := mustSign(t, fixtureRelease("BA", 2, 42), partnerKey("BA", ""))
	leaf, err := cluster.LeafData(&s)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		leaf,
		bytes.Replace(leaf, []byte(`"partner":"BA",`), []byte(`"partner":"BA","partner":"AL",`), 1),
		bytes.Replace(leaf, []byte(`"partner":"BA"`), []byte(`"partner":"B\u0041"`), 1),
		bytes.Replace(leaf, []byte(`"partner":"BA"`), []byte(`"partner": "BA"`), 1),
		bytes.Replace(leaf, []byte(`{"version":2,`), []byte(`{"Version":2,`), 1),
		bytes.Replace(leaf, []byte(`"name":"victims"`), []byte(`"name":"a,\"signature\":\"x"`), 1),
		append(slices.Clone(leaf[:len(leaf)-2]), `=="}`...),
	}
}

func TestSplitLeaf(t *testing.T) {
	seeds := leafSeeds(t)
	p, ok := splitLeaf(seeds[0])
	if !ok {
		t.Fatal("real leaf bytes are not in the leaf layout")
	}
	var s privacy.Signed
	if err := json.Unmarshal(seeds[0], &s); err != nil {
		t.Fatal(err)
	}
	body, _ := s.Release.Canonical()
	if p.id != s.ID || p.partner != "BA" || p.consortium != fixtureConsortium || !bytes.Equal(p.body, body) || !bytes.Equal(p.signature, s.Signature) {
		t.Errorf("read in place: id %s partner %s consortium %s body equal %v signature equal %v",
			p.id, p.partner, p.consortium, bytes.Equal(p.body, body), bytes.Equal(p.signature, s.Signature))
	}
	for i, want := range []bool{true, false, true, false, false, true, false} {
		if _, ok := splitLeaf(seeds[i]); ok != want {
			t.Errorf("seed %d: in the layout %v, want %v:\n%s", i, ok, want, seeds[i])
		}
	}
}

// FuzzSplitLeaf: whatever bytes splitLeaf reads in place, encoding/json
// reads the same id, signature, partner and consortium from them (when
// they are JSON it can decode into a release), so the fast path never
// judges another release than the full path would.
func FuzzSplitLeaf(f *testing.F) {
	for _, s := range leafSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, ok := splitLeaf(raw)
		if !ok || !json.Valid(raw) {
			return
		}
		var s privacy.Signed
		if json.Unmarshal(raw, &s) != nil {
			return
		}
		if p.id != s.ID || !bytes.Equal(p.signature, s.Signature) || p.partner != s.Release.Partner || p.consortium != s.Release.Consortium {
			t.Errorf("in place: %s %x %q %q; decoded: %s %x %q %q", p.id, p.signature, p.partner, p.consortium, s.ID, s.Signature, s.Release.Partner, s.Release.Consortium)
		}
	})
}

// TestSplitPageAgreesWithDecoder: a page splitPage reads is read the same
// by encoding/json. The pages are node/api's layout mutated at random:
// bytes changed to JSON's own characters, inserted, or cut off.
func TestSplitPageAgreesWithDecoder(t *testing.T) {
	n := &fakeNode{}
	var entries []api.ReleaseEntry
	for i, p := range []string{"AL", "BA", "ME"} {
		entries = append(entries, api.ReleaseEntry{Signed: mustSign(t, fixtureRelease(p, 1, 7), partnerKey(p, "")), Leaf: int64(i),
			PublicKey: partnerKey(p, "").Public().(ed25519.PublicKey)})
	}
	next := int64(2)
	seeds := [][]byte{n.page(entries, 9, &next), n.page(entries[:1], 1, nil), n.page(nil, 0, nil)}
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = `{}[]",:\ 0123456789-.eEtrufalsn`
	split, agreed := 0, 0
	for range 30_000 {
		b := slices.Clone(seeds[r.IntN(len(seeds))])
		for range 1 + r.IntN(3) {
			if len(b) == 0 {
				break
			}
			i := r.IntN(len(b))
			c := alphabet[r.IntN(len(alphabet))]
			switch r.IntN(3) {
			case 0:
				b[i] = c
			case 1:
				b = slices.Insert(b, i, c)
			default:
				b = b[:i]
			}
		}
		p, ok := splitPage(b)
		if !ok {
			continue
		}
		split++
		var want listedPage
		if err := json.Unmarshal(b, &want); err != nil {
			continue // not JSON: the releases' bytes are judged, not the page's form
		}
		agreed++
		same := p.Total == want.Total && (p.Next == nil) == (want.Next == nil) && (p.Next == nil || *p.Next == *want.Next) && len(p.Releases) == len(want.Releases)
		for i := 0; same && i < len(p.Releases); i++ {
			a, w := p.Releases[i], want.Releases[i]
			same = a.Leaf == w.Leaf && bytes.Equal(a.PublicKey, w.PublicKey) && bytes.Equal(a.Signed, w.Signed)
		}
		if !same {
			t.Fatalf("split %+v, decoded %+v from\n%s", p, want, b)
		}
	}
	t.Logf("%d mutated pages split, %d of them JSON, read alike", split, agreed)
	if agreed < 100 {
		t.Errorf("only %d mutated pages were split and JSON: the test checks too little", agreed)
	}
}

func TestSplitPage(t *testing.T) {
	n := &fakeNode{}
	l := newLedger(t)
	l.publishN(t, 4, 7)
	next := int64(3)
	page := n.page(l.entries, 9, &next)
	p, ok := splitPage(page)
	if !ok || p.Total != 9 || p.Next == nil || *p.Next != 3 || len(p.Releases) != 4 || p.Releases[2].Leaf != 2 {
		t.Fatalf("split %v: %+v", ok, p)
	}
	n.spaced = true
	if _, ok := splitPage(n.page(l.entries, 9, &next)); ok {
		t.Error("a page with spaces split as node/api's layout")
	}
	if p, err := parsePage(n.page(l.entries, 9, &next)); err != nil || len(p.Releases) != 4 {
		t.Errorf("a page with spaces decoded: %d releases, %v", len(p.Releases), err)
	}
}

// BenchmarkSplitLeaf reads a release of about 30 KB in place, as a
// whole-ledger run reads every listed release.
func BenchmarkSplitLeaf(b *testing.B) {
	r := fixtureRelease("BA", 1, 7)
	for k := range 400 {
		r.Indicators[0].Cells = append(r.Indicators[0].Cells, privacy.Cell{Key: []string{"female", fmt.Sprint(k)}, Value: int64(k), Scale: 2.5, CILow: -3.0113, CIHigh: 9.2554})
	}
	s := mustSign(b, r, partnerKey("BA", ""))
	leaf, err := cluster.LeafData(&s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(leaf)))
	for b.Loop() {
		if _, ok := splitLeaf(leaf); !ok {
			b.Fatal("not in the layout")
		}
	}
}

// TestSplitLeafRefusesMalformed: a server's truncated or altered leaf is
// never read in place (and never panics the verifier): every proper
// prefix of a real leaf, the empty list entry, and a signature with a raw
// line break (which base64 decoding would skip) are outside the layout.
func TestSplitLeafRefusesMalformed(t *testing.T) {
	leaf := leafSeeds(t)[0]
	if _, ok := splitLeaf(leaf); !ok {
		t.Fatal("real leaf bytes are not in the leaf layout")
	}
	for n := range len(leaf) {
		if _, ok := splitLeaf(leaf[:n]); ok {
			t.Fatalf("the first %d of %d bytes of a leaf are read as a leaf: %q", n, len(leaf), leaf[:n])
		}
		if _, _, ok := leafAt(leaf[:n], 0); ok {
			t.Fatalf("leafAt reads the first %d of %d bytes of a leaf as a leaf", n, len(leaf))
		}
	}
	sig := bytes.LastIndex(leaf, []byte(`"signature":"`)) + len(`"signature":"`)
	broken := slices.Concat(leaf[:sig+8], []byte("\n"), leaf[sig+8:])
	if _, ok := splitLeaf(broken); ok {
		t.Fatal("a signature with a raw line break is read in place")
	}
}
