package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// TestKubernetesWiring runs the whole gateway in front of a real
// kube-apiserver: `portcullis kubeconfig` writes a kubeconfig for a real
// access API key, and stock kubectl with it lists pods through the
// gateway's HTTPS listener (its certificate checked) as the impersonated
// group, and is refused what the policy does not grant.
func TestKubernetesWiring(t *testing.T) {
	testenv.Require(t, "kubectl")
	kube := testenv.StartKube(t)
	objs := filepath.Join(t.TempDir(), "objs.yaml")
	if err := os.WriteFile(objs, []byte(`
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: dev}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: dev}
spec: {nodeName: node-1, automountServiceAccountToken: false, containers: [{name: c, image: busybox}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: portcullis-impersonator}
rules: [{apiGroups: [""], resources: [users, groups], verbs: [impersonate]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: portcullis-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: portcullis-impersonator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: portcullis-gateway}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [pods/exec], verbs: [create, get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: readers}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kube.Kubectl(t, "apply", "-f", objs)
	kube.StartNode(t, "node-1")

	cfg := testConfig(t)
	cfg.HTTPHost = "gw.test"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if _, err := srv.inv.Apply(ctx, []resource.Object{
		&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.Target{Kind: resource.KindTarget, Name: "k1", Protocol: resource.ProtocolKubernetes, HTTP: resource.HTTP{
			URL: kube.URL, TLSPinSHA256: kube.PinSHA256, Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "k1", Name: "gateway", Password: kube.GatewayToken},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-k1", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"readers"},
			KubeRules: []resource.KubeRule{{Verbs: []string{"get", "list"}, Resources: []string{"pods"}, Namespaces: []string{"dev"}},
				{Verbs: []string{"create"}, Resources: []string{"pods/exec"}, Namespaces: []string{"dev"}}}},
		&resource.Policy{Kind: resource.KindPolicy, Name: "record-k1", Type: resource.PolicySessionRecording,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}}},
	}); err != nil {
		t.Fatal(err)
	}
	id, key, err := apikey.New()
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := apikey.Parse(key)
	if err := srv.store.CreateAPIKey(ctx, store.APIKey{ID: id, Name: "kubectl", Kind: store.APIKeyAccess, Owner: "alice",
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	kubeconfig := filepath.Join(t.TempDir(), "k1.kubeconfig")
	var out, errOut bytes.Buffer
	if code := cli.Run(ctx, []string{"kubeconfig", "--target", "k1", "--server", "https://" + srv.APIAddr().String(),
		"--key", key, "-o", kubeconfig}, nil, &out, &errOut); code != 0 {
		t.Fatalf("portcullis kubeconfig: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "SHA-256") {
		t.Fatalf("no fingerprint shown: %q", errOut.String())
	}
	kubectl := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := kubectl("get", "pods", "-n", "dev", "-o", "name"); err != nil || strings.TrimSpace(got) != "pod/web-1" {
		t.Fatalf("kubectl get pods through the gateway: %v\n%s", err, got)
	}
	if got, err := kubectl("get", "pods", "-n", "kube-system"); err == nil || !strings.Contains(got, "portcullis: access denied: alice may not list pods in namespace kube-system (target k1)") {
		t.Fatalf("kubectl get pods -n kube-system: %v\n%s", err, got)
	}
	// An exec is a recorded session: listed, played and searched by the
	// CLI like an SSH session's.
	exe := exec.Command("kubectl", "--kubeconfig", kubeconfig, "exec", "-i", "-n", "dev", "web-1", "--", "sh", "-c", "read x; echo seen-$x")
	exe.Env = append(os.Environ(), "HOME="+t.TempDir())
	exe.Stdin = strings.NewReader("marmot\n")
	if got, err := exe.CombinedOutput(); err != nil || !strings.Contains(string(got), "seen-marmot") {
		t.Fatalf("kubectl exec through the gateway: %v\n%s", err, got)
	}
	portcullis := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := cli.Run(ctx, append([]string{"--data-dir", cfg.DataDir}, args...), strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("portcullis %v: exit %d: %s%s", args, code, out.String(), errOut.String())
		}
		return out.String()
	}
	recs, err := srv.store.ListRecordings(ctx, store.RecordingFilter{})
	if err != nil || len(recs) != 1 || recs[0].Action != "kubernetes exec" {
		t.Fatalf("recordings %+v %v", recs, err)
	}
	if ls := portcullis("recordings", "ls"); !strings.Contains(ls, recs[0].ID) || !strings.Contains(ls, "kubernetes exec") {
		t.Fatalf("recordings ls:\n%s", ls)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		rec, err := srv.store.GetRecording(ctx, recs[0].ID)
		if err == nil && rec.State == store.RecordingEnded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %+v %v never ended", rec, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if play := portcullis("recordings", "play", recs[0].ID, "--speed", "1000"); !strings.Contains(play, "seen-marmot") {
		t.Fatalf("recordings play:\n%s", play)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		if found := portcullis("recordings", "search", "marmot"); strings.Contains(found, recs[0].ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("recordings search never found the exec's output")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every kubectl request is in the command history (issue 19, item
	// 3), read through the API by the CLI: the list, the denied one, and
	// the exec with its session and exit status (the table cuts long
	// commands: --json).
	for _, want := range []string{`"command": "list pods -n dev --as-group readers"`, `"command": "list pods -n kube-system (denied)"`,
		`"command": "create pods/web-1/exec -n dev -c c --as-group readers -- sh -c 'read x; echo seen-$x'"`,
		`"session": "` + recs[0].ID + `"`, `"exit_status": 0`} {
		for deadline := time.Now().Add(15 * time.Second); ; {
			if ls := portcullis("commands", "ls", "--target", "k1", "--json"); strings.Contains(ls, want) {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("commands ls --target k1 lacks %q:\n%s", want, ls)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Run("host routing", func(t *testing.T) {
		testKubeHostRouting(t, ctx, srv, key, filepath.Join(cfg.DataDir, "api_tls.crt"))
	})
	t.Run("exec credential plugin", func(t *testing.T) {
		testKubeCredentialPlugin(t, ctx, srv)
	})
	// The key works as a bearer token only over the gateway's /k8s/
	// path; a wrong key is refused there.
	bad := strings.Replace(string(mustRead(t, kubeconfig)), key, key+"x", 1)
	if err := os.WriteFile(kubeconfig, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := kubectl("get", "pods", "-n", "dev"); err == nil || !strings.Contains(got, "You must be logged in") {
		t.Fatalf("a wrong key: %v\n%s", err, got)
	}
}

// testKubeHostRouting points kubectl at k1.gw.test:PORT (the gateway runs
// with http_host gw.test). No DNS knows that name, and /etc/hosts is not
// touched: kubectl reaches it through the kubeconfig's proxy-url, an HTTP
// CONNECT proxy that sends every *.gw.test connection to the gateway. TLS
// is end to end: kubectl checks the generated certificate (which must
// cover *.gw.test) against the kubeconfig's CA, with server name
// k1.gw.test.
func testKubeHostRouting(t *testing.T, ctx context.Context, srv *Server, key, caFile string) {
	_, port, _ := net.SplitHostPort(srv.APIAddr().String())
	proxy := connectProxy(t, ".gw.test:"+port, srv.APIAddr().String())
	kubeconfig := filepath.Join(t.TempDir(), "k1-host.kubeconfig")
	var out, errOut bytes.Buffer
	if code := cli.Run(ctx, []string{"kubeconfig", "--target", "k1", "--server", "https://gw.test:" + port, "--host-routing",
		"--ca-file", caFile, "--key", key, "-o", kubeconfig}, nil, &out, &errOut); code != 0 {
		t.Fatalf("portcullis kubeconfig --host-routing: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(string(mustRead(t, kubeconfig)), `server: "https://k1.gw.test:`+port+`"`) {
		t.Fatalf("kubeconfig:\n%s", mustRead(t, kubeconfig))
	}
	kubectl := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := kubectl("get", "pods", "-n", "dev", "-o", "name"); err == nil {
		t.Fatalf("kubectl reached k1.gw.test without the proxy (is there DNS for it?): %s", got)
	}
	if got, err := kubectl("config", "set", "clusters.portcullis-k1.proxy-url", proxy); err != nil {
		t.Fatalf("kubectl config set: %v %s", err, got)
	}
	if got, err := kubectl("get", "pods", "-n", "dev", "-o", "name"); err != nil || strings.TrimSpace(got) != "pod/web-1" {
		t.Fatalf("kubectl get pods by host: %v\n%s", err, got)
	}
	if got, err := kubectl("get", "pods", "-n", "kube-system"); err == nil || !strings.Contains(got, "alice may not list pods in namespace kube-system (target k1)") {
		t.Fatalf("kubectl get pods -n kube-system by host: %v\n%s", err, got)
	}
	// Another target's host is the web API front's, whatever the path:
	// neither the API nor the kubernetes front answers it.
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.kubeconfig")
	if err := os.WriteFile(other, bytes.ReplaceAll(b, []byte("https://k1.gw.test"), []byte("https://nope.gw.test")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kubectl", "--kubeconfig", other, "get", "--raw", "/k8s/k1/api/v1/namespaces/dev/pods")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if got, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(got), "NotFound") {
		t.Fatalf("kubectl at an unknown target's host: %v\n%s", err, got)
	}
	for _, host := range []string{"nope.gw.test", "k2.gw.test"} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: host, RootCAs: pool(t, caFile)}}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+srv.APIAddr().String()+"/k8s/k1/api/v1/namespaces/dev/pods", nil)
		req.Host = host + ":" + port
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.TrimSpace(string(body)) != "no such target" {
			t.Fatalf("%s/k8s/k1/...: %d %s", host, resp.StatusCode, body)
		}
	}
}

func pool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(mustRead(t, caFile)) {
		t.Fatal("no CA")
	}
	return p
}

// connectProxy serves HTTP CONNECT on a loopback port for hosts ending in
// suffix, each to dial, and returns its URL.
func connectProxy(t *testing.T, suffix, dial string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || !strings.HasSuffix(r.Host, suffix) {
			http.Error(w, "CONNECT to *"+suffix+" only", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", dial)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() {
			_, _ = io.Copy(up, conn)
			up.Close()
		}()
		_, _ = io.Copy(conn, up)
		conn.Close()
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
