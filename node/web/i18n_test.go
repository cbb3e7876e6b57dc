package web_test

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"roundtable/aggregate"
	"roundtable/node/web"
)

var englishWord = regexp.MustCompile(`[A-Za-z]{3,}`)

var update = flag.Bool("update", false, "regenerate static/i18n/sr-Cyrl.json from sr-Latn.json")

// TestTranslationsComplete fails on a missing, empty or extra message in
// any language: every id of en.json is in every file, non-empty, with the
// same {placeholders}, and no file has an id en.json lacks.
func TestTranslationsComplete(t *testing.T) {
	langs, err := web.Languages()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(langs); got != 6 {
		t.Errorf("languages.json lists %d languages, want en, sq, bs, mk, sr-Latn, sr-Cyrl", got)
	}
	en, err := web.Messages(web.SourceLanguage)
	if err != nil {
		t.Fatal(err)
	}
	ph := regexp.MustCompile(`\{\w+\}`)
	for _, l := range langs {
		m, err := web.Messages(l.Code)
		if err != nil {
			t.Errorf("%s: %v", l.Code, err)
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(en)) {
			s, ok := m[id]
			switch {
			case !ok:
				t.Errorf("%s.json: missing %q (en: %q)", l.Code, id, en[id])
			case strings.TrimSpace(s) == "":
				t.Errorf("%s.json: %q is empty", l.Code, id)
			default:
				want, got := ph.FindAllString(en[id], -1), ph.FindAllString(s, -1)
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(want, got) {
					t.Errorf("%s.json: %q has placeholders %v, en has %v", l.Code, id, got, want)
				}
			}
		}
		// English left in a translation: a message the same as English
		// while the same English is translated elsewhere in the file, or
		// three English words or more unchanged.
		if l.Code != web.SourceLanguage {
			for _, id := range slices.Sorted(maps.Keys(en)) {
				if m[id] != en[id] {
					continue
				}
				for other, e := range en {
					if e == en[id] && m[other] != e {
						t.Errorf("%s.json: %q is English (%q) but %q, the same English, is translated %q", l.Code, id, e, other, m[other])
						break
					}
				}
				if len(englishWord.FindAllString(ph.ReplaceAllString(en[id], ""), -1)) >= 3 {
					t.Errorf("%s.json: %q is still English: %q", l.Code, id, en[id])
				}
			}
		}
		for id := range m {
			if _, ok := en[id]; !ok {
				t.Errorf("%s.json: %q is not in en.json (remove it, or add it to en.json first)", l.Code, id)
			}
		}
	}
}

// TestTranslationsCoverCatalog checks that every indicator, dimension and
// key of catalogs v1 and v2 and every partner has a translated label, so
// no code such as "forced_labour" reaches a reader.
func TestTranslationsCoverCatalog(t *testing.T) {
	en, err := web.Messages(web.SourceLanguage)
	if err != nil {
		t.Fatal(err)
	}
	for _, cat := range []*aggregate.Catalog{aggregate.CatalogV1(), aggregate.CatalogV2()} {
		for _, ind := range cat.Indicators {
			want := []string{"indicator." + ind.Name}
			for _, d := range ind.Dimensions {
				want = append(want, "dim."+d.Name)
				for _, k := range d.Keys {
					want = append(want, "key."+k)
				}
			}
			for _, id := range want {
				if _, ok := en[id]; !ok {
					t.Errorf("catalog v%d: en.json has no %q", cat.Version, id)
				}
			}
		}
	}
}

