package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"roundtable/aggregate"
	"roundtable/cluster/governance"
	"roundtable/node/client"
	"roundtable/privacy"
)

const coordinatorPassphraseEnv = "ROUNDTABLE_COORDINATOR_PASSPHRASE"

// signing holds the flags every governance command shares: where to read
// the history from and submit to, which key files sign, and where to write
// a statement that still needs signatures.
type signing struct {
	server, caCert, passFile, out string
	keys                          []string
}

func (s *signing) flags(c *cobra.Command) {
	c.Flags().StringVar(&s.server, "server", "http://127.0.0.1:8080", "any node's base URL: the next sequence number comes from its GET /v1/governance, and the statement is submitted there")
	caCertFlag(c.Flags(), &s.caCert)
	c.Flags().StringArrayVar(&s.keys, "key", nil, "coordinator key file to sign with (repeatable; see 'roundtable coordinator keygen')")
	c.Flags().StringVar(&s.passFile, "passphrase-file", "", "read the key files' passphrase from this file (default: $"+coordinatorPassphraseEnv+")")
	c.Flags().StringVar(&s.out, "out", "", "write the signed statement to this file instead of submitting it (when the threshold needs more coordinators)")
}

// run prepares a statement of a, signs it with every --key, and either
// writes it to --out or submits it.
func (s *signing) run(cmd *cobra.Command, a governance.Action) error {
	if len(s.keys) == 0 && s.out == "" {
		return fmt.Errorf("give --key FILE to sign (or --out FILE to write the statement for others to sign)")
	}
	c, err := nodeClient(s.server, "", s.caCert)
	if err != nil {
		return err
	}
	st, err := c.Prepare(cmd.Context(), a)
	if err != nil {
		return err
	}
	if err := signWith(&st, s.keys, s.passFile); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if s.out != "" {
		if err := writeStatement(s.out, st); err != nil {
			return err
		}
		fmt.Fprintf(w, "statement %d (%s) written to %s with %d signature(s); add more with 'roundtable governance sign --key FILE %s', then 'roundtable governance submit %s'\n",
			st.Statement.Seq, a.Type, s.out, len(st.Signatures), s.out, s.out)
		return nil
	}
	return submit(cmd.Context(), w, c, st)
}

func signWith(st *governance.Signed, keys []string, passFile string) error {
	if len(keys) == 0 {
		return nil
	}
	pass, err := readSecret(passFile, coordinatorPassphraseEnv)
	if err != nil {
		return err
	}
	for _, k := range keys {
		priv, err := governance.OpenKeyFile(k, pass)
		if err != nil {
			return err
		}
		if err := st.Sign(priv); err != nil {
			return err
		}
	}
	return nil
}

func submit(ctx context.Context, w io.Writer, c *client.Client, st governance.Signed) error {
	res, err := c.Govern(ctx, st)
	if err != nil {
		return err
	}
	note := ""
	if res.Existing {
		note = " (already in the ledger, or it changed nothing)"
	}
	fmt.Fprintf(w, "governance statement %d (%s) admitted%s\n", res.Seq, res.Action, note)
	return nil
}

