package api

import "testing"

// TestBearer: only an "Authorization: Bearer <token>" header yields a
// token; another scheme carrying a valid-looking token, and a header with
// the scheme and nothing after it, do not. (Killed mutants: the length
// check written <, and || written &&, in bearer; docs/testing.md.)
func TestBearer(t *testing.T) {
	tests := []struct {
		h    string
		tok  string
		isOK bool
	}{
		{"Bearer rt_abc", "rt_abc", true},
		{"bearer rt_abc ", "rt_abc", true},
		{"Basic rt_abcdef", "", false},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		tok, ok := bearer(tt.h)
		if tok != tt.tok || ok != tt.isOK {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tt.h, tok, ok, tt.tok, tt.isOK)
		}
	}
}
