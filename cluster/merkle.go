package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle log is an RFC 6962 (Certificate Transparency, section 2.1)
// hash tree over the ledger's releases, computed with
// golang.org/x/mod/sumdb/tlog, whose TestCertificateTransparency checks it
// against CT's own proofs. Leaf i is RecordHash(leafData) = SHA-256(0x00 ||
// leafData); interior nodes are SHA-256(0x01 || left || right).
//
// Its hashes live in the caller's bbolt file, in the bucket MerkleBucket:
//
//	merkle/
//	  size          8 bytes big-endian: number of leaves
//	  hashes/       key: 8 bytes big-endian stored-hash index
//	                (tlog.StoredHashIndex), value: 32-byte hash
//
// Every function takes the caller's *bbolt.Tx so the FSM can append a leaf
// in the same transaction that admits the release: the root then always
// matches the state, on every node, at every index (DESIGN-store-merkle.md).
// Nothing here reads a clock, a random source or a map, so the same leaves in
// the same order give the same root everywhere.

// MerkleBucket is the top-level bbolt bucket that holds the Merkle log.
// The caller owns the file; AppendLeaf creates the bucket on first use.
const MerkleBucket = "merkle"

const (
	merkleHashes  = "hashes"
	merkleSizeKey = "size"
)

// ErrMerkleCorrupt reports stored Merkle state that cannot be right (a hash
// of the wrong length, a missing hash, a malformed size). It means the
// bbolt file was damaged or written by something else.
var ErrMerkleCorrupt = errors.New("merkle log corrupt")

// AppendLeaf appends leafData as the next leaf and returns its index
// (0-based). tx must be writable. All new hashes are computed before the
// first write; if AppendLeaf returns an error the caller must roll tx back.
func AppendLeaf(tx *bbolt.Tx, leafData []byte) (int64, error) {
	if !tx.Writable() {
		return 0, errors.New("merkle append: transaction is read-only")
	}
	root, err := tx.CreateBucketIfNotExists([]byte(MerkleBucket))
	if err != nil {
		return 0, fmt.Errorf("merkle append: create bucket: %w", err)
	}
	hb, err := root.CreateBucketIfNotExists([]byte(merkleHashes))
	if err != nil {
		return 0, fmt.Errorf("merkle append: create hashes bucket: %w", err)
	}
	hb.FillPercent = appendFillPercent // hashes are only ever appended
	n, err := readSize(root)
	if err != nil {
		return 0, fmt.Errorf("merkle append: %w", err)
	}
	hashes, err := tlog.StoredHashes(n, leafData, bucketHashReader{hb})
	if err != nil {
		return 0, fmt.Errorf("merkle append leaf %d: %w", n, err)
	}
	base := tlog.StoredHashIndex(0, n)
	for i, h := range hashes {
		if err := hb.Put(hashKey(base+int64(i)), h[:]); err != nil {
			return 0, fmt.Errorf("merkle append leaf %d: put hash: %w", n, err)
		}
	}
	if err := root.Put([]byte(merkleSizeKey), binary.BigEndian.AppendUint64(nil, uint64(n+1))); err != nil {
		return 0, fmt.Errorf("merkle append leaf %d: put size: %w", n, err)
	}
	return n, nil
}

// TreeSize returns the number of leaves; 0 if the log was never written.
func TreeSize(tx *bbolt.Tx) (int64, error) {
	root := tx.Bucket([]byte(MerkleBucket))
	if root == nil {
		return 0, nil
	}
	n, err := readSize(root)
	if err != nil {
		return 0, fmt.Errorf("merkle tree size: %w", err)
	}
	return n, nil
}

// TreeHead returns the current size and root hash. The empty tree's hash is
// SHA-256 of the empty string, as RFC 6962 defines.
func TreeHead(tx *bbolt.Tx) (tlog.Tree, error) {
	n, r, err := openMerkle(tx)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("merkle tree head: %w", err)
	}
	h, err := tlog.TreeHash(n, r)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("merkle tree head at size %d: %w", n, err)
	}
	return tlog.Tree{N: n, Hash: h}, nil
}

