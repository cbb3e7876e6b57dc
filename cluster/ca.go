package cluster

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"roundtable/keyseal"
)

// File names used by InitCA, LoadCA, Issue and LoadNodeTLS. They are fixed so
// that an operator can find them and a node directory is self-describing.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// DefaultNodeValidity is how long a node certificate is valid unless
// CA.NodeValidity says otherwise. Ninety days bounds the life of a leaked
// node key (which can still take part in Raft and forward commands until it
// expires or is revoked in the ledger), while leaving a quarter between
// renewals: with RenewWithin's warning a month ahead, renewal is a planned
// task of each quarter's release cycle, not an emergency. See docs/operator.md,
// "Renew a node certificate".
const DefaultNodeValidity = 90 * 24 * time.Hour

// RenewWithin is how long before expiry a node starts warning that its
// certificate needs renewal.
const RenewWithin = 30 * 24 * time.Hour

// caValidity is long because replacing the regional CA means re-issuing every
// node certificate in the consortium.
const caValidity = 10 * 365 * 24 * time.Hour

// identityURIPrefix is the URI SAN scheme that carries a node identity. A URI
// SAN is used (not only the CommonName) because SANs are the field X.509
// tooling is meant to match on; the CN is kept equal for human readers.
const identityURIPrefix = "roundtable:node:"

var replicaIDPattern = regexp.MustCompile(`^replica-[a-z0-9-]{1,32}$`)

// ValidateID reports whether id is an acceptable node identity: a partner code
// of two uppercase letters (ISO 3166-1 alpha-2, including XK for Kosovo), or a
// read-only replica id of the form replica-[a-z0-9-]{1,32}.
func ValidateID(id string) error {
	if isPartnerCode(id) || replicaIDPattern.MatchString(id) {
		return nil
	}
	return fmt.Errorf("invalid node id %q: want a partner code of 2 uppercase letters (e.g. RS, XK) or a replica id matching replica-[a-z0-9-]{1,32} (e.g. replica-research1)", id)
}

func isPartnerCode(id string) bool {
	if len(id) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		if id[i] < 'A' || id[i] > 'Z' {
			return false
		}
	}
	return true
}

// CA is the consortium's regional certificate authority. It signs node
// certificates; its certificate is the only trust root of the cluster.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// NodeValidity is the lifetime of certificates made by Issue; zero means
	// DefaultNodeValidity.
	NodeValidity time.Duration

	key     ed25519.PrivateKey
	certPEM []byte
}

// caKeyPurpose is bound into the sealed CA key's associated data, so a
// coordinator key file offered as the CA key does not open.
const caKeyPurpose = "regional CA key"

