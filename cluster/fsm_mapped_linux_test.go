package cluster

import (
	"bufio"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// mappedKB is the resident size, in kB, of this process's mappings of
// path (/proc/self/smaps).
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = fields[len(fields)-1] == path // a mapping's header line ends with its file
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps: %q", line)
			}
			total += kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestDropMappedPages: after a pass over the ledger file its pages are
// resident in the process; DropMappedPages gives them back, and the ledger
// reads the same bytes afterwards.
func TestDropMappedPages(t *testing.T) {
	f, err := OpenFSM(t.TempDir(), fsmQuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 24 MB of incompressible values in a bucket of their own.
	const n, size = 3000, 8 << 10
	r := rand.New(rand.NewPCG(1, 2))
	sum := func(tx *bbolt.Tx) uint64 {
		var s uint64
		_ = tx.Bucket([]byte("test-mapped")).ForEach(func(k, v []byte) error {
			for i := 0; i+8 <= len(v); i += 512 { // one read per 512 bytes: every page is touched
				s += binary.LittleEndian.Uint64(v[i:])
			}
			return nil
		})
		return s
	}
	err = f.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("test-mapped"))
		if err != nil {
			return err
		}
		for i := range n {
			v := make([]byte, size)
			for j := 0; j < size; j += 8 {
				binary.LittleEndian.PutUint64(v[j:], r.Uint64())
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var before, after uint64
	if err := f.view(func(tx *bbolt.Tx) error { before = sum(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	path := f.path()
	resident := mappedKB(t, path)
	if resident < n*size/1024/2 {
		t.Fatalf("after a pass over %d MB, %d kB of the ledger file is resident: the test does not see the mapping", n*size>>20, resident)
	}
	if err := f.DropMappedPages(); err != nil {
		t.Fatal(err)
	}
	if got := mappedKB(t, path); got > resident/10 {
		t.Errorf("after DropMappedPages %d kB of the ledger file is still resident (%d kB before)", got, resident)
	}
	if err := f.view(func(tx *bbolt.Tx) error { after = sum(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if before != after || before == 0 {
		t.Errorf("the ledger reads differently after DropMappedPages: %x, then %x", before, after)
	}
	if got := mappedKB(t, path); got < resident/2 {
		t.Errorf("a second pass faulted only %d kB back in (%d kB the first time): did it read the file?", got, resident)
	}
}
