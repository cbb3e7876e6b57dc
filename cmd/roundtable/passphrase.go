package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

const passphraseEnv = "ROUNDTABLE_PASSPHRASE"

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
