package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"roundtable/cluster"
	"roundtable/keyseal"
)

// ErrClearTextHTTP refuses plain HTTP on an address other machines can
// reach: API tokens and uploaded case records would cross the network
// readable by anyone on it (issue 10).
var ErrClearTextHTTP = errors.New("plain HTTP on a non-loopback address")

// checkHTTPExposure refuses to serve plain HTTP on addr unless addr is a
// loopback address (only this machine can connect) or the operator said
// --insecure-http. A host name other than localhost counts as reachable:
// what it resolves to can change.
func checkHTTPExposure(addr string, https, insecure bool) error {
	if https || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--http %s: %w. Other machines can connect there, and without TLS the API's tokens and "+
		"uploaded case records cross the network in clear text. Serve HTTPS with --tls-cert FILE --tls-key FILE "+
		"(or --tls-from-ca), or listen on 127.0.0.1 behind a TLS proxy; only on a network you control end to end, "+
		"add --insecure-http (docs/operator.md, \"HTTPS for the dashboard and API\")", addr, ErrClearTextHTTP)
}

// httpsConfig returns the API's TLS configuration, or nil for plain HTTP.
func httpsConfig(cfg Config, node *cluster.NodeTLS, log *slog.Logger) (*tls.Config, error) {
	switch {
	case cfg.TLSFromCA && (cfg.TLSCert != "" || cfg.TLSKey != ""):
		return nil, errors.New("--tls-from-ca serves the node's own certificate; give it or --tls-cert and --tls-key, not both")
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: the certificate (chain) and its private key, PEM")
	case cfg.TLSFromCA:
		cert := node.Certificate()
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
	case cfg.TLSCert == "":
		return nil, nil
	}
	if err := keyseal.CheckPrivate(cfg.TLSKey); err != nil {
		return nil, fmt.Errorf("--tls-key: %w", err)
	}
	kp := &keyPairFiles{cert: cfg.TLSCert, key: cfg.TLSKey, log: log}
	if err := kp.reload(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}, nil
}

// keyPairFiles serves a certificate from files, reloading them when
// either changes, so a renewal (certbot, the organisation's CA) needs no
// restart. A pair that does not load (a renewal half written) leaves the
// previous one in use.
type keyPairFiles struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	pair    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

func (k *keyPairFiles) reload() error {
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("HTTPS certificate %s and key %s: %w", k.cert, k.key, err)
	}
	k.pair, k.stamp = &pair, k.stamps()
	return nil
}

func (k *keyPairFiles) stamps() [2]time.Time {
	var s [2]time.Time
	for i, p := range []string{k.cert, k.key} {
		if fi, err := os.Stat(p); err == nil {
			s[i] = fi.ModTime()
		}
	}
	return s
}

// get is tls.Config.GetCertificate; it looks at the files at most once
// every ten seconds.
func (k *keyPairFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) > 10*time.Second {
		k.checked = now
		if k.stamps() != k.stamp {
			if err := k.reload(); err != nil {
				k.log.Warn("HTTPS certificate changed but does not load; still serving the previous one", "error", err)
			} else {
				k.log.Info("HTTPS certificate reloaded", "cert", k.cert)
			}
		}
	}
	return k.pair, nil
}
