package ingest

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
)

// rejectedWriter writes FILE.rejected.csv beside an input: the original
// columns, then line and reason. The file is created on the first reject.
type rejectedWriter struct {
	path    string
	columns []string
	f       *os.File
	w       *csv.Writer
	rec     []string
}

func (r *rejectedWriter) write(raw []string, line int, reason string) error {
	if r.f == nil {
		f, err := os.OpenFile(r.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("rejected rows: %w", err)
		}
		r.f, r.w = f, csv.NewWriter(f)
		if err := r.w.Write(append(append([]string(nil), r.columns...), "line", "reason")); err != nil {
			return fmt.Errorf("rejected rows: %w", err)
		}
	}
	// Pad or cut so every row lines up with the header even when the row
	// was rejected for having the wrong number of fields.
	r.rec = r.rec[:0]
	for i := range r.columns {
		v := ""
		if i < len(raw) {
			v = raw[i]
		}
		r.rec = append(r.rec, v)
	}
	r.rec = append(r.rec, strconv.Itoa(line), reason)
	if err := r.w.Write(r.rec); err != nil {
		return fmt.Errorf("rejected rows: %w", err)
	}
	return nil
}

func (r *rejectedWriter) close() error {
	if r.f == nil {
		return nil
	}
	r.w.Flush()
	err := r.w.Error()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rejected rows %s: %w", r.path, err)
	}
	return nil
}
