package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// The ledger's read API. Every method runs in its own bbolt read
// transaction, so it sees one committed batch, never half of one, and runs
// concurrently with Apply and with other readers.

// Partner roles.
const (
	RoleVoter   = "voter"   // may reserve, publish and co-sign
	RoleRemoved = "removed" // past releases stay and verify; may do nothing new
)

// Partner is a member of the consortium: a country's node and its key.
type Partner struct {
	ID        string            `json:"id"` // ISO 3166-1 alpha-2, XK for Kosovo
	Name      string            `json:"name"`
	PublicKey ed25519.PublicKey `json:"public_key"` // signs releases, reservations and checkpoints
	Role      string            `json:"role,omitempty"`
	// Address, when governance gave one, is the only raft address the
	// partner's node may join from.
	Address string `json:"address,omitempty"`
}

// Consortium is the ledger's membership and configuration.
type Consortium struct {
	Name string `json:"name"`
	// ID is the consortium id: the hex SHA-256 of the genesis's canonical
	// encoding (governance.Genesis.ID). Every governance statement names it.
	ID           string                   `json:"id"`
	Coordinators []governance.Coordinator `json:"coordinators"`
	Threshold    int                      `json:"threshold"`
	MaxCapMicro  int64                    `json:"max_cap_micro"` // the genesis's ceiling on the budget cap
	// GovernanceSeq is the number of the last admitted governance statement.
	GovernanceSeq uint64 `json:"governance_seq"`
	// ReplicaAddrs gives the registered address of each replica that has one.
	ReplicaAddrs map[string]string `json:"replica_addrs,omitempty"`
	Partners     []Partner         `json:"partners"` // sorted by id, removed ones included
	Replicas     []string          `json:"replicas"` // sorted
	CatalogHash  string            `json:"catalog_hash"`
	Catalogs     []string          `json:"catalogs"` // every known catalog hash, sorted
	Policy       privacy.Policy    `json:"policy"`
}

