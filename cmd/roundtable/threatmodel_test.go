package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestThreatModelNamesRealTests: every "cannot" in docs/threat-model.md
// names the test that proves it. A renamed or deleted test would leave the
// document pointing at nothing; this fails instead. It also refuses a
// "cannot" bullet that names no test at all.
func TestThreatModelNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("../../docs/threat-model.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	re := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(named) < 20 {
		t.Fatalf("docs/threat-model.md names %d tests; every cannot should name one", len(named))
	}
	for _, m := range named {
		if !defined[m[1]] {
			t.Errorf("docs/threat-model.md names %s, which no _test.go file defines", m[1])
		}
	}
	// Each "Cannot" section's bullets name a test.
	for _, sec := range strings.Split(string(doc), "**Cannot:**")[1:] {
		body := sec
		for _, end := range []string{"**Can:**", "\n## "} {
			if i := strings.Index(body, end); i >= 0 {
				body = body[:i]
			}
		}
		for _, item := range strings.Split(body, "\n- ")[1:] {
			if !strings.Contains(item, "`Test") {
				t.Errorf("a cannot names no test: %.80q", strings.TrimSpace(item))
			}
		}
	}
}
