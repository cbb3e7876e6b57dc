package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"roundtable/aggregate"
	"roundtable/cluster"
	"roundtable/cluster/governance"
	"roundtable/keyseal"
	"roundtable/privacy"
)

func newCACmd() *cobra.Command {
	ca := &cobra.Command{
		Use:   "ca",
		Short: "The regional certificate authority that issues node certificates",
		Long: `The coordinator runs the regional CA. Every node presents a certificate from it
on the Raft port (mutual TLS 1.3); the identity in the certificate must equal
the node's Raft server id (the partner code, or replica-NAME).`,
	}
	var dir, consortium, passFile string
	kdf := keyseal.Default()
	initCmd := &cobra.Command{
		Use:   "init --dir CADIR --consortium NAME",
		Short: "Create the CA key and certificate (ed25519); the key is sealed under a passphrase",
		Long: `init creates CADIR/ca.crt and CADIR/ca.key. The key is encrypted
(XChaCha20-Poly1305 under a key derived with Argon2id) with the CA passphrase
from $` + caPassphraseEnv + ` or --passphrase-file, which 'ca issue' asks for
again. Keep the directory offline and the passphrase apart from it.`,
		Example: `  ROUNDTABLE_CA_PASSPHRASE=… roundtable ca init --dir ./ca --consortium western-balkans`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := readSecret(passFile, caPassphraseEnv)
			if err != nil {
				return err
			}
			warnWeak(cmd.ErrOrStderr(), pass)
			if _, err := cluster.InitCA(dir, consortium, pass, kdf); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "regional CA created in %s (keep %s/%s offline, and its passphrase apart from it)\n", dir, dir, cluster.CAKeyFile)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for ca.crt and ca.key")
	initCmd.Flags().StringVar(&consortium, "consortium", "western-balkans", "consortium name")
	initCmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the CA passphrase from this file (default: $"+caPassphraseEnv+")")
	addKDFFlags(initCmd, &kdf)
	mustRequire(initCmd, "dir")

	var partner, replica, out string
	var hosts []string
	var renew bool
	var days int
	issue := &cobra.Command{
		Use:   "issue --dir CADIR (--partner XX | --replica NAME) --out DIR [--host H]... [--days N] [--renew]",
		Short: "Issue (or renew) a node certificate for a partner or a read replica",
		Long: `issue writes node.crt, node.key and ca.crt for one node. Certificates are valid
for 90 days by default; a node warns in its log 30 days before expiry. To renew,
run issue again with --renew on the node's tls directory: a fresh key and
certificate replace the old ones atomically, then restart the node (one node
at a time; the others keep the ledger going).`,
		Example: `  roundtable ca issue --dir ./ca --partner RS --out ./rs/tls --host rs.example.org
  roundtable ca issue --dir ./ca --replica research1 --out ./replica/tls
  roundtable ca issue --dir ./ca --partner RS --out ./rs/tls --host rs.example.org --renew`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := nodeID(partner, replica)
			if err != nil {
				return err
			}
			pass, err := readSecret(passFile, caPassphraseEnv)
			if err != nil {
				return err
			}
			c, err := cluster.LoadCA(dir, pass)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if days < 1 || days > 825 {
				return fmt.Errorf("--days %d: give 1 to 825 (the default, 90, bounds the life of a leaked key)", days)
			}
			c.NodeValidity = time.Duration(days) * 24 * time.Hour
			if renew {
				if err := c.Renew(id, hosts, out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "renewed certificate for %s in %s (valid %d days); restart the node to use it\n", id, out, days)
				return nil
			}
			if err := c.Issue(id, hosts, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued certificate for %s in %s (valid %d days)\n", id, out, days)
			return nil
		},
	}
	issue.Flags().StringVar(&dir, "dir", "", "the CA directory")
	issue.Flags().StringVar(&passFile, "passphrase-file", "", "read the CA passphrase from this file (default: $"+caPassphraseEnv+")")
	issue.Flags().StringVar(&partner, "partner", "", "partner code (ISO 3166-1 alpha-2, XK for Kosovo)")
	issue.Flags().StringVar(&replica, "replica", "", "read replica name (lower-case letters, digits, dashes)")
	issue.Flags().StringVar(&out, "out", "", "directory to write node.crt, node.key and ca.crt (usually DATA-DIR/tls)")
	issue.Flags().StringSliceVar(&hosts, "host", []string{"127.0.0.1", "localhost"}, "DNS names or IPs the node is reached at")
	issue.Flags().IntVar(&days, "days", int(cluster.DefaultNodeValidity/(24*time.Hour)), "days the certificate is valid")
	issue.Flags().BoolVar(&renew, "renew", false, "replace the node's existing key and certificate in --out")
	mustRequire(issue, "dir", "out")
	ca.AddCommand(initCmd, issue, newCARekeyCmd())
	return ca
}