// Voters returns the ids of the partners that may act, in id order.
func (c Consortium) Voters() []string {
	var ids []string
	for _, p := range c.Partners {
		if p.Role == RoleVoter {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// view runs fn in a read transaction on the current file.
func (f *FSM) view(fn func(tx *bbolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return errors.New("ledger is closed")
	}
	return f.db.View(fn)
}

// AppliedIndex returns the raft index of the last applied entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Consortium returns the membership and configuration. Before genesis it
// returns ErrNotFound.
func (f *FSM) Consortium() (Consortium, error) {
	var c Consortium
	err := f.view(func(tx *bbolt.Tx) error {
		meta := bucket(tx, bucketMeta)
		name := meta.Get([]byte(keyName))
		if name == nil {
			return fmt.Errorf("consortium: %w (no genesis yet)", ErrNotFound)
		}
		c.Name = string(name)
		c.CatalogHash = string(meta.Get([]byte(keyCatalog)))
		var err error
		if c.Policy, err = loadPolicy(tx); err != nil {
			return err
		}
		g, err := loadGovernance(tx)
		if err != nil {
			return err
		}
		c.ID, c.Coordinators, c.Threshold, c.MaxCapMicro, c.GovernanceSeq = g.consortium, g.set.Coordinators, g.set.Threshold, g.maxCap, g.next-1
		err = bucket(tx, bucketReplicas).ForEach(func(k, v []byte) error {
			var r replicaRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("ledger corrupt: replica %s: %w", k, err)
			}
			if r.Address != "" {
				if c.ReplicaAddrs == nil {
					c.ReplicaAddrs = map[string]string{}
				}
				c.ReplicaAddrs[string(k)] = r.Address
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = bucket(tx, bucketPartners).ForEach(func(k, v []byte) error {
			var p Partner
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("ledger corrupt: partner %s: %w", k, err)
			}
			c.Partners = append(c.Partners, p)
			return nil
		})
		if err != nil {
			return err
		}
		c.Replicas = keys(bucket(tx, bucketReplicas))
		c.Catalogs = keys(bucket(tx, bucketCatalogs))
		return nil
	})
	return c, err
}

func keys(b *bbolt.Bucket) []string {
	out := []string{}
	_ = b.ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// Catalog returns a catalog version and its canonical JSON.
func (f *FSM) Catalog(hash string) (*aggregate.Catalog, []byte, error) {
	var c *aggregate.Catalog
	var raw []byte
	err := f.view(func(tx *bbolt.Tx) error {
		var err error
		c, raw, err = loadCatalog(tx, hash)
		return notFound(err, "catalog "+hash)
	})
	return c, raw, err
}

// CurrentCatalog returns the catalog in force and its canonical JSON.
func (f *FSM) CurrentCatalog() (*aggregate.Catalog, []byte, error) {
	var c *aggregate.Catalog
	var raw []byte
	err := f.view(func(tx *bbolt.Tx) error {
		hash := bucket(tx, bucketMeta).Get([]byte(keyCatalog))
		if hash == nil {
			return fmt.Errorf("current catalog: %w (no genesis yet)", ErrNotFound)
		}
		var err error
		c, raw, err = loadCatalog(tx, string(hash))
		return err
	})
	return c, raw, err
}

// notFound turns a lookup refusal into ErrNotFound for readers.
func notFound(err error, what string) error {
	var ref *privacy.Refusal
	if errors.As(err, &ref) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// Policy returns the budget policy in force.
func (f *FSM) Policy() (privacy.Policy, error) {
	var p privacy.Policy
	err := f.view(func(tx *bbolt.Tx) error {
		if bucket(tx, bucketMeta).Get([]byte(keyName)) == nil {
			return fmt.Errorf("policy: %w (no genesis yet)", ErrNotFound)
		}
		var err error
		p, err = loadPolicy(tx)
		return err
	})
	return p, err
}

// Release returns a published release and its Merkle leaf index.
func (f *FSM) Release(id string) (privacy.Signed, int64, error) {
	data, leaf, err := f.ReleaseBytes(id)
	if err != nil {
		return privacy.Signed{}, 0, err
	}
	var s privacy.Signed
	if err := json.Unmarshal(data, &s); err != nil {
		return privacy.Signed{}, 0, fmt.Errorf("ledger corrupt: release %s: %w", id, err)
	}
	return s, leaf, nil
}

// ReleaseBytes returns a release as stored — its LeafData, the exact bytes
// its Merkle leaf hashes — and its leaf index.
func (f *FSM) ReleaseBytes(id string) ([]byte, int64, error) {
	var data []byte
	var leaf int64
	err := f.view(func(tx *bbolt.Tx) error {
		k := bucket(tx, bucketReleases).Get([]byte(id))
		if k == nil {
			return fmt.Errorf("release %s: %w", id, ErrNotFound)
		}
		v := bucket(tx, bucketLeaves).Get(k)
		if len(k) != 8 || v == nil {
			return fmt.Errorf("ledger corrupt: release %s has no leaf", id)
		}
		leaf = int64(binary.BigEndian.Uint64(k))
		data = bytes.Clone(v)
		return nil
	})
	return data, leaf, err
}

// Releases calls fn for every release in leaf (publication) order and stops
// at the first error fn returns, which Releases returns. fn runs inside one
// read transaction: it sees one consistent ledger, and should not block
// for long, since a commit that must grow the file waits for it. fn must
// not call other FSM methods: a Restore waiting for the ledger would
// deadlock with the nested read.
//
// Decoding the JSON is nearly all the cost, so releases are decoded in
// chunks on every core; fn is still called in order, from one goroutine.
func (f *FSM) Releases(fn func(leaf int64, s privacy.Signed) error) error {
	const chunk = 256
	leaves := make([]int64, 0, chunk)
	raw := make([][]byte, 0, chunk)
	decoded := make([]privacy.Signed, chunk)
	errs := make([]error, chunk)
	flush := func() error {
		parallel(len(raw), func(i int) {
			decoded[i] = privacy.Signed{}
			errs[i] = json.Unmarshal(raw[i], &decoded[i])
		})
		for i := range raw {
			if errs[i] != nil {
				return fmt.Errorf("ledger corrupt: leaf %d: %w", leaves[i], errs[i])
			}
			if err := fn(leaves[i], decoded[i]); err != nil {
				return err
			}
		}
		leaves, raw = leaves[:0], raw[:0]
		return nil
	}
	return f.ReleasesRaw(func(leaf int64, data []byte) error {
		leaves, raw = append(leaves, leaf), append(raw, data)
		if len(raw) < chunk {
			return nil
		}
		return flush()
	}, flush)
}

// ReleasesRaw calls fn with every release's stored bytes (its LeafData) in
// leaf order, without decoding them: for exports that pass the JSON on.
// data is valid only during the call. done, if not nil, runs at the end
// inside the same read transaction. The rules of Releases apply to fn.
func (f *FSM) ReleasesRaw(fn func(leaf int64, data []byte) error, done func() error) error {
	return f.view(func(tx *bbolt.Tx) error {
		c := bucket(tx, bucketLeaves).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("ledger corrupt: leaf key %x", k)
			}
			if err := fn(int64(binary.BigEndian.Uint64(k)), v); err != nil {
				return err
			}
		}
		if done != nil {
			return done()
		}
		return nil
	})
}

// ReleasesFrom calls fn with the stored bytes (LeafData) of the releases
// at leaf first and after, in leaf order, until fn says stop; it returns
// the tree size seen by the same read transaction. It is the paging read:
// a page costs what it holds, not what the ledger holds. data is valid
// only during the call; the rules of Releases apply to fn.
func (f *FSM) ReleasesFrom(first int64, fn func(leaf int64, data []byte) (more bool, err error)) (size int64, err error) {
	err = f.view(func(tx *bbolt.Tx) error {
		if size, err = TreeSize(tx); err != nil {
			return fmt.Errorf("releases from leaf %d: %w", first, err)
		}
		var k8 [8]byte
		binary.BigEndian.PutUint64(k8[:], uint64(max(first, 0)))
		c := bucket(tx, bucketLeaves).Cursor()
		for k, v := c.Seek(k8[:]); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("ledger corrupt: leaf key %x", k)
			}
			more, err := fn(int64(binary.BigEndian.Uint64(k)), v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
	return size, err
}

// parallel runs work(0..n-1) on every core and waits for all of it.
func parallel(n int, work func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				work(i)
			}
		}()
	}
	wg.Wait()
}

// Reservation returns a reservation and the id of the release that used
// it ("" while unused). A publisher that crashed between reserving and
// publishing uses it to resume without reserving twice.
func (f *FSM) Reservation(id string) (privacy.SignedReservation, string, error) {
	var rec reservationRecord
	err := f.view(func(tx *bbolt.Tx) error {
		r, found, err := getReservation(tx, id)
		if err == nil && !found {
			err = fmt.Errorf("reservation %s: %w", id, ErrNotFound)
		}
		rec = r
		return err
	})
	return rec.Reservation, rec.Release, err
}

// Spend returns what a partner has spent, per quarter, in quarter order.
func (f *FSM) Spend(partner string) ([]privacy.QuarterSpend, error) {
	var out []privacy.QuarterSpend
	err := f.view(func(tx *bbolt.Tx) error {
		prefix := []byte(partner + "/")
		c := bucket(tx, bucketSpend).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			q, err := aggregate.ParsePeriod(string(k[len(prefix):]))
			if err != nil || len(v) != 8 {
				return fmt.Errorf("ledger corrupt: spend key %q", k)
			}
			out = append(out, privacy.QuarterSpend{Quarter: q, SpentMicro: int64(binary.BigEndian.Uint64(v))})
		}
		return nil
	})
	return out, err
}

// TreeHead returns the Merkle log's current size and root.
func (f *FSM) TreeHead() (tlog.Tree, error) {
	var t tlog.Tree
	err := f.view(func(tx *bbolt.Tx) error {
		var err error
		t, err = TreeHead(tx)
		return err
	})
	return t, err
}

// InclusionProof proves leaf is in the tree of the given size.
func (f *FSM) InclusionProof(leaf, size int64) (tlog.RecordProof, error) {
	var p tlog.RecordProof
	err := f.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = InclusionProof(tx, leaf, size)
		return err
	})
	return p, err
}

