package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Language is one entry of /static/i18n/languages.json.
type Language struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Decimal  string `json:"decimal"`
	Group    string `json:"group"`
	MinGroup int    `json:"min_group"`
}

// expectNumbers is how l writes 12345.5 (one decimal) and 1234.
func (l Language) expectNumbers() []string {
	group := func(s string) string {
		if len(s) < l.MinGroup {
			return s
		}
		return s[:len(s)-3] + l.Group + s[len(s)-3:]
	}
	return []string{group("12345") + l.Decimal + "5", group("1234")}
}

// CheckLanguages renders the dashboard at baseURL in every language the
// server lists and fails if any visible text (text nodes, the options of
// selects, SVG labels; not elements marked translate="no") is
//   - an English message where that language's message differs,
//   - an English message with its {placeholders} filled (the English
//     template matches and none of the language's does),
//   - a message id ("brief.title") or an unfilled {placeholder},
//   - a raw catalog code ("forced_labour") that has a translated label;
//
// or if the browser lacks number formats for the language. It also checks
// that the choice is remembered (a visit without ?lang= keeps it, the
// picker switches it) and that "Download the regional brief" fetches a
// brief in the page's language. token may be empty on a public node.
func CheckLanguages(t *testing.T, baseURL, token string) {
	t.Helper()
	var langs []Language
	fetchJSON(t, baseURL+"/static/i18n/languages.json", &langs)
	msgs := map[string]map[string]string{}
	for _, l := range langs {
		var m map[string]string
		fetchJSON(t, baseURL+"/static/i18n/"+l.Code+".json", &m)
		msgs[l.Code] = m
	}
	en := msgs["en"]
	if len(langs) < 2 || en == nil {
		t.Fatalf("the server lists languages %v; want English and others", langs)
	}
	b := NewBrowser(t)
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(baseURL+"/static/strings.js")); err != nil {
		t.Fatal(err)
	}
	Eval[bool](t, b, fmt.Sprintf("sessionStorage.setItem('roundtable.token', %q), true", token))
	for _, l := range langs {
		t.Run(l.Code, func(t *testing.T) {
			open(t, b, baseURL+"/?lang="+l.Code)
			if got := Eval[string](t, b, `document.documentElement.lang`); got != l.Code {
				t.Fatalf("page language %q, want %q", got, l.Code)
			}
			nums := Eval[[]string](t, b, `[RT_I18N.num(12345.5, 1), RT_I18N.num(1234)]`)
			if want := l.expectNumbers(); strings.Join(nums, " ") != strings.Join(want, " ") {
				t.Errorf("numbers read %q, want %q (languages.json's format for %s)", nums, want, l.Code)
			}
			texts := Eval[[]string](t, b, visibleTextJS)
			if len(texts) < 50 {
				t.Fatalf("only %d visible texts; the page did not render", len(texts))
			}
			for _, problem := range untranslated(texts, en, msgs[l.Code]) {
				t.Error(problem)
			}
			checkBriefDownload(t, b)
			if p := b.Problems(); len(p) > 0 {
				t.Errorf("console errors or exceptions:\n%s", strings.Join(p, "\n"))
			}
		})
	}
	t.Run("remembered", func(t *testing.T) {
		last := langs[len(langs)-1].Code
		open(t, b, baseURL+"/")
		if got := Eval[string](t, b, `document.documentElement.lang`); got != last {
			t.Errorf("a visit without ?lang= shows %q, want the last choice %q", got, last)
		}
		// Choose another language in the picker: the page reloads in it.
		Eval[bool](t, b, fmt.Sprintf(`(() => { const s = document.getElementById("lang"); s.value = %q; setTimeout(() => s.dispatchEvent(new Event("change")), 0); return true; })()`, langs[1].Code))
		want := fmt.Sprintf(`document.documentElement.lang === %q && document.body.dataset.ready === "true"`, langs[1].Code)
		deadline := time.Now().Add(30 * time.Second)
		for {
			// The page navigates under the poll; retry until it settles.
			ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](want))
			if err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page did not reload in %s (%v)", langs[1].Code, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := Eval[string](t, b, `localStorage.getItem("roundtable.lang")`); got != langs[1].Code {
			t.Errorf("localStorage holds %q after choosing %q", got, langs[1].Code)
		}
	})
}

