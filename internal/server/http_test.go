package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// TestHTTPProxyWiring runs the whole gateway with a REST target behind
// it (an upstream in the test process that records what it receives):
// a real access API key (bearer and X-API-KEY) reaches it by path and by
// host; the client's credentials, cookies and forwarding claims never
// pass; the upstream's session cookie never comes back; a target's host
// never reaches the gateway's own API, nor does a Host that disagrees
// with the TLS server name.
func TestHTTPProxyWiring(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "upstream_session", Value: "secret-upstream-session"})
		w.Header().Set("X-Upstream", "yes")
		// A page's own policy must not lift the gateway's sandbox, nor
		// may it clear the gateway's cookies.
		w.Header().Set("Content-Security-Policy", "default-src *")
		w.Header().Set("Clear-Site-Data", `"cookies"`)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	pin := sha256.Sum256(up.Certificate().Raw)

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
		&resource.Target{Kind: resource.KindTarget, Name: "api1", Protocol: resource.ProtocolHTTP, HTTP: resource.HTTP{
			URL: up.URL, TLSPinSHA256: hex.EncodeToString(pin[:]),
			Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "svc"},
			Rules: []resource.HTTPRule{{Method: "POST", Path: "/vms/action", Operation: "vm.power_on",
				Object: &resource.HTTPObject{Type: "VirtualMachine", From: "json", Name: "/vm"}}}}},
		&resource.Account{Kind: resource.KindAccount, Target: "api1", Name: "svc", Password: "upstream-token"},
		&resource.Policy{Kind: resource.KindPolicy, Name: "alice-api", Type: resource.PolicyProxy,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"api1"}},
			HTTPGrant: resource.HTTPGrant{Operations: []string{"vm.power_on"}, Objects: []string{"VirtualMachine:vm-1*"}}},
	}); err != nil {
		t.Fatal(err)
	}
	id, key, err := apikey.New()
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := apikey.Parse(key)
	if err := srv.store.CreateAPIKey(ctx, store.APIKey{ID: id, Name: "t", Kind: store.APIKeyAccess, Owner: "alice",
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	addr := srv.APIAddr().String()
	do := func(sni, host, method, path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni}}}
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	smuggle := map[string]string{"Authorization": "Bearer " + key, "Cookie": "vmware_soap_session=x; __Host-portcullis_session=y",
		"X-Forwarded-For": "10.9.9.9", "Forwarded": "for=10.9.9.9", "X-Forwarded-Host": "evil", "Vmware-Api-Session-Id": "z",
		"Content-Type": "application/json"}

	// Path form, bearer key.
	resp, body := do("", addr, "POST", "/t/api1/vms/action", `{"vm":"vm-12"}`, smuggle)
	if resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("path form: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Clear-Site-Data") != "" {
		t.Fatalf("response headers: %v", resp.Header)
	}
	if csp := resp.Header.Values("Content-Security-Policy"); !slices.Contains(csp, "sandbox") {
		t.Fatalf("path form CSP %q, want sandbox among them", csp)
	}
	// Host form, X-API-KEY.
	resp, body = do("api1.gw.test", "api1.gw.test", "POST", "/vms/action", `{"vm":"vm-13"}`,
		map[string]string{api.APIKeyHeader: key, "Content-Type": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("host form: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	for i, h := range seen {
		if h.Get("Authorization") != "Bearer upstream-token" {
			t.Errorf("request %d: upstream Authorization %q", i, h.Get("Authorization"))
		}
		for _, k := range []string{"Cookie", "X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "Vmware-Api-Session-Id", api.APIKeyHeader} {
			if v := h.Get(k); v != "" && k != "X-Forwarded-For" {
				t.Errorf("request %d: client header %s: %q reached the upstream", i, k, v)
			}
		}
		if v := h.Get("X-Forwarded-For"); strings.Contains(v, "10.9.9.9") {
			t.Errorf("request %d: forged X-Forwarded-For reached the upstream: %q", i, v)
		}
	}
	n := len(seen)
	mu.Unlock()

	// An object outside the grant is refused before the upstream.
	resp, body = do("", addr, "POST", "/t/api1/vms/action", `{"vm":"vm-2"}`, smuggle)
	if resp.StatusCode != 403 || !strings.Contains(body, "VirtualMachine:vm-2") {
		t.Fatalf("object outside grant: %d %s", resp.StatusCode, body)
	}
	// The target's host never reaches the gateway's API.
	resp, body = do("api1.gw.test", "api1.gw.test", "GET", "/api/v1/me", "", map[string]string{api.APIKeyHeader: key})
	if resp.StatusCode != 403 || strings.Contains(body, `"name"`) {
		t.Fatalf("api on the target host: %d %s", resp.StatusCode, body)
	}
	// SNI for the target, Host for the gateway (or the reverse): 421.
	for _, c := range [][2]string{{"api1.gw.test", addr}, {"gw.test", "api1.gw.test"}} {
		resp, body = do(c[0], c[1], "GET", "/api/v1/me", "", map[string]string{api.APIKeyHeader: key})
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("SNI %s Host %s: %d %s", c[0], c[1], resp.StatusCode, body)
		}
	}
	mu.Lock()
	if len(seen) != n {
		t.Fatalf("refused requests reached the upstream")
	}
	mu.Unlock()
}
