//go:build bench

package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// TestKubeCompare measures the Kubernetes front (issue 19, item 6) side by
// side with direct requests to the same kube-apiserver, alternating: the
// wall time of a whole `kubectl get pods` (process start, discovery,
// list) KUBE_BENCH_KUBECTL times per leg, and the list requests per second
// of GET /api/v1/namespaces/bench/pods (KUBE_BENCH_PODS pods) from
// KUBE_BENCH_CONC clients for KUBE_BENCH_SECONDS. Both legs impersonate the
// same identity (the direct one with the admin token and Impersonate-*
// headers, as the gateway does with its own), so the API server does the
// same work. It reports; it never fails on a timing.
//
//	go test -tags bench -run TestKubeCompare -v -count=1 -timeout 10m ./bench/
func TestKubeCompare(t *testing.T) {
	runs := pgEnvInt(t, "KUBE_BENCH_KUBECTL", 20, 1, 1000)
	seconds := pgEnvInt(t, "KUBE_BENCH_SECONDS", 5, 1, 600)
	pairs := pgEnvInt(t, "KUBE_BENCH_PAIRS", 3, 1, 50)
	conc := pgEnvInt(t, "KUBE_BENCH_CONC", 4, 1, 256)
	pods := pgEnvInt(t, "KUBE_BENCH_PODS", 20, 1, 1000)
	testenv.Require(t, "kubectl")

	kube := startKubeBench(t, pods)
	gwURL, gwCA := startKubeGateway(t, kube, true)

	dir := t.TempDir()
	viaGW := filepath.Join(dir, "gw.kubeconfig")
	direct := filepath.Join(dir, "direct.kubeconfig")
	writeKubeconfig(t, viaGW, gwURL+"/k8s/k1", "pck_bench_alice", base64.StdEncoding.EncodeToString(gwCA), "")
	writeKubeconfig(t, direct, kube.URL, kube.AdminToken, "", "alice")

	out := os.Stdout
	fmt.Fprintf(out, "\n== Kubernetes front: kubectl get pods (%d pods), %d runs per leg, alternating ==\n", pods, runs)
	var gwRun, dirRun []time.Duration
	for i := 0; i < runs; i++ {
		gwRun = append(gwRun, timeKubectl(t, viaGW))
		dirRun = append(dirRun, timeKubectl(t, direct, "--as", "alice", "--as-group", "readers"))
	}
	slices.Sort(gwRun)
	slices.Sort(dirRun)
	p := func(v []time.Duration, q float64) time.Duration { return v[int(q*float64(len(v)-1))] }
	fmt.Fprintf(out, "kubectl get pods: gateway p50 %v p90 %v, direct p50 %v p90 %v, ratio %.2fx\n",
		p(gwRun, .5).Round(time.Millisecond), p(gwRun, .9).Round(time.Millisecond),
		p(dirRun, .5).Round(time.Millisecond), p(dirRun, .9).Round(time.Millisecond), float64(p(gwRun, .5))/float64(p(dirRun, .5)))

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 256}}
	gwLeg := listLeg{client: client, url: gwURL + "/k8s/k1/api/v1/namespaces/bench/pods", hdr: http.Header{"Authorization": {"Bearer pck_bench_alice"}}}
	dirLeg := listLeg{client: client, url: kube.URL + "/api/v1/namespaces/bench/pods", hdr: http.Header{"Authorization": {"Bearer " + kube.AdminToken},
		"Impersonate-User": {"alice"}, "Impersonate-Group": {"readers"}}}
	fmt.Fprintf(out, "== list pods (%d pods), %d clients x %ds, %d pairs ==\n", pods, conc, seconds, pairs)
	var gwRPS, dirRPS []float64
	for i := 0; i < pairs; i++ {
		g := gwLeg.throughput(t, conc, time.Duration(seconds)*time.Second)
		d := dirLeg.throughput(t, conc, time.Duration(seconds)*time.Second)
		gwRPS, dirRPS = append(gwRPS, g/float64(seconds)), append(dirRPS, d/float64(seconds))
		fmt.Fprintf(out, "pair %d: gateway %.0f lists/s, direct %.0f lists/s\n", i+1, gwRPS[i], dirRPS[i])
	}
	fmt.Fprintf(out, "median: gateway %.0f lists/s, direct %.0f lists/s, ratio %.2fx\n", pgMedian(gwRPS), pgMedian(dirRPS), pgMedian(gwRPS)/pgMedian(dirRPS))
	var gwLat, dirLat []time.Duration
	for i := 0; i < 200; i++ {
		gwLat = append(gwLat, gwLeg.once(t))
		dirLat = append(dirLat, dirLeg.once(t))
	}
	slices.Sort(gwLat)
	slices.Sort(dirLat)
	fmt.Fprintf(out, "list latency, one at a time (200 per leg): gateway p50 %v p99 %v, direct p50 %v p99 %v; added p50 %v (target: at most 1ms)\n",
		p(gwLat, .5), p(gwLat, .99), p(dirLat, .5), p(dirLat, .99), p(gwLat, .5)-p(dirLat, .5))
}

