package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// prepared is the part of applying an entry that does not depend on the
// ledger's state: decoding the command, encoding the release canonically,
// hashing it, and checking signatures. ApplyBatch does it for the whole
// batch in parallel, then applies the entries one by one in log order. The
// result cannot depend on the parallelism: each field is a pure function of
// the entry's bytes (and, for a signature, of the key it was checked with,
// which the sequential step compares with the key registered at that point
// of the batch and re-checks if they differ).
type prepared struct {
	cmd Command
	err error // the entry does not decode: a refusal

	body []byte // publish: the release's canonical encoding
	idOK bool   // publish: ID is the SHA-256 of body
	leaf []byte // publish: LeafData, when idOK

	key   ed25519.PublicKey // the key the signature was checked with, if any
	sigOK bool

	batch *batchCache // shared by the batch's entries; used by the sequential step only
}

// batchCache holds what the entries of one batch look up repeatedly.
// Catalogs are addressed by the hash of their content, so a parsed catalog
// can never be stale.
type batchCache struct {
	catalogs   map[string]*aggregate.Catalog // lookups only, never iterated
	validators *sync.Map                     // the FSM's, by catalog hash (fsm_validate.go)
}

func (c *batchCache) catalog(tx *bbolt.Tx, hash string) (*aggregate.Catalog, error) {
	if cat, ok := c.catalogs[hash]; ok {
		return cat, nil
	}
	cat, _, err := loadCatalog(tx, hash)
	if err != nil {
		return nil, err
	}
	c.catalogs[hash] = cat
	return cat, nil
}

// verified reports whether the entry's signature verifies with pub, reusing
// the parallel check when it was made with the same key.
func (p *prepared) verified(pub ed25519.PublicKey, verify func(ed25519.PublicKey) error) bool {
	if p.key != nil && bytes.Equal(p.key, pub) {
		return p.sigOK
	}
	return verify(pub) == nil
}

// prepareBatch prepares the command entries of logs above applied, using
// the partner keys registered when the batch starts.
func prepareBatch(tx *bbolt.Tx, logs []*raft.Log, applied uint64, validators *sync.Map) ([]*prepared, error) {
	keys := map[string]ed25519.PublicKey{} // lookups only, never iterated
	err := bucket(tx, bucketPartners).ForEach(func(k, v []byte) error {
		var p Partner
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("ledger corrupt: partner %s: %w", k, err)
		}
		keys[p.ID] = p.PublicKey
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*prepared, len(logs))
	cache := &batchCache{catalogs: map[string]*aggregate.Catalog{}, validators: validators}
	parallel(len(logs), func(i int) {
		if logs[i].Index > applied && logs[i].Type == raft.LogCommand {
			out[i] = prepareEntry(logs[i].Data, keys)
			out[i].batch = cache
		}
	})
	return out, nil
}

func prepareEntry(data []byte, keys map[string]ed25519.PublicKey) *prepared {
	p := &prepared{}
	p.cmd, p.err = DecodeCommand(data)
	if p.err != nil {
		return p
	}
	switch p.cmd.Type {
	case CmdPublish:
		s := p.cmd.Release
		body, err := s.Release.Canonical()
		if err != nil {
			return p // applyPublish refuses a release it cannot encode
		}
		sum := sha256.Sum256(body)
		p.body, p.idOK = body, hex.EncodeToString(sum[:]) == s.ID
		if !p.idOK {
			return p
		}
		p.leaf = leafDataFrom(s.ID, body, s.Signature)
		if key, ok := keys[s.Release.Partner]; ok {
			p.key, p.sigOK = key, s.VerifyCanonical(key, body) == nil
		}
	case CmdReserve:
		sr := p.cmd.Reservation
		if key, ok := keys[sr.Reservation.Partner]; ok {
			p.key, p.sigOK = key, sr.Verify(key) == nil
		}
	}
	return p
}

// leafDataFrom builds LeafData from parts already at hand, without a second
// JSON encoding of the release. It is byte-for-byte what LeafData returns
// (TestLeafDataFromMatchesLeafData) given a hex id and body =
// Release.Canonical(): Signed encodes as its three fields in order, the
// release nested with the same encoder settings, the signature as standard
// base64 (null when nil), and neither a hex id nor base64 needs escaping.
func leafDataFrom(id string, body, sig []byte) []byte {
	b := make([]byte, 0, len(body)+len(id)+base64.StdEncoding.EncodedLen(len(sig))+40)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","release":`...)
	b = append(b, body...)
	b = append(b, `,"signature":`...)
	if sig == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, sig)
		b = append(b, '"')
	}
	return append(b, '}')
}
