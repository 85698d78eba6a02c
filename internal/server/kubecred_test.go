package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store"
)

// testKubeCredentialPlugin runs the real kubectl with a `portcullis
// kubeconfig --exec` kubeconfig: kubectl runs the built portcullis binary
// as its exec credential plugin, which signs alice in (the password from
// PORTCULLIS_PASSWORD_FILE, stdin being no terminal) and hands kubectl a
// short-lived key. Then the attacks: a wrong password, a revoked token
// replayed, an expired token, a token of a user since removed, the
// failed-login budget, and MFA.
func testKubeCredentialPlugin(t *testing.T, ctx context.Context, srv *Server) {
	bin := buildBinary(t, t.TempDir())
	hash, err := password.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.store.SetPassword(ctx, "alice", hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	gw := "https://" + srv.APIAddr().String()
	kubeconfig := filepath.Join(t.TempDir(), "exec.kubeconfig")
	var out, errOut bytes.Buffer
	if code := cli.Run(ctx, []string{"kubeconfig", "--target", "k1", "--server", gw, "--exec", "--user", "alice",
		"--exec-command", bin, "-o", kubeconfig}, nil, &out, &errOut); code != 0 {
		t.Fatalf("portcullis kubeconfig --exec: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if kc := string(mustRead(t, kubeconfig)); strings.Contains(kc, "token") || !strings.Contains(kc, "kube-credential") {
		t.Fatalf("kubeconfig:\n%s", kc)
	}
	dir := t.TempDir()
	goodPW, badPW := filepath.Join(dir, "pw"), filepath.Join(dir, "bad")
	if err := os.WriteFile(goodPW, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badPW, []byte("wrong horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	kubectl := func(pwFile, cacheDir string, args ...string) (string, error) {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CACHE_HOME="+cacheDir, "PORTCULLIS_PASSWORD_FILE="+pwFile)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	signins := func(outcome string) int {
		t.Helper()
		time.Sleep(100 * time.Millisecond) // the front's audit writer
		evs, err := srv.store.ListAudit(ctx, store.AuditFilter{Type: kubeproxy.EventSignIn})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Outcome == outcome {
				n++
			}
		}
		return n
	}
	cached := func() (tok struct {
		Token     string    `json:"token"`
		KeyID     string    `json:"key_id"`
		ExpiresAt time.Time `json:"expires_at"`
	}) {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(cache, "portcullis", "kube-*.json"))
		if len(m) != 1 {
			t.Fatalf("cache files: %v", m)
		}
		st, err := os.Stat(m[0])
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("cache file mode: %v %v", st.Mode(), err)
		}
		if err := json.Unmarshal(mustRead(t, m[0]), &tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}

	if got, err := kubectl(goodPW, cache, "get", "pods", "-n", "dev", "-o", "name"); err != nil || strings.TrimSpace(got) != "pod/web-1" {
		t.Fatalf("kubectl with the exec plugin: %v\n%s", err, got)
	}
	tok := cached()
	if d := time.Until(tok.ExpiresAt); d <= 7*time.Hour || d > 8*time.Hour {
		t.Fatalf("token expires in %s, want 8h", d)
	}
	if n := signins(audit.Success); n != 1 {
		t.Fatalf("%d kube.signin successes, want 1", n)
	}
	// The cached token is used again: no second sign-in, even with a
	// wrong password file.
	if got, err := kubectl(badPW, cache, "get", "pods", "-n", "dev", "-o", "name"); err != nil || strings.TrimSpace(got) != "pod/web-1" {
		t.Fatalf("kubectl with the cached token: %v\n%s", err, got)
	}
	if n := signins(audit.Success); n != 1 {
		t.Fatalf("%d kube.signin successes after a cached run, want 1", n)
	}
	// The policy still decides: the token is alice's.
	if got, err := kubectl(goodPW, cache, "get", "pods", "-n", "kube-system"); err == nil || !strings.Contains(got, "alice may not list pods in namespace kube-system") {
		t.Fatalf("kubectl -n kube-system: %v\n%s", err, got)
	}

	t.Run("wrong password", func(t *testing.T) {
		got, err := kubectl(badPW, t.TempDir(), "get", "pods", "-n", "dev")
		if err == nil || !strings.Contains(got, "portcullis kube-credential: sign-in refused: wrong user name or password\n") {
			t.Fatalf("kubectl with a wrong password: %v\n%s", err, got)
		}
		// kubectl ran the plugin for each of its requests: the refused
		// password file was sent once.
		if n := signins(audit.Deny); n != 1 {
			t.Fatalf("%d kube.signin denials, want 1", n)
		}
	})

	raw := func(token, path string) (int, string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		req, _ := http.NewRequest(http.MethodGet, gw+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const pods = "/k8s/k1/api/v1/namespaces/dev/pods"

	t.Run("revoked token replayed", func(t *testing.T) {
		old := cached()
		if err := srv.store.RevokeAPIKey(ctx, old.KeyID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if code, body := raw(old.Token, pods); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
			t.Fatalf("revoked token: %d %s", code, body)
		}
		// The plugin finds its cached token revoked and signs in again.
		if got, err := kubectl(goodPW, cache, "get", "pods", "-n", "dev", "-o", "name"); err != nil || strings.TrimSpace(got) != "pod/web-1" {
			t.Fatalf("kubectl after revocation: %v\n%s", err, got)
		}
		if cached().KeyID == old.KeyID {
			t.Fatal("the revoked token is still cached")
		}
	})

	t.Run("expired token", func(t *testing.T) {
		signIn := &signin.Checker{Credentials: srv.store, Snapshot: srv.inv.Snapshot, MFA: srv.mfa}
		// A key minted 13 hours ago by a clock set back: it expired 5
		// hours ago.
		srv.kube.EnableCredentials(kubeproxy.CredentialConfig{SignIn: signIn, Failures: srv.failures,
			Keys: srv.store, Now: func() time.Time { return time.Now().Add(-13 * time.Hour) }})
		c, err := srv.kube.IssueCredential(ctx, kubeproxy.CredentialRequest{User: "alice", Password: "correct horse battery", Target: "k1"})
		srv.kube.EnableCredentials(kubeproxy.CredentialConfig{SignIn: signIn, Failures: srv.failures, Keys: srv.store})
		if err != nil {
			t.Fatal(err)
		}
		if code, body := raw(c.Token, pods); code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
			t.Fatalf("expired token: %d %s", code, body)
		}
	})

	t.Run("token of a removed user", func(t *testing.T) {
		if _, err := srv.inv.Apply(ctx, []resource.Object{&resource.User{Kind: resource.KindUser, Name: "bob"},
			&resource.Policy{Kind: resource.KindPolicy, Name: "bob-k1", Type: resource.PolicyKubernetes,
				Subjects: resource.Subjects{Users: []string{"bob"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
				ClusterGroups: []string{"readers"}}}); err != nil {
			t.Fatal(err)
		}
		if err := srv.store.SetPassword(ctx, "bob", hash, time.Now()); err != nil {
			t.Fatal(err)
		}
		c, err := srv.kube.IssueCredential(ctx, kubeproxy.CredentialRequest{User: "bob", Password: "correct horse battery", Target: "k1"})
		if err != nil {
			t.Fatal(err)
		}
		if code, body := raw(c.Token, pods); code != http.StatusOK {
			t.Fatalf("bob's token: %d %s", code, body)
		}
		if err := srv.inv.Delete(ctx, resource.KindPolicy, "bob-k1"); err != nil {
			t.Fatal(err)
		}
		if err := srv.inv.Delete(ctx, resource.KindUser, "bob"); err != nil {
			t.Fatal(err)
		}
		if code, body := raw(c.Token, pods); code != http.StatusUnauthorized {
			t.Fatalf("a removed user's token: %d %s", code, body)
		}
		if _, err := srv.kube.IssueCredential(ctx, kubeproxy.CredentialRequest{User: "bob", Password: "correct horse battery", Target: "k1"}); err == nil {
			t.Fatal("a removed user signed in")
		}
	})

	post := func(body string) (int, string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := hc.Post(gw+"/api/v1/kube/credentials", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("API", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			code       int
			want       string
		}{
			{"ttl too long", `{"user":"alice","password":"correct horse battery","target":"k1","ttl_seconds":43201}`, 400, "ttl"},
			{"ttl overflowing", `{"user":"alice","password":"correct horse battery","target":"k1","ttl_seconds":9223372036854775807}`, 400, "ttl"},
			{"unknown field", `{"user":"alice","password":"x","target":"k1","admin":true}`, 400, "admin"},
			{"a target alice may not reach", `{"user":"alice","password":"correct horse battery","target":"k9"}`, 403, "may not reach k9"},
			{"short ttl", `{"user":"alice","password":"correct horse battery","target":"k1","ttl_seconds":300}`, 201, "expires_at"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if code, body := post(tc.body); code != tc.code || !strings.Contains(body, tc.want) {
					t.Fatalf("%d %s, want %d %q", code, body, tc.code, tc.want)
				}
			})
		}
	})

	t.Run("MFA", func(t *testing.T) {
		if _, err := srv.inv.Apply(ctx, []resource.Object{&resource.User{Kind: resource.KindUser, Name: "carol", MFA: "required"},
			&resource.Policy{Kind: resource.KindPolicy, Name: "carol-k1", Type: resource.PolicyKubernetes,
				Subjects: resource.Subjects{Users: []string{"carol"}}, Targets: resource.TargetSelector{Names: []string{"k1"}},
				ClusterGroups: []string{"readers"}}}); err != nil {
			t.Fatal(err)
		}
		if err := srv.store.SetPassword(ctx, "carol", hash, time.Now()); err != nil {
			t.Fatal(err)
		}
		if code, body := post(`{"user":"carol","password":"correct horse battery","target":"k1"}`); code != 401 || !strings.Contains(body, `"mfa_required"`) {
			t.Fatalf("no code: %d %s", code, body)
		}
		// A wrong password says nothing of the code.
		if code, body := post(`{"user":"carol","password":"wrong","target":"k1"}`); code != 401 || strings.Contains(body, "mfa") {
			t.Fatalf("wrong password: %d %s", code, body)
		}
		if code, body := post(`{"user":"carol","password":"correct horse battery","code":"123456","target":"k1"}`); code != 401 || strings.Contains(body, "token") {
			t.Fatalf("a wrong code: %d %s", code, body)
		}
		// The plugin without a terminal cannot ask for the code.
		kc := strings.Replace(string(mustRead(t, kubeconfig)), `"alice"`, `"carol"`, 1)
		carol := filepath.Join(t.TempDir(), "carol.kubeconfig")
		if err := os.WriteFile(carol, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("kubectl", "--kubeconfig", carol, "get", "pods", "-n", "dev")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir(), "PORTCULLIS_PASSWORD_FILE="+goodPW)
		if got, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(got), "a verification code is required, and there is no terminal") {
			t.Fatalf("kubectl for an MFA user without a terminal: %v\n%s", err, got)
		}
	})

	t.Run("failed-login budget", func(t *testing.T) {
		// The budget (20, then 10 a minute) is the one the SSH and
		// PostgreSQL fronts charge: wrong passwords spend it, then even
		// the right one is refused without being checked.
		limited := false
		for i := 0; i < 25 && !limited; i++ {
			code, _ := post(`{"user":"alice","password":"wrong","target":"k1"}`)
			limited = code == http.StatusTooManyRequests
		}
		if !limited {
			t.Fatal("25 wrong passwords and no 429")
		}
		if code, body := post(`{"user":"alice","password":"correct horse battery","target":"k1"}`); code != http.StatusTooManyRequests {
			t.Fatalf("the right password with the budget spent: %d %s", code, body)
		}
		if !srv.failures.Spent(netip.MustParseAddr("127.0.0.1")) {
			t.Fatal("the shared budget is not spent")
		}
	})
}