func writeKubeconfig(t *testing.T, path, server, token, caData, _ string) {
	t.Helper()
	cluster := fmt.Sprintf("{server: %q, insecure-skip-tls-verify: true}", server)
	if caData != "" {
		cluster = fmt.Sprintf("{server: %q, certificate-authority-data: %s}", server, caData)
	}
	cfg := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: %s\nusers:\n- name: u\n  user: {token: %q}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n", cluster, token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func timeKubectl(t *testing.T, kubeconfig string, extra ...string) time.Duration {
	t.Helper()
	args := append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(filepath.Dir(kubeconfig), "cache-"+filepath.Base(kubeconfig)),
		"get", "pods", "-n", "bench", "-o", "name"}, extra...)
	start := time.Now()
	out, err := exec.Command("kubectl", args...).CombinedOutput()
	d := time.Since(start)
	if err != nil || !strings.Contains(string(out), "pod/p0") {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return d
}

// listLeg is one way to the API server: direct, or through the gateway.
type listLeg struct {
	client *http.Client
	url    string
	hdr    http.Header
}

func (l *listLeg) once(t *testing.T) time.Duration {
	req, _ := http.NewRequest(http.MethodGet, l.url, nil)
	req.Header = l.hdr.Clone()
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		// Called from the throughput goroutines too: Error, not Fatal.
		t.Error(err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("list: %s", resp.Status)
	}
	return time.Since(start)
}

func (l *listLeg) throughput(t *testing.T, conc int, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && !t.Failed() {
				l.once(t)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load())
}

