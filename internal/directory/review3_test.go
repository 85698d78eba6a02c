package directory

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/portcullis/portcullis/internal/testenv"
)

// review3Cert makes a self-signed certificate for 127.0.0.1.
func review3Cert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pool
}

// review3Proxy forwards every connection of ln to backend, recording what
// clients sent.
func review3Proxy(t *testing.T, ln net.Listener, backend string) func() []byte {
	t.Helper()
	var mu sync.Mutex
	var seen bytes.Buffer
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(c, b) }()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						mu.Lock()
						seen.Write(buf[:n])
						mu.Unlock()
						if _, werr := b.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(seen.Bytes())
	}
}

// TestReview3ReferralDowngradesTLS: the gateway talks to its directory
// over ldaps:// only, but a referral naming an ldap:// server is followed
// in clear text, and both the service account's password (dialBound) and
// the user's password (Authenticate binds on u.server) are sent there
// unencrypted. A referral must not lower the transport security the
// configuration asks for (nor lead outside the configured servers).
func TestReview3ReferralDowngradesTLS(t *testing.T) {
	const suffix = testenv.LDAPSuffix
	partner := testenv.StartSLAPD(t, testenv.SLAPDOptions{Suffix: suffix, LDIF: strings.Join([]string{
		"dn: " + suffix + "\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
		"dn: ou=partners," + suffix + "\nobjectClass: organizationalUnit\nou: partners\n",
		"dn: uid=dave,ou=partners," + suffix + "\nobjectClass: inetOrgPerson\nuid: dave\ncn: dave\nsn: dave\nuserPassword: dave-pw\n",
	}, "\n")})
	// Clear-text hop in front of the partner, recording what it is sent.
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sniffed := review3Proxy(t, plainLn, fmt.Sprintf("127.0.0.1:%d", partner.Port))
	main := testenv.StartSLAPD(t, testenv.SLAPDOptions{Suffix: suffix, LDIF: strings.Join([]string{
		"dn: " + suffix + "\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
		"dn: ou=people," + suffix + "\nobjectClass: organizationalUnit\nou: people\n",
		"dn: ou=partners," + suffix + "\nobjectClass: referral\nobjectClass: extensibleObject\nou: partners\n" +
			"ref: ldap://" + plainLn.Addr().String() + "/ou=partners," + suffix + "\n",
	}, "\n")})
	// The configured server is reached over TLS only.
	cert, pool := review3Cert(t)
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	review3Proxy(t, tlsLn, fmt.Sprintf("127.0.0.1:%d", main.Port))

	d := newDir(t, Config{
		URLs: []string{"ldaps://" + tlsLn.Addr().String()}, RootCAs: pool,
		BindDN: main.AdminDN, BindPassword: "admin",
		UserBase: suffix, UserFilter: "(&(objectClass=inetOrgPerson)(uid={login}))",
		FollowReferrals: true, Timeout: 5 * time.Second,
	})
	_, err = d.Authenticate(context.Background(), "dave", "dave-pw")
	got := sniffed()
	if bytes.Contains(got, []byte("dave-pw")) {
		t.Errorf("the user's password was sent in clear text to the ldap:// referral server (Authenticate err=%v)", err)
	}
	if bytes.Contains(got, []byte(main.AdminDN)) {
		t.Errorf("the service account bound in clear text to the ldap:// referral server")
	}
}

// TestReview3StartTLSHandshakeHangs: a server that accepts StartTLS and
// then never completes the TLS handshake hangs Lookup forever. go-ldap's
// StartTLS calls tls.Conn.Handshake with no deadline; the per-request
// timeout does not cover it. Issue 6 point 4: a slow directory must fail
// closed within the timeout (an SSH password callback stuck here holds a
// pre-auth slot for good).
func TestReview3StartTLSHandshakeHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			go func() {
				p, err := ber.ReadPacket(c)
				if err != nil || len(p.Children) < 1 {
					return
				}
				id, _ := p.Children[0].Value.(int64)
				resp := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
				resp.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
				ext := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedResponse, nil, "Extended Response")
				ext.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "resultCode"))
				ext.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
				ext.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "diagnosticMessage"))
				resp.AppendChild(ext)
				_, _ = c.Write(resp.Bytes())
				// ... and never speak TLS.
			}()
		}
	}()
	_, pool := review3Cert(t)
	d := newDir(t, Config{URLs: []string{"ldap://" + ln.Addr().String()}, StartTLS: true, RootCAs: pool,
		UserBase: "dc=x", UserFilter: "(uid={login})", Timeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := d.Lookup(context.Background(), "alice")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Lookup = %v, want unavailable", err)
		}
	case <-time.After(30 * time.Second): // a liveness guard, not a measurement
		t.Fatal("Lookup still blocked long after StartTLS was accepted (timeout 300ms): the TLS handshake has no deadline")
	}
}

// TestReview3PoolWaitIgnoresTimeout: waiting for a pooled connection
// must end with the directory's timeout, or a flood of sign-ins against
// a slow directory queues for ever (and holds SSH pre-auth slots). The
// only connection is held; a second get must fail unavailable, not wait.
func TestReview3PoolWaitIgnoresTimeout(t *testing.T) {
	p := newPool(1, 50*time.Millisecond, func() (*ldap.Conn, error) { return nil, errors.New("no dial expected") })
	p.tokens <- struct{}{} // the one connection is in use
	done := make(chan error, 1)
	go func() {
		_, err := p.get(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("get with every connection in use = %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second): // a liveness guard, not a measurement
		t.Fatal("get waited for a connection without bound")
	}
}