// ConsistencyProof proves the tree of size oldSize is a prefix of newSize's.
func (f *FSM) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	err := f.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = ConsistencyProof(tx, oldSize, newSize)
		return err
	})
	return p, err
}

// Checkpoint returns the latest regional checkpoint (signed by a strict
// majority of the partners now registered) as a note carrying every stored
// co-signature, or, if none is regional yet, the latest checkpoint with any
// signature. It returns ErrNotFound if no partner has co-signed anything.
func (f *FSM) Checkpoint() (signedNote []byte, size int64, regional bool, err error) {
	err = f.view(func(tx *bbolt.Tx) error {
		voters, err := voterIDs(tx)
		if err != nil {
			return err
		}
		c := bucket(tx, bucketCheckpoints).Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			cp := bucket(tx, bucketCheckpoints).Bucket(k)
			if cp == nil || len(k) != 8 {
				return fmt.Errorf("ledger corrupt: checkpoint key %x", k)
			}
			msg, signers := assembleCheckpoint(cp)
			isRegional := IsRegional(signers, voters)
			if signedNote == nil || isRegional {
				signedNote, size, regional = msg, int64(binary.BigEndian.Uint64(k)), isRegional
			}
			if isRegional {
				return nil
			}
		}
		if signedNote == nil {
			return fmt.Errorf("checkpoint: %w", ErrNotFound)
		}
		return nil
	})
	return signedNote, size, regional, err
}