// InclusionProof proves that leaf index is in the tree of the given size.
// It needs 0 <= index < size <= TreeSize(tx); size may be an older tree
// than the current one, so a proof can be made against any signed checkpoint.
func InclusionProof(tx *bbolt.Tx, index, size int64) (tlog.RecordProof, error) {
	n, r, err := openMerkle(tx)
	if err != nil {
		return nil, fmt.Errorf("merkle inclusion proof: %w", err)
	}
	if index < 0 || index >= size || size > n {
		return nil, fmt.Errorf("merkle inclusion proof: need 0 <= index < size <= %d, got index %d, size %d", n, index, size)
	}
	p, err := tlog.ProveRecord(size, index, r)
	if err != nil {
		return nil, fmt.Errorf("merkle inclusion proof of leaf %d in size %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of oldSize is a prefix of the tree
// of newSize. It needs 1 <= oldSize <= newSize <= TreeSize(tx): RFC 6962
// defines no proof from the empty tree, which every tree trivially extends.
func ConsistencyProof(tx *bbolt.Tx, oldSize, newSize int64) (tlog.TreeProof, error) {
	n, r, err := openMerkle(tx)
	if err != nil {
		return nil, fmt.Errorf("merkle consistency proof: %w", err)
	}
	if oldSize < 1 || oldSize > newSize || newSize > n {
		return nil, fmt.Errorf("merkle consistency proof: need 1 <= old <= new <= %d, got old %d, new %d", n, oldSize, newSize)
	}
	p, err := tlog.ProveTree(newSize, oldSize, r)
	if err != nil {
		return nil, fmt.Errorf("merkle consistency proof %d -> %d: %w", oldSize, newSize, err)
	}
	return p, nil
}

// VerifyInclusion checks offline that leafData is leaf index of the tree
// with the given size and root. It needs no database; a researcher holding a
// signed checkpoint and a release can run it alone.
func VerifyInclusion(proof tlog.RecordProof, size int64, root tlog.Hash, index int64, leafData []byte) error {
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(leafData)); err != nil {
		return fmt.Errorf("verify inclusion of leaf %d in tree of size %d: %w", index, size, err)
	}
	return nil
}

// VerifyConsistency checks offline that the tree (oldSize, oldRoot) is a
// prefix of the tree (newSize, newRoot), i.e. nothing published was altered
// or removed between the two checkpoints. It needs 1 <= oldSize <= newSize.
func VerifyConsistency(proof tlog.TreeProof, oldSize int64, oldRoot tlog.Hash, newSize int64, newRoot tlog.Hash) error {
	if err := tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return fmt.Errorf("verify consistency of size %d with size %d: %w", oldSize, newSize, err)
	}
	return nil
}

// openMerkle returns the tree size and a reader over stored hashes; a
// missing bucket is the empty tree.
func openMerkle(tx *bbolt.Tx) (int64, tlog.HashReader, error) {
	root := tx.Bucket([]byte(MerkleBucket))
	if root == nil {
		return 0, bucketHashReader{}, nil
	}
	n, err := readSize(root)
	if err != nil {
		return 0, nil, err
	}
	return n, bucketHashReader{root.Bucket([]byte(merkleHashes))}, nil
}

func readSize(root *bbolt.Bucket) (int64, error) {
	v := root.Get([]byte(merkleSizeKey))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: size value of %d bytes, want 8", ErrMerkleCorrupt, len(v))
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1<<62 {
		return 0, fmt.Errorf("%w: size %d out of range", ErrMerkleCorrupt, n)
	}
	return int64(n), nil
}

func hashKey(index int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(index))
}

// bucketHashReader is a tlog.HashReader over the hashes bucket. A nil
// bucket holds nothing, which is only right for the empty tree.
type bucketHashReader struct{ b *bbolt.Bucket }

// ReadHashes implements tlog.HashReader.
func (r bucketHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		var v []byte
		if r.b != nil {
			v = r.b.Get(hashKey(idx))
		}
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("%w: stored hash %d has %d bytes, want %d", ErrMerkleCorrupt, idx, len(v), tlog.HashSize)
		}
		copy(out[i][:], v)
	}
	return out, nil
}