func newCARekeyCmd() *cobra.Command {
	var dir, passFile, newFile string
	kdf := keyseal.Default()
	c := &cobra.Command{
		Use:   "rekey --dir CADIR --new-passphrase-file FILE",
		Short: "Change the CA key's passphrase, or seal a CA key that is not encrypted yet",
		Long: `rekey replaces CADIR/ca.key, atomically, with the same key sealed under the
new passphrase and the given Argon2id parameters. The current passphrase
comes from $` + caPassphraseEnv + ` or --passphrase-file; a ca.key made before
CA keys were encrypted needs none. It is also how a key sealed below the
minimum (t=2, 19 MiB) is strengthened. Issued certificates stay valid.`,
		Example: `  ROUNDTABLE_CA_PASSPHRASE=old roundtable ca rekey --dir ./ca --new-passphrase-file ./new-ca-pass`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, _ := readSecret(passFile, caPassphraseEnv) // none for an unencrypted key
			np, err := readSecret(newFile, caPassphraseEnv)
			if err != nil {
				return fmt.Errorf("new passphrase: %w", err)
			}
			warnWeak(cmd.ErrOrStderr(), np)
			if err := cluster.ResealCAKey(dir, old, np, kdf); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA key in %s sealed under the new passphrase\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "the CA directory")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "read the current CA passphrase from this file (default: $"+caPassphraseEnv+")")
	c.Flags().StringVar(&newFile, "new-passphrase-file", "", "file holding the new CA passphrase")
	addKDFFlags(c, &kdf)
	mustRequire(c, "dir", "new-passphrase-file")
	return c
}

// nodeID turns --partner / --replica into a Raft server id.
func nodeID(partner, replica string) (string, error) {
	switch {
	case partner != "" && replica != "":
		return "", fmt.Errorf("give --partner or --replica, not both")
	case partner != "":
		return strings.ToUpper(partner), cluster.ValidateID(strings.ToUpper(partner))
	case replica != "":
		id := replica
		if !strings.HasPrefix(id, "replica-") {
			id = "replica-" + id
		}
		return id, cluster.ValidateID(id)
	}
	return "", fmt.Errorf("give --partner XX or --replica NAME")
}

