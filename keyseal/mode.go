package keyseal

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// CheckPrivate refuses a secret file that users other than its owner may
// read or write, with the command that fixes it:
//
//	node.key is readable by others (mode 0644): run chmod 600 /srv/rs/tls/node.key
//
// A key that others can read has to be treated as leaked, so starting
// anyway would hide the problem. On Windows, where Unix modes mean nothing,
// it checks nothing.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	mode := fi.Mode().Perm()
	if mode&0o077 == 0 {
		return nil
	}
	how := "readable by others"
	if mode&0o044 == 0 {
		how = "writable by others"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return fmt.Errorf("%s is %s (mode %04o): run chmod 600 %s", filepath.Base(path), how, mode, abs)
}
