package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"

	"roundtable/cluster/governance"
	"roundtable/privacy"
)

// CommandVersion is the version of the command encoding this code writes
// and applies. A node that meets a newer version refuses the command
// (deterministically, on every node running this code) instead of guessing
// at fields it does not know.
const CommandVersion = 1

// Command types. The set is closed: DecodeCommand refuses any other.
// Governance (partners, replicas, nodes, catalog, policy, coordinator keys,
// revocations) has one command type, govern, whose payload is a statement
// signed by the coordinators (package governance); genesis is unsigned
// because it is anchored by its hash, the consortium id.
const (
	CmdGenesis = "genesis"
	CmdGovern  = "govern"
	CmdReserve = "reserve"
	CmdPublish = "publish"
	CmdCosign  = "cosign"
)

// Command is one entry of the replicated log: a type and the one payload
// field that type uses. It is JSON so that an operator can read the raft
// log with ordinary tools; Encode and DecodeCommand are the only ways in and
// out. Reservations, releases and checkpoints carry their partner's
// signature and governance its coordinators'; the FSM checks them all, the
// same way on every node, so no node's say-so authorises anything.
type Command struct {
	Version int    `json:"v"`
	Type    string `json:"type"`

	Genesis     *Genesis                   `json:"genesis,omitempty"`     // genesis
	Statement   *governance.Signed         `json:"statement,omitempty"`   // govern
	Reservation *privacy.SignedReservation `json:"reservation,omitempty"` // reserve
	Release     *privacy.Signed            `json:"release,omitempty"`     // publish
	Cosign      *Cosign                    `json:"cosign,omitempty"`      // cosign
}

// Genesis founds the consortium: it is the first command of every ledger
// and is refused on a ledger that already has one. Its hash (Genesis.ID) is
// the consortium id; see package governance.
type Genesis = governance.Genesis

// Cosign carries a partner node's signature over a checkpoint of the
// ledger: a golang.org/x/mod/sumdb/note whose text is the checkpoint body
// (see checkpoint.go) signed under PartnerNoteName(Partner).
type Cosign struct {
	Partner string `json:"partner"`
	Note    []byte `json:"note"`
}

// NewGenesis returns the command that founds a consortium.
func NewGenesis(g Genesis) Command {
	return Command{Version: CommandVersion, Type: CmdGenesis, Genesis: &g}
}

// NewGovern returns the command that carries a signed governance statement.
func NewGovern(s governance.Signed) Command {
	return Command{Version: CommandVersion, Type: CmdGovern, Statement: &s}
}

// NewReserve returns the command that reserves budget before noise is drawn.
func NewReserve(r privacy.SignedReservation) Command {
	return Command{Version: CommandVersion, Type: CmdReserve, Reservation: &r}
}

// NewPublish returns the command that publishes a signed release.
func NewPublish(s privacy.Signed) Command {
	return Command{Version: CommandVersion, Type: CmdPublish, Release: &s}
}

// NewCosign returns the command that adds a partner's checkpoint signature.
func NewCosign(partner string, signedNote []byte) Command {
	return Command{Version: CommandVersion, Type: CmdCosign, Cosign: &Cosign{Partner: partner, Note: signedNote}}
}

// Encode returns the command's bytes for raft.Apply. It checks the command
// the same way DecodeCommand does, so a malformed command fails at the
// sender rather than in the log.
func (c Command) Encode() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode %s command: %w", c.Type, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeCommand parses a log entry. Unknown fields, an unknown type, a
// newer version or a missing payload are errors; the FSM turns them into a
// refusal, so a bad entry in the log changes nothing on any node.
func DecodeCommand(data []byte) (Command, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if err := unsignedGovernance(data); err != nil {
			return Command{}, err
		}
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	if dec.More() {
		return Command{}, fmt.Errorf("decode command: trailing data after the command")
	}
	if err := c.check(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// check verifies the envelope: version, type, and that exactly the payload
// the type needs is present. Content rules are the FSM's.
func (c Command) check() error {
	if c.Version != CommandVersion {
		return fmt.Errorf("command version %d is not supported (this node applies version %d)", c.Version, CommandVersion)
	}
	present := map[string]bool{
		"genesis":     c.Genesis != nil,
		"statement":   c.Statement != nil,
		"reservation": c.Reservation != nil,
		"release":     c.Release != nil,
		"cosign":      c.Cosign != nil,
	}
	want, ok := commandPayload(c.Type)
	if !ok {
		if isUnsignedGovernance(c.Type) {
			return errUnsigned(c.Type)
		}
		return fmt.Errorf("unknown command type %q", c.Type)
	}
	if !present[want] {
		return fmt.Errorf("%s command has no %s", c.Type, want)
	}
	// Fields checked in a fixed order so the error is the same everywhere.
	for _, f := range []string{"genesis", "statement", "reservation", "release", "cosign"} {
		if f != want && present[f] {
			return fmt.Errorf("%s command carries an unexpected %s", c.Type, f)
		}
	}
	return nil
}

// commandPayload names the one payload field each command type carries.
// A switch rather than a map: no package-level mutable state.
func commandPayload(typ string) (string, bool) {
	switch typ {
	case CmdGenesis:
		return "genesis", true
	case CmdGovern:
		return "statement", true
	case CmdReserve:
		return "reservation", true
	case CmdPublish:
		return "release", true
	case CmdCosign:
		return "cosign", true
	}
	return "", false
}

// isUnsignedGovernance reports whether typ is one of the unsigned
// governance commands earlier versions applied from whoever sent them.
func isUnsignedGovernance(typ string) bool {
	switch typ {
	case "add_partner", "remove_partner", "add_replica", "remove_replica", "remove_node", "set_catalog", "set_policy":
		return true
	}
	return false
}

func errUnsigned(typ string) error {
	return fmt.Errorf("unsigned governance command %q refused: governance reaches the ledger only as a statement signed by the coordinators (command type %q)", typ, CmdGovern)
}

// unsignedGovernance names an unsigned governance command that failed to
// decode (its payload fields no longer exist), so the refusal says why.
func unsignedGovernance(data []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &head) == nil && isUnsignedGovernance(head.Type) {
		return errUnsigned(head.Type)
	}
	return nil
}
