package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The guides whose command lines must match the real CLI. They are read
// from the repository, so a renamed flag or command fails this test until
// the docs say the same as `roundtable --help`.
var guideFiles = []string{
	"../../README.md",
	"../../docs/operator.md",
	"../../docs/coordinator.md",
	"../../docs/researcher.md",
	"../../docs/architecture.md",
}

// docCommand is one `roundtable …` line found in a fenced code block.
type docCommand struct {
	file  string
	line  int
	words []string // shell words up to the first pipe, redirect or comment
}

func (d docCommand) String() string {
	return fmt.Sprintf("%s:%d: %s", filepath.Base(d.file), d.line, strings.Join(d.words, " "))
}

// extractCommands returns every command line in the shell code blocks of
// a Markdown text that runs roundtable, with continuation lines joined and
// a leading "$ " prompt and environment assignments dropped.
func extractCommands(file, md string) ([]docCommand, error) {
	var out []docCommand
	inFence, shell := false, false
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if strings.HasPrefix(t, "```") {
			inFence = !inFence
			shell = inFence && shellFence[strings.TrimPrefix(t, "```")]
			continue
		}
		if !shell {
			continue
		}
		start := i + 1
		for strings.HasSuffix(t, `\`) && i+1 < len(lines) {
			i++
			t = strings.TrimSuffix(t, `\`) + " " + strings.TrimSpace(lines[i])
		}
		t = strings.TrimPrefix(t, "$ ")
		words, err := shellWords(t)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, start, err)
		}
		for len(words) > 0 && isAssignment(words[0]) {
			words = words[1:]
		}
		if len(words) == 0 || !isRoundtable(words[0]) {
			continue
		}
		out = append(out, docCommand{file: file, line: start, words: words})
	}
	if inFence {
		return nil, fmt.Errorf("%s: a code block is not closed", file)
	}
	return out, nil
}

// shellFence lists the info strings of fenced blocks that hold commands;
// blocks marked "text" hold program output and are not checked.
var shellFence = map[string]bool{"": true, "sh": true, "shell": true, "bash": true, "console": true}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignment(w string) bool { return assignment.MatchString(w) }

func isRoundtable(w string) bool {
	return w == "roundtable" || w == "bin/roundtable" || w == "./bin/roundtable"
}

// shellWords splits a command line as a POSIX shell would for our purpose:
// quotes group words, and an unquoted |, >, <, ;, & or a # starting a word
// ends the command (what follows is not roundtable's arguments).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case r == ' ' || r == '\t':
			flush()
		case strings.ContainsRune("|><;&", r), r == '#' && !inWord:
			flush()
			return words, nil
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	flush()
	return words, nil
}

// checkCommand resolves a documented command line against the cobra tree:
// the subcommand path must exist, every flag must be defined on that
// command, and every required flag must be given (so a reader can paste
// the line as it is). It returns the resolved command.
func checkCommand(root *cobra.Command, words []string) (*cobra.Command, error) {
	c := root
	i := 1
	for ; i < len(words) && !strings.HasPrefix(words[i], "-"); i++ {
		child := subcommand(c, words[i])
		if child == nil {
			if c.Runnable() && c != root {
				break // a positional argument, e.g. import's FILE
			}
			return nil, fmt.Errorf("%q is not a subcommand of %q", words[i], c.CommandPath())
		}
		c = child
	}
	c.InitDefaultHelpFlag()
	given := map[string]bool{}
	for ; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") || w == "-" {
			continue
		}
		name, hasValue := strings.TrimLeft(w, "-"), false
		if k := strings.IndexByte(name, '='); k >= 0 {
			name, hasValue = name[:k], true
		}
		f := lookupFlag(c, name, !strings.HasPrefix(w, "--"))
		if f == nil {
			return nil, fmt.Errorf("%s has no flag %s", c.CommandPath(), w)
		}
		given[f.Name] = true
		if !hasValue && f.Value.Type() != "bool" {
			if i+1 >= len(words) {
				return nil, fmt.Errorf("%s: flag %s needs a value", c.CommandPath(), w)
			}
			i++
		}
	}
	if given["help"] {
		return c, nil
	}
	if !c.Runnable() {
		return nil, fmt.Errorf("%q is a group: name one of its subcommands", c.CommandPath())
	}
	var missing []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if _, req := f.Annotations[cobra.BashCompOneRequiredFlag]; req && !given[f.Name] {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: required flag(s) %s missing", c.CommandPath(), strings.Join(missing, ", "))
	}
	return c, nil
}

func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

func lookupFlag(c *cobra.Command, name string, short bool) *pflag.Flag {
	if short {
		if f := c.Flags().ShorthandLookup(name); f != nil {
			return f
		}
		return c.InheritedFlags().ShorthandLookup(name)
	}
	if f := c.Flags().Lookup(name); f != nil {
		return f
	}
	return c.InheritedFlags().Lookup(name)
}

// TestDocsMatchCLI is the drift check: every roundtable command line in the
// README and the guides must parse against the real command tree, each
// guide must show commands (so a broken extractor cannot pass silently),
// and every command the CLI offers must be shown somewhere.
func TestDocsMatchCLI(t *testing.T) {
	minimum := map[string]int{
		"README.md": 1, "operator.md": 15, "coordinator.md": 10, "researcher.md": 6, "architecture.md": 0,
	}
	used := map[string]bool{}
	for _, file := range guideFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		cmds, err := extractCommands(file, string(b))
		if err != nil {
			t.Fatal(err)
		}
		if want := minimum[filepath.Base(file)]; len(cmds) < want {
			t.Errorf("%s: found %d roundtable command lines in code blocks, want at least %d", file, len(cmds), want)
		}
		for _, d := range cmds {
			c, err := checkCommand(newRoot(), d.words)
			if err != nil {
				t.Errorf("%s\n    %v", d, err)
				continue
			}
			used[c.CommandPath()] = true
		}
	}
	var undocumented []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.HasParent() && !used[c.CommandPath()] &&
			c.Name() != "help" && c.Name() != "completion" && !c.Hidden {
			undocumented = append(undocumented, c.CommandPath())
		}
		for _, s := range c.Commands() {
			if s.Name() != "completion" {
				walk(s)
			}
		}
	}
	walk(newRoot())
	sort.Strings(undocumented)
	if len(undocumented) > 0 {
		t.Errorf("commands no guide shows in a code block: %s", strings.Join(undocumented, ", "))
	}
}

// TestCheckCommand proves the drift check can fail: each bad line must be
// refused with a message naming the problem.
func TestCheckCommand(t *testing.T) {
	tests := []struct {
		line    string
		wantErr string // "" = must pass
	}{
		{`roundtable init --data-dir ./rs --partner RS`, ""},
		{`ROUNDTABLE_PASSPHRASE=x roundtable cases --data-dir ./rs`, ""},
		{`$ roundtable import --data-dir ./rs --format ctdc a.csv b.csv`, ""},
		{`roundtable serve --data-dir ./rs --public-reads=false`, ""},
		{`roundtable genesis --coordinator "c=$C1" --threshold 1 --cap-ceiling 3 --partner "RS=Serbia partner NGO=$RS_KEY" > genesis.json`, ""},
		{`roundtable ca issue --dir ./ca --replica r1 --out ./r1/tls`, ""},
		{`roundtable verify --offline b.json --export export.csv # no network`, ""},
		{`roundtable query --help`, ""},
		{`roundtable publsh --data-dir ./rs --period 2024-Q1`, `"publsh" is not a subcommand`},
		{`roundtable init --data-dir ./rs --partner RS --country RS`, "has no flag --country"},
		{`roundtable ca frobnicate --dir ./ca`, `"frobnicate" is not a subcommand of "roundtable ca"`},
		{`roundtable ca --dir ./ca`, "has no flag --dir"},
		{`roundtable token`, "is a group"},
		{`roundtable plan --data-dir ./rs`, "required flag(s) --period missing"},
		{`roundtable publish --data-dir ./rs --period`, "needs a value"},
		{`roundtable cases -x --data-dir ./rs`, "has no flag -x"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cmds, err := extractCommands("t.md", "```\n"+tt.line+"\n```\n")
			if err != nil {
				t.Fatal(err)
			}
			if len(cmds) != 1 {
				t.Fatalf("extracted %d commands, want 1", len(cmds))
			}
			_, err = checkCommand(newRoot(), cmds[0].words)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("passed, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestExtractCommands checks what counts as a command line: only inside
// fences, continuation lines joined, other programs ignored.
func TestExtractCommands(t *testing.T) {
	md := "roundtable outside a fence is prose\n" +
		"```text\n" +
		"roundtable node RS: output, not a command\n" +
		"```\n" +
		"```\n" +
		"curl -s http://127.0.0.1:8080/v1/health\n" +
		"roundtable serve --data-dir ./rs \\\n" +
		"    --http 127.0.0.1:8080 --raft 127.0.0.1:7000\n" +
		"$ roundtable cases --data-dir ./rs | less\n" +
		"```\n"
	cmds, err := extractCommands("t.md", md)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"roundtable serve --data-dir ./rs --http 127.0.0.1:8080 --raft 127.0.0.1:7000",
		"roundtable cases --data-dir ./rs",
	}
	if len(cmds) != len(want) {
		t.Fatalf("got %d commands %v, want %d", len(cmds), cmds, len(want))
	}
	for i, w := range want {
		if got := strings.Join(cmds[i].words, " "); got != w {
			t.Errorf("command %d = %q, want %q", i, got, w)
		}
		if cmds[i].line != []int{7, 9}[i] {
			t.Errorf("command %d at line %d, want %d", i, cmds[i].line, []int{7, 9}[i])
		}
	}
	if _, err := extractCommands("t.md", "```\nroundtable init\n"); err == nil {
		t.Error("an unclosed fence was accepted")
	}
}

// TestDocLinks checks that every relative link in the README and the guides
// points at a file that exists, so moving a doc breaks the build of docs,
// not the reader.
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range guideFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if k := strings.IndexByte(target, '#'); k >= 0 {
				target = target[:k]
			}
			p := filepath.Join(filepath.Dir(file), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: link %q: %v", file, m[1], err)
			}
		}
	}
}