func open(t *testing.T, b *Browser, url string) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.EmulateViewport(1366, 900), chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	WaitFor(t, b, "dashboard ready", `document.body.dataset.ready === "true"`, 30*time.Second)
	WaitFor(t, b, "signature checks", `[...document.querySelectorAll('[data-testid=sig]')].every(e => e.className === "ok" || e.className === "bad")`, 30*time.Second)
}

func checkBriefDownload(t *testing.T, b *Browser) {
	t.Helper()
	Eval[bool](t, b, `(() => { document.getElementById("brief-download").click(); return true; })()`)
	WaitFor(t, b, "the brief downloaded", `Number(document.getElementById("brief-status").dataset.bytes || 0) > 10000`, 60*time.Second)
	Eval[bool](t, b, `(delete document.getElementById("brief-status").dataset.bytes, true)`)
}

// visibleTextJS lists the text a user can see: text nodes of rendered
// elements and the options of rendered selects, outside translate="no".
const visibleTextJS = `(() => {
	const out = [];
	const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = w.nextNode(); n; n = w.nextNode()) {
		const el = n.parentElement;
		const text = n.textContent.trim();
		if (!text || el.closest('[translate="no"], script, style, title')) continue;
		const opt = el.closest("option");
		const host = opt ? opt.closest("select") : el;
		if (!host || !host.getClientRects().length) continue;
		out.push(text);
	}
	return out;
})()`

var (
	placeholderRe = regexp.MustCompile(`\{\w+\}`)
	messageIDRe   = regexp.MustCompile(`^(app|nav|lang|brief|status|error|trends|controls|chart|countries|corridors|budget|ledger|operator|import|plan|publish|footer|key|dim|indicator|raft|role|month|format)\.[A-Za-z0-9_.+-]+$`)
)

// untranslated returns what is wrong with texts shown in a language
// whose messages are lang (en: English).
func untranslated(texts []string, en, lang map[string]string) []string {
	langValues := map[string]bool{}
	var langTemplates []*regexp.Regexp
	for _, s := range lang {
		langValues[s] = true
		if distinctive(s) {
			langTemplates = append(langTemplates, template(s))
		}
	}
	var problems []string
	seen := map[string]bool{}
	for _, whole := range texts {
		for _, s := range append([]string{whole}, strings.Split(whole, " · ")...) {
			s = strings.TrimSpace(s)
			if s == "" || seen[s] {
				continue
			}
			seen[s] = true
			if messageIDRe.MatchString(s) {
				problems = append(problems, fmt.Sprintf("a message id is shown raw: %q", s))
			}
			if placeholderRe.MatchString(s) {
				problems = append(problems, fmt.Sprintf("an unfilled placeholder is shown: %q", s))
			}
			if langValues[s] {
				continue
			}
			for id, e := range en {
				switch {
				case e == lang[id]:
				case e == s:
					problems = append(problems, fmt.Sprintf("%q is English (%s); this language says %q", s, id, lang[id]))
				case strings.HasPrefix(id, "key.") && s == strings.TrimPrefix(id, "key."):
					problems = append(problems, fmt.Sprintf("the code %q is shown instead of its label %q", s, lang[id]))
				case distinctive(e) && template(e).MatchString(s) && !matchesAny(langTemplates, s):
					problems = append(problems, fmt.Sprintf("%q is the English message %s", s, id))
				}
			}
		}
	}
	return problems
}

// distinctive reports whether a message with placeholders has enough
// words of its own to be recognised when filled ("{day} {month} {year}"
// would match any three words).
func distinctive(msg string) bool {
	return placeholderRe.MatchString(msg) && len(strings.Join(strings.Fields(placeholderRe.ReplaceAllString(msg, "")), "")) >= 10
}

// template turns a message into a regexp matching it with any filling.
func template(msg string) *regexp.Regexp {
	parts := placeholderRe.Split(msg, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.+?`) + `$`)
}

func matchesAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func fetchJSON(t *testing.T, url string, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