// assembleCheckpoint rebuilds the signed note from the stored text and
// signature lines (the note format: text, a blank line, then one
// "— name base64" line per signature), signatures in partner id order.
func assembleCheckpoint(cp *bbolt.Bucket) ([]byte, []string) {
	var b bytes.Buffer
	b.Write(cp.Get([]byte(keyText)))
	b.WriteString("\n")
	var signers []string
	if sigs := cp.Bucket([]byte(keySigs)); sigs != nil {
		_ = sigs.ForEach(func(k, v []byte) error {
			signers = append(signers, string(k))
			b.WriteString("\u2014 ")
			b.Write(v)
			b.WriteString("\n")
			return nil
		})
	}
	return b.Bytes(), signers
}

// StateHash is a SHA-256 over the whole logical state — every bucket, key
// and value in key order — except the applied raft index, which is raft
// bookkeeping: two nodes that applied the same commands agree on it
// whatever their batching. Tests compare nodes with it.
func (f *FSM) StateHash() (string, error) {
	h := sha256.New()
	err := f.view(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return hashBucket(h, [][]byte{name}, b)
		})
	})
	if err != nil {
		return "", fmt.Errorf("state hash: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashBucket(h hash.Hash, path [][]byte, b *bbolt.Bucket) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(path) == 1 && string(path[0]) == bucketMeta && string(k) == keyApplied {
			continue
		}
		full := append(path[:len(path):len(path)], k)
		writeField := func(p []byte) {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
			h.Write(p)
		}
		h.Write([]byte{byte(len(full))})
		for _, p := range full {
			writeField(p)
		}
		if v == nil { // a nested bucket
			h.Write([]byte{'b'})
			if err := hashBucket(h, full, b.Bucket(k)); err != nil {
				return err
			}
			continue
		}
		h.Write([]byte{'v'})
		writeField(v)
	}
	return nil
}
