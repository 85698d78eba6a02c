package kubeproxy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// Test API keys: the test's Config.Caller maps them to users (the real
// check is package api's, wired by package server).
var testKeys = map[string]string{"pck_test_alice": "alice", "pck_test_bob": "bob"}

// site is a real kube-apiserver (over etcd) behind the Kubernetes front on
// a TLS listener of its own, with its own store.
type site struct {
	t    *testing.T
	kube *testenv.Kube
	url  string // https://127.0.0.1:PORT
	ca   []byte // PEM of the gateway listener's certificate
	st   store.Store
	inv  *inventory.Inventory
	srv  *kubeproxy.Server
	rec  *recording.Manager
	// recDir is the recordings directory.
	recDir string
	// nextHits counts requests that reached the gateway's own handler.
	nextHits chan string
	// node is the cluster's one node (its kubelet endpoint).
	node *testenv.KubeNode
	// hitsMu guards started and done: requests to the gateway by path,
	// counted as they come in and as their handler returns.
	hitsMu        sync.Mutex
	started, done map[string]int
}

// newSite starts the cluster and the gateway. In the cluster: namespaces
// dev-app and other, each with a pod (never scheduled: there is no
// scheduler) and a secret; RBAC lets the group dev-readers read pods,
// secrets and logs in both namespaces, and lets the gateway's own user
// impersonate. At the gateway: alice and bob in group dev; the policy
// dev-read grants reading pods and logs in dev-* namespaces as the
// cluster group dev-readers.
func newSite(t *testing.T) *site {
	t.Helper()
	kube := testenv.StartKube(t)
	s := &site{t: t, kube: kube, started: map[string]int{}, done: map[string]int{}}
	s.node = kube.StartNode(t, "node-1")
	s.clusterSetup()
	dir := testenv.ShortTempDir(t)
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recording.NewManager(filepath.Join(dir, "rec"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	recCtx, recStop := context.WithCancel(ctx)
	recDone := make(chan struct{})
	go func() { rec.Run(recCtx); close(recDone) }()
	t.Cleanup(func() { recStop(); <-recDone })
	s.rec = rec
	srv, err := kubeproxy.New(kubeproxy.Config{Snapshot: inv.Snapshot, Vault: v, Audit: audit.New(st, log), Log: log, Recordings: rec,
		Commands: st, Caller: func(r *http.Request) (kubeproxy.Caller, bool, error) {
			k := r.Header.Get("X-Api-Key")
			if k == "" {
				return kubeproxy.Caller{}, false, nil
			}
			if u, ok := testKeys[k]; ok {
				return kubeproxy.Caller{User: u, Key: "key-" + u}, true, nil
			}
			return kubeproxy.Caller{}, false, fmt.Errorf("invalid API key")
		}})
	if err != nil {
		t.Fatal(err)
	}
	inv.Subscribe(srv.Recheck)
	s.recDir = filepath.Join(dir, "rec")
	hits := make(chan string, 100)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hits <- r.URL.Path:
		default:
		}
		_, _ = io.WriteString(w, "the gateway's own API")
	})
	front := srv.Wrap(next)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hitsMu.Lock()
		s.started[r.URL.Path]++
		s.hitsMu.Unlock()
		defer func() {
			s.hitsMu.Lock()
			s.done[r.URL.Path]++
			s.hitsMu.Unlock()
		}()
		front.ServeHTTP(w, r)
	}))
	hs.StartTLS()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		srv.Close()
	})
	s.url, s.st, s.inv, s.srv, s.nextHits = hs.URL, st, inv, srv, hits
	s.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	s.apply(t,
		&resource.User{Kind: resource.KindUser, Name: "alice", Groups: []string{"dev"}},
		&resource.User{Kind: resource.KindUser, Name: "bob", Groups: []string{"dev"}},
		&resource.Target{Kind: resource.KindTarget, Name: "k1", Protocol: resource.ProtocolKubernetes,
			HTTP: resource.HTTP{URL: kube.URL, TLSPinSHA256: kube.PinSHA256,
				Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "k1", Name: "gateway", Password: kube.GatewayToken},
		devRead(),
	)
	return s
}

