package verify

import (
	"strings"
	"testing"
)

func TestLoadKeys(t *testing.T) {
	cases := []struct {
		file string
		want string // "" means it loads
	}{
		{"testdata/keys-ok.json", ""},
		{"testdata/keys-not-base64.json", "key of partner RS: not base64"},
		{"testdata/keys-short.json", "key of partner RS has 3 bytes, want 32"},
		{"testdata/keys-empty.json", "no keys"},
		{"testdata/keys-not-object.json", "want JSON {\"RS\""},
		{"testdata/missing.json", "keys file"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			k, err := LoadKeys(tc.file)
			if tc.want == "" {
				if err != nil || len(k["RS"]) != 32 {
					t.Fatalf("LoadKeys: %v, %v", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) && !strings.Contains(tc.file, "missing") {
				t.Errorf("error %v, want it to name %s and say %q", err, tc.file, tc.want)
			}
		})
	}
}