func writeStatement(path string, st governance.Signed) error {
	b, err := st.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readStatement(path string) (governance.Signed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return governance.Signed{}, err
	}
	st, err := governance.ParseSigned(b)
	if err != nil {
		return governance.Signed{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// group makes a parent command holding governance actions.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short}
	g.AddCommand(subs...)
	return g
}

func newCoordinatorCmds() []*cobra.Command {
	return []*cobra.Command{
		group("coordinator", "Coordinator keys: create one, change its passphrase, rotate the set", newKeygenCmd(), newCoordinatorRekeyCmd(), newRotateCmd()),
		group("partner", "Governance: add and remove partners (signed by the coordinators)", newPartnerAddCmd(), newPartnerRemoveCmd()),
		group("replica", "Governance: add and remove read replicas (signed)", newReplicaAddCmd(), newReplicaRemoveCmd()),
		group("node", "Governance: remove a ledger node (signed)", newNodeRemoveCmd()),
		group("catalog", "Governance: set the indicator catalog (signed)", newCatalogSetCmd()),
		group("policy", "Governance: set the budget policy (signed)", newPolicySetCmd()),
		group("cert", "Governance: revoke node certificates (signed)", newCertRevokeCmd()),
		group("governance", "Sign and submit governance statements that need several coordinators", newGovSignCmd(), newGovSubmitCmd()),
	}
}

const signingHelp = `
The statement is bound to the consortium (its genesis hash) and to the next
sequence number, both read from --server, and signed with each --key. If the
consortium's threshold is 1, or the --key files given reach it, the statement
is submitted at once. Otherwise write it with --out, have the other
coordinators run 'roundtable governance sign', and submit it with
'roundtable governance submit'. The key files' passphrase comes from
$` + coordinatorPassphraseEnv + ` or --passphrase-file.`

func newKeygenCmd() *cobra.Command {
	var out, passFile string
	kdf := governance.DefaultKDFParams()
	c := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create a coordinator key (ed25519) in an encrypted key file",
		Long: `keygen creates a coordinator's governance key and writes it to --out,
encrypted (XChaCha20-Poly1305 under a key derived from the passphrase with
Argon2id). It prints the public key, which goes into the genesis
(--coordinator NAME=KEY) or a rotation. Keep the file off the nodes: a node
never needs it. The passphrase comes from $` + coordinatorPassphraseEnv + ` or
--passphrase-file.`,
		Example: `  ROUNDTABLE_COORDINATOR_PASSPHRASE=… roundtable coordinator keygen --out ./coordinator-1.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := readSecret(passFile, coordinatorPassphraseEnv)
			if err != nil {
				return err
			}
			warnWeak(cmd.ErrOrStderr(), pass)
			pub, err := governance.GenerateKeyFile(out, pass, kdf)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "coordinator key written to %s\npublic key: %x\n", out, []byte(pub))
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "key file to create (never overwritten)")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file (default: $"+coordinatorPassphraseEnv+")")
	addKDFFlags(c, &kdf)
	mustRequire(c, "out")
	return c
}

func newCoordinatorRekeyCmd() *cobra.Command {
	var key, passFile, newFile string
	kdf := governance.DefaultKDFParams()
	c := &cobra.Command{
		Use:   "rekey --key FILE --new-passphrase-file FILE",
		Short: "Change a coordinator key file's passphrase (or strengthen its Argon2id parameters)",
		Long: `rekey opens the coordinator key file with its passphrase ($` + coordinatorPassphraseEnv + `
or --passphrase-file) and replaces it, atomically, with the same key sealed
under the new passphrase and the given Argon2id parameters. It is also how
a key file sealed below the minimum (t=2, 19 MiB), which no other command
opens, is strengthened; the new passphrase may be the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, err := readSecret(passFile, coordinatorPassphraseEnv)
			if err != nil {
				return err
			}
			np, err := readSecret(newFile, coordinatorPassphraseEnv)
			if err != nil {
				return fmt.Errorf("new passphrase: %w", err)
			}
			warnWeak(cmd.ErrOrStderr(), np)
			if err := governance.ResealKeyFile(key, old, np, kdf); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "coordinator key file %s re-sealed; use the new passphrase from now on\n", key)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "the coordinator key file")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "read the current passphrase from this file (default: $"+coordinatorPassphraseEnv+")")
	c.Flags().StringVar(&newFile, "new-passphrase-file", "", "file holding the new passphrase")
	addKDFFlags(c, &kdf)
	mustRequire(c, "key", "new-passphrase-file")
	return c
}