func newGenesisCmd() *cobra.Command {
	var name string
	var partners, coords []string
	var threshold int
	epsilon := privacy.Budget(privacy.Micro)
	var rho, ceiling privacy.Budget
	var catalogFile string
	c := &cobra.Command{
		Use:   "genesis --consortium NAME --coordinator NAME=KEY... --threshold K --cap-ceiling C --partner CODE=NAME=PUBKEY... [--epsilon-cap E | --rho-cap R]",
		Short: "Write the genesis file that founds a consortium's ledger",
		Long: `genesis writes, to stdout, the JSON file that 'roundtable serve --bootstrap'
reads. Its SHA-256 (of the canonical encoding) is the consortium id that
every governance statement is bound to. It names:

  - the coordinators' public keys (from 'roundtable coordinator keygen') and
    the threshold K: every later change to the consortium (partners,
    replicas, catalog, policy, revocations, the coordinators themselves) must
    be signed by K of them. 2 of 3 is recommended; 1 of 1 is allowed;
  - a ceiling on the budget cap (--cap-ceiling, in the cap's unit): no
    statement can ever set the cap above it;
  - the founding partners with their signing keys ('roundtable init' prints
    them), the budget policy (a cap per partner per quarter: ε under pure DP,
    the default, or ρ under zCDP) and the indicator catalog (v2 unless
    --catalog names a file).`,
		Example: `  roundtable genesis --consortium western-balkans \
    --coordinator "alice=KEY1" --coordinator "bob=KEY2" --coordinator "carol=KEY3" --threshold 2 \
    --partner "RS=Serbia partner=3b1f…" --partner "AL=Albania partner=9c0e…" \
    --epsilon-cap 1 --cap-ceiling 3 > genesis.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := parseCoordinators(coords)
			if err != nil {
				return err
			}
			g, err := buildGenesis(name, partners, epsilon, rho, catalogFile)
			if err != nil {
				return err
			}
			g.Coordinators, g.Threshold, g.MaxCapMicro = cs, threshold, ceiling.Micro()
			if err := g.Validate(); err != nil {
				return err
			}
			id, err := g.ID()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(g); err != nil {
				return err
			}
			// On stderr, so stdout stays the file: the id to publish, which
			// researchers check their copy against (verify --consortium).
			fmt.Fprintf(cmd.ErrOrStderr(), "consortium id: %s\n", id)
			return nil
		},
	}
	c.Flags().StringVar(&name, "consortium", "western-balkans", "consortium name")
	c.Flags().StringArrayVar(&coords, "coordinator", nil, "NAME=PUBLIC-KEY (hex or base64) of a coordinator, once per coordinator")
	c.Flags().IntVar(&threshold, "threshold", 0, "coordinator signatures every governance statement needs (1 ≤ K ≤ number of coordinators)")
	c.Flags().Var(&ceiling, "cap-ceiling", "the highest cap any policy may ever set, in the cap's unit (ε, or ρ with --rho-cap)")
	c.Flags().StringArrayVar(&partners, "partner", nil, "CODE=NAME=PUBLIC-KEY (hex or base64), once per founding partner")
	c.Flags().Var(&epsilon, "epsilon-cap", "pure ε-DP cap per partner per quarter")
	c.Flags().Var(&rho, "rho-cap", "use ρ-zCDP accounting with this cap per partner per quarter instead")
	c.Flags().StringVar(&catalogFile, "catalog", "", "indicator catalog JSON (default: the built-in v2 catalog)")
	mustRequire(c, "partner", "coordinator", "threshold", "cap-ceiling")
	return c
}

func buildGenesis(name string, specs []string, epsilon, rho privacy.Budget, catalogFile string) (cluster.Genesis, error) {
	var ps []governance.Partner
	for _, s := range specs {
		parts := strings.SplitN(s, "=", 3)
		if len(parts) != 3 {
			return cluster.Genesis{}, fmt.Errorf("--partner %q: want CODE=NAME=PUBLIC-KEY", s)
		}
		key, err := parsePublicKey(parts[2])
		if err != nil {
			return cluster.Genesis{}, fmt.Errorf("--partner %s: %w", parts[0], err)
		}
		ps = append(ps, governance.Partner{ID: strings.ToUpper(parts[0]), Name: parts[1], PublicKey: key})
	}
	policy := privacy.Policy{Accounting: privacy.PureDP, CapMicro: epsilon.Micro()}
	if rho > 0 {
		policy = privacy.Policy{Accounting: privacy.ZCDP, CapMicro: rho.Micro()}
	}
	if err := policy.Validate(); err != nil {
		return cluster.Genesis{}, err
	}
	var cat []byte
	var err error
	if catalogFile != "" {
		cat, err = os.ReadFile(catalogFile)
		if err == nil {
			_, err = aggregate.ParseCatalog(cat)
		}
	} else {
		cat, err = aggregate.CatalogV2().Canonical()
	}
	if err != nil {
		return cluster.Genesis{}, fmt.Errorf("catalog: %w", err)
	}
	return cluster.Genesis{Name: name, Partners: ps, Policy: governance.Policy(policy), Catalog: cat}, nil
}

// parsePublicKey accepts an ed25519 public key as hex or base64.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%q is not a 32-byte ed25519 public key in hex or base64", s)
}
