package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// KubeVersion is the kube-apiserver release scripts/install-test-deps.sh
// builds (kube_apiserver_tool).
const KubeVersion = "v1.37.2"

// Kube is a running Kubernetes API server on loopback over its own etcd,
// with RBAC on and static bearer tokens: no controllers, scheduler or
// kubelet run, so objects are created and read but pods never start.
type Kube struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// AdminToken authenticates as user "admin" in system:masters.
	AdminToken string
	// GatewayToken authenticates as user "portcullis-gateway" with no
	// group and no binding: a test grants it what it needs.
	GatewayToken string
	// PinSHA256 is the hex SHA-256 of the API server's self-signed
	// serving certificate.
	PinSHA256 string
	// Kubeconfig is a kubeconfig file for the admin (certificate pinned
	// by CA), for kubectl run by the test directly.
	Kubeconfig string
}

// KubeAPIServer returns the path of the kube-apiserver the install script built.
func KubeAPIServer(t testing.TB) string {
	return GoTool(t, "kube-apiserver", KubeVersion, "kube-apiserver")
}

// StartKube starts etcd (Debian's etcd-server) and kube-apiserver on
// loopback ports in a temporary directory and stops both when the test
// ends. It takes about ten seconds: share one per package.
func StartKube(t testing.TB) *Kube {
	t.Helper()
	Require(t, "etcd")
	bin := KubeAPIServer(t)
	dir := ShortTempDir(t)
	etcdBin, _ := LookBinary("etcd")
	client, peer := FreePort(t), FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	etcd := exec.Command(etcdBin, "--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--log-level", "error")
	var etcdErr syncBuffer
	etcd.Stdout, etcd.Stderr = &etcdErr, &etcdErr
	if err := etcd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = etcd.Process.Kill()
		_ = etcd.Wait()
	})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &Kube{AdminToken: randomHex(t), GatewayToken: randomHex(t)}
	tokens := filepath.Join(dir, "tokens.csv")
	csv := fmt.Sprintf("%s,admin,uid-admin,\"system:masters\"\n%s,portcullis-gateway,uid-gateway\n", k.AdminToken, k.GatewayToken)
	if err := os.WriteFile(tokens, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	certDir := filepath.Join(dir, "certs")
	api := exec.Command(bin, "--etcd-servers", etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--secure-port", strconv.Itoa(port), "--cert-dir", certDir,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", keyFile, "--service-account-signing-key-file", keyFile,
		"--token-auth-file", tokens, "--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24", "--v=0")
	var apiErr syncBuffer
	api.Stdout, api.Stderr = &apiErr, &apiErr
	if err := api.Start(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(func() {
		_ = api.Process.Kill()
		_ = api.Wait()
		if t.Failed() {
			t.Logf("kube-apiserver output (tail):\n%s", tail(apiErr.String(), 4000))
		}
	})
	k.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	// The serving certificate is self-signed; the readiness probe pins
	// what the API server wrote, once it has written it.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after 90s:\n%s\netcd:\n%s", tail(apiErr.String(), 4000), tail(etcdErr.String(), 2000))
		}
		if k.ready(certDir) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	k.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.URL, k.AdminToken)
	if err := os.WriteFile(k.Kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// ready reads the serving certificate and asks /readyz with the admin
// token over a connection pinned to it.
func (k *Kube) ready(certDir string) bool {
	b, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, k.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+k.AdminToken)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	sum := sha256.Sum256(cert.Raw)
	k.PinSHA256 = hex.EncodeToString(sum[:])
	return true
}

// Kubectl runs kubectl as the admin with args and returns its combined
// output, failing the test on an error.
func (k *Kube) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	Require(t, "kubectl")
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
