package web_test

import (
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"roundtable/node/web"
)

func readStatic(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(web.Static(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stringKeys are the message ids en.json defines.
func stringKeys(t *testing.T) []string {
	m, err := web.Messages(web.SourceLanguage)
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(m))
	if len(keys) < 20 {
		t.Fatalf("en.json defines only %d keys", len(keys))
	}
	return keys
}

// labelFamilies are message ids app.js builds from a catalog name or code
// (label("key", code)); TestTranslationsCoverCatalog checks they are
// complete. briefOnly are ids only the regional brief uses (node/brief's
// TestBriefUsesItsMessages checks those).
var (
	labelFamilies = []string{"key.", "dim.", "indicator.", "raft.", "role."}
	briefOnly     = regexp.MustCompile(`^(brief\.(doctitle|title|subtitle|asof|running|overview|headline|trend|changes|col|region|uncertain|undetermined|none|countries|corridors|forms|budget|methods|empty)|month\.|format\.)`)
)

var (
	tagRe      = regexp.MustCompile(`(?s)<[^>]*>`)
	blockRe    = regexp.MustCompile(`(?is)<(script|style)\b[^>]*>.*?</(script|style)>|<!--.*?-->`)
	attrTextRe = regexp.MustCompile(`\b(title|placeholder|aria-label|alt|value)="([^"]*[A-Za-z]{3,}[^"]*)"`)
	i18nAttrRe = regexp.MustCompile(`data-i18n(?:-attr)?="([^"]+)"`)
	jsStringRe = regexp.MustCompile("\"(?:[^\"\\\\\\n]|\\\\.)*\"|'(?:[^'\\\\\\n]|\\\\.)*'|`(?:[^`\\\\]|\\\\.)*`")
	twoWordsRe = regexp.MustCompile(`[A-Za-z]{2,}[ ]+[A-Za-z]{2,}`)
	keyLikeRe  = regexp.MustCompile(`^(app|nav|lang|brief|status|error|trends|controls|chart|countries|corridors|budget|ledger|operator|import|plan|publish|footer)\.[a-z0-9_.]+$`)
)

// TestHTMLHasNoLiteralText is the translation check for the page: every
// text node must be empty (filled from strings.js through data-i18n) unless
// its element is marked translate="no" (codes such as "csv"), and
// user-visible attributes must not carry words.
func TestHTMLHasNoLiteralText(t *testing.T) {
	html := blockRe.ReplaceAllString(readStatic(t, "index.html"), "")
	tags := tagRe.FindAllStringIndex(html, -1)
	for i, loc := range tags {
		tag := html[loc[0]:loc[1]]
		if m := attrTextRe.FindStringSubmatch(tag); m != nil && !(m[1] == "value" && !strings.Contains(m[2], " ")) {
			t.Errorf("literal %s=%q in %s: use data-i18n-attr", m[1], m[2], tag)
		}
		if i+1 == len(tags) {
			break
		}
		text := strings.TrimSpace(html[loc[1]:tags[i+1][0]])
		if text != "" && !strings.Contains(tag, `translate="no"`) && strings.ContainsAny(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("literal text %q after %s: move it to strings.js and use data-i18n", text, tag)
		}
	}
}

// TestJSHasNoLiteralText flags string literals in the scripts that look
// like prose (two words or more). strings.js is the one place for them; a
// line marked "i18n-ignore" is exempt (protocol constants).
func TestJSHasNoLiteralText(t *testing.T) {
	comment := regexp.MustCompile(`(^|\s)//.*$`)
	for _, name := range []string{"app.js", "charts.js"} {
		for n, line := range strings.Split(readStatic(t, name), "\n") {
			if strings.Contains(line, "i18n-ignore") {
				continue
			}
			code := comment.ReplaceAllString(line, "")
			for _, lit := range jsStringRe.FindAllString(code, -1) {
				if twoWordsRe.MatchString(lit) && lit != `"use strict"` {
					t.Errorf("%s:%d: literal %s looks user-visible; put it in strings.js", name, n+1, lit)
				}
			}
		}
	}
}

// TestStringKeysResolve checks that every message id used exists and every
// id defined is used, so strings.js stays the complete, exact catalogue.
func TestStringKeysResolve(t *testing.T) {
	keys := stringKeys(t)
	used := map[string]bool{}
	for _, m := range i18nAttrRe.FindAllStringSubmatch(readStatic(t, "index.html"), -1) {
		for _, part := range strings.Split(m[1], ",") {
			if _, id, ok := strings.Cut(part, ":"); ok {
				part = id
			}
			used[part] = true
		}
	}
	for _, name := range []string{"app.js", "charts.js"} {
		for _, lit := range jsStringRe.FindAllString(readStatic(t, name), -1) {
			if s := strings.Trim(lit, "\"'`"); keyLikeRe.MatchString(s) {
				used[s] = true
			}
		}
	}
	for k := range used {
		if !slices.Contains(keys, k) {
			t.Errorf("message id %q is used but not defined in en.json", k)
		}
	}
	for _, k := range keys {
		family := slices.ContainsFunc(labelFamilies, func(f string) bool { return strings.HasPrefix(k, f) })
		if !used[k] && !family && !briefOnly.MatchString(k) {
			t.Errorf("message id %q is defined in en.json but never used", k)
		}
	}
}

func TestHandler(t *testing.T) {
	ts := httptest.NewServer(web.Handler())
	t.Cleanup(ts.Close)
	tests := []struct {
		path, ctype, contains string
		status                int
	}{
		{"/", "text/html", `data-i18n="app.title"`, 200},
		{"/static/app.js", "javascript", "RT_STRINGS", 200},
		{"/static/strings.js", "javascript", "RT_I18N", 200},
		{"/static/i18n/sq.json", "json", `"app.title"`, 200},
		{"/static/charts.js", "javascript", "lineChart", 200},
		{"/static/style.css", "text/css", "@media", 200},
		{"/static/nope.js", "", "", 404},
	}
	for _, tc := range tests {
		resp, err := ts.Client().Get(ts.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
			t.Errorf("%s: content type %q, want %q", tc.path, ct, tc.ctype)
		}
		if !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s: body lacks %q", tc.path, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q does not confine the page to its origin", tc.path, csp)
		}
	}
}

// TestNoExternalResources keeps the page air-gap safe: no URL to another
// origin in any static file (the SVG namespace is an identifier, not a
// fetch).
func TestNoExternalResources(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(web.Static(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, m := range ext.FindAllString(readStatic(t, p), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