func devRead() *resource.Policy {
	return &resource.Policy{Kind: resource.KindPolicy, Name: "dev-read", Type: resource.PolicyKubernetes,
		Subjects: resource.Subjects{Groups: []string{"dev"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
		ClusterGroups: []string{"dev-readers"},
		KubeRules: []resource.KubeRule{{Verbs: []string{"get", "list", "watch"}, Resources: []string{"pods", "pods/log"},
			Namespaces: []string{"dev-*"}}}}
}

const clusterObjects = `
apiVersion: v1
kind: Namespace
metadata: {name: dev-app}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: portcullis-impersonator}
rules:
- {apiGroups: [""], resources: [users, groups], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: portcullis-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: portcullis-impersonator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: portcullis-gateway}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- {apiGroups: [""], resources: [pods, pods/log, secrets], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [pods/exec, pods/attach, pods/portforward], verbs: [create, get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dev-readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: dev-readers}
`

func podYAML(ns, name string) string {
	return fmt.Sprintf(`
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  nodeName: node-1
  automountServiceAccountToken: false
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Secret
metadata: {name: db-pass, namespace: %[1]s}
stringData: {password: hunter2}
`, ns, name)
}

func (s *site) clusterSetup() {
	s.t.Helper()
	f := filepath.Join(s.t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(clusterObjects+podYAML("dev-app", "web-1")+podYAML("dev-app", "web-2")+podYAML("other", "db-0")), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.kube.Kubectl(s.t, "apply", "-f", f)
}

func (s *site) apply(t *testing.T, objs ...resource.Object) {
	t.Helper()
	if _, err := s.inv.Apply(context.Background(), objs); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// kubeconfig writes a kubeconfig for user's API key that points kubectl at
// the gateway's path for k1, the gateway's certificate as the CA.
func (s *site) kubeconfig(key string) string {
	s.t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gw
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: me
  user: {token: %q}
contexts:
- name: gw
  context: {cluster: gw, user: me}
current-context: gw
`, s.url+"/k8s/k1", base64.StdEncoding.EncodeToString(s.ca), key)
	p := filepath.Join(s.t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// kubectl runs the real kubectl with a kubeconfig and returns its combined
// output and exit code.
func kubectl(t *testing.T, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	testenv.Require(t, "kubectl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// waitEvent polls for a kube.request audit event that match accepts: the
// front's audit writer writes after the answer.
func (s *site) waitEvent(t *testing.T, match func(store.AuditEvent) bool) store.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := s.st.ListAudit(context.Background(), store.AuditFilter{Type: kubeproxy.EventRequest})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, ev := range evs {
				all = append(all, fmt.Sprintf("%s %q %v", ev.Outcome, ev.Message, ev.Detail))
			}
			t.Fatalf("no matching kube.request event; have:\n%s", strings.Join(all, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requests waits until every request to path that came in has been
// answered, and returns how many there were. A request's audit events are
// queued before its handler returns.
func (s *site) requests(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		s.hitsMu.Lock()
		started, done := s.started[path], s.done[path]
		s.hitsMu.Unlock()
		if started == done {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests, %d answered", path, started, done)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is an HTTP client of the gateway that trusts its certificate.
func (s *site) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// TestKubernetesFront runs stock kubectl, and raw requests that try to get
// around the front, through the gateway to a real kube-apiserver. One
// cluster serves every subtest (it takes ~10 s to start).
func TestKubernetesFront(t *testing.T) {
	s := newSite(t)
	alice := s.kubeconfig("pck_test_alice")

	t.Run("kubectl", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			args     []string
			wantCode int
			want     []string
		}{
			{"get pods", []string{"get", "pods", "-n", "dev-app", "-o", "name"}, 0, []string{"pod/web-1"}},
			{"get pods in another namespace", []string{"get", "pods", "-n", "other"}, 1,
				[]string{"Forbidden", "portcullis: access denied: alice may not list pods in namespace other (target k1)"}},
			{"get pods in every namespace", []string{"get", "pods", "-A"}, 1, []string{"alice may not list pods (target k1)"}},
			{"get secrets: RBAC would allow, the policy does not", []string{"get", "secret", "db-pass", "-n", "dev-app"}, 1,
				[]string{"alice may not get secrets db-pass in namespace dev-app"}},
			{"delete a pod", []string{"delete", "pod", "web-1", "-n", "dev-app", "--wait=false"}, 1, []string{"may not delete pods web-1"}},
			{"as system:admin", []string{"get", "pods", "-n", "dev-app", "--as", "system:admin"}, 1,
				[]string{`may not act as cluster user "system:admin"`}},
			{"as system:masters", []string{"get", "pods", "-n", "dev-app", "--as", "alice", "--as-group", "system:masters"}, 1,
				[]string{`may not act as cluster group "system:masters"`}},
			{"exec is a subresource of its own", []string{"exec", "-n", "dev-app", "web-1", "--", "true"}, 1,
				[]string{"may not create pods/exec web-1 in namespace dev-app"}},
			{"can-i list pods", []string{"auth", "can-i", "list", "pods", "-n", "dev-app"}, 0, []string{"yes"}},
			{"can-i list pods in other", []string{"auth", "can-i", "list", "pods", "-n", "other"}, 1, []string{"no"}},
			{"can-i get secrets (RBAC yes, policy no)", []string{"auth", "can-i", "get", "secrets", "-n", "dev-app"}, 1, []string{"no"}},
			{"can-i delete pods", []string{"auth", "can-i", "delete", "pods", "-n", "dev-app"}, 1, []string{"no"}},
			{"whoami: RBAC sees the impersonated identity", []string{"auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"}, 0,
				[]string{"alice", "dev-readers"}},
			{"version", []string{"version", "-o", "json"}, 0, []string{`"gitVersion": "v1.37.2"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, code := kubectl(t, alice, tc.args...)
				if code != tc.wantCode {
					t.Fatalf("kubectl %v: exit %d, want %d:\n%s", tc.args, code, tc.wantCode, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Fatalf("kubectl %v output lacks %q:\n%s", tc.args, w, out)
					}
				}
				if strings.Contains(out, "system:masters") && tc.wantCode == 0 {
					t.Fatalf("the client got system:masters:\n%s", out)
				}
			})
		}
		ev := s.waitEvent(t, func(ev store.AuditEvent) bool {
			return ev.Outcome == audit.Success && ev.Detail["verb"] == "list" && ev.Detail["namespace"] == "dev-app"
		})
		if ev.User != "alice" || ev.Account != "alice" || ev.Policy != "dev-read" || ev.Detail["resource"] != "pods" ||
			fmt.Sprint(ev.Detail["cluster_groups"]) != "[dev-readers]" || ev.Detail["status"] == nil || ev.Detail["latency_ms"] == nil {
			t.Fatalf("audit event %+v", ev)
		}
		s.waitEvent(t, func(ev store.AuditEvent) bool {
			return ev.Outcome == audit.Deny && ev.Detail["namespace"] == "other" && strings.Contains(ev.Message, "may not list pods")
		})
	})

	t.Run("exec with stdin and exit code", func(t *testing.T) {
		s.apply(t, &resource.Policy{Kind: resource.KindPolicy, Name: "alice-exec", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"dev-readers"},
			KubeRules:     []resource.KubeRule{{Verbs: []string{"create"}, Resources: []string{"pods/exec"}, Namespaces: []string{"dev-app"}, Names: []string{"web-1"}}}})
		t.Cleanup(func() { _ = s.inv.Delete(context.Background(), resource.KindPolicy, "alice-exec") })
		testenv.Require(t, "kubectl")
		// kubectl's default (WebSocket, v5.channel.k8s.io), then SPDY,
		// its fallback, forced: both legs carry the gateway's
		// impersonation (RBAC here grants exec to dev-readers only).
		for _, websockets := range []string{"true", "false"} {
			cmd := exec.Command("kubectl", "--kubeconfig", alice, "exec", "-i", "-n", "dev-app", "web-1", "--", "sh", "-c", "read x; echo got $x; exit 3")
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+websockets)
			cmd.Stdin = strings.NewReader("hello\n")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "got hello") {
				t.Fatalf("kubectl exec (websockets %s): %v\n%s", websockets, err, out)
			}
		}
		s.waitEvent(t, func(ev store.AuditEvent) bool {
			return ev.Outcome == audit.Success && ev.Detail["subresource"] == "exec" && ev.Detail["method"] == "POST"
		})
		s.waitEvent(t, func(ev store.AuditEvent) bool {
			return ev.Outcome == audit.Success && ev.Detail["subresource"] == "exec" && ev.Detail["name"] == "web-1" && ev.Policy == "alice-exec"
		})
		// A running exec is a live session: listed, and ended by Kill.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		long := exec.CommandContext(ctx, "kubectl", "--kubeconfig", alice, "exec", "-n", "dev-app", "web-1", "--", "sleep", "20")
		long.Env = append(os.Environ(), "HOME="+t.TempDir())
		var longOut strings.Builder
		long.Stdout, long.Stderr = &longOut, &longOut
		if err := long.Start(); err != nil {
			t.Fatal(err)
		}
		var id string
		for deadline := time.Now().Add(20 * time.Second); id == ""; {
			for _, ls := range s.srv.List() {
				if ls.Command == "sleep 20" && ls.User == "alice" && ls.Action == "kubernetes exec" && ls.Connection == "dev-app/web-1" {
					id = ls.ID
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the exec never showed in the session list: %+v", s.srv.List())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := s.srv.Kill(id, "admin", "maintenance"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = long.Wait()
		if ctx.Err() != nil {
			t.Fatalf("the killed exec ran on: %s", longOut.String())
		}
		t.Logf("killed exec ended after %v", time.Since(start))
		s.waitEvent(t, func(ev store.AuditEvent) bool {
			return ev.Outcome == audit.Deny && ev.Message == "ended: killed by admin: maintenance" && ev.Detail["command"] == "sleep 20"
		})
		if err := s.srv.Kill(id, "admin", "again"); err == nil {
			t.Fatal("killing an ended session succeeded")
		}

		// Another pod in the same namespace is not granted.
		out2, code := kubectl(t, alice, "exec", "-n", "dev-app", "web-2", "--", "true")
		if code == 0 || !strings.Contains(out2, "may not create pods/exec web-2 in namespace dev-app") {
			t.Fatalf("exec into web-2: exit %d\n%s", code, out2)
		}
	})
	t.Run("sessions", func(t *testing.T) { testSessions(t, s, alice) })
	t.Run("command history", func(t *testing.T) { testHistory(t, s, alice) })
	t.Run("attacks", func(t *testing.T) { testAttacks(t, s) })
	t.Run("revocation ends a watch", func(t *testing.T) { testWatchRevoked(t, s, alice) })

	// Every forwarded request, streams included, ends with its client.
	for deadline := time.Now().Add(30 * time.Second); s.srv.Live() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still live after their clients ended: %+v", s.srv.Live(), s.srv.List())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get sends one raw request through the gateway with alice's key and
// extra headers, and returns the status and body.
func (s *site) get(t *testing.T, method, path string, hdr map[string][]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer pck_test_alice")
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func testAttacks(t *testing.T, s *site) {
	const whoami = "/k8s/k1/apis/authentication.k8s.io/v1/selfsubjectreviews"
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		hdr        map[string][]string
		wantStatus int
		want       string
	}{
		// GHSA-44c9-68w4-qf5j: front-proxy headers forwarded to the API
		// server. Here they are removed, and the API server sees alice.
		{"x-remote headers are stripped", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"X-Remote-User": {"admin"}, "X-Remote-Group": {"system:masters"}}, 200, `"name":"web-1"`},
		// The reverse proxy deletes what Connection names after the
		// gateway set its headers: naming them must not drop them.
		{"connection names the impersonation", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Connection": {"Impersonate-User, Impersonate-Group"}}, 200, `"name":"web-1"`},
		{"connection names the credential", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Connection": {"Authorization"}}, 200, `"name":"web-1"`},
		{"impersonate-user header", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Impersonate-User": {"admin"}}, 403, `may not act as cluster user \"admin\"`},
		{"impersonate-group without user", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Impersonate-Group": {"system:masters"}}, 400, "Impersonate-Group needs Impersonate-User"},
		{"impersonate-extra", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Impersonate-Extra-Scopes": {"x"}}, 400, "is not supported"},
		{"two impersonate-user headers", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods",
			map[string][]string{"Impersonate-User": {"alice", "admin"}}, 400, "one Impersonate-User"},
		{"encoded slash moves the namespace", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app%2F..%2Fother/pods", nil, 400, "percent-encoded"},
		{"encoded letters", http.MethodGet, "/k8s/k1/api/v1/namespaces/%6fther/pods", nil, 400, "percent-encoded"},
		{"dot segments", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/../other/pods", nil, 400, "dot segments"},
		{"empty segment", http.MethodGet, "/k8s/k1/api/v1/namespaces//pods", nil, 400, "empty path segments"},
		{"pod proxy subresource", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/proxy/", nil, 403, "may not get pods/proxy web-1"},
		{"old proxy verb path", http.MethodGet, "/k8s/k1/api/v1/proxy/namespaces/dev-app/pods/web-1", nil, 403, "may not proxy pods web-1"},
		{"service proxy", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/services/web:80/proxy/", nil, 403, "may not get services/proxy"},
		{"portforward over websocket", http.MethodGet, "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/portforward?ports=80", nil, 403, "may not create pods/portforward"},
		{"attach", http.MethodPost, "/k8s/k1/api/v1/namespaces/dev-app/pods/web-1/attach?stdout=true", nil, 403, "may not create pods/attach"},
		{"watch via the watch prefix", http.MethodGet, "/k8s/k1/api/v1/watch/namespaces/other/pods", nil, 403, "may not watch pods in namespace other"},
		{"non-resource path", http.MethodGet, "/k8s/k1/metrics", nil, 403, "is not a resource request"},
		{"logs of the API server", http.MethodGet, "/k8s/k1/logs/", nil, 403, "is not a resource request"},
		{"discovery is allowed", http.MethodGet, "/k8s/k1/api", nil, 200, `"kind":"APIVersions"`},
		{"unknown target", http.MethodGet, "/k8s/nope/api", nil, 403, "alice may not reach nope"},
		{"whoami with a forged identity", http.MethodPost, whoami,
			map[string][]string{"X-Remote-User": {"admin"}, "Content-Type": {"application/json"}}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.get(t, tc.method, tc.path, tc.hdr)
			if tc.wantStatus == 400 && tc.want == "" {
				// The whoami POST without a body: the API server answers,
				// as alice; what matters is that no 2xx says admin.
				if strings.Contains(body, `"username":"admin"`) {
					t.Fatalf("the API server saw admin: %s", body)
				}
				return
			}
			if code != tc.wantStatus || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.wantStatus, tc.want)
			}
		})
	}
	t.Run("no key, another key, plain console cookie", func(t *testing.T) {
		for _, auth := range []string{"", "Bearer pck_wrong", "Basic YWxpY2U6eA=="} {
			req, _ := http.NewRequest(http.MethodGet, s.url+"/k8s/k1/api/v1/namespaces/dev-app/pods", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			req.Header.Set("X-Api-Key", "pck_test_alice") // only a bearer token counts
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("Authorization %q: status %d, want 401", auth, resp.StatusCode)
			}
		}
	})
	t.Run("other paths reach the gateway itself", func(t *testing.T) {
		code, body := s.get(t, http.MethodGet, "/api/v1/users", nil)
		if code != 200 || body != "the gateway's own API" {
			t.Fatalf("%d %q", code, body)
		}
	})
}

// testWatchRevoked opens a watch with kubectl, revokes the policy, and
// checks that the stream ends and the audit trail says why.
func testWatchRevoked(t *testing.T, s *site, kubeconfig string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", "dev-app", "-w", "-o", "name")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "pod/web-1" {
		t.Fatalf("watch printed %q first; stderr %s", lines.Text(), stderr.String())
	}
	// The list is answered; wait until the watch itself is live.
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.Watches() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch never became a live request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The watch is on record while it runs, before its kube.request.
	evs, err := s.st.ListAudit(context.Background(), store.AuditFilter{Type: kubeproxy.EventStart})
	if err != nil {
		t.Fatal(err)
	}
	started := false
	for _, ev := range evs {
		started = started || ev.Detail["verb"] == "watch" && ev.Outcome == audit.Info && strings.HasPrefix(ev.Message, "started: get ")
	}
	if !started {
		t.Fatalf("no kube.start event for the live watch: %+v", evs)
	}
	// Revoke: the policy goes.
	if err := s.inv.Delete(context.Background(), resource.KindPolicy, "dev-read"); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
	}
	_ = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("the watch outlived the revocation")
	}
	s.waitEvent(t, func(ev store.AuditEvent) bool {
		return ev.Outcome == audit.Deny && strings.HasPrefix(ev.Message, "ended: access revoked") && ev.Detail["verb"] == "watch"
	})
	// And kubectl, which would retry the watch, is now refused.
	out, code := kubectl(t, kubeconfig, "get", "pods", "-n", "dev-app")
	if code == 0 || !strings.Contains(out, "alice may not reach k1") {
		t.Fatalf("after revocation: exit %d\n%s", code, out)
	}
	s.apply(t, devRead())
}
