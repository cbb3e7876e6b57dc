package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"roundtable/node/api"
	"roundtable/node/client"
)

// remote holds the flags every coordinator command shares.
type remote struct{ server, token string }

func (r *remote) flags(c *cobra.Command) {
	c.Flags().StringVar(&r.server, "server", "http://127.0.0.1:8080", "any node's base URL")
	c.Flags().StringVar(&r.token, "token", os.Getenv("ROUNDTABLE_TOKEN"), "coordinator token (default $ROUNDTABLE_TOKEN)")
}

func (r *remote) client() *client.Client { return client.New(r.server, r.token) }

// group makes a parent command holding one coordinator action.
func group(use, short string, sub *cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short}
	g.AddCommand(sub)
	return g
}

func newCoordinatorCmds() []*cobra.Command {
	return []*cobra.Command{
		group("partner", "Coordinator: manage the consortium's partners", newPartnerAddCmd()),
		group("replica", "Coordinator: manage read replicas", newReplicaAddCmd()),
		group("node", "Coordinator: manage ledger nodes", newNodeRemoveCmd()),
		group("catalog", "Coordinator: manage the indicator catalog", newCatalogSetCmd()),
		group("policy", "Coordinator: manage the budget policy", newPolicySetCmd()),
	}
}

func newPartnerAddCmd() *cobra.Command {
	var r remote
	var p api.PartnerSpec
	var key string
	c := &cobra.Command{
		Use:   "add --code XX --public-key KEY [--address RAFT-ADDR]",
		Short: "Register a partner (its node can then join with serve --join)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := parsePublicKey(key)
			if err != nil {
				return err
			}
			p.PublicKey, p.Code = pub, strings.ToUpper(p.Code)
			p.ID = p.Code
			if err := r.client().AddPartner(cmd.Context(), p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "partner %s registered; its node may now join\n", p.Code)
			return nil
		},
	}
	r.flags(c)
	c.Flags().StringVar(&p.Code, "code", "", "partner code (ISO 3166-1 alpha-2, XK for Kosovo)")
	c.Flags().StringVar(&key, "public-key", "", "the partner's signing key printed by 'roundtable init' (hex or base64)")
	c.Flags().StringVar(&p.Address, "address", "", "the partner node's raft address (informational)")
	mustRequire(c, "code", "public-key")
	return c
}

func newReplicaAddCmd() *cobra.Command {
	var r remote
	var rs api.ReplicaSpec
	c := &cobra.Command{
		Use:   "add --id NAME",
		Short: "Register a read replica for researchers (it joins with serve --replica --join)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := nodeID("", rs.ID)
			if err != nil {
				return err
			}
			rs.ID = id
			if err := r.client().AddReplica(cmd.Context(), rs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replica %s registered\n", id)
			return nil
		},
	}
	r.flags(c)
	c.Flags().StringVar(&rs.ID, "id", "", "replica name")
	c.Flags().StringVar(&rs.Address, "address", "", "the replica's raft address (informational)")
	mustRequire(c, "id")
	return c
}

func newNodeRemoveCmd() *cobra.Command {
	var r remote
	var id string
	c := &cobra.Command{
		Use:   "remove --id ID",
		Short: "Remove a partner node or a replica from the ledger",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := r.client().RemoveNode(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s removed\n", id)
			return nil
		},
	}
	r.flags(c)
	c.Flags().StringVar(&id, "id", "", "server id (partner code or replica-NAME)")
	mustRequire(c, "id")
	return c
}

func newCatalogSetCmd() *cobra.Command {
	var r remote
	var file string
	c := &cobra.Command{
		Use:   "set --file CATALOG.json",
		Short: "Add a new catalog version (validated in full) and make it current",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			hash, err := r.client().SetCatalog(cmd.Context(), raw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "catalog %s is now current\n", hash)
			return nil
		},
	}
	r.flags(c)
	c.Flags().StringVar(&file, "file", "", "catalog JSON (GET /v1/catalog shows the current one)")
	mustRequire(c, "file")
	return c
}

func newPolicySetCmd() *cobra.Command {
	var r remote
	var epsCap, rhoCap float64
	c := &cobra.Command{
		Use:   "set (--epsilon-cap E | --rho-cap R)",
		Short: "Set the budget cap per partner per quarter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acc, budget := "pure", epsCap
			if rhoCap > 0 {
				acc, budget = "zcdp", rhoCap
			}
			if err := r.client().SetPolicy(cmd.Context(), acc, budget); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy: %s, cap %g per partner per quarter\n", acc, budget)
			return nil
		},
	}
	r.flags(c)
	c.Flags().Float64Var(&epsCap, "epsilon-cap", 0, "pure ε-DP cap per partner per quarter")
	c.Flags().Float64Var(&rhoCap, "rho-cap", 0, "ρ-zCDP cap per partner per quarter")
	c.MarkFlagsMutuallyExclusive("epsilon-cap", "rho-cap")
	c.MarkFlagsOneRequired("epsilon-cap", "rho-cap")
	return c
}
