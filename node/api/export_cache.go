package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// The export cache: the ledger only grows, in leaf order, and so does its
// export, so a node keeps the CSV of leaves [0, n) in a file and, when a
// request finds the ledger at N > n leaves, appends the rows of leaves
// [n, N) before it serves the file's first committed bytes. Each row is
// rendered once per node, not once per request or per applied index.
//
// Files, in Config.CacheDir:
//
//	export.csv   the header and the rows, in leaf order; bytes past the
//	             committed length are an append a crash interrupted
//	export.json  exportState: what the committed bytes hold
//
// An append writes rows, fsyncs them, then replaces export.json (written
// aside, fsynced, renamed). A reader is handed the file and the committed
// length under the writer's lock and reads only that far, so it never sees
// a torn row, and a rebuild renames a new file in, leaving a reader's open
// file whole.
const (
	exportCSVFile   = "export.csv"
	exportStateFile = "export.json"
	// exportFormat names the CSV format; a cache in another format (an
	// older node's) is rebuilt. Change it with the columns or how a value
	// is written.
	exportFormat = 1
	// exportCommitBytes is how much an append writes between commits, so
	// an interrupted first build of gigabytes keeps most of its work.
	exportCommitBytes = 256 << 20
)

// exportState is export.json.
type exportState struct {
	Format     int    `json:"format"`
	Consortium string `json:"consortium"` // the genesis hash of the ledger the rows come from
	Leaves     int64  `json:"leaves"`     // rows of leaves [0, Leaves) are committed
	Bytes      int64  `json:"bytes"`      // the committed length of export.csv, header included
	// LastLeaf is the SHA-256 of leaf Leaves-1's stored bytes: a ledger
	// that differs there (a data directory given another ledger) is not
	// the one the rows came from.
	LastLeaf string `json:"last_leaf_sha256,omitempty"`
}

// exportCache is the export file of one node; one append at a time.
type exportCache struct {
	dir     string
	log     *slog.Logger
	lock    chan struct{} // held by the one request appending or taking a snapshot
	checked bool          // state was checked against the disk and the ledger
	state   exportState   // committed
}

func newExportCache(dir string, log *slog.Logger) *exportCache {
	return &exportCache{dir: dir, log: log, lock: make(chan struct{}, 1)}
}

// exportSnapshot is the committed export as one request found it: the
// file (open, so a later rebuild cannot take it away) and the length to
// serve, which holds the rows of every leaf the ledger held at applied.
type exportSnapshot struct {
	file    *os.File
	size    int64
	applied uint64
}

// snapshot brings the cache up to the ledger's current tree size and
// returns it. consortium is asked only when the cache is first checked.
// hold is called now and then while the request waits for the lock or
// appends (the server keeps its connection open meanwhile).
func (c *exportCache) snapshot(ctx context.Context, src releasePager, consortium func(context.Context) string, hold func()) (exportSnapshot, error) {
	if err := c.acquire(ctx, hold); err != nil {
		return exportSnapshot{}, err
	}
	defer func() { <-c.lock }()
	if !c.checked {
		if err := c.check(ctx, src, consortium(ctx)); err != nil {
			return exportSnapshot{}, err
		}
		c.checked = true
	}
	lr, err := readLeaves(ctx, src, c.state.Leaves)
	if err != nil {
		return exportSnapshot{}, err
	}
	if lr.end < c.state.Leaves {
		// The ledger lost leaves since the check (it was replaced under a
		// running node): the rows are not its rows.
		c.log.Warn("export cache: the ledger holds fewer leaves than the cache; rebuilding", "ledger", lr.end, "cache", c.state.Leaves)
		if err := c.reset(c.state.Consortium); err != nil {
			return exportSnapshot{}, err
		}
		if lr, err = readLeaves(ctx, src, 0); err != nil {
			return exportSnapshot{}, err
		}
	}
	if err := c.append(ctx, lr, hold); err != nil {
		return exportSnapshot{}, err
	}
	f, err := os.Open(c.path(exportCSVFile))
	if err != nil {
		return exportSnapshot{}, fmt.Errorf("export cache: %w", err)
	}
	return exportSnapshot{file: f, size: c.state.Bytes, applied: lr.applied}, nil
}

func (c *exportCache) acquire(ctx context.Context, hold func()) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		hold()
		select {
		case c.lock <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (c *exportCache) path(name string) string { return filepath.Join(c.dir, name) }

// check loads the committed state and keeps it if the disk and the ledger
// agree with it; otherwise it starts the cache afresh.
func (c *exportCache) check(ctx context.Context, src releasePager, consortium string) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	st, why, err := c.load(ctx, src, consortium)
	if err != nil {
		return err
	}
	if why != "" {
		c.log.Info("export cache: rebuilding", "dir", c.dir, "reason", why)
		return c.reset(consortium)
	}
	c.state = st
	return nil
}

