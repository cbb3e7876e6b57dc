package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
)

// Language is one language of the dashboard and the regional brief: its
// BCP 47 code (the name of its file under static/i18n) and its name in
// itself, as the language picker shows it.
type Language struct {
	Code string `json:"code"`
	Name string `json:"name"`
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

// Messages returns the messages of one language (static/i18n/CODE.json):
// message id → text with {name} placeholders. An unknown code is an error
// naming the known ones.
func Messages(code string) (map[string]string, error) {
	langs, err := Languages()
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(langs, func(l Language) bool { return l.Code == code }) {
		codes := make([]string, len(langs))
		for i, l := range langs {
			codes[i] = l.Code
		}
		return nil, fmt.Errorf("unknown language %q; available: %v", code, codes)
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