func newRotateCmd() *cobra.Command {
	var s signing
	var coords []string
	var k int
	c := &cobra.Command{
		Use:   "rotate --coordinator NAME=KEY... --threshold K --key FILE...",
		Short: "Replace the coordinator keys and threshold (signed by the current set)",
		Long:  "rotate replaces the coordinator set and its threshold. It must be signed by the threshold of the current set; from the next statement on only the new keys count." + signingHelp,
		Example: `  roundtable coordinator rotate --server http://127.0.0.1:8080 \
    --coordinator "alice=KEY1" --coordinator "bob=KEY2" --coordinator "carol=KEY3" --threshold 2 \
    --key ./coordinator-1.key --key ./coordinator-2.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := parseCoordinators(coords)
			if err != nil {
				return err
			}
			return s.run(cmd, governance.Action{Type: governance.Rotate, Rotate: &governance.Rotation{Coordinators: cs, Threshold: k}})
		},
	}
	s.flags(c)
	c.Flags().StringArrayVar(&coords, "coordinator", nil, "NAME=PUBLIC-KEY (hex or base64) of each coordinator of the new set")
	c.Flags().IntVar(&k, "threshold", 0, "signatures the new set needs on each statement (1 ≤ K ≤ number of coordinators)")
	mustRequire(c, "coordinator", "threshold")
	return c
}

// parseCoordinators reads NAME=KEY flags.
func parseCoordinators(specs []string) ([]governance.Coordinator, error) {
	var cs []governance.Coordinator
	for _, spec := range specs {
		name, key, ok := strings.Cut(spec, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--coordinator %q: want NAME=PUBLIC-KEY", spec)
		}
		pub, err := parsePublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("--coordinator %s: %w", name, err)
		}
		cs = append(cs, governance.Coordinator{Name: name, PublicKey: pub})
	}
	return cs, nil
}

func newPartnerAddCmd() *cobra.Command {
	var s signing
	var code, name, key, addr string
	c := &cobra.Command{
		Use:   "add --code XX --public-key KEY --key FILE [--name NAME] [--address RAFT-ADDR]",
		Short: "Register a partner (its node can then join with serve --join)",
		Long:  "add registers a partner and its release-signing key. With --address, the partner's node may join only from that raft address." + signingHelp,
		Example: `  roundtable partner add --server http://127.0.0.1:8080 --code ME --name "Montenegro partner NGO" \
    --public-key 99cb2ec9… --address 127.0.0.1:7002 --key ./coordinator.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := parsePublicKey(key)
			if err != nil {
				return err
			}
			code = strings.ToUpper(code)
			if name == "" {
				name = code + " partner"
			}
			return s.run(cmd, governance.Action{Type: governance.AddPartner, Address: addr,
				Partner: &governance.Partner{ID: code, Name: name, PublicKey: pub}})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&code, "code", "", "partner code (ISO 3166-1 alpha-2, XK for Kosovo)")
	c.Flags().StringVar(&name, "name", "", "partner name (default: CODE partner)")
	c.Flags().StringVar(&key, "public-key", "", "the partner's signing key printed by 'roundtable init' (hex or base64)")
	c.Flags().StringVar(&addr, "address", "", "the partner node's raft address; joins from elsewhere are refused")
	mustRequire(c, "code", "public-key")
	return c
}

