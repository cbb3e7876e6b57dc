package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// bucketHashes is StateHash split by top-level bucket, so a test can say
// which part of the state changed, or compare the state with a part left
// out.
func bucketHashes(tb testing.TB, f *FSM) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := f.view(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			h := sha256.New()
			if err := hashBucket(h, [][]byte{name}, b); err != nil {
				return err
			}
			out[string(name)] = hex.EncodeToString(h.Sum(nil))
			return nil
		})
	})
	if err != nil {
		tb.Fatalf("bucket hashes: %v", err)
	}
	return out
}

// changedBuckets lists the buckets whose hash differs between two maps.
func changedBuckets(before, after map[string]string) []string {
	var out []string
	for name, h := range after {
		if before[name] != h {
			out = append(out, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			out = append(out, name)
		}
	}
	return out
}

// waitCosignedByAll waits until every node's latest checkpoint is of the
// given tree size and carries a signature from every node, so that no
// co-signature is still on its way into the ledger.
func waitCosignedByAll(tb testing.TB, nodes []*Node, size int64) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var last string
		done := true
		for _, n := range nodes {
			note, got, _, err := n.FSM().Checkpoint()
			sigs := strings.Count(string(note), "\n— ")
			if err != nil || got != size || sigs != len(nodes) {
				done = false
				last = fmt.Sprintf("%s: checkpoint of size %d with %d signatures (%v)", n.ID(), got, sigs, err)
				break
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not every partner co-signed the tree of %d within 15s: %s", size, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
