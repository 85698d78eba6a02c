//go:build bench

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// TestHTTPCompare measures the web API front (issue 18, item 7) side by
// side with direct calls to the same vCenter simulator, alternating:
// requests per second of SearchIndex.FindByInventoryPath (an
// inventory.read call: the gateway parses the SOAP body, decides, audits
// and forwards it) from HTTP_BENCH_CONC concurrent clients, and the added
// latency (p50, p99) of the same call made one at a time. Both legs are
// HTTPS with keep-alive; the gateway runs in this test process, so the
// process's CPU seconds per 1,000 requests are the gateway's plus the
// (small) client's. It reports; it never fails on a timing.
//
//	go test -tags bench -run TestHTTPCompare -v -count=1 -timeout 10m ./bench/
//
// Environment: HTTP_BENCH_SECONDS (each throughput run, default 10),
// HTTP_BENCH_PAIRS (gateway/direct pairs, default 3), HTTP_BENCH_CONC
// (concurrent clients, default 4), HTTP_LATENCY_CALLS (sequential calls per
// latency run, default 500).
func TestHTTPCompare(t *testing.T) {
	testenv.RequireRoot(t)
	seconds := pgEnvInt(t, "HTTP_BENCH_SECONDS", 10, 1, 600)
	pairs := pgEnvInt(t, "HTTP_BENCH_PAIRS", 3, 1, 50)
	conc := pgEnvInt(t, "HTTP_BENCH_CONC", 4, 1, 256)
	calls := pgEnvInt(t, "HTTP_LATENCY_CALLS", 500, 10, 100000)

	sim := testenv.StartVCSim(t, "svc", "svc-secret")
	gwURL := startHTTPGateway(t, sim)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: 256}}
	direct := soapLeg{client: client, url: sim.URL + "/sdk"}
	direct.cookie = direct.login(t, "svc", "svc-secret")
	viaGW := soapLeg{client: client, url: gwURL + "/t/vc1/sdk"}
	viaGW.cookie = viaGW.login(t, "alice", "alice-pw")

	out := os.Stdout
	fmt.Fprintf(out, "\n== web API front: FindByInventoryPath, %d clients x %ds, %d pairs, alternating ==\n", conc, seconds, pairs)
	var gwRPS, dirRPS, gwCPU []float64
	for i := 0; i < pairs; i++ {
		c0 := selfCPU()
		n := viaGW.throughput(t, conc, time.Duration(seconds)*time.Second)
		cpu := selfCPU() - c0
		gwRPS = append(gwRPS, n/float64(seconds))
		gwCPU = append(gwCPU, cpu/n*1000)
		d := direct.throughput(t, conc, time.Duration(seconds)*time.Second)
		dirRPS = append(dirRPS, d/float64(seconds))
		fmt.Fprintf(out, "pair %d: gateway %.0f req/s (%.3f CPU s per 1000), direct %.0f req/s\n", i+1, gwRPS[i], gwCPU[i], dirRPS[i])
	}
	fmt.Fprintf(out, "median: gateway %.0f req/s, direct %.0f req/s, ratio %.2fx; gateway CPU %.3f s per 1000 requests\n",
		pgMedian(gwRPS), pgMedian(dirRPS), pgMedian(gwRPS)/pgMedian(dirRPS), pgMedian(gwCPU))

	var gwLat, dirLat []time.Duration
	for i := 0; i < pairs; i++ {
		gwLat = append(gwLat, viaGW.latencies(t, calls)...)
		dirLat = append(dirLat, direct.latencies(t, calls)...)
	}
	slices.Sort(gwLat)
	slices.Sort(dirLat)
	p := func(v []time.Duration, q float64) time.Duration { return v[int(q*float64(len(v)-1))] }
	fmt.Fprintf(out, "latency, one call at a time (%d calls per leg): gateway p50 %v p99 %v, direct p50 %v p99 %v; added p50 %v (target: at most 1ms)\n",
		len(gwLat), p(gwLat, .5), p(gwLat, .99), p(dirLat, .5), p(dirLat, .99), p(gwLat, .5)-p(dirLat, .5))
}

// soapLeg is one way to the simulator: direct, or through the gateway.
type soapLeg struct {
	client *http.Client
	url    string
	cookie string
}

const findBody = `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
	`<FindByInventoryPath xmlns="urn:vim25"><_this type="SearchIndex">SearchIndex</_this><inventoryPath>/DC0/vm/DC0_H0_VM0</inventoryPath></FindByInventoryPath>` +
	`</soapenv:Body></soapenv:Envelope>`

func (l *soapLeg) post(body string) (int, []byte, *http.Response, error) {
	req, _ := http.NewRequest("POST", l.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "urn:vim25/8.0")
	if l.cookie != "" {
		req.Header.Set("Cookie", "vmware_soap_session="+l.cookie)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b, resp, err
}

func (l *soapLeg) login(t *testing.T, user, pw string) string {
	t.Helper()
	code, b, resp, err := l.post(strings.Replace(findBody, `<FindByInventoryPath xmlns="urn:vim25"><_this type="SearchIndex">SearchIndex</_this><inventoryPath>/DC0/vm/DC0_H0_VM0</inventoryPath></FindByInventoryPath>`,
		`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>`+user+`</userName><password>`+pw+`</password></Login>`, 1))
	if err != nil || code != 200 {
		t.Fatalf("login %s at %s: %d %v %s", user, l.url, code, err, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "vmware_soap_session" {
			return c.Value
		}
	}
	t.Fatalf("login %s: no cookie", user)
	return ""
}

func (l *soapLeg) call(t *testing.T) {
	code, b, _, err := l.post(findBody)
	if err != nil || code != 200 || !bytes.Contains(b, []byte("vm-")) {
		t.Errorf("FindByInventoryPath at %s: %d %v %.200s", l.url, code, err, b)
	}
}

// throughput runs conc clients for d and returns the calls completed.
func (l *soapLeg) throughput(t *testing.T, conc int, d time.Duration) float64 {
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.call(t)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load())
}

func (l *soapLeg) latencies(t *testing.T, calls int) []time.Duration {
	out := make([]time.Duration, 0, calls)
	for i := 0; i < calls; i++ {
		start := time.Now()
		l.call(t)
		out = append(out, time.Since(start))
	}
	return out
}

// startHTTPGateway runs the web API front in this process with target vc1
// for the simulator and alice allowed inventory.read, and returns its URL.
func startHTTPGateway(t *testing.T, sim *testenv.VCSim) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
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
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, []resource.Object{
		&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.Target{Kind: resource.KindTarget, Name: "vc1", Protocol: resource.ProtocolHTTP, TLSCA: string(sim.CAPEM),
			HTTP: resource.HTTP{URL: sim.URL, Catalog: resource.CatalogVSphere,
				Credential: &resource.HTTPCredential{Type: resource.CredentialVSphereSOAP, Account: "svc", Username: "svc"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "vc1", Name: "svc", Password: "svc-secret"},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-read", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vc1"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"inventory.read"}}},
	}); err != nil {
		t.Fatal(err)
	}
	h, err := password.Hash("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(ctx, "alice", h, time.Now()); err != nil {
		t.Fatal(err)
	}
	front, err := httpproxy.New(httpproxy.Config{Snapshot: inv.Snapshot, Vault: v, Credentials: st, Audit: audit.New(st, log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(front.Wrap(http.NotFoundHandler()))
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(func() {
		hs.Close()
		front.Close()
	})
	return hs.URL
}
