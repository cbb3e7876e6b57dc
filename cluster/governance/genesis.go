// Package governance is the consortium's threshold-signed governance: the
// genesis that anchors it (its hash is the consortium id), the statements
// that change it (partners, replicas, nodes, catalog, policy, coordinator
// keys, certificate revocations), the k-of-n check of their coordinator
// signatures, the encrypted key file a coordinator signs with, and Replay,
// which an outside verifier uses to derive partner keys from the genesis
// and the signed history alone.
//
// It imports nothing from the project (the standard library and
// golang.org/x/crypto only), so node/verify can use it without linking raft
// or bbolt, and the ledger's state machine (package cluster) calls it for
// the envelope checks. Content rules (is this a valid partner code, a valid
// catalog) stay with the ledger. The design follows the threshold-signed
// roots of Sigstore's TUF (a root names keys and a threshold; the next root
// must be signed by a threshold of the previous one). See DESIGN.md.
package governance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Coordinator is one governance key named in the genesis or a rotation.
type Coordinator struct {
	Name      string            `json:"name"`
	PublicKey ed25519.PublicKey `json:"public_key"` // standard base64 in JSON
}

// Partner is a founding partner as the genesis names it.
type Partner struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

// Policy is the budget policy as the genesis and set_policy carry it (the
// JSON shape of privacy.Policy, which this package does not import).
type Policy struct {
	Accounting string `json:"accounting"`
	CapMicro   int64  `json:"cap_micro"`
}

// Genesis founds a consortium. Its canonical encoding's SHA-256 is the
// consortium id (ID), which every governance statement names.
type Genesis struct {
	Name         string        `json:"name"`
	Coordinators []Coordinator `json:"coordinators"`
	Threshold    int           `json:"threshold"`
	// MaxCapMicro is a ceiling on the budget policy's cap: a set_policy
	// above it is refused for the life of the consortium, whoever signs it.
	MaxCapMicro int64           `json:"max_cap_micro"`
	Partners    []Partner       `json:"partners"`
	Policy      Policy          `json:"policy"`
	Catalog     json.RawMessage `json:"catalog"`
}

// ParseGenesis reads a genesis file. Unknown fields are refused, so a typo
// is not silently dropped from the founding record, and the coordinator set
// and ceiling are checked (ValidateCoordinators). The ledger checks the
// rest (partner codes, the policy, the catalog) when it applies genesis.
func ParseGenesis(data []byte) (Genesis, error) {
	var g Genesis
	if err := decodeStrict(data, &g); err != nil {
		return Genesis{}, fmt.Errorf("genesis file: %w", err)
	}
	if err := g.Validate(); err != nil {
		return Genesis{}, fmt.Errorf("genesis file: %w", err)
	}
	return g, nil
}

// Validate checks what this package knows about: a name, a coordinator set
// with its threshold, at least one partner, and a policy within the
// ceiling.
func (g Genesis) Validate() error {
	if g.Name == "" {
		return errors.New(`"name" is empty`)
	}
	if len(g.Partners) == 0 {
		return errors.New(`"partners" is empty`)
	}
	if err := ValidateCoordinators(g.Coordinators, g.Threshold); err != nil {
		return err
	}
	if g.MaxCapMicro <= 0 {
		return fmt.Errorf(`"max_cap_micro" must be positive (a ceiling on the budget cap), got %d`, g.MaxCapMicro)
	}
	if g.Policy.CapMicro > g.MaxCapMicro {
		return fmt.Errorf("policy cap %d micro is above the genesis ceiling max_cap_micro %d", g.Policy.CapMicro, g.MaxCapMicro)
	}
	if len(g.Catalog) == 0 {
		return errors.New(`"catalog" is missing`)
	}
	return nil
}

// ValidateCoordinators checks a coordinator set and its threshold k: 1 ≤ k
// ≤ n, every key 32 bytes, names printable, and no key or name twice (a
// duplicated key would let one holder count twice).
func ValidateCoordinators(cs []Coordinator, k int) error {
	if len(cs) == 0 {
		return errors.New("no coordinators: governance needs at least one coordinator key")
	}
	if k < 1 || k > len(cs) {
		return fmt.Errorf("threshold %d is not between 1 and the number of coordinators (%d)", k, len(cs))
	}
	for i, c := range cs {
		if c.Name == "" || len(c.Name) > 100 || !utf8.ValidString(c.Name) || strings.ContainsFunc(c.Name, unicode.IsControl) {
			return fmt.Errorf("coordinator %d: name %q must be 1 to 100 bytes of printable UTF-8", i+1, c.Name)
		}
		if len(c.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("coordinator %s: public key has %d bytes, want %d (ed25519)", c.Name, len(c.PublicKey), ed25519.PublicKeySize)
		}
		for _, d := range cs[:i] {
			if d.Name == c.Name {
				return fmt.Errorf("coordinator %s is listed twice", c.Name)
			}
			if bytes.Equal(d.PublicKey, c.PublicKey) {
				return fmt.Errorf("coordinators %s and %s have the same key", d.Name, c.Name)
			}
		}
	}
	return nil
}

// Canonical returns the encoding the consortium id hashes: the JSON of the
// genesis in struct field order, without insignificant whitespace, with the
// catalog's own object keys sorted. It depends only on the file's content,
// not on its layout, so `verify --genesis FILE` and the ledger agree on the
// id whatever editor last touched the file.
func (g Genesis) Canonical() ([]byte, error) {
	cat, err := canonicalJSON(g.Catalog)
	if err != nil {
		return nil, fmt.Errorf("genesis catalog: %w", err)
	}
	g.Catalog = cat
	return marshal(g)
}

// ID is the consortium id: the hex SHA-256 of Canonical. Every governance
// statement, and later every signed release and checkpoint, names it, so a
// signature made for one consortium is worthless in another.
func (g Genesis) ID() (string, error) {
	b, err := g.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// IDOfFile parses a genesis file and returns its consortium id.
func IDOfFile(data []byte) (string, error) {
	g, err := ParseGenesis(data)
	if err != nil {
		return "", err
	}
	return g.ID()
}

// canonicalJSON re-encodes a JSON value with object keys sorted and no
// whitespace; numbers keep their exact text.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return marshal(v)
}

// marshal is json.Marshal without HTML escaping and without the trailing
// newline an Encoder adds.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
