package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"roundtable/keyseal"
)

const passphraseEnv = "ROUNDTABLE_PASSPHRASE"

// caPassphraseEnv holds the passphrase of the regional CA's key.
const caPassphraseEnv = "ROUNDTABLE_CA_PASSPHRASE"

// warnWeak prints a warning when a new passphrase looks easy to guess. It
// never refuses: the operator may know better.
func warnWeak(w io.Writer, pass []byte) {
	if why := keyseal.Weakness(pass); why != "" {
		fmt.Fprintf(w, "warning: %s\n", why)
	}
}

// addPassphraseFlag adds --passphrase-file to a command that opens a store.
func addPassphraseFlag(c *cobra.Command, name string) *string {
	return c.Flags().String(name, "", "read the store passphrase from this file (default: $"+passphraseEnv+")")
}

// readPassphrase takes the passphrase from a file if given, else from the
// environment, and refuses an empty one.
func readPassphrase(file string) ([]byte, error) { return readSecret(file, passphraseEnv) }

// readSecret reads a passphrase from file if given, else from the
// environment variable env, and refuses an empty one.
func readSecret(file, env string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", file)
		}
		return b, nil
	}
	if v := os.Getenv(env); v != "" {
		return []byte(v), nil
	}
	return nil, errors.New("no passphrase: set " + env + " or pass --passphrase-file FILE")
}
