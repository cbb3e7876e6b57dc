package governance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Action types. The set is closed: Action.Check refuses any other.
const (
	AddPartner    = "add_partner"
	RemovePartner = "remove_partner"
	AddReplica    = "add_replica"
	RemoveReplica = "remove_replica"
	RemoveNode    = "remove_node" // a partner or a replica, whichever the id is
	SetCatalog    = "set_catalog"
	SetPolicy     = "set_policy"
	Rotate        = "rotate_coordinators"
	Revoke        = "revoke"
)

// Action is what a statement does: a type and the one payload that type
// uses. add_partner and add_replica may name the node's raft address; the
// ledger then admits a join of that id only from that address.
type Action struct {
	Type    string          `json:"type"`
	Partner *Partner        `json:"partner,omitempty"` // add_partner
	ID      string          `json:"id,omitempty"`      // remove_partner, add_replica, remove_replica, remove_node
	Address string          `json:"address,omitempty"` // add_partner, add_replica (optional)
	Catalog json.RawMessage `json:"catalog,omitempty"` // set_catalog
	Policy  *Policy         `json:"policy,omitempty"`  // set_policy
	Rotate  *Rotation       `json:"rotate,omitempty"`  // rotate_coordinators
	Revoke  *Revocation     `json:"revoke,omitempty"`  // revoke
}

// Rotation replaces the coordinator set and threshold. It must be signed
// by the threshold of the set it replaces.
type Rotation struct {
	Coordinators []Coordinator `json:"coordinators"`
	Threshold    int           `json:"threshold"`
}