// startKubeBench starts a kube-apiserver with namespace bench holding pods
// pods, the group readers allowed to read them, and the gateway's user
// allowed to impersonate.
func startKubeBench(t *testing.T, pods int) *testenv.Kube {
	t.Helper()
	kube := testenv.StartKube(t)
	var objs strings.Builder
	objs.WriteString(`apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: bench}
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
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: portcullis-gateway}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: readers}]
`)
	for i := 0; i < pods; i++ {
		fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: bench}\nspec: {automountServiceAccountToken: false, containers: [{name: c, image: busybox}]}\n", i)
	}
	f := filepath.Join(t.TempDir(), "objs.yaml")
	if err := os.WriteFile(f, []byte(objs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	kube.Kubectl(t, "apply", "-f", f)
	return kube
}

// TestKubeHistoryCost measures what the command history costs the
// Kubernetes front: two fronts in this process over stores of their own,
// one writing a history row per request and one not, list the same
// KUBE_BENCH_PODS pods KUBE_BENCH_LISTS times each from KUBE_BENCH_CONC
// clients, alternating KUBE_BENCH_PAIRS times. It reports this process's
// CPU time (getrusage: the front, its audit and history writers and the
// clients, which are the same on both legs; the API server is another
// process) and heap allocations per 1,000 lists, measured through a short
// idle wait after each leg so that the writers' tails count. It reports;
// it never fails on a timing.
//
//	go test -tags bench -run TestKubeHistoryCost -v -count=1 -timeout 10m ./bench/
func TestKubeHistoryCost(t *testing.T) {
	lists := pgEnvInt(t, "KUBE_BENCH_LISTS", 2000, 100, 1000000)
	pairs := pgEnvInt(t, "KUBE_BENCH_PAIRS", 3, 1, 50)
	conc := pgEnvInt(t, "KUBE_BENCH_CONC", 4, 1, 256)
	pods := pgEnvInt(t, "KUBE_BENCH_PODS", 20, 1, 1000)
	kube := startKubeBench(t, pods)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 256}}
	legs := map[bool]listLeg{}
	for _, history := range []bool{false, true} {
		u, _ := startKubeGateway(t, kube, history)
		legs[history] = listLeg{client: client, url: u + "/k8s/k1/api/v1/namespaces/bench/pods", hdr: http.Header{"Authorization": {"Bearer pck_bench_alice"}}}
	}
	run := func(l listLeg) (cpuMs, allocs float64) {
		var before, after syscall.Rusage
		var mb, ma runtime.MemStats
		runtime.ReadMemStats(&mb)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		var next atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(lists) && !t.Failed() {
					l.once(t)
				}
			}()
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond) // the writers' tails
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		runtime.ReadMemStats(&ma)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		k := float64(lists) / 1000
		return float64(cpu.Milliseconds()) / k, float64(ma.Mallocs-mb.Mallocs) / k
	}
	out := os.Stdout
	fmt.Fprintf(out, "\n== Kubernetes front: command history cost, %d lists of %d pods per leg, %d clients, %d pairs ==\n", lists, pods, conc, pairs)
	run(legs[false]) // warm up both: connections, caches
	run(legs[true])
	var off, on, offA, onA []float64
	for i := 0; i < pairs; i++ {
		c0, a0 := run(legs[false])
		c1, a1 := run(legs[true])
		off, on, offA, onA = append(off, c0), append(on, c1), append(offA, a0), append(onA, a1)
		fmt.Fprintf(out, "pair %d: without history %.0f CPU-ms and %.0f allocs per 1,000 lists; with %.0f CPU-ms and %.0f allocs\n", i+1, c0, a0, c1, a1)
	}
	fmt.Fprintf(out, "median: without history %.0f CPU-ms, with %.0f CPU-ms per 1,000 lists (+%.1f%%); allocations %.0f vs %.0f per 1,000 lists\n",
		pgMedian(off), pgMedian(on), 100*(pgMedian(on)-pgMedian(off))/pgMedian(off), pgMedian(offA), pgMedian(onA))
}

// startKubeGateway runs the Kubernetes front in this process over its own
// store, with alice (access key pck_bench_alice) allowed to read pods in
// namespace bench as the cluster group readers; history: with the command
// history, as the gateway runs it.
func startKubeGateway(t *testing.T, kube *testenv.Kube, history bool) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, []resource.Object{
		&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.Target{Kind: resource.KindTarget, Name: "k1", Protocol: resource.ProtocolKubernetes,
			HTTP: resource.HTTP{URL: kube.URL, TLSPinSHA256: kube.PinSHA256,
				Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "k1", Name: "gateway", Password: kube.GatewayToken},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-read", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"readers"},
			KubeRules:     []resource.KubeRule{{Verbs: []string{"get", "list", "watch"}, Resources: []string{"pods"}, Namespaces: []string{"bench"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	cfg := kubeproxy.Config{Snapshot: inv.Snapshot, Vault: v, Audit: audit.New(st, log), Log: log,
		Caller: func(r *http.Request) (kubeproxy.Caller, bool, error) {
			if r.Header.Get("X-Api-Key") == "pck_bench_alice" {
				return kubeproxy.Caller{User: "alice", Key: "bench"}, true, nil
			}
			return kubeproxy.Caller{}, false, nil
		}}
	if history {
		cfg.Commands = st
	}
	front, err := kubeproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(front.Wrap(http.NotFoundHandler()))
	hs.StartTLS()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		front.Close()
	})
	return hs.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
}
