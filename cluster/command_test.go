package cluster

import (
	"reflect"
	"strings"
	"testing"

	"roundtable/aggregate"
	"roundtable/privacy"
)

func TestCommandRoundTrip(t *testing.T) {
	cat := fsmCatalogJSON(t)
	sr := fsmReservation(t, "abc", "r1", "RS", "RS", "2024-Q1", 1000)
	tests := []Command{
		fsmGenesis(t, "AL", "RS"),
		govAddPartner(fsmPartner("XK")),
		govRemovePartner("XK"),
		govAddReplica("replica-1"),
		govRemoveReplica("replica-1"),
		govSetCatalog(cat),
		govSetPolicy(privacy.Policy{Accounting: privacy.ZCDP, CapMicro: 5}),
		NewReserve(sr),
		NewPublish(fsmRelease(t, sr.Reservation, "RS", 1)),
		NewCosign("RS", []byte("a note\n\n— sig\n")),
	}
	for _, c := range tests {
		t.Run(c.Type, func(t *testing.T) {
			data, err := c.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := DecodeCommand(data)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			// Raw JSON payloads are compacted on the way; compare them
			// re-encoded.
			again, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(data) {
				t.Errorf("re-encoded command differs:\n%s\n%s", again, data)
			}
			if c.Statement == nil && c.Genesis == nil && !reflect.DeepEqual(got, c) {
				t.Errorf("decoded %+v, want %+v", got, c)
			}
		})
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"unknown type", `{"v":1,"type":"drop","cosign":{}}`, `unknown command type "drop"`},
		{"no version", `{"type":"cosign","cosign":{}}`, "command version 0 is not supported"},
		{"newer version", `{"v":2,"type":"cosign","cosign":{}}`, "command version 2 is not supported"},
		{"missing payload", `{"v":1,"type":"publish"}`, "publish command has no release"},
		{"extra payload", `{"v":1,"type":"cosign","cosign":{},"release":{}}`, "cosign command carries an unexpected release"},
		{"unknown field", `{"v":1,"type":"cosign","cosign":{},"admin":true}`, `unknown field "admin"`},
		{"trailing data", `{"v":1,"type":"cosign","cosign":{}}{}`, "trailing data"},
		{"not json", `add_replica x`, "decode command"},
		// The unsigned governance commands of earlier versions.
		{"unsigned add_partner", `{"v":1,"type":"add_partner","partner":{"id":"XK","name":"x","public_key":"AAAA"}}`, `unsigned governance command "add_partner" refused`},
		{"unsigned remove_partner", `{"v":1,"type":"remove_partner","id":"RS"}`, `unsigned governance command "remove_partner" refused`},
		{"unsigned set_policy", `{"v":1,"type":"set_policy","policy":{"accounting":"pure","cap_micro":1000000000}}`, `unsigned governance command "set_policy" refused`},
		{"empty", ``, "decode command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeCommand(%s): %v, want error containing %q", tc.data, err, tc.want)
			}
		})
	}
}

func TestEncodeRefusesMalformedCommand(t *testing.T) {
	if _, err := (Command{Version: CommandVersion, Type: CmdPublish}).Encode(); err == nil {
		t.Error("Encode of a publish without a release: want error")
	}
	if _, err := (Command{Version: CommandVersion, Type: "nope", Cosign: &Cosign{}}).Encode(); err == nil {
		t.Error("Encode of an unknown type: want error")
	}
}

// TestParseCatalogAcceptsV1 keeps the ledger's catalog checks in step with
// the catalog the aggregate package ships.
func TestParseCatalogAcceptsV1(t *testing.T) {
	v1 := aggregate.CatalogV1()
	raw, err := v1.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	c, canon, err := parseCatalog(raw)
	if err != nil {
		t.Fatalf("parseCatalog(CatalogV1): %v", err)
	}
	if c.Hash() != v1.Hash() || string(canon) != string(raw) {
		t.Errorf("parsed catalog hash %s, want %s", c.Hash(), v1.Hash())
	}
}

func TestParseCatalogRefuses(t *testing.T) {
	const sex = `{"name":"sex","keys":["female","male","transgender_nonconforming","unknown"]}`
	tests := []struct{ name, json, want string }{
		{"no version", `{"indicators":[{"name":"a","kind":"count","k":1,"dimensions":[` + sex + `]}]}`, "version must be ≥ 1"},
		{"no indicators", `{"version":1,"indicators":[]}`, "no indicators"},
		{"duplicate indicator", `{"version":1,"indicators":[{"name":"a","kind":"count","k":1,"dimensions":[` + sex + `]},{"name":"a","kind":"count","k":1,"dimensions":[` + sex + `]}]}`, `"a"`},
		{"dimension nobody tabulates", `{"version":1,"indicators":[{"name":"a","kind":"count","k":1,"dimensions":[{"name":"d","keys":["x"]}]}]}`, "is not one the tabulator computes"},
		{"missing key", `{"version":1,"indicators":[{"name":"a","kind":"count","k":1,"dimensions":[{"name":"sex","keys":["female","male"]}]}]}`, `key "transgender_nonconforming" is missing`},
		{"margin of unknown dimension", `{"version":1,"indicators":[{"name":"a","kind":"count","k":1,"dimensions":[` + sex + `],"margins":[["e"]]}]}`, `"e"`},
		{"quantile of an unknown value", `{"version":1,"indicators":[{"name":"age","kind":"quantiles","k":1,"lower":0,"upper":90,"ranks":[0.5]}]}`, `value "" is not one of age`},
		{"unknown field", `{"version":1,"indicators":[],"owner":"x"}`, `unknown field "owner"`},
		{"not an object", `[1,2]`, "cannot unmarshal array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseCatalog([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseCatalog: %v, want %q", err, tc.want)
			}
		})
	}
}