// Revocation puts a certificate (by serial number, decimal) and/or a node
// id on the ledger's deny-list.
type Revocation struct {
	Serial string `json:"serial,omitempty"`
	NodeID string `json:"node_id,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Check verifies the action's shape: a known type carrying exactly the
// payload it needs. Content rules (a valid partner code, a valid catalog)
// are the ledger's.
func (a Action) Check() error {
	want, ok := actionPayload(a.Type)
	if !ok {
		return fmt.Errorf("unknown governance action %q", a.Type)
	}
	present := []struct {
		name string
		ok   bool
	}{
		{"partner", a.Partner != nil},
		{"id", a.ID != ""},
		{"catalog", len(a.Catalog) > 0},
		{"policy", a.Policy != nil},
		{"rotate", a.Rotate != nil},
		{"revoke", a.Revoke != nil},
	}
	for _, p := range present {
		if p.name == want && !p.ok {
			return fmt.Errorf("%s action has no %s", a.Type, want)
		}
		if p.name != want && p.ok {
			return fmt.Errorf("%s action carries an unexpected %s", a.Type, p.name)
		}
	}
	if a.Address != "" && a.Type != AddPartner && a.Type != AddReplica {
		return fmt.Errorf("%s action carries an unexpected address", a.Type)
	}
	switch a.Type {
	case Rotate:
		if err := ValidateCoordinators(a.Rotate.Coordinators, a.Rotate.Threshold); err != nil {
			return fmt.Errorf("rotation: %w", err)
		}
	case Revoke:
		if a.Revoke.Serial == "" && a.Revoke.NodeID == "" {
			return errors.New("revoke action names neither a certificate serial nor a node id")
		}
	}
	return nil
}

func actionPayload(typ string) (string, bool) {
	switch typ {
	case AddPartner:
		return "partner", true
	case RemovePartner, AddReplica, RemoveReplica, RemoveNode:
		return "id", true
	case SetCatalog:
		return "catalog", true
	case SetPolicy:
		return "policy", true
	case Rotate:
		return "rotate", true
	case Revoke:
		return "revoke", true
	}
	return "", false
}

// Statement is one governance decision: an action, bound to one consortium
// and one position (Seq, from 1, no gaps) in its governance history, so a
// signed statement can be neither replayed, reordered nor moved to another
// consortium.
type Statement struct {
	Consortium string `json:"consortium"` // the genesis id (hex SHA-256)
	Seq        uint64 `json:"seq"`
	Action     Action `json:"action"`
}

// SigningPrefix separates governance signatures from every other use of an
// ed25519 key: a coordinator key that also signed something else cannot be
// tricked into signing a statement.
const SigningPrefix = "roundtable governance statement v1\x00"

// SigningBytes is what each coordinator signs: SigningPrefix, the
// consortium id, a zero byte, Seq as 8 bytes big-endian, then the action's
// canonical JSON (struct field order, no whitespace, catalog compacted).
func (s Statement) SigningBytes() ([]byte, error) {
	if err := s.Action.Check(); err != nil {
		return nil, err
	}
	act, err := marshal(s.Action)
	if err != nil {
		return nil, fmt.Errorf("encode action: %w", err)
	}
	b := make([]byte, 0, len(SigningPrefix)+len(s.Consortium)+9+len(act))
	b = append(b, SigningPrefix...)
	b = append(b, s.Consortium...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, s.Seq)
	return append(b, act...), nil
}

// Signature is one coordinator's signature; Key names the coordinator key
// that made it.
type Signature struct {
	Key ed25519.PublicKey `json:"key"`
	Sig []byte            `json:"sig"`
}

// Signed is a statement with its signatures, as it travels from the CLI to
// a node and as the ledger stores it.
type Signed struct {
	Statement  Statement   `json:"statement"`
	Signatures []Signature `json:"signatures"`
}

// Sign adds the signature of priv to s (replacing an earlier one by the
// same key).
func (s *Signed) Sign(priv ed25519.PrivateKey) error {
	msg, err := s.Statement.SigningBytes()
	if err != nil {
		return err
	}
	pub := priv.Public().(ed25519.PublicKey)
	sig := Signature{Key: pub, Sig: ed25519.Sign(priv, msg)}
	for i := range s.Signatures {
		if bytes.Equal(s.Signatures[i].Key, pub) {
			s.Signatures[i] = sig
			return nil
		}
	}
	s.Signatures = append(s.Signatures, sig)
	return nil
}

// Encode returns the signed statement's JSON (field order, no HTML escaping).
func (s Signed) Encode() ([]byte, error) { return marshal(s) }

// ParseSigned reads a signed statement, refusing unknown fields.
func ParseSigned(data []byte) (Signed, error) {
	var s Signed
	if err := decodeStrict(data, &s); err != nil {
		return Signed{}, fmt.Errorf("governance statement: %w", err)
	}
	if err := s.Statement.Action.Check(); err != nil {
		return Signed{}, fmt.Errorf("governance statement: %w", err)
	}
	return s, nil
}

// Set is a coordinator set and its threshold: who may govern now.
type Set struct {
	Coordinators []Coordinator `json:"coordinators"`
	Threshold    int           `json:"threshold"`
}

// Error is a refused statement: the reason is deterministic, the same on
// every node and for every verifier.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func refuse(format string, a ...any) error { return &Error{Reason: fmt.Sprintf(format, a...)} }

// Verify checks a signed statement against the consortium id, the next
// expected sequence number and the coordinator set in force: the statement
// must name this consortium and exactly seq next, and carry valid
// signatures by at least set.Threshold distinct keys of the set. Signatures
// by unknown keys, repeated keys and bad signatures do not count (they are
// not an error by themselves: a statement may carry more signatures than
// needed). It returns the names of the coordinators whose signatures count.
func Verify(s Signed, consortium string, next uint64, set Set) ([]string, error) {
	st := s.Statement
	if st.Consortium != consortium {
		return nil, refuse("statement is for consortium %.16s…, this is %.16s…", st.Consortium, consortium)
	}
	if st.Seq != next {
		if st.Seq < next {
			return nil, refuse("statement %d was already applied (replay): the next governance statement is %d", st.Seq, next)
		}
		return nil, refuse("statement %d is out of order: the next governance statement is %d", st.Seq, next)
	}
	msg, err := st.SigningBytes()
	if err != nil {
		return nil, refuse("%v", err)
	}
	var signers []string
	for _, c := range set.Coordinators {
		for _, sig := range s.Signatures {
			// One signature per coordinator key, whatever the list repeats.
			if bytes.Equal(sig.Key, c.PublicKey) && len(sig.Sig) == ed25519.SignatureSize && ed25519.Verify(c.PublicKey, msg, sig.Sig) {
				signers = append(signers, c.Name)
				break
			}
		}
	}
	if len(signers) < set.Threshold {
		return signers, refuse("statement %d has %d valid coordinator signature(s), the threshold is %d of %d", st.Seq, len(signers), set.Threshold, len(set.Coordinators))
	}
	return signers, nil
}

// Describe says in one line what the action does, for a coordinator about
// to sign it.
func (a Action) Describe() (string, error) {
	if err := a.Check(); err != nil {
		return "", err
	}
	switch a.Type {
	case AddPartner:
		s := fmt.Sprintf("add partner %s (%s) with key %x", a.Partner.ID, a.Partner.Name, []byte(a.Partner.PublicKey))
		if a.Address != "" {
			s += " at " + a.Address
		}
		return s, nil
	case AddReplica:
		if a.Address != "" {
			return fmt.Sprintf("add replica %s at %s", a.ID, a.Address), nil
		}
		return "add replica " + a.ID, nil
	case RemovePartner, RemoveReplica, RemoveNode:
		return fmt.Sprintf("%s %s", a.Type, a.ID), nil
	case SetCatalog:
		return fmt.Sprintf("set the catalog (%d bytes of JSON)", len(a.Catalog)), nil
	case SetPolicy:
		return fmt.Sprintf("set the budget policy: %s, cap %d micro per partner per quarter", a.Policy.Accounting, a.Policy.CapMicro), nil
	case Rotate:
		var names []string
		for _, c := range a.Rotate.Coordinators {
			names = append(names, fmt.Sprintf("%s (%x)", c.Name, []byte(c.PublicKey)))
		}
		return fmt.Sprintf("replace the coordinators by %d of [%s]", a.Rotate.Threshold, strings.Join(names, ", ")), nil
	case Revoke:
		return fmt.Sprintf("revoke certificate serial %q / node %q (%s)", a.Revoke.Serial, a.Revoke.NodeID, a.Revoke.Reason), nil
	}
	return a.Type, nil
}
