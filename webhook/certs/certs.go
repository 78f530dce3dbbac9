package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names in the cert dir, the ones cert-manager writes into a TLS Secret.
const (
	CAFile   = "ca.crt"
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Validity of what Generate makes, and how long before expiry Ensure replaces it.
const (
	CAValidity    = 10 * 365 * 24 * time.Hour
	CertValidity  = 365 * 24 * time.Hour
	RenewBefore   = 30 * 24 * time.Hour
	defaultCAName = "prowjob-dispatcher webhook CA"
)

// Bundle is a CA and a serving certificate it signed, PEM-encoded.
type Bundle struct {
	CA   []byte // the CA certificate: the webhook config's caBundle
	Cert []byte // the serving certificate
	Key  []byte // the serving certificate's private key (PKCS#8)
}

// Hosts returns hosts with localhost and 127.0.0.1 added, blanks dropped,
// duplicates removed, in a stable order.
func Hosts(hosts []string) []string {
	out := []string{"localhost", "127.0.0.1"}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// Generate makes a new CA and a serving certificate for hosts (DNS names or
// IP addresses), valid from now.
func Generate(hosts []string, now time.Time) (*Bundle, error) {
	if len(hosts) == 0 {
		return nil, errors.New("certs: no hosts")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: defaultCAName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: serving key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(CertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: serving key: %w", err)
	}
	return &Bundle{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil { // crypto/rand does not fail on supported platforms
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// Ensure makes sure dir holds a CA and a serving certificate for hosts valid
// for at least RenewBefore after now, and returns them. A bundle already in
// dir that passes Verify is kept, so a restart does not change the CA that
// the webhook config trusts; otherwise a new one is generated and written
// (the key with mode 0600, each file replaced atomically).
func Ensure(dir string, hosts []string, now time.Time) (b *Bundle, reused bool, err error) {
	if old, err := Read(dir); err == nil && old.Verify(hosts, now.Add(RenewBefore)) == nil {
		return old, true, nil
	}
	b, err = Generate(hosts, now)
	if err != nil {
		return nil, false, err
	}
	if err := b.Write(dir); err != nil {
		return nil, false, err
	}
	return b, false, nil
}

// Read reads a bundle from dir.
func Read(dir string) (*Bundle, error) {
	var b Bundle
	for name, dst := range map[string]*[]byte{CAFile: &b.CA, CertFile: &b.Cert, KeyFile: &b.Key} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
		*dst = data
	}
	return &b, nil
}

// Write writes the bundle's three files into dir, creating it. The key is
// written first and the certificate last, each by rename, so a watcher never
// pairs a new certificate with an old key for long.
func (b *Bundle) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, b.Key, 0o600}, {CAFile, b.CA, 0o644}, {CertFile, b.Cert, 0o644}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	return nil
}

// Verify checks that the key matches the certificate and that the
// certificate chains to the CA for every host and is still valid at validAt.
func (b *Bundle) Verify(hosts []string, validAt time.Time) error {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("certs: key pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("certs: serving certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.CA) {
		return errors.New("certs: CA: no certificate in PEM")
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: validAt}); err != nil {
			return fmt.Errorf("certs: host %s: %w", h, err)
		}
	}
	return nil
}

// CABundle is the CA as the base64 of its PEM, the form of a webhook config's caBundle.
func (b *Bundle) CABundle() string {
	return base64.StdEncoding.EncodeToString(b.CA)
}
