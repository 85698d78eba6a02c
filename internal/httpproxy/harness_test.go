package httpproxy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

const (
	alicePassword = "alice-gw-password"
	svcPassword   = "svc-secret-password"
	// testAPIKey is what the test's Config.Caller takes as alice's API
	// key (the real check is package api's, wired by package server).
	testAPIKey = "pck_test_alice"
	// gatewayAnswer is what the gateway's own handler (API, console)
	// answers: a proxied request must never get it.
	gatewayAnswer = "the gateway's own API"
)

// gateway is the web API front on a TLS listener of its own, over the
// gateway's own handler, with its own store.
type gateway struct {
	t     *testing.T
	url   string // https://127.0.0.1:PORT
	host  string // 127.0.0.1:PORT
	store store.Store
	inv   *inventory.Inventory
	srv   *httpproxy.Server
	mfa   *mfa.Service
	// nextHits counts requests that reached the gateway's own handler.
	nextHits chan string
}

func startGateway(t *testing.T, opts ...func(*httpproxy.Config)) *gateway {
	t.Helper()
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
	auditLog := audit.New(st, log)
	mfaSvc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpproxy.Config{Snapshot: inv.Snapshot, Vault: v, Credentials: st, MFA: mfaSvc, Audit: auditLog, Log: log,
		Host: "gw.test",
		Caller: func(r *http.Request) (httpproxy.Caller, bool, error) {
			switch k := r.Header.Get("X-Api-Key"); k {
			case "":
				return httpproxy.Caller{}, false, nil
			case testAPIKey:
				return httpproxy.Caller{User: "alice", Via: "api key", Key: "test"}, true, nil
			default:
				return httpproxy.Caller{}, false, fmt.Errorf("invalid API key")
			}
		}}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := httpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv.Subscribe(srv.Recheck)
	hits := make(chan string, 100)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hits <- r.Host + r.URL.Path:
		default:
		}
		_, _ = io.WriteString(w, gatewayAnswer)
	})
	hs := httptest.NewUnstartedServer(srv.Wrap(next))
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &gateway{t: t, url: hs.URL, host: strings.TrimPrefix(hs.URL, "https://"), store: st, inv: inv, srv: srv,
		mfa: mfaSvc, nextHits: hits}
}

func (g *gateway) apply(objs ...resource.Object) {
	g.t.Helper()
	if _, err := g.inv.Apply(context.Background(), objs); err != nil {
		g.t.Fatalf("apply: %v", err)
	}
}

func (g *gateway) setPassword(user, pw string) {
	g.t.Helper()
	h, err := password.Hash(pw)
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.store.SetPassword(context.Background(), user, h, time.Now()); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) events(typ string) []store.AuditEvent {
	g.t.Helper()
	evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// waitEvent polls for an audit event of typ that match accepts: request
// events are written by the front's audit writer after the answer.
func (g *gateway) waitEvent(typ string, match func(store.AuditEvent) bool) store.AuditEvent {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range g.events(typ) {
			if match == nil || match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, ev := range g.events("") {
				all = append(all, fmt.Sprintf("%s %s %q %v", ev.Type, ev.Outcome, ev.Message, ev.Detail))
			}
			g.t.Fatalf("no %s event matched; have:\n%s", typ, strings.Join(all, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client returns an HTTP client of the gateway that skips certificate
// checks (the test listener's certificate names 127.0.0.1 and
// example.com) and sends serverName as SNI when set.
func (g *gateway) client(serverName string) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: serverName}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// vsphereSite is vcsim behind a gateway whose target vc1 logs in as the
// simulator's only user (the service account), with alice allowed to
// browse and power VMs on and off, and bob to browse only.
type vsphereSite struct {
	t   *testing.T
	sim *testenv.VCSim
	gw  *gateway
}

func newVSphereSite(t *testing.T, opts ...func(*httpproxy.Config)) *vsphereSite {
	t.Helper()
	sim := testenv.StartVCSim(t, "svc", svcPassword)
	gw := startGateway(t, opts...)
	gw.apply(
		&resource.User{Kind: resource.KindUser, Name: "alice", Groups: []string{"vm-ops"}},
		&resource.User{Kind: resource.KindUser, Name: "bob"},
		&resource.Target{Kind: resource.KindTarget, Name: "vc1", Protocol: resource.ProtocolHTTP, TLSCA: string(sim.CAPEM),
			HTTP: resource.HTTP{URL: sim.URL, Catalog: resource.CatalogVSphere,
				Credential: &resource.HTTPCredential{Type: resource.CredentialVSphereSOAP, Account: "svc", Username: "svc"}}},
		&resource.Account{Kind: resource.KindAccount, Target: "vc1", Name: "svc", Password: svcPassword},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-vm", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vc1"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"inventory.read", "vm.power_on", "vm.power_off"}}},
		&resource.Policy{Kind: resource.KindPolicy, Name: "bob-read", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"bob"}}, Targets: resource.TargetSelector{Names: []string{"vc1"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"inventory.read"}}},
	)
	gw.setPassword("alice", alicePassword)
	gw.setPassword("bob", "bob-gw-password")
	return &vsphereSite{t: t, sim: sim, gw: gw}
}

// govc runs the real govc against url (https://USER:PASS@HOST/PATH/sdk).
func govc(t *testing.T, url string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Govc(t), args...)
	cmd.Env = append(os.Environ(), "GOVC_URL="+url, "GOVC_INSECURE=1", "HOME="+t.TempDir(), "GOVC_PERSIST_SESSION=false")
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

// gwURL is a govc URL through the gateway's path form for user.
func (s *vsphereSite) gwURL(user, pw string) string {
	return fmt.Sprintf("https://%s:%s@%s/t/vc1/sdk", user, pw, s.gw.host)
}
