package kubeproxy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// TestHostRouting checks which front a request reaches by its Host and
// TLS server name, with no API server behind: the kubernetes front
// answers a request without a key with its own 401 Status, and next (the
// web API front, in the gateway) answers "next". A request for a
// target host never reaches next when it names a kubernetes target, and
// never reaches the kubernetes front by /k8s/ when it names another.
func TestHostRouting(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(testenv.ShortTempDir(t), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kubeproxy.New(kubeproxy.Config{Snapshot: inv.Snapshot, Vault: v, Audit: audit.New(st, log), Log: log,
		Host: "GW.test.",
		Caller: func(r *http.Request) (kubeproxy.Caller, bool, error) {
			return kubeproxy.Caller{}, false, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	kubeTarget := func(name string) *resource.Target {
		return &resource.Target{Kind: resource.KindTarget, Name: name, Protocol: resource.ProtocolKubernetes,
			HTTP: resource.HTTP{URL: "https://127.0.0.1:1", TLSPinSHA256: strings.Repeat("ab", 32),
				Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}}
	}
	if _, err := inv.Apply(ctx, []resource.Object{kubeTarget("k1"), kubeTarget("k2"), kubeTarget("xn--k1-8ma"),
		&resource.Target{Kind: resource.KindTarget, Name: "web1", Protocol: resource.ProtocolHTTP,
			HTTP: resource.HTTP{URL: "https://127.0.0.1:1", TLSPinSHA256: strings.Repeat("ab", 32)}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := inv.Delete(ctx, resource.KindTarget, "k2"); err != nil {
		t.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "next") })
	hs := httptest.NewUnstartedServer(srv.Wrap(next))
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()
	addr := hs.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	// who answers: "kube" (the front's Status, 401 without a key),
	// "next", or the status of another answer of the front.
	do := func(t *testing.T, sni, host, path string, h2 bool) (string, int) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if h2 != (resp.ProtoMajor == 2) {
			t.Fatalf("protocol %s", resp.Proto)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) == "next" {
			return "next", resp.StatusCode
		}
		var status struct {
			Kind, Message string
		}
		// Discovery paths are answered in plain text.
		if msg, ok := strings.CutPrefix(string(b), "portcullis: "); ok {
			status.Kind, status.Message = "Status", msg
		} else if err := json.Unmarshal(b, &status); err != nil || status.Kind != "Status" {
			t.Fatalf("neither front's answer: %d %s", resp.StatusCode, b)
		}
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(status.Message, "access API key") {
			return "kube", resp.StatusCode
		}
		return "kube: " + status.Message, resp.StatusCode
	}
	for _, tc := range []struct {
		name, sni, host, path string
		h2                    bool
		want                  string
		code                  int
	}{
		{"by host", "k1.gw.test", "k1.gw.test:" + port, "/api/v1/pods", false, "kube", 401},
		{"by host over HTTP/2", "k1.gw.test", "k1.gw.test:" + port, "/api/v1/pods", true, "kube", 401},
		{"by host without SNI", "", "k1.gw.test", "/api", false, "kube", 401},
		{"uppercase and a trailing dot", "K1.GW.TEST.", "K1.Gw.Test.:" + port, "/api", false, "kube", 401},
		{"by path on the gateway's own host", "gw.test", "gw.test", "/k8s/k1/api", false, "kube", 401},
		{"by path on an address", "", "127.0.0.1:" + port, "/k8s/k1/api", false, "kube", 401},
		{"the gateway's own host", "gw.test", "gw.test", "/api/v1/me", false, "next", 200},
		{"an http target's host", "web1.gw.test", "web1.gw.test", "/api/v1/pods", false, "next", 200},
		// The http target's own /k8s/ path is its upstream's.
		{"an http target's host, /k8s/ path", "web1.gw.test", "web1.gw.test", "/k8s/k1/api/v1/pods", false, "next", 200},
		{"a deleted target's host", "k2.gw.test", "k2.gw.test", "/api", false, "next", 200},
		{"an unknown target's host", "nope.gw.test", "nope.gw.test", "/k8s/k1/api", false, "next", 200},
		{"punycode names its own target", "xn--k1-8ma.gw.test", "xn--k1-8ma.gw.test", "/api", false, "kube", 401},
		// No SNI: an IP address is dialled. The Kelvin sign lowers to k
		// in Unicode; here it names no target.
		{"unicode Host", "", "\u212a1.gw.test", "/api", false, "next", 200},
		{"two labels", "a.k1.gw.test", "a.k1.gw.test", "/k8s/k1/api", false, "kube", 401},
		{"Host and SNI differ", "k1.gw.test", "web1.gw.test", "/api", false, "kube: portcullis: misdirected request: the TLS server name and the Host differ", 421},
		{"Host and SNI differ, HTTP/2 coalescing", "web1.gw.test", "k1.gw.test", "/api", true, "kube: portcullis: misdirected request: the TLS server name and the Host differ", 421},
		{"SNI names a target, Host an address", "k1.gw.test", "127.0.0.1:" + port, "/k8s/k1/api", false, "kube: portcullis: misdirected request: the TLS server name and the Host differ", 421},
		{"Host names a target, SNI the gateway", "gw.test", "k1.gw.test", "/api", false, "kube: portcullis: misdirected request: the TLS server name and the Host differ", 421},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, code := do(t, tc.sni, tc.host, tc.path, tc.h2)
			if got != tc.want || code != tc.code {
				t.Fatalf("%s %s%s: %q %d, want %q %d", tc.sni, tc.host, tc.path, got, code, tc.want, tc.code)
			}
		})
	}
}

// TestIssueCredential checks the sign-in for a kubectl credential without
// an API server: what it refuses, the budget it charges, the key it
// stores, and the audit trail.
func TestIssueCredential(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(testenv.ShortTempDir(t), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kubeproxy.New(kubeproxy.Config{Snapshot: inv.Snapshot, Vault: v, Audit: audit.New(st, log), Log: log,
		Caller: func(*http.Request) (kubeproxy.Caller, bool, error) { return kubeproxy.Caller{}, false, nil }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	failures := authlimit.New(1, 3)
	srv.EnableCredentials(kubeproxy.CredentialConfig{SignIn: &signin.Checker{Credentials: st, Snapshot: inv.Snapshot},
		Failures: failures, Keys: st, Now: func() time.Time { return now }})
	if _, err := inv.Apply(ctx, []resource.Object{
		&resource.User{Kind: resource.KindUser, Name: "alice"},
		&resource.User{Kind: resource.KindUser, Name: "nobody"},
		&resource.User{Kind: resource.KindUser, Name: "carol", MFA: "required"},
		&resource.Target{Kind: resource.KindTarget, Name: "k1", Protocol: resource.ProtocolKubernetes,
			HTTP: resource.HTTP{URL: "https://127.0.0.1:1", TLSPinSHA256: strings.Repeat("ab", 32),
				Credential: &resource.HTTPCredential{Type: resource.CredentialBearer, Account: "gateway"}}},
		&resource.Target{Kind: resource.KindTarget, Name: "web1", Protocol: resource.ProtocolHTTP,
			HTTP: resource.HTTP{URL: "https://127.0.0.1:1", TLSPinSHA256: strings.Repeat("ab", 32)}},
		&resource.Policy{Kind: resource.KindPolicy, Name: "k1", Type: resource.PolicyKubernetes,
			Subjects: resource.Subjects{Users: []string{"alice", "carol"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
			ClusterGroups: []string{"readers"}},
	}); err != nil {
		t.Fatal(err)
	}
	hash, err := password.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "nobody", "carol"} {
		if err := st.SetPassword(ctx, u, hash, now); err != nil {
			t.Fatal(err)
		}
	}
	addr := netip.MustParseAddr("192.0.2.7")
	issue := func(user, pw, code, target string, ttl time.Duration) (kubeproxy.Credential, *kubeproxy.CredentialError) {
		t.Helper()
		c, err := srv.IssueCredential(ctx, kubeproxy.CredentialRequest{User: user, Password: pw, Code: code, Target: target,
			TTL: ttl, Addr: addr, Source: addr.String() + ":5000"})
		if err == nil {
			return c, nil
		}
		ce, ok := err.(*kubeproxy.CredentialError)
		if !ok {
			t.Fatalf("not a CredentialError: %v", err)
		}
		return c, ce
	}

	c, ce := issue("alice", "correct horse", "", "k1", 0)
	if ce != nil {
		t.Fatal(ce)
	}
	k, err := st.GetAPIKey(ctx, c.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if k.Owner != "alice" || k.Kind != store.APIKeyAccess || !k.ExpiresAt.Equal(now.Add(8*time.Hour)) || !c.ExpiresAt.Equal(k.ExpiresAt) ||
		!strings.HasPrefix(c.Token, "pck_") {
		t.Fatalf("stored key %+v, credential %+v", k, c)
	}
	if c, ce := issue("alice", "correct horse", "", "k1", 5*time.Minute); ce != nil || !c.ExpiresAt.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("5m: %+v %v", c, ce)
	}
	for _, tc := range []struct {
		name, user, pw, code, target string
		ttl                          time.Duration
		status                       int
		msg                          string
	}{
		{"ttl over 12h", "alice", "correct horse", "", "k1", 12*time.Hour + time.Second, 400, "ttl"},
		{"ttl under 5m", "alice", "correct horse", "", "k1", time.Minute, 400, "ttl"},
		{"negative ttl", "alice", "correct horse", "", "k1", -time.Hour, 400, "ttl"},
		{"code not 6 digits", "alice", "correct horse", "12a456", "k1", 0, 400, "6 digits"},
		{"no user", "", "correct horse", "", "k1", 0, 400, "user"},
		{"bad target name", "alice", "correct horse", "", "../k1", 0, 400, "target"},
		{"an http target", "alice", "correct horse", "", "web1", 0, 403, "alice may not reach web1"},
		{"an unknown target", "alice", "correct horse", "", "k9", 0, 403, "alice may not reach k9"},
		{"no policy", "nobody", "correct horse", "", "k1", 0, 403, "nobody"},
		{"MFA user without a code", "carol", "correct horse", "", "k1", 0, 401, "a verification code is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ce := issue(tc.user, tc.pw, tc.code, tc.target, tc.ttl)
			if ce == nil || ce.Status != tc.status || !strings.Contains(ce.Message, tc.msg) {
				t.Fatalf("%+v, want %d %q", ce, tc.status, tc.msg)
			}
			if ce.CodeRequired != (tc.user == "carol") {
				t.Fatalf("CodeRequired %v", ce.CodeRequired)
			}
		})
	}
	// Neither a right password with its code missing nor a refusal after
	// the right password spent the budget (3): three wrong passwords do,
	// the same answer for an unknown user, and then the right one is
	// refused unchecked.
	for _, u := range []string{"alice", "mallory", "alice"} {
		if _, ce := issue(u, "wrong horse", "", "k1", 0); ce == nil || ce.Status != 401 || ce.Message != "wrong user name or password" {
			t.Fatalf("wrong password for %s: %+v", u, ce)
		}
	}
	if _, ce := issue("alice", "correct horse", "", "k1", 0); ce == nil || ce.Status != 429 {
		t.Fatalf("the right password with the budget spent: %+v", ce)
	}
	if !failures.Spent(addr) {
		t.Fatal("budget not spent")
	}
	srv.Close() // writes the queued audit events
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: kubeproxy.EventSignIn})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.Outcome]++
		if ev.Outcome == audit.Success && (ev.User != "alice" || ev.Target != "k1" || ev.Detail["key_id"] == nil || ev.Source != "192.0.2.7:5000") {
			t.Errorf("success event %+v", ev)
		}
	}
	if count[audit.Success] != 2 || count[audit.Deny] != 7 || count[audit.Info] != 1 {
		t.Fatalf("kube.signin events by outcome: %v", count)
	}
}
