package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPSOffersOnlyAEAD: in TLS 1.2 the HTTPS listener takes only ECDHE
// with AES-GCM or ChaCha20-Poly1305. A client offering only CBC suites
// (or static RSA key exchange) fails the handshake; one offering an AEAD
// suite, and a TLS 1.3 client, succeed.
func TestHTTPSOffersOnlyAEAD(t *testing.T) {
	dir := t.TempDir()
	cert, _, err := loadOrCreateTLS(filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", httpsTLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	tests := []struct {
		name   string
		max    uint16
		suites []uint16
		ok     bool
	}{
		{"TLS 1.2 CBC only", tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256}, false},
		{"TLS 1.2 static RSA only", tls.VersionTLS12, []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false},
		{"TLS 1.2 AES-GCM", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS 1.2 ChaCha20", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.3", tls.VersionTLS13, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
				RootCAs: roots, ServerName: leaf.DNSNames[0], MaxVersion: tt.max, CipherSuites: tt.suites})
			if err == nil {
				state := c.ConnectionState()
				c.Close()
				if !tt.ok {
					t.Fatalf("handshake succeeded with %s", tls.CipherSuiteName(state.CipherSuite))
				}
				return
			}
			if tt.ok {
				t.Fatalf("handshake failed: %v", err)
			}
			if !strings.Contains(err.Error(), "handshake failure") && !strings.Contains(err.Error(), "no cipher suite") {
				t.Fatalf("failed for another reason: %v", err)
			}
		})
	}
}