func newPartnerRemoveCmd() *cobra.Command {
	var s signing
	var code string
	c := &cobra.Command{
		Use:     "remove --code XX --key FILE",
		Short:   "Remove a partner: its node leaves the ledger and its certificate is refused",
		Long:    "remove marks the partner removed (its past releases stay and still verify), puts its id on every node's deny-list, and the leader takes its node out of the raft configuration." + signingHelp,
		Example: `  roundtable partner remove --server http://127.0.0.1:8080 --code ME --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return s.run(cmd, governance.Action{Type: governance.RemovePartner, ID: strings.ToUpper(code)})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&code, "code", "", "partner code")
	mustRequire(c, "code")
	return c
}

func newReplicaAddCmd() *cobra.Command {
	var s signing
	var name, addr string
	c := &cobra.Command{
		Use:     "add --id NAME --key FILE [--address RAFT-ADDR]",
		Short:   "Register a read replica for researchers (it joins with serve --replica --join)",
		Long:    "add registers a read-only replica. With --address, it may join only from that raft address." + signingHelp,
		Example: `  roundtable replica add --server http://127.0.0.1:8080 --id research1 --address 127.0.0.1:7090 --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := nodeID("", name)
			if err != nil {
				return err
			}
			return s.run(cmd, governance.Action{Type: governance.AddReplica, ID: id, Address: addr})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&name, "id", "", "replica name")
	c.Flags().StringVar(&addr, "address", "", "the replica's raft address; joins from elsewhere are refused")
	mustRequire(c, "id")
	return c
}

func newReplicaRemoveCmd() *cobra.Command {
	var s signing
	var name string
	c := &cobra.Command{
		Use:     "remove --id NAME --key FILE",
		Short:   "Unregister a read replica; its certificate is refused from then on",
		Long:    "remove unregisters a replica, puts its id on every node's deny-list, and the leader takes it out of the raft configuration." + signingHelp,
		Example: `  roundtable replica remove --server http://127.0.0.1:8080 --id research1 --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := nodeID("", name)
			if err != nil {
				return err
			}
			return s.run(cmd, governance.Action{Type: governance.RemoveReplica, ID: id})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&name, "id", "", "replica name")
	mustRequire(c, "id")
	return c
}

func newNodeRemoveCmd() *cobra.Command {
	var s signing
	var id string
	c := &cobra.Command{
		Use:     "remove --id ID --key FILE",
		Short:   "Remove a partner node or a replica from the ledger",
		Long:    "remove takes a partner (by code) or a replica (replica-NAME) out of the registry; the leader then removes it from the raft configuration. No other request can remove a raft server." + signingHelp,
		Example: `  roundtable node remove --server http://127.0.0.1:8080 --id ME --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return s.run(cmd, governance.Action{Type: governance.RemoveNode, ID: id})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&id, "id", "", "server id (partner code or replica-NAME)")
	mustRequire(c, "id")
	return c
}

func newCatalogSetCmd() *cobra.Command {
	var s signing
	var file string
	c := &cobra.Command{
		Use:     "set --file CATALOG.json --key FILE",
		Short:   "Add a new catalog version (validated in full) and make it current",
		Long:    "set validates the catalog here, then signs it; every node validates it again." + signingHelp,
		Example: `  roundtable catalog set --server http://127.0.0.1:8080 --file catalog.json --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			cat, err := aggregate.ParseCatalog(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			canon, err := cat.Canonical()
			if err != nil {
				return err
			}
			return s.run(cmd, governance.Action{Type: governance.SetCatalog, Catalog: canon})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&file, "file", "", "catalog JSON (GET /v1/catalog shows the current one)")
	mustRequire(c, "file")
	return c
}

func newPolicySetCmd() *cobra.Command {
	var s signing
	var epsCap, rhoCap privacy.Budget
	c := &cobra.Command{
		Use:     "set (--epsilon-cap E | --rho-cap R) --key FILE",
		Short:   "Set the budget cap per partner per quarter",
		Long:    "set replaces the budget policy. A cap above the genesis's ceiling (max_cap_micro) is refused, whoever signs it." + signingHelp,
		Example: `  roundtable policy set --server http://127.0.0.1:8080 --epsilon-cap 3 --key ./coordinator.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := privacy.Policy{Accounting: privacy.PureDP, CapMicro: epsCap.Micro()}
			if rhoCap > 0 {
				p = privacy.Policy{Accounting: privacy.ZCDP, CapMicro: rhoCap.Micro()}
			}
			if err := p.Validate(); err != nil {
				return err
			}
			return s.run(cmd, governance.Action{Type: governance.SetPolicy, Policy: &governance.Policy{Accounting: p.Accounting, CapMicro: p.CapMicro}})
		},
	}
	s.flags(c)
	c.Flags().Var(&epsCap, "epsilon-cap", "pure ε-DP cap per partner per quarter")
	c.Flags().Var(&rhoCap, "rho-cap", "ρ-zCDP cap per partner per quarter")
	c.MarkFlagsMutuallyExclusive("epsilon-cap", "rho-cap")
	c.MarkFlagsOneRequired("epsilon-cap", "rho-cap")
	return c
}

