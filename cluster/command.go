package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"

	"roundtable/privacy"
)

// CommandVersion is the version of the command encoding this code writes
// and applies. A node that meets a newer version refuses the command
// (deterministically, on every node running this code) instead of guessing
// at fields it does not know.
const CommandVersion = 1

// Command types. The set is closed: DecodeCommand refuses any other.
const (
	CmdGenesis       = "genesis"
	CmdAddPartner    = "add_partner"
	CmdRemovePartner = "remove_partner"
	CmdAddReplica    = "add_replica"
	CmdRemoveReplica = "remove_replica"
	CmdSetCatalog    = "set_catalog"
	CmdSetPolicy     = "set_policy"
	CmdReserve       = "reserve"
	CmdPublish       = "publish"
	CmdCosign        = "cosign"
)

// Command is one entry of the replicated log: a type and the one payload
// field that type uses. It is JSON so that an operator can read the raft
// log with ordinary tools; Encode and DecodeCommand are the only ways in and
// out. Authorisation (who may send which command) is the API layer's job;
// the FSM only checks content, the same way on every node.
type Command struct {
	Version int    `json:"v"`
	Type    string `json:"type"`

	Genesis     *Genesis                   `json:"genesis,omitempty"`     // genesis
	Partner     *Partner                   `json:"partner,omitempty"`     // add_partner
	ID          string                     `json:"id,omitempty"`          // remove_partner, add_replica, remove_replica
	Catalog     json.RawMessage            `json:"catalog,omitempty"`     // set_catalog
	Policy      *privacy.Policy            `json:"policy,omitempty"`      // set_policy
	Reservation *privacy.SignedReservation `json:"reservation,omitempty"` // reserve
	Release     *privacy.Signed            `json:"release,omitempty"`     // publish
	Cosign      *Cosign                    `json:"cosign,omitempty"`      // cosign
}

// Genesis founds the consortium: it is the first command of every ledger
// and is refused on a ledger that already has one.
type Genesis struct {
	Name     string          `json:"name"`
	Partners []Partner       `json:"partners"` // Role is ignored: founders are voters
	Policy   privacy.Policy  `json:"policy"`
	Catalog  json.RawMessage `json:"catalog"`
}

// Cosign carries a partner node's signature over a checkpoint of the
// ledger: a golang.org/x/mod/sumdb/note whose text is the checkpoint body
// (see checkpoint.go) signed under PartnerNoteName(Partner).
type Cosign struct {
	Partner string `json:"partner"`
	Note    []byte `json:"note"`
}

// NewGenesis returns the command that founds a consortium. catalogJSON is
// the first indicator catalog, in any JSON layout; the ledger stores its
// canonical form.
func NewGenesis(name string, partners []Partner, policy privacy.Policy, catalogJSON []byte) Command {
	return Command{Version: CommandVersion, Type: CmdGenesis, Genesis: &Genesis{
		Name: name, Partners: partners, Policy: policy, Catalog: json.RawMessage(catalogJSON),
	}}
}

// NewAddPartner returns the command that admits a partner as a voter.
func NewAddPartner(p Partner) Command {
	return Command{Version: CommandVersion, Type: CmdAddPartner, Partner: &p}
}

// NewRemovePartner returns the command that removes a partner. Its past
// releases stay in the ledger and still verify with its registered key.
func NewRemovePartner(id string) Command {
	return Command{Version: CommandVersion, Type: CmdRemovePartner, ID: id}
}

// NewAddReplica returns the command that registers a read replica.
func NewAddReplica(id string) Command {
	return Command{Version: CommandVersion, Type: CmdAddReplica, ID: id}
}

// NewRemoveReplica returns the command that unregisters a read replica.
func NewRemoveReplica(id string) Command {
	return Command{Version: CommandVersion, Type: CmdRemoveReplica, ID: id}
}

// NewSetCatalog returns the command that adds a catalog version (if new)
// and makes it current.
func NewSetCatalog(catalogJSON []byte) Command {
	return Command{Version: CommandVersion, Type: CmdSetCatalog, Catalog: json.RawMessage(catalogJSON)}
}

// NewSetPolicy returns the command that replaces the budget policy.
func NewSetPolicy(p privacy.Policy) Command {
	return Command{Version: CommandVersion, Type: CmdSetPolicy, Policy: &p}
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
		"partner":     c.Partner != nil,
		"id":          c.ID != "",
		"catalog":     len(c.Catalog) > 0,
		"policy":      c.Policy != nil,
		"reservation": c.Reservation != nil,
		"release":     c.Release != nil,
		"cosign":      c.Cosign != nil,
	}
	want, ok := commandPayload(c.Type)
	if !ok {
		return fmt.Errorf("unknown command type %q", c.Type)
	}
	if !present[want] {
		return fmt.Errorf("%s command has no %s", c.Type, want)
	}
	// Fields checked in a fixed order so the error is the same everywhere.
	for _, f := range []string{"genesis", "partner", "id", "catalog", "policy", "reservation", "release", "cosign"} {
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
	case CmdAddPartner:
		return "partner", true
	case CmdRemovePartner, CmdAddReplica, CmdRemoveReplica:
		return "id", true
	case CmdSetCatalog:
		return "catalog", true
	case CmdSetPolicy:
		return "policy", true
	case CmdReserve:
		return "reservation", true
	case CmdPublish:
		return "release", true
	case CmdCosign:
		return "cosign", true
	}
	return "", false
}
