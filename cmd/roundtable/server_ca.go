package main

import (
	"github.com/spf13/pflag"

	"roundtable/node/client"
)

// caCertFlag adds --ca-cert to a command that reaches a node with
// --server: a node serving its HTTPS certificate from the regional CA
// (serve --tls-from-ca) is trusted by researchers' and coordinators'
// machines only through that CA's certificate.
func caCertFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "ca-cert", "", "for an https:// --server: also trust the CA certificates in this PEM file (the regional CA's ca.crt for a node served with --tls-from-ca)")
}

// nodeClient is client.New for --server, trusting --ca-cert as well.
func nodeClient(server, token, caFile string) (*client.Client, error) {
	hc, err := client.HTTPClient(caFile, client.Timeout)
	if err != nil {
		return nil, err
	}
	return client.NewWith(server, token, hc), nil
}