// TestSerbianCyrillicIsTransliterated: sr-Cyrl.json is sr-Latn.json
// transliterated letter by letter (the two scripts of Serbian map one to
// one), with testdata/sr-Cyrl-overrides.json for the few words where that
// is wrong. A reviewer corrects sr-Latn.json and runs
// go test ./node/web -run TestSerbianCyrillicIsTransliterated -update.
func TestSerbianCyrillicIsTransliterated(t *testing.T) {
	latn, err := web.Messages("sr-Latn")
	if err != nil {
		t.Fatal(err)
	}
	var over map[string]string
	b, err := os.ReadFile("testdata/sr-Cyrl-overrides.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &over); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for id, s := range latn {
		want[id] = toSerbianCyrillic(s)
	}
	for id, s := range over {
		if _, ok := latn[id]; !ok {
			t.Errorf("sr-Cyrl-overrides.json: %q is not a message", id)
		}
		want[id] = s
	}
	if *update {
		writeMessages(t, "static/i18n/sr-Cyrl.json", want)
		return
	}
	got, err := web.Messages("sr-Cyrl")
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if got[id] != want[id] {
			t.Errorf("sr-Cyrl.json %q = %q, want %q (run this test with -update after changing sr-Latn.json)", id, got[id], want[id])
		}
	}
}

// writeMessages writes m in en.json's order, one message a line.
func writeMessages(t *testing.T, path string, m map[string]string) {
	en, err := os.ReadFile("static/i18n/en.json")
	if err != nil {
		t.Fatal(err)
	}
	ids := regexp.MustCompile(`(?m)^\s*"([^"]+)":`).FindAllSubmatch(en, -1)
	var b strings.Builder
	b.WriteString("{\n")
	for i, id := range ids {
		k, _ := json.Marshal(string(id[1]))
		v, _ := json.Marshal(m[string(id[1])])
		b.WriteString("  " + string(k) + ": " + string(v))
		if i < len(ids)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	if err := os.WriteFile(path, []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(b.String())), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	serbianDigraphs = strings.NewReplacer("LJ", "Љ", "Lj", "Љ", "lj", "љ", "NJ", "Њ", "Nj", "Њ", "nj", "њ", "DŽ", "Џ", "Dž", "Џ", "dž", "џ")
	serbianLetters  = map[rune]rune{
		'a': 'а', 'b': 'б', 'c': 'ц', 'č': 'ч', 'ć': 'ћ', 'd': 'д', 'đ': 'ђ', 'e': 'е', 'f': 'ф', 'g': 'г', 'h': 'х', 'i': 'и',
		'j': 'ј', 'k': 'к', 'l': 'л', 'm': 'м', 'n': 'н', 'o': 'о', 'p': 'п', 'r': 'р', 's': 'с', 'š': 'ш', 't': 'т', 'u': 'у',
		'v': 'в', 'z': 'з', 'ž': 'ж',
	}
	// A token is a run of letters, digits, _ and - ; a placeholder is kept.
	tokenRe = regexp.MustCompile(`\{\w+\}|[\p{L}\p{N}_+-]+`)
)

// toSerbianCyrillic transliterates Serbian Latin text to Cyrillic, leaving
// alone what is not Serbian words: {placeholders}, codes and acronyms
// (CSV, SHA-256, Ed25519, rt_, 2025-Q1), CamelCase names (WebCrypto) and
// the product's name.
func toSerbianCyrillic(s string) string {
	return tokenRe.ReplaceAllStringFunc(s, func(w string) string {
		if keepLatin(w) {
			return w
		}
		w = serbianDigraphs.Replace(w)
		return strings.Map(func(r rune) rune {
			lower := unicode.ToLower(r)
			c, ok := serbianLetters[lower]
			if !ok {
				return r
			}
			if r != lower {
				return unicode.ToUpper(c)
			}
			return c
		}, w)
	})
}

func keepLatin(w string) bool {
	if strings.HasPrefix(w, "{") || w == "Roundtable" || strings.ContainsAny(w, "0123456789_") {
		return true
	}
	upper := 0
	for i, r := range w {
		if unicode.IsUpper(r) {
			upper++
			if i > 0 && strings.ToUpper(w) != w {
				return true // CamelCase: a name
			}
		}
	}
	return upper >= 2 && strings.ToUpper(w) == w // an acronym
}