// TestLayering keeps docs/architecture.md's claims about the package
// graph true, from `go list -deps` (transitive imports, so a new
// sub-package is checked the day it appears): data flows one way, cluster
// never imports node, aggregate and the governance leaf import nothing of
// the project, and the packages that must not hold storage or consensus
// link neither raft nor bbolt. A package with no rule fails the test.
func TestLayering(t *testing.T) {
	type rule struct {
		allowed []string // project packages it may depend on; "*" allows any but cmd
		noStore bool     // must not link hashicorp/raft or go.etcd.io/bbolt
	}
	api := []string{"roundtable/aggregate", "roundtable/privacy", "roundtable/cluster/governance", "roundtable/keyseal", "roundtable/node/web", "roundtable/listener", "roundtable/node/brief"}
	rules := map[string]rule{
		"roundtable/aggregate":             {noStore: true},
		"roundtable/privacy":               {allowed: []string{"roundtable/aggregate"}, noStore: true},
		"roundtable/keyseal":               {noStore: true},
		"roundtable/listener":              {noStore: true},
		"roundtable/listener/listenertest": {noStore: true},
		"roundtable/cluster/governance":    {allowed: []string{"roundtable/keyseal"}, noStore: true},
		"roundtable/cluster":               {allowed: []string{"roundtable/aggregate", "roundtable/privacy", "roundtable/cluster/governance", "roundtable/keyseal", "roundtable/listener"}},
		"roundtable/node/web":              {noStore: true},
		"roundtable/node/web/webtest":      {noStore: true},
		"roundtable/node/brief":            {allowed: []string{"roundtable/node/web"}, noStore: true},
		"roundtable/node/synth":            {allowed: []string{"roundtable/aggregate"}, noStore: true},
		"roundtable/node/summary":          {allowed: []string{"roundtable/aggregate"}, noStore: true},
		"roundtable/node/store":            {allowed: []string{"roundtable/aggregate", "roundtable/keyseal"}},
		"roundtable/node/ingest":           {allowed: []string{"roundtable/aggregate", "roundtable/node/store", "roundtable/keyseal"}},
		"roundtable/node/api":              {allowed: api, noStore: true},
		"roundtable/node/api/apitest":      {allowed: append(api, "roundtable/node/api"), noStore: true},
		"roundtable/node/client":           {allowed: append(api, "roundtable/node/api"), noStore: true},
		"roundtable/node/verify":           {allowed: []string{"*"}},
		"roundtable/node":                  {allowed: []string{"*"}},
		"roundtable/node/demo":             {allowed: []string{"*"}},
		"roundtable/node/systemtest":       {},
		"roundtable/cmd/roundtable":        {allowed: []string{"*"}},
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "roundtable/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, deps := f[0], f[1:]
		r, ok := rules[pkg]
		if !ok {
			t.Errorf("%s has no layering rule: add one to TestLayering (and docs/architecture.md)", pkg)
			continue
		}
		for _, d := range deps {
			switch {
			case r.noStore && (d == "github.com/hashicorp/raft" || d == "go.etcd.io/bbolt"):
				t.Errorf("%s links %s; it must stay free of storage and consensus", pkg, d)
			case d != "roundtable" && !strings.HasPrefix(d, "roundtable/"):
			case contains(r.allowed, d):
			case contains(r.allowed, "*") && !strings.HasPrefix(d, "roundtable/cmd/"):
			default:
				t.Errorf("%s depends on %s; allowed project dependencies: %v", pkg, d, r.allowed)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestArchitectureReferences checks that every Go file and Test function
// docs/architecture.md names as the place an invariant is enforced exists.
func TestArchitectureReferences(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	tests := map[string]bool{}
	testFunc := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(src), -1) {
			tests[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(Test\\w+)`").FindAllStringSubmatch(doc, -1)
	if len(names) < 10 {
		t.Fatalf("found %d test names in architecture.md, want the invariant table's", len(names))
	}
	for _, m := range names {
		if !tests[m[1]] {
			t.Errorf("architecture.md names %s, but no test function has that name", m[1])
		}
	}
	files := regexp.MustCompile("`([a-z/]+/[a-z_0-9]+\\.go)`").FindAllStringSubmatch(doc, -1)
	if len(files) < 10 {
		t.Fatalf("found %d file paths in architecture.md, want the invariant table's", len(files))
	}
	for _, m := range files {
		if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
			t.Errorf("architecture.md names %s: %v", m[1], err)
		}
	}
}
