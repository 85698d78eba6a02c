package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/store"
)

// TestSelfServiceSSHKeys: users manage their own SSH keys and nobody
// else's; adding one needs the current password (a stolen console
// session or API key must not become lasting SSH access); the key is
// checked as apply checks it; every change is audited by fingerprint.
func TestSelfServiceSSHKeys(t *testing.T) {
	e := newAuthzEnv(t)
	const pw = "nora's long password"
	if code, out := e.asUser(t, "ada", "POST", "/api/v1/users/nora/password", `{"password":"`+pw+`"}`); code != 204 {
		t.Fatalf("set nora's password: %d %v", code, out)
	}
	add := func(key, current string) string {
		return `{"key":` + quote(key) + `,"current_password":` + quote(current) + `}`
	}
	const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1Y3h3cJ9hq3d0mC6+8ZQmXbq7lQ0sA4i9b8o0mX2Zr"
	for _, c := range []struct {
		name, who, method, path, body string
		want                          int
	}{
		{"another user's keys are not readable", "nora", "GET", "/api/v1/users/aud/ssh-keys", "", 403},
		{"nor those of a user that does not exist (no oracle)", "nora", "GET", "/api/v1/users/ghost/ssh-keys", "", 403},
		{"adding to another user, even with one's own password", "nora", "POST", "/api/v1/users/aud/ssh-keys", add(testHostKey, pw), 403},
		{"adding to oneself without the password", "nora", "POST", "/api/v1/users/nora/ssh-keys", `{"key":` + quote(testHostKey) + `}`, 403},
		{"adding with a wrong password", "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey, "guess guess guess"), 403},
		{"a key with options (command= would be a wrapper)", "nora", "POST", "/api/v1/users/nora/ssh-keys", add(`command="/bin/sh" `+testHostKey, pw), 400},
		{"two keys smuggled on two lines", "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey+"\n"+other, pw), 400},
		{"a private key", "nora", "POST", "/api/v1/users/nora/ssh-keys", add("-----BEGIN OPENSSH PRIVATE KEY-----", pw), 400},
		{"a path that climbs to another user", "nora", "GET", "/api/v1/users/nora%2F..%2Faud/ssh-keys", "", 403},
		{"unknown fields are refused", "nora", "POST", "/api/v1/users/nora/ssh-keys", `{"key":` + quote(testHostKey) + `,"current_password":` + quote(pw) + `,"user":"aud"}`, 400},
		{"one's own key with the password", "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey+" nora@laptop", pw), 201},
		{"the same key again", "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey, pw), 409},
		{"removing another user's key", "aud", "DELETE", "/api/v1/users/nora/ssh-keys/" + testHostKeyFP, "", 403},
		{"an admin adds to nora without a password", "ada", "POST", "/api/v1/users/nora/ssh-keys", add(other, ""), 201},
		{"removing a key nora does not have", "nora", "DELETE", "/api/v1/users/nora/ssh-keys/SHA256:nothere", "", 404},
		{"removing her own key, named by fingerprint with / and +", "nora", "DELETE", "/api/v1/users/nora/ssh-keys/" + testHostKeyFP, "", 204},
	} {
		if code, out := e.asUser(t, c.who, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s: %s %s as %s: %d, want %d (%v)", c.name, c.method, c.path, c.who, code, c.want, out)
		}
	}
	// What remains is the admin's key alone, and the user resource says so.
	code, out := e.asUser(t, "ada", "GET", "/api/v1/resources/user/nora", "")
	if code != 200 {
		t.Fatalf("read nora: %d %v", code, out)
	}
	keys, _ := out["ssh_keys"].([]any)
	if len(keys) != 1 || keys[0] != other {
		t.Errorf("nora's ssh_keys = %v, want only the admin's key", keys)
	}
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: "resource.apply"})
	if err != nil {
		t.Fatal(err)
	}
	var added, removed int
	for _, ev := range evs {
		if ev.Detail["fingerprint"] == testHostKeyFP {
			switch ev.Detail["change"] {
			case "ssh_key added":
				added++
			case "ssh_key removed":
				removed++
			}
			if ev.User != "nora" {
				t.Errorf("event %q names %q, want nora", ev.Message, ev.User)
			}
		}
	}
	if added != 1 || removed != 1 {
		t.Errorf("%d added and %d removed events for nora's key, want 1 and 1", added, removed)
	}

	// The route is no way around the password guess limit: after a few
	// wrong passwords even the right one waits.
	last := 0
	for i := 0; i < 8; i++ {
		last, _ = e.asUser(t, "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey, "guess "+strings.Repeat("x", i)))
	}
	if code, _ := e.asUser(t, "nora", "POST", "/api/v1/users/nora/ssh-keys", add(testHostKey, pw)); last != 429 || code != 429 {
		t.Errorf("after 8 wrong passwords: %d, then the right one %d; want 429 and 429", last, code)
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// TestMeSSHPort: /me tells the SSH front's bound port, read per request
// (the console writes connection lines with it), and nothing when the
// address is unknown or unreadable.
func TestMeSSHPort(t *testing.T) {
	for _, c := range []struct {
		name string
		addr func() string
		want float64
	}{
		{"ipv4", func() string { return "127.0.0.1:2222" }, 2222},
		{"ipv6", func() string { return "[::1]:22" }, 22},
		{"not yet bound", func() string { return "" }, 0},
		{"no port", func() string { return "127.0.0.1" }, 0},
		{"unknown", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := api.New(api.Config{Log: slog.New(slog.DiscardHandler), SSHAddr: c.addr})
			srv := httptest.NewServer(api.WithLocalAdmin(h))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/api/v1/me")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var me map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /me: %d %v", resp.StatusCode, err)
			}
			got, _ := me["ssh_port"].(float64)
			if got != c.want {
				t.Errorf("ssh_port = %v, want %v (answer %v)", me["ssh_port"], c.want, me)
			}
		})
	}
}
