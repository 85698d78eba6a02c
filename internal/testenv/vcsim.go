package testenv

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// govmomi is the release whose module still holds vcsim and govc (later
// ones moved them out); scripts/install-test-deps.sh builds both.
const (
	GovmomiVersion = "v0.46.0"
	govmomiTool    = "govmomi"
)

// VCSim is a running vCenter simulator (vcsim) on loopback, serving the
// vSphere SOAP API at /sdk and the REST session call, with a certificate
// from its own test CA.
type VCSim struct {
	// URL is https://127.0.0.1:PORT (no path, no user).
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// User and Password are the only credentials vcsim accepts.
	User, Password string
	// CAPEM is the CA that signed vcsim's certificate.
	CAPEM []byte
	cmd   *exec.Cmd
}

// Govc returns the path of govc built with vcsim.
func Govc(t testing.TB) string { return GoTool(t, govmomiTool, GovmomiVersion, "govc") }

// StartVCSim starts vcsim with the default inventory (one datacenter DC0,
// a cluster of 3 hosts, VMs DC0_H0_VM0, DC0_C0_RP0_VM0, ...) accepting
// only user and password, and stops it when the test ends.
func StartVCSim(t testing.TB, user, password string) *VCSim {
	t.Helper()
	bin := GoTool(t, govmomiTool, GovmomiVersion, "vcsim")
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := testServerCert(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-l", "127.0.0.1:0", "-username", user, "-password", password, "-E", "-",
		"-tlscert", certFile, "-tlskey", keyFile)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vcsim: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// vcsim prints "export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk
	// GOVC_SIM_PID=..." once it listens.
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "GOVC_URL=") {
				line <- sc.Text()
				break
			}
		}
		close(line)
		// Drain, so that vcsim never blocks on a full pipe.
		for sc.Scan() {
		}
	}()
	var l string
	select {
	case l = <-line:
	case <-time.After(60 * time.Second):
		t.Fatalf("vcsim did not start: %s", stderr.String())
	}
	for _, f := range strings.Fields(l) {
		if v, ok := strings.CutPrefix(f, "GOVC_URL="); ok {
			u, err := url.Parse(v)
			if err != nil {
				t.Fatalf("vcsim url %q: %v", v, err)
			}
			return &VCSim{URL: "https://" + u.Host, Addr: u.Host, User: user, Password: password, CAPEM: caPEM, cmd: cmd}
		}
	}
	t.Fatalf("vcsim printed no GOVC_URL: %q %s", l, stderr.String())
	return nil
}

// testServerCert returns a CA certificate and a server certificate and
// key it signed for an IP address host, all PEM.
func testServerCert(t testing.TB, host string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(host)}, DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