// load reads export.json and says why it cannot be trusted ("" if it
// can). err is only for a ledger that cannot be read.
func (c *exportCache) load(ctx context.Context, src releasePager, consortium string) (st exportState, why string, err error) {
	data, err := os.ReadFile(c.path(exportStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, "no cache yet", nil
	}
	if err != nil || json.Unmarshal(data, &st) != nil {
		return st, fmt.Sprintf("%s unreadable (%v)", exportStateFile, err), nil
	}
	switch {
	case st.Format != exportFormat:
		return st, fmt.Sprintf("format %d, this node writes %d", st.Format, exportFormat), nil
	case st.Consortium != consortium:
		return st, fmt.Sprintf("rows of consortium %q, the ledger is %q", st.Consortium, consortium), nil
	case st.Leaves < 0 || st.Bytes < int64(len(exportHeader())) || (st.Leaves == 0) != (st.LastLeaf == ""):
		return st, fmt.Sprintf("%s is inconsistent", exportStateFile), nil
	}
	if why := c.checkFile(st); why != "" {
		return st, why, nil
	}
	if st.Leaves == 0 {
		return st, "", nil
	}
	p, err := src.ReleasePage(ctx, false, PageQuery{After: st.Leaves - 2, Limit: 1})
	if err != nil {
		return st, "", fmt.Errorf("export cache: read leaf %d: %w", st.Leaves-1, err)
	}
	if len(p.Releases) == 0 || p.Releases[0].Leaf != st.Leaves-1 {
		return st, fmt.Sprintf("rows of %d leaves, the ledger holds %d", st.Leaves, p.Total), nil
	}
	if h := leafHash(p.Releases[0].Signed); h != st.LastLeaf {
		return st, fmt.Sprintf("leaf %d of the ledger is not the one the rows came from", st.Leaves-1), nil
	}
	return st, "", nil
}

// checkFile says why export.csv does not hold st's committed bytes: it is
// missing or shorter (a crash lost what was written), or does not start
// with the header and end a row at the committed length. Bytes past it are
// an interrupted append, cut by the next one.
func (c *exportCache) checkFile(st exportState) string {
	f, err := os.Open(c.path(exportCSVFile))
	if err != nil {
		return fmt.Sprintf("%s: %v", exportCSVFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < st.Bytes {
		return fmt.Sprintf("%s is shorter than its %d committed bytes", exportCSVFile, st.Bytes)
	}
	hdr := exportHeader()
	head := make([]byte, len(hdr))
	last := make([]byte, 1)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, hdr) {
		return fmt.Sprintf("%s does not start with the header", exportCSVFile)
	}
	if _, err := f.ReadAt(last, st.Bytes-1); err != nil || last[0] != '\n' {
		return fmt.Sprintf("%s does not end a row at its committed length", exportCSVFile)
	}
	return ""
}

func leafHash(signed []byte) string {
	h := sha256.Sum256(signed)
	return hex.EncodeToString(h[:])
}

// reset starts the cache afresh: export.json goes first, so a crash
// before the new one is written leaves no state that could vouch for the
// new file; the new file, the header only, is renamed in whole.
func (c *exportCache) reset(consortium string) error {
	if err := os.Remove(c.path(exportStateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export cache: %w", err)
	}
	if err := syncDir(c.dir); err != nil {
		return err
	}
	hdr := exportHeader()
	if err := writeFileSynced(c.path(exportCSVFile), hdr); err != nil {
		return err
	}
	st := exportState{Format: exportFormat, Consortium: consortium, Bytes: int64(len(hdr))}
	if err := c.commit(st); err != nil {
		return err
	}
	return nil
}

// append writes the rows of the leaves lr has left after the committed
// ones, committing every exportCommitBytes and at the end. On an error
// (the ledger, the disk, the request ended) what was committed stays.
func (c *exportCache) append(ctx context.Context, lr *leafReader, hold func()) error {
	if lr.at >= lr.end {
		return nil
	}
	f, err := os.OpenFile(c.path(exportCSVFile), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	defer f.Close()
	// Cut an append a crash interrupted; readers read only committed bytes.
	if err := f.Truncate(c.state.Bytes); err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	if _, err := f.Seek(c.state.Bytes, io.SeekStart); err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	next := c.state
	var last []byte // the stored bytes of leaf next.Leaves-1
	commit := func() error {
		if next.Leaves == c.state.Leaves {
			return nil
		}
		next.LastLeaf = leafHash(last)
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("export cache: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("export cache: %w", err)
		}
		return c.commit(next)
	}
	err = exportRows(ctx, lr, func(rel RawRelease, rows []byte) error {
		if _, err := bw.Write(rows); err != nil {
			return fmt.Errorf("export cache: %w", err)
		}
		next.Leaves, next.Bytes, last = next.Leaves+1, next.Bytes+int64(len(rows)), rel.Signed
		hold()
		if next.Bytes-c.state.Bytes >= exportCommitBytes {
			return commit()
		}
		return nil
	})
	return errors.Join(err, commit())
}

// commit records st as export.json: written aside, fsynced, renamed.
func (c *exportCache) commit(st exportState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	if err := writeFileSynced(c.path(exportStateFile), append(data, '\n')); err != nil {
		return err
	}
	c.state = st
	return nil
}

// writeFileSynced replaces path with data whole: a file beside it is
// written and fsynced, renamed over path, and the directory fsynced.
func writeFileSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("export cache: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("export cache: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("export cache: sync %s: %w", dir, err)
	}
	return nil
}
