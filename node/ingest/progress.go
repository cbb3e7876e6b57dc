package ingest

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// progress draws a one-line bar of bytes read over file size, redrawn in
// place with a carriage return at most five times a second.
type progress struct {
	w     io.Writer
	name  string
	total int64
	read  *countingReader
	last  time.Time
}

func newProgress(w io.Writer, name string, total int64, read *countingReader) *progress {
	return &progress{w: w, name: filepath.Base(name), total: total, read: read}
}

func (p *progress) tick() {
	if p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(p.read.n)/float64(p.total))
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %.1f/%.1f MB", p.name, strings.Repeat("#", n), strings.Repeat(" ", width-n),
		frac*100, float64(p.read.n)/1e6, float64(p.total)/1e6)
}

func (p *progress) done() {
	if p.w == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
