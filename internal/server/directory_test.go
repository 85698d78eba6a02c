package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/web"
)

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw, empty, notPEM := write("pw", "secret\n"), write("empty", "\n"), write("ca", "not a certificate")
	base := func() *config.Directory {
		return &config.Directory{URL: config.StringList{"ldap://127.0.0.1:1"}, UserBase: "dc=x", UserFilter: "(uid={login})",
			BindDN: "cn=gw,dc=x", BindPasswordFile: pw, PoolSize: 1}
	}
	tests := []struct {
		name    string
		change  func(*config.Directory)
		wantErr string
	}{
		{name: "ok", change: func(*config.Directory) {}},
		{name: "missing password file", change: func(c *config.Directory) { c.BindPasswordFile = filepath.Join(dir, "none") }, wantErr: "directory.bind_password_file"},
		{name: "empty password", change: func(c *config.Directory) { c.BindPasswordFile = empty }, wantErr: "directory.bind_password_file"},
		{name: "ca not PEM", change: func(c *config.Directory) { c.CAFile = notPEM }, wantErr: "directory.ca_file"},
		{name: "broken filter", change: func(c *config.Directory) { c.UserFilter = "(uid={login}" }, wantErr: "user_filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(c)
			d, err := openDirectory(c)
			if tt.wantErr == "" {
				if err != nil || d == nil {
					t.Fatalf("openDirectory = %v, %v", d, err)
				}
				d.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("openDirectory = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
	if d, err := openDirectory(nil); d != nil || err != nil {
		t.Errorf("openDirectory(nil) = %v, %v; want nothing", d, err)
	}
}

// TestDirectoryConsoleSignIn signs in to the console of a whole gateway
// with a password from a real slapd: the User appears with source ldap;
// with the directory down the answer is 503, not a wrong-password 401.
func TestDirectoryConsoleSignIn(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	cfg := testConfig(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(tree.Main.AdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Directory = &config.Directory{URL: config.StringList{tree.Main.URL}, BindDN: tree.Main.AdminDN, BindPasswordFile: pwFile,
		UserBase: testenv.LDAPSuffix, UserFilter: "(&(objectClass=inetOrgPerson)(uid={login}))",
		GroupBase: "ou=groups," + testenv.LDAPSuffix, EmailAttribute: "mail",
		Timeout: config.Duration(2 * time.Second), PoolSize: 2}
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
	base := "https://" + srv.APIAddr().String()
	login := func(user, pw string) (int, string) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a test's own certificate
		resp, err := c.Get(base + "/ui/login-csrf")
		if err != nil {
			t.Fatal(err)
		}
		var tok web.LoginCSRFResponse
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
		req, _ := http.NewRequest("POST", base+"/ui/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", tok.CSRFToken)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, user, pw string
		status         int
	}{
		{"directory password", "alice", "alice-pw", 200},
		{"wrong password", "bob", "alice-pw", 401},
		{"unknown user", "nobody", "x", 401},
	}
	for _, tt := range tests {
		if s, b := login(tt.user, tt.pw); s != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, s, b, tt.status)
		}
	}
	o, err := srv.inv.Get(ctx, resource.KindUser, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u := o.(*resource.User); u.Source != resource.SourceLDAP || u.Email != "alice@example.test" {
		t.Errorf("alice = %+v, want source ldap and her directory email", u)
	}
	tree.Main.Stop()
	if s, b := login("bob", "bob-pw"); s != http.StatusServiceUnavailable || !strings.Contains(b, "directory") {
		t.Errorf("directory down: %d %s, want 503 naming the directory", s, b)
	}
}