func newCertRevokeCmd() *cobra.Command {
	var s signing
	var serial, nodeID, reason string
	c := &cobra.Command{
		Use:   "revoke (--serial N | --node ID) --key FILE [--reason TEXT]",
		Short: "Put a certificate (by serial number) or a node id on every node's deny-list",
		Long:  "revoke puts a certificate serial number (decimal) and/or a node id on the ledger's deny-list. A revoked serial stays revoked, even if its node is added again." + signingHelp,
		Example: `  roundtable cert revoke --server http://127.0.0.1:8080 --serial 1234567 --reason "laptop stolen" --key ./coordinator.key
  roundtable cert revoke --server http://127.0.0.1:8080 --node replica-research1 --key ./coordinator.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return s.run(cmd, governance.Action{Type: governance.Revoke, Revoke: &governance.Revocation{Serial: serial, NodeID: nodeID, Reason: reason}})
		},
	}
	s.flags(c)
	c.Flags().StringVar(&serial, "serial", "", "certificate serial number, decimal")
	c.Flags().StringVar(&nodeID, "node", "", "node id (partner code or replica-NAME)")
	c.Flags().StringVar(&reason, "reason", "", "why (kept in the ledger)")
	c.MarkFlagsOneRequired("serial", "node")
	return c
}

func newGovSignCmd() *cobra.Command {
	var keys []string
	var passFile string
	c := &cobra.Command{
		Use:   "sign --key FILE STATEMENT.json",
		Short: "Add your signature to a statement another coordinator prepared",
		Long: `sign adds the signature of each --key to the statement in the file and
writes it back. Read what the statement does before you sign it: it is shown
here. The passphrase comes from $` + coordinatorPassphraseEnv + ` or --passphrase-file.`,
		Example: `  roundtable governance sign --key ./coordinator-2.key statement.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := readStatement(args[0])
			if err != nil {
				return err
			}
			if err := signWith(&st, keys, passFile); err != nil {
				return err
			}
			if err := writeStatement(args[0], st); err != nil {
				return err
			}
			act, err := st.Statement.Action.Describe()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed statement %d for consortium %.16s…: %s\n%s now has %d signature(s)\n",
				st.Statement.Seq, st.Statement.Consortium, act, args[0], len(st.Signatures))
			return nil
		},
	}
	c.Flags().StringArrayVar(&keys, "key", nil, "coordinator key file (repeatable)")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this file (default: $"+coordinatorPassphraseEnv+")")
	mustRequire(c, "key")
	return c
}

func newGovSubmitCmd() *cobra.Command {
	var server, caCert string
	c := &cobra.Command{
		Use:     "submit --server URL STATEMENT.json",
		Short:   "Submit a signed statement to the ledger",
		Long:    "submit sends a statement to a node, which checks its signatures, sequence number and consortium before the ledger sees it; every node checks them again.",
		Example: `  roundtable governance submit --server http://127.0.0.1:8080 statement.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := readStatement(args[0])
			if err != nil {
				return err
			}
			cl, err := nodeClient(server, "", caCert)
			if err != nil {
				return err
			}
			return submit(cmd.Context(), cmd.OutOrStdout(), cl, st)
		},
	}
	c.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "any node's base URL")
	caCertFlag(c.Flags(), &caCert)
	return c
}
