package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"roundtable/node"
)

func newServeCmd() *cobra.Command {
	var cfg node.Config
	var genesisFile, joinGenesisFile, logLevel, logFormat string
	var replica bool
	c := &cobra.Command{
		Use:   "serve --data-dir DIR --http ADDR --raft ADDR [--bootstrap GENESIS | --join ADDR --genesis GENESIS] [--tls-cert FILE --tls-key FILE | --tls-from-ca]",
		Short: "Run a node: ledger member, HTTP API and dashboard",
		Long: `serve runs this partner's node. It opens the encrypted store (passphrase from
$ROUNDTABLE_PASSPHRASE or --passphrase-file), joins the regional ledger over
mutual TLS (certificate in DIR/tls, from the regional coordinator: see
docs/operator.md, section 3), and serves the
HTTP API and the dashboard.

The first node of a region starts with --bootstrap genesis.json; every other
node starts with --join ADDR (the Raft address of any member) and --genesis
genesis.json (the same file, from the coordinators) once the coordinators have
registered it. The genesis pins the node to its consortium: its id is kept in
DIR/ledger/ledger/consortium.pin, and the node refuses a ledger, a genesis entry or a
snapshot of any other consortium. --consortium ID pins by id alone. A restart
needs none of these flags. A read replica for researchers runs with --replica
and holds no records.

The API serves plain HTTP only on a loopback address (127.0.0.1, ::1,
localhost). On any other address it needs HTTPS: --tls-cert and --tls-key
(a certificate from your organisation's usual CA, reloaded when the files
change) or --tls-from-ca (the node's certificate from the regional CA; every
browser and script must then trust ca.crt). --insecure-http allows plain HTTP
anyway: tokens and uploaded case records then cross the network readable by
anyone on it. See docs/operator.md, "HTTPS for the dashboard and API".`,
		Example: `  roundtable serve --data-dir ./rs --http 127.0.0.1:8080 --raft 127.0.0.1:7000 --bootstrap genesis.json
  roundtable serve --data-dir ./al --http 127.0.0.1:8081 --raft 127.0.0.1:7001 --join 127.0.0.1:7000 --genesis genesis.json
  roundtable serve --data-dir ./research --replica --http 127.0.0.1:8090 --raft 127.0.0.1:7090 --join 127.0.0.1:7000 --genesis genesis.json
  roundtable serve --data-dir ./rs --http 0.0.0.0:8443 --tls-cert /etc/ssl/rs.crt --tls-key /etc/ssl/rs.key --raft 0.0.0.0:7000`,
		Args: cobra.NoArgs,
	}
	pf := addPassphraseFlag(c, "passphrase-file")
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "the node's data directory")
	f.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "HTTP API and dashboard address")
	f.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:7000", "ledger (Raft, mutual TLS) listen address")
	f.StringVar(&cfg.Advertise, "advertise", "", "ledger address other nodes dial (default: the --raft address)")
	f.StringVar(&genesisFile, "bootstrap", "", "found a new region from this genesis file (see 'roundtable genesis')")
	f.StringVar(&cfg.Join, "join", "", "join the region through this member's Raft address")
	f.StringVar(&joinGenesisFile, "genesis", "", "with --join: the consortium's genesis file, which pins this node to it")
	f.StringVar(&cfg.Consortium, "consortium", "", "with --join: the consortium id (genesis hash) to pin, when the genesis file is not at hand")
	f.BoolVar(&replica, "replica", false, "run a read-only replica (no store, no vote)")
	f.BoolVar(&cfg.PublicReads, "public-reads", true, "let anyone read published aggregates without a token")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the API over HTTPS with this certificate (PEM, chain included)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "the private key of --tls-cert (PEM, mode 0600)")
	f.BoolVar(&cfg.TLSFromCA, "tls-from-ca", false, "serve the API over HTTPS with the node's certificate from the regional CA (DIR/tls)")
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback --http address (tokens and uploads in clear text)")
	f.DurationVar(&cfg.Timing.Heartbeat, "heartbeat-timeout", 0, "raft heartbeat timeout (default 1.5s, sized for 50–400 ms RTT)")
	f.DurationVar(&cfg.Timing.Election, "election-timeout", 0, "raft election timeout (default 1.5s)")
	f.DurationVar(&cfg.Timing.LeaderLease, "leader-lease-timeout", 0, "raft leader lease (default 1s)")
	f.DurationVar(&cfg.Timing.Transport, "transport-timeout", 0, "I/O deadline of one raft RPC (default 10s)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	mustRequire(c, "data-dir")
	c.MarkFlagsMutuallyExclusive("bootstrap", "join")
	c.MarkFlagsMutuallyExclusive("bootstrap", "genesis")
	c.MarkFlagsMutuallyExclusive("bootstrap", "consortium")
	c.MarkFlagsMutuallyExclusive("tls-from-ca", "tls-cert")
	c.MarkFlagsMutuallyExclusive("tls-from-ca", "tls-key")
	c.MarkFlagsRequiredTogether("tls-cert", "tls-key")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		logger, err := newLogger(logLevel, logFormat)
		if err != nil {
			return err
		}
		cfg.Logger = logger
		if !replica {
			if cfg.Passphrase, err = readPassphrase(*pf); err != nil {
				return err
			}
		}
		if genesisFile != "" {
			if cfg.Genesis, err = os.ReadFile(genesisFile); err != nil {
				return fmt.Errorf("genesis: %w", err)
			}
		}
		if joinGenesisFile != "" {
			if cfg.JoinGenesis, err = os.ReadFile(joinGenesisFile); err != nil {
				return fmt.Errorf("genesis: %w", err)
			}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if at := os.Getenv(stopAtEnv); at != "" {
			cfg.PublishStep = stopAt(ctx, logger, at)
		}
		n, err := node.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer n.Close()
		if err := n.WriteServeFile(); err != nil {
			return err
		}
		logger.Info("serving", "id", n.ID(), "http", n.HTTPURL(), "raft", n.RaftAddr())
		if cfg.InsecureHTTP && !strings.HasPrefix(n.HTTPURL(), "https:") {
			logger.Warn("serving plain HTTP (--insecure-http): tokens and uploaded case records cross the network in clear text")
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "roundtable node %s: dashboard and API on %s, ledger on %s (Ctrl-C stops)\n", n.ID(), n.HTTPURL(), n.RaftAddr())
		err = n.Serve(ctx)
		logger.Info("stopping")
		return err
	}
	return c
}

// stopAtEnv names a release workflow step (reserved, signed, published)
// at which the node stops publishing and waits to be killed: the system
// tests' way of crashing a node at an exact point of a publish. Never set it
// on a real node.
const stopAtEnv = "ROUNDTABLE_TEST_STOP_AT"

func stopAt(ctx context.Context, logger *slog.Logger, step string) func(string) {
	return func(reached string) {
		if reached != step {
			return
		}
		logger.Warn("test stop point reached: the release workflow waits here to be killed", "step", step, "env", stopAtEnv)
		<-ctx.Done()
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
