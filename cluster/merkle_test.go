package cluster

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

func openMerkleDB(t testing.TB) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "fsm.db"), 0o600, nil)
	if err != nil {
		t.Fatalf("open bbolt: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func appendLeaves(t testing.TB, db *bbolt.DB, leaves [][]byte) {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, l := range leaves {
			if _, err := AppendLeaf(tx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append leaves: %v", err)
	}
}

func merkleView(t testing.TB, db *bbolt.DB, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatal(err)
	}
}

// memTree is tlog's own computation over an in-memory slice of stored
// hashes, the reference we compare the bbolt-backed log with.
type memTree []tlog.Hash

func (m memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("memTree: no hash %d", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

func buildMemTree(t testing.TB, leaves [][]byte) memTree {
	t.Helper()
	var m memTree
	for n, l := range leaves {
		hs, err := tlog.StoredHashes(int64(n), l, m)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, hs...)
	}
	return m
}

func merkleTestLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"release":"RS-2024-Q%d-%d"}`, i%4+1, i)
	}
	return out
}

type rfcVectors struct {
	Leaves    []string `json:"leaves"`
	Roots     []string `json:"roots"`
	Inclusion []struct {
		Index int64    `json:"index"`
		Size  int64    `json:"size"`
		Proof []string `json:"proof"`
	} `json:"inclusion"`
}

func mustHash(t *testing.T, s string) tlog.Hash {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		t.Fatalf("bad hash %q in fixture", s)
	}
	return tlog.Hash(b)
}

func TestMerkleRFC6962Vectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "merkle_rfc6962.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var leaves [][]byte
	for _, h := range v.Leaves {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, b)
	}
	db := openMerkleDB(t)
	// Size 0: never-written log and the RFC's empty-tree hash, SHA-256("").
	merkleView(t, db, func(tx *bbolt.Tx) error {
		head, err := TreeHead(tx)
		if err != nil {
			return err
		}
		if head.N != 0 || head.Hash != mustHash(t, v.Roots[0]) {
			t.Errorf("empty TreeHead = %d %x, want 0 %s", head.N, head.Hash, v.Roots[0])
		}
		return nil
	})
	for n, leaf := range leaves {
		var idx int64
		err := db.Update(func(tx *bbolt.Tx) error {
			var err error
			idx, err = AppendLeaf(tx, leaf)
			return err
		})
		if err != nil || idx != int64(n) {
			t.Fatalf("AppendLeaf #%d = %d, %v", n, idx, err)
		}
		merkleView(t, db, func(tx *bbolt.Tx) error {
			head, err := TreeHead(tx)
			if err != nil {
				return err
			}
			if want := mustHash(t, v.Roots[n+1]); head.N != int64(n+1) || head.Hash != want {
				t.Errorf("size %d root = %x, want %x (RFC 6962 reference)", n+1, head.Hash, want)
			}
			return nil
		})
	}
	// Leaf hash of the empty leaf is SHA-256(0x00), the size-1 root.
	if got := tlog.RecordHash(nil); got != mustHash(t, v.Roots[1]) {
		t.Errorf("RecordHash(empty) = %x", got)
	}
	for _, inc := range v.Inclusion {
		merkleView(t, db, func(tx *bbolt.Tx) error {
			p, err := InclusionProof(tx, inc.Index, inc.Size)
			if err != nil {
				return err
			}
			if len(p) != len(inc.Proof) {
				t.Fatalf("proof of %d in %d has %d hashes, want %d", inc.Index, inc.Size, len(p), len(inc.Proof))
			}
			for i := range p {
				if p[i] != mustHash(t, inc.Proof[i]) {
					t.Errorf("proof of %d in %d: hash %d = %x, want %s", inc.Index, inc.Size, i, p[i], inc.Proof[i])
				}
			}
			return VerifyInclusion(p, inc.Size, mustHash(t, v.Roots[inc.Size]), inc.Index, leaves[inc.Index])
		})
	}
}

// TestMerkleMatchesTlog appends leaves over several transactions and
// compares every tree size's root and every proof with tlog's computation
// over an in-memory store.
func TestMerkleMatchesTlog(t *testing.T) {
	const n = 70
	leaves := merkleTestLeaves(n)
	ref := buildMemTree(t, leaves)
	db := openMerkleDB(t)
	for lo := 0; lo < n; lo += 9 {
		appendLeaves(t, db, leaves[lo:min(lo+9, n)])
	}
	merkleView(t, db, func(tx *bbolt.Tx) error {
		size, err := TreeSize(tx)
		if err != nil || size != n {
			t.Fatalf("TreeSize = %d, %v; want %d", size, err, n)
		}
		for size := int64(1); size <= n; size++ {
			want, err := tlog.TreeHash(size, ref)
			if err != nil {
				return err
			}
			for idx := int64(0); idx < size; idx++ {
				p, err := InclusionProof(tx, idx, size)
				if err != nil {
					return err
				}
				refP, err := tlog.ProveRecord(size, idx, ref)
				if err != nil {
					return err
				}
				if fmt.Sprint(p) != fmt.Sprint(refP) {
					t.Fatalf("inclusion proof %d in %d differs from tlog's", idx, size)
				}
				if err := VerifyInclusion(p, size, want, idx, leaves[idx]); err != nil {
					t.Fatalf("VerifyInclusion(%d in %d): %v", idx, size, err)
				}
			}
		}
		head, err := TreeHead(tx)
		if err != nil {
			return err
		}
		want, _ := tlog.TreeHash(n, ref)
		if head != (tlog.Tree{N: n, Hash: want}) {
			t.Fatalf("TreeHead = %v, want %d %x", head, n, want)
		}
		return nil
	})
}

func TestMerkleDeterministicAcrossNodes(t *testing.T) {
	leaves := merkleTestLeaves(33)
	var roots []tlog.Hash
	// Three "nodes" apply the same leaves in differently sized transactions.
	for _, step := range []int{1, 5, 33} {
		db := openMerkleDB(t)
		for lo := 0; lo < len(leaves); lo += step {
			appendLeaves(t, db, leaves[lo:min(lo+step, len(leaves))])
		}
		merkleView(t, db, func(tx *bbolt.Tx) error {
			h, err := TreeHead(tx)
			roots = append(roots, h.Hash)
			return err
		})
	}
	if roots[0] != roots[1] || roots[1] != roots[2] {
		t.Fatalf("roots differ across nodes: %x", roots)
	}
}

func TestMerkleConsistencyManyPairs(t *testing.T) {
	const n = 40
	leaves := merkleTestLeaves(n)
	ref := buildMemTree(t, leaves)
	db := openMerkleDB(t)
	appendLeaves(t, db, leaves)
	roots := make([]tlog.Hash, n+1)
	for i := range roots {
		roots[i], _ = tlog.TreeHash(int64(i), ref)
	}
	merkleView(t, db, func(tx *bbolt.Tx) error {
		for oldSize := int64(1); oldSize <= n; oldSize++ {
			for newSize := oldSize; newSize <= n; newSize++ {
				p, err := ConsistencyProof(tx, oldSize, newSize)
				if err != nil {
					return err
				}
				if err := VerifyConsistency(p, oldSize, roots[oldSize], newSize, roots[newSize]); err != nil {
					t.Fatalf("VerifyConsistency(%d -> %d): %v", oldSize, newSize, err)
				}
				if oldSize == newSize || len(p) == 0 {
					continue
				}
				// Any changed hash, or a different old root, must fail.
				bad := append(tlog.TreeProof(nil), p...)
				bad[len(bad)/2][0] ^= 1
				if VerifyConsistency(bad, oldSize, roots[oldSize], newSize, roots[newSize]) == nil {
					t.Fatalf("tampered consistency proof %d -> %d verified", oldSize, newSize)
				}
				if VerifyConsistency(p, oldSize, roots[oldSize-1], newSize, roots[newSize]) == nil && roots[oldSize-1] != roots[oldSize] {
					t.Fatalf("consistency %d -> %d verified against the wrong old root", oldSize, newSize)
				}
			}
		}
		return nil
	})
}

func TestMerkleTamperFails(t *testing.T) {
	leaves := merkleTestLeaves(13)
	db := openMerkleDB(t)
	appendLeaves(t, db, leaves)
	var (
		head tlog.Tree
		p    tlog.RecordProof
	)
	merkleView(t, db, func(tx *bbolt.Tx) error {
		var err error
		if head, err = TreeHead(tx); err != nil {
			return err
		}
		p, err = InclusionProof(tx, 6, head.N)
		return err
	})
	if err := VerifyInclusion(p, head.N, head.Hash, 6, leaves[6]); err != nil {
		t.Fatalf("honest proof: %v", err)
	}
	badProof := append(tlog.RecordProof(nil), p...)
	badProof[0][31] ^= 0x80
	badRoot := head.Hash
	badRoot[0] ^= 1
	tests := []struct {
		name  string
		proof tlog.RecordProof
		size  int64
		root  tlog.Hash
		index int64
		leaf  []byte
	}{
		{"tampered proof hash", badProof, head.N, head.Hash, 6, leaves[6]},
		{"truncated proof", p[:len(p)-1], head.N, head.Hash, 6, leaves[6]},
		{"tampered leaf", p, head.N, head.Hash, 6, append([]byte("x"), leaves[6]...)},
		{"other leaf", p, head.N, head.Hash, 6, leaves[7]},
		{"wrong index", p, head.N, head.Hash, 7, leaves[6]},
		{"tampered root", p, head.N, badRoot, 6, leaves[6]},
		// A size with another tree shape fails. (A size with the same shape,
		// e.g. 14 for leaf 6 of 13, yields the same root: RFC 6962 proofs do
		// not bind the size alone, the signed checkpoint binds size to root.)
		{"wrong size", p, 8, head.Hash, 6, leaves[6]},
		{"index out of range", p, head.N, head.Hash, head.N, leaves[6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyInclusion(tt.proof, tt.size, tt.root, tt.index, tt.leaf); err == nil {
				t.Fatal("VerifyInclusion accepted it")
			}
		})
	}
}

func TestMerkleBadArguments(t *testing.T) {
	db := openMerkleDB(t)
	appendLeaves(t, db, merkleTestLeaves(5))
	merkleView(t, db, func(tx *bbolt.Tx) error {
		for _, c := range [][2]int64{{-1, 5}, {5, 5}, {0, 6}, {0, 0}} {
			if _, err := InclusionProof(tx, c[0], c[1]); err == nil {
				t.Errorf("InclusionProof(%d, %d): want error", c[0], c[1])
			}
		}
		for _, c := range [][2]int64{{0, 3}, {4, 3}, {3, 6}, {-1, 2}} {
			if _, err := ConsistencyProof(tx, c[0], c[1]); err == nil {
				t.Errorf("ConsistencyProof(%d, %d): want error", c[0], c[1])
			}
		}
		if _, err := AppendLeaf(tx, []byte("x")); err == nil {
			t.Error("AppendLeaf in a read-only tx: want error")
		}
		return nil
	})
	// A never-written file answers like the empty tree and refuses proofs.
	empty := openMerkleDB(t)
	merkleView(t, empty, func(tx *bbolt.Tx) error {
		if n, err := TreeSize(tx); n != 0 || err != nil {
			t.Errorf("TreeSize(empty) = %d, %v", n, err)
		}
		if _, err := InclusionProof(tx, 0, 1); err == nil {
			t.Error("InclusionProof on empty log: want error")
		}
		return nil
	})
}

// TestMerkleRollbackLeavesNoTrace shows why the hashes belong in the FSM's
// transaction: when the FSM rejects a release and rolls back, the Merkle log
// is untouched too.
func TestMerkleRollbackLeavesNoTrace(t *testing.T) {
	db := openMerkleDB(t)
	appendLeaves(t, db, merkleTestLeaves(3))
	var before tlog.Tree
	merkleView(t, db, func(tx *bbolt.Tx) (err error) { before, err = TreeHead(tx); return err })
	errReject := errors.New("budget exhausted")
	err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := AppendLeaf(tx, []byte("rejected")); err != nil {
			return err
		}
		return errReject
	})
	if !errors.Is(err, errReject) {
		t.Fatalf("Update = %v", err)
	}
	merkleView(t, db, func(tx *bbolt.Tx) error {
		after, err := TreeHead(tx)
		if err != nil {
			return err
		}
		if after != before {
			t.Fatalf("tree changed after rollback: %v -> %v", before, after)
		}
		return nil
	})
}

func TestMerkleDetectsCorruption(t *testing.T) {
	db := openMerkleDB(t)
	appendLeaves(t, db, merkleTestLeaves(4))
	err := db.Update(func(tx *bbolt.Tx) error {
		hb := tx.Bucket([]byte(MerkleBucket)).Bucket([]byte(merkleHashes))
		return hb.Put(hashKey(tlog.StoredHashIndex(2, 0)), []byte("short"))
	})
	if err != nil {
		t.Fatal(err)
	}
	merkleView(t, db, func(tx *bbolt.Tx) error {
		if _, err := TreeHead(tx); !errors.Is(err, ErrMerkleCorrupt) {
			t.Errorf("TreeHead over a damaged hash = %v, want ErrMerkleCorrupt", err)
		}
		return nil
	})
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(MerkleBucket)).Put([]byte(merkleSizeKey), []byte{1})
	})
	if err != nil {
		t.Fatal(err)
	}
	merkleView(t, db, func(tx *bbolt.Tx) error {
		if _, err := TreeSize(tx); !errors.Is(err, ErrMerkleCorrupt) {
			t.Errorf("TreeSize over a damaged size = %v, want ErrMerkleCorrupt", err)
		}
		return nil
	})
}

func BenchmarkMerkleAppendLeaf(b *testing.B) {
	db := openMerkleDB(b)
	leaf := make([]byte, 512)
	b.ResetTimer()
	// 64 leaves per transaction, as the FSM would under raft batching.
	for b.Loop() {
		err := db.Update(func(tx *bbolt.Tx) error {
			for range 64 {
				if _, err := AppendLeaf(tx, leaf); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "leaves/s")
}
