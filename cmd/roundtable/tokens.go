package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"roundtable/node/api"
)

func newTokenCmd() *cobra.Command {
	t := &cobra.Command{
		Use:   "token",
		Short: "Manage the node's API tokens: create, list, revoke",
		Long: `A token is shown once, when it is made; the node keeps only its SHA-256
hash in DATA-DIR/` + api.TokenFile + `. A running node re-reads that file at the
next request, so a token made, revoked or expired while it runs is accepted
or refused at once (401 with the reason).`,
	}
	t.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return t
}

func newTokenCreateCmd() *cobra.Command {
	var dir, role, name, expires string
	c := &cobra.Command{
		Use:   "create --data-dir DIR --role operator|researcher [--name WHO] [--expires 90d|DATE]",
		Short: "Create an API token (printed once; only its hash is stored)",
		Example: `  roundtable token create --data-dir ./rs --role researcher --name "university of tirana" --expires 90d
  roundtable token create --data-dir ./rs --role operator --name ana --expires 2025-12-31`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := api.ParseRole(role)
			if err != nil {
				return err
			}
			var until time.Time
			if expires != "" {
				if until, err = api.ParseExpiry(expires, time.Now()); err != nil {
					return exitError{err: fmt.Errorf("--expires: %w", err), code: 2}
				}
			}
			ts, err := api.OpenTokenStore(tokenPath(dir))
			if err != nil {
				return err
			}
			tok, err := ts.CreateExpiring(r, name, until)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			valid := "it does not expire"
			if !until.IsZero() {
				valid = "it expires " + until.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token for %s (%s) created; %s. It is shown only now — send it as 'Authorization: Bearer <token>'\n", r, name, valid)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	c.Flags().StringVar(&role, "role", "", "operator or researcher")
	c.Flags().StringVar(&name, "name", "", "whom the token is for (shown in logs and in token list)")
	c.Flags().StringVar(&expires, "expires", "", "expiry: days (90d), weeks (12w), hours (36h), a date (2025-12-31, valid through that day, UTC) or an RFC 3339 time; default never")
	mustRequire(c, "data-dir", "role")
	return c
}

func newTokenListCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "list --data-dir DIR",
		Short: "List the node's tokens: id, role, name, dates, status and last 4 characters (never the token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := api.OpenTokenStore(tokenPath(dir))
			if err != nil {
				return err
			}
			list, err := ts.List()
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no tokens; make one with 'roundtable token create'")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tROLE\tNAME\tCREATED\tEXPIRES\tSTATUS\tTOKEN")
			now := time.Now()
			for _, ti := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ti.ID, ti.Role, orDash(ti.Name),
					ti.Created.Format(time.DateOnly), dateOrNever(ti.Expires), tokenStatus(ti, now), tail(ti.Last4))
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	mustRequire(c, "data-dir")
	return c
}

func newTokenRevokeCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "revoke --data-dir DIR ID",
		Short: "Revoke a token by its id (from token list); a running node refuses it at the next request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := api.OpenTokenStore(tokenPath(dir))
			if err != nil {
				return err
			}
			ti, err := ts.Revoke(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s (%s, %s) revoked; requests with it now get 401\n", ti.ID, ti.Role, orDash(ti.Name))
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory")
	mustRequire(c, "data-dir")
	return c
}

func tokenStatus(ti api.TokenInfo, now time.Time) string {
	switch {
	case !ti.Revoked.IsZero():
		return "revoked " + ti.Revoked.Format(time.DateOnly)
	case !ti.Expires.IsZero() && !now.Before(ti.Expires):
		return "expired"
	}
	return "valid"
}

func dateOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.DateOnly)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tail(last4 string) string {
	if last4 == "" {
		return "-"
	}
	return api.TokenPrefix + "…" + last4
}

func tokenPath(dir string) string { return dir + string(os.PathSeparator) + api.TokenFile }