// InitCA creates a new regional CA for the named consortium and writes ca.crt
// and ca.key into dir. The key is sealed under passphrase (keyseal: Argon2id
// with params, XChaCha20-Poly1305; mode 0600), so a copy of the CA directory
// alone issues nothing. It refuses to overwrite an existing CA, because doing
// so would silently orphan every issued node certificate, and parameters
// below keyseal's floor.
func InitCA(dir, consortium string, passphrase []byte, params keyseal.Params) (*CA, error) {
	consortium = strings.TrimSpace(consortium)
	if consortium == "" {
		return nil, errors.New("init CA: consortium name is empty; give a name such as \"Western Balkans Roundtable\"")
	}
	for _, name := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("init CA: %s already exists; refusing to overwrite an existing CA (remove it deliberately to start over)", filepath.Join(dir, name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("init CA: %w", err)
		}
	}
	if len(passphrase) == 0 {
		return nil, errors.New("init CA: the passphrase is empty")
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("init CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: consortium + " regional CA", Organization: []string{consortium}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Node certificates are leaves; nobody may run a sub-CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("init CA: create certificate: %w", err)
	}
	sealed, err := keyseal.MarshalKeyFile(caKeyPurpose, key, passphrase, params)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	// Key first, exclusively: if two operators race, one of them fails here.
	if err := writeNew(filepath.Join(dir, CAKeyFile), sealed, 0o600); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := writeNew(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	return &CA{Cert: cert, key: key, certPEM: certPEM}, nil
}

// LoadCA reads ca.crt and ca.key from dir, unseals the key with passphrase
// and checks that they belong together. It refuses a ca.key that others can
// read, one sealed below keyseal's floor and an unencrypted one (as CAs made
// before the key was sealed have), each with the command that fixes it.
func LoadCA(dir string, passphrase []byte) (*CA, error) {
	cert, certPEM, err := loadCACert(dir)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	if err := keyseal.CheckPrivate(keyPath); err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if !keyseal.IsKeyFile(raw) {
		return nil, fmt.Errorf("load CA: %s is not encrypted: run 'roundtable ca rekey --dir %s' to seal it under a passphrase", keyPath, dir)
	}
	key, err := keyseal.ReadKeyFile(keyPath, caKeyPurpose, passphrase)
	if errors.Is(err, keyseal.ErrBelowFloor) {
		return nil, fmt.Errorf("load CA: %w: run 'roundtable ca rekey --dir %s' to re-seal it with the default parameters", err, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if err := keyMatches(cert, key, dir); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key, certPEM: certPEM}, nil
}

// ResealCAKey re-seals the CA key in dir under newPassphrase and params:
// to change the CA passphrase, to strengthen a key sealed below the floor,
// or to seal a key left unencrypted by a release before keys were sealed
// (oldPassphrase is then not needed). The file is replaced atomically.
func ResealCAKey(dir string, oldPassphrase, newPassphrase []byte, params keyseal.Params) error {
	cert, _, err := loadCACert(dir)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("reseal CA key: %w", err)
	}
	if keyseal.IsKeyFile(raw) {
		if err := keyseal.Reseal(keyPath, caKeyPurpose, oldPassphrase, newPassphrase, params); err != nil {
			return fmt.Errorf("reseal CA key: %w", err)
		}
		return nil
	}
	key, err := parseKeyPEM(raw)
	if err != nil {
		return fmt.Errorf("reseal CA key: %s: %w", keyPath, err)
	}
	if err := keyMatches(cert, key, dir); err != nil {
		return err
	}
	if err := keyseal.ReplaceKeyFile(keyPath, caKeyPurpose, key, newPassphrase, params); err != nil {
		return fmt.Errorf("reseal CA key: %w", err)
	}
	return nil
}

func loadCACert(dir string) (*x509.Certificate, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %s: %w", filepath.Join(dir, CACertFile), err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("load CA: %s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	return cert, certPEM, nil
}

func keyMatches(cert *x509.Certificate, key ed25519.PrivateKey, dir string) error {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return fmt.Errorf("load CA: %s does not match the key in %s", filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	}
	return nil
}

// CertPEM returns the PEM encoding of the CA certificate.
func (ca *CA) CertPEM() []byte {
	return append([]byte(nil), ca.certPEM...)
}

// IssuePEM makes a node certificate for id in memory and returns the PEM
// certificate and PKCS#8 key. hosts become DNS or IP SANs; empty hosts means
// 127.0.0.1 and localhost.
func (ca *CA) IssuePEM(id string, hosts []string) (certPEM, keyPEM []byte, err error) {
	if err := ValidateID(id); err != nil {
		return nil, nil, fmt.Errorf("issue: %w", err)
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: generate key: %w", id, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	validity := ca.NodeValidity
	if validity <= 0 {
		validity = DefaultNodeValidity
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id, Organization: ca.Cert.Subject.Organization},
		NotBefore:    now.Add(-5 * time.Minute), // tolerate small clock skew between nodes
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every node both accepts and dials Raft connections.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{{Scheme: "roundtable", Opaque: "node:" + id}},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return nil, nil, fmt.Errorf("issue %s: empty host name in %q", id, hosts)
		case net.ParseIP(h) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: create certificate: %w", id, err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// Issue writes node.crt, node.key (mode 0600) and a copy of ca.crt into outDir
// for the node whose identity is id. It refuses to overwrite an existing
// node.key so that a running node's key is never replaced by accident.
func (ca *CA) Issue(id string, hosts []string, outDir string) error {
	certPEM, keyPEM, err := ca.IssuePEM(id, hosts)
	if err != nil {
		return err
	}
	for _, name := range []string{NodeKeyFile, NodeCertFile} {
		if _, err := os.Stat(filepath.Join(outDir, name)); err == nil {
			return fmt.Errorf("issue %s: %s already exists; refusing to overwrite (remove it deliberately to re-issue)", id, filepath.Join(outDir, name))
		}
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return fmt.Errorf("issue %s: %w", id, err)
	}
	if err := writeNew(filepath.Join(outDir, NodeKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("issue %s: %w", id, err)
	}
	if err := writeNew(filepath.Join(outDir, NodeCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("issue %s: %w", id, err)
	}
	// The CA copy may legitimately exist already (outDir may be the CA dir).
	caPath := filepath.Join(outDir, CACertFile)
	if existing, err := os.ReadFile(caPath); err == nil {
		if string(existing) != string(ca.certPEM) {
			return fmt.Errorf("issue %s: %s holds a different CA certificate", id, caPath)
		}
		return nil
	}
	if err := os.WriteFile(caPath, ca.certPEM, 0o644); err != nil {
		return fmt.Errorf("issue %s: %w", id, err)
	}
	return nil
}

// Renew issues a fresh key and certificate for id and replaces node.key and
// node.crt in outDir atomically (each is written beside the old one, synced
// and renamed over it; the key first, so a crash in between leaves a key
// that does not match the certificate, which LoadNodeTLS reports, rather
// than a valid old pair that looks renewed). outDir must already hold a
// certificate for the same id: renewal never changes a node's identity.
// The node picks up the new files when it restarts; the old certificate
// stays valid until it expires unless the consortium revokes its serial.
func (ca *CA) Renew(id string, hosts []string, outDir string) error {
	old, err := os.ReadFile(filepath.Join(outDir, NodeCertFile))
	if err != nil {
		return fmt.Errorf("renew %s: %w (use issue for a node that has no certificate yet)", id, err)
	}
	oldCert, err := parseCertPEM(old)
	if err != nil {
		return fmt.Errorf("renew %s: existing %s: %w", id, NodeCertFile, err)
	}
	if oldID, err := IdentityOf(oldCert); err != nil || oldID != id {
		return fmt.Errorf("renew %s: %s belongs to %q, not %s; renewal never changes a node's identity", id, filepath.Join(outDir, NodeCertFile), oldID, id)
	}
	certPEM, keyPEM, err := ca.IssuePEM(id, hosts)
	if err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(outDir, NodeKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("renew %s: %w", id, err)
	}
	if err := replaceFile(filepath.Join(outDir, NodeCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("renew %s: %w", id, err)
	}
	return nil
}

// replaceFile writes data beside path, syncs it and renames it over path.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".new"
	_ = os.Remove(tmp) // a leftover from a crashed renewal
	if err := writeNew(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return keyseal.SyncDir(filepath.Dir(path))
}

// IdentityOf returns the node identity carried by cert: the id in its
// roundtable:node:<id> URI SAN, which must be unique, valid and equal to the
// Subject CommonName.
func IdentityOf(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("identity: no certificate")
	}
	var ids []string
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, identityURIPrefix) {
			ids = append(ids, strings.TrimPrefix(s, identityURIPrefix))
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("identity: certificate %q has no %s<id> URI SAN", cert.Subject.CommonName, identityURIPrefix)
	case 1:
	default:
		return "", fmt.Errorf("identity: certificate %q has %d node URI SANs, want exactly one", cert.Subject.CommonName, len(ids))
	}
	id := ids[0]
	if err := ValidateID(id); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	if cert.Subject.CommonName != id {
		return "", fmt.Errorf("identity: certificate CommonName %q disagrees with URI SAN id %q", cert.Subject.CommonName, id)
	}
	return id, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial, nil
}

func marshalKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM \"PRIVATE KEY\" block (want PKCS#8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ed25519", k)
	}
	return key, nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM \"CERTIFICATE\" block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// writeNew creates path exclusively, so an existing file is never clobbered.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
