// Package tlspin builds the TLS client configuration the gateway uses
// towards an upstream it reaches over HTTPS (a web API, a Kubernetes API
// server): either exactly one pinned certificate, or a chain to a given CA
// (or the system roots) that names the host. The fronts share it so that
// both check an upstream the same way.
package tlspin

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
)

// ClientConfig returns the TLS configuration for an upstream at host
// (a host name or address, no port). With pinSHA256 (64 hex digits, the
// SHA-256 of the leaf certificate's DER) the certificate must be exactly
// that one and no chain or name is checked; otherwise it must chain to
// caPEM (the system roots when empty) and name host.
func ClientConfig(host, pinSHA256, caPEM string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	switch {
	case pinSHA256 != "":
		pin, err := hex.DecodeString(pinSHA256)
		if err != nil || len(pin) != sha256.Size {
			return nil, errors.New("tls_pin_sha256 must be 64 hex digits")
		}
		// The pinned certificate is the whole check: no chain, no name
		// (a self-signed host). VerifyConnection runs on every
		// handshake, resumed ones included.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream presented no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], pin) != 1 {
				return fmt.Errorf("upstream certificate sha256 %x is not the pinned one", got)
			}
			return nil
		}
	case caPEM != "":
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("tls_ca holds no certificate")
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Fingerprint returns the hex SHA-256 of a certificate's DER, the form
// ClientConfig takes as a pin.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
