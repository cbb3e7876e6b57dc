package ingest

import (
	"bufio"
	"io"
)

// stripBOM drops a UTF-8 byte order mark, which Excel writes at the start
// of "CSV UTF-8" files.
func stripBOM(r io.Reader) io.Reader {
	br := bufio.NewReaderSize(r, 256*1024)
	if b, err := br.Peek(3); err == nil && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		br.Discard(3)
	}
	return br
}
