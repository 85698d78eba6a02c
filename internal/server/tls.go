package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// selfSignedLifetime is how long a generated HTTPS certificate is valid;
// one that has expired (or will within a week) is generated again at start.
const selfSignedLifetime = 365 * 24 * time.Hour

// loadOrCreateTLS returns the HTTPS certificate: the configured pair, or
// the self-signed one in certFile/keyFile, generated when missing or near
// its end, or when it does not cover every one of names (DNS names beyond
// the machine's own: http_host and *.http_host). created reports a new
// certificate, whose fingerprint the operator must hand to clients.
func loadOrCreateTLS(certFile, keyFile string, generate bool, now time.Time, names ...string) (cert tls.Certificate, created bool, err error) {
	if !generate {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
		}
		return cert, false, nil
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	switch {
	case err == nil && cert.Leaf != nil && now.Add(7*24*time.Hour).Before(cert.Leaf.NotAfter) && covers(cert.Leaf.DNSNames, names):
		return cert, false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return tls.Certificate{}, false, fmt.Errorf("load generated TLS certificate %s: %w (delete both files to generate new ones)", certFile, err)
	}
	certPEM, keyPEM, err := selfSigned(now, names)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// The key first, 0600, so that no certificate exists whose key is
	// not on disk.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write TLS key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write TLS certificate: %w", err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("load generated TLS certificate: %w", err)
	}
	return cert, true, nil
}

// covers reports whether have holds every one of want.
func covers(have, want []string) bool {
	for _, n := range want {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

// selfSigned makes an ECDSA P-256 certificate for this host's names,
// extra and the loopback addresses.
func selfSigned(now time.Time, extra []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS serial: %w", err)
	}
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	cn := names[len(names)-1]
	for _, n := range extra {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "portcullis " + cn, Organization: []string{"Portcullis (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// certFingerprint is the SHA-256 of the leaf certificate, in the colon hex
// that browsers and `openssl x509 -fingerprint -sha256` show.
func certFingerprint(cert tls.Certificate) string {
	if len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
