package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
)

// Language is one language of the dashboard and the regional brief: its
// BCP 47 code (the name of its file under static/i18n), its name in
// itself as the language picker shows it, and how it writes numbers, as
// CLDR has it: the decimal and digit-group separators and the fewest
// digits a whole number needs before it is grouped (4: "1,234"; 5:
// "1234" but "12 345"). The brief formats numbers with these; the
// dashboard uses the browser's Intl and falls back to them when the
// browser has no data for the language (Chromium lacks sq and mk).
type Language struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Decimal  string `json:"decimal"`
	Group    string `json:"group"`
	MinGroup int    `json:"min_group"`
}

// SourceLanguage is the language every other translates from: its file
// defines the complete set of message ids.
const SourceLanguage = "en"

// Languages lists the languages in static/i18n/languages.json, in the
// order the picker shows them.
func Languages() ([]Language, error) {
	b, err := fs.ReadFile(files, "static/i18n/languages.json")
	if err != nil {
		return nil, err
	}
	var out []Language
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("i18n/languages.json: %w", err)
	}
	return out, nil
}

// LanguageOf returns the language with the given code.
func LanguageOf(code string) (Language, error) {
	langs, err := Languages()
	if err != nil {
		return Language{}, err
	}
	codes := make([]string, len(langs))
	for i, l := range langs {
		if l.Code == code {
			return l, nil
		}
		codes[i] = l.Code
	}
	return Language{}, fmt.Errorf("unknown language %q; available: %v", code, codes)
}

// Messages returns the messages of one language (static/i18n/CODE.json):
// message id → text with {name} placeholders. An unknown code is an error
// naming the known ones.
func Messages(code string) (map[string]string, error) {
	if _, err := LanguageOf(code); err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(files, "static/i18n/"+code+".json")
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("i18n/%s.json: %w", code, err)
	}
	return m, nil
}
