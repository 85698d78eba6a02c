package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/portcullis/portcullis/internal/testenv"
)

// treeConfig is a Config for an LDAPTree.
func treeConfig(tree *testenv.LDAPTree) Config {
	return Config{
		URLs:            []string{tree.Main.URL},
		BindDN:          tree.Main.AdminDN,
		BindPassword:    tree.Main.AdminPassword,
		UserBase:        testenv.LDAPSuffix,
		UserFilter:      "(&(objectClass=inetOrgPerson)(uid={login}))",
		GroupBase:       "ou=groups," + testenv.LDAPSuffix,
		EmailAttribute:  "mail",
		SSHKeyAttribute: "sshPublicKey",
		FollowReferrals: true,
	}
}

func newDir(t *testing.T, cfg Config) *Directory {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestAuthenticate(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	d := newDir(t, treeConfig(tree))
	aliceGroups := []string{"all", "devs", "eng", "loop-a", "loop-b"}
	tests := []struct {
		name, login, password string
		wantErr               error
		wantGroups            []string
		wantEmail             string
	}{
		{name: "right password", login: "alice", password: "alice-pw", wantGroups: aliceGroups, wantEmail: "alice@example.test"},
		{name: "direct group only", login: "bob", password: "bob-pw", wantGroups: []string{"ops"}},
		{name: "no groups", login: "carol", password: "carol-pw", wantGroups: []string{}},
		{name: "through referral", login: "dave", password: "dave-pw", wantGroups: []string{"all", "partners-team"}},
		{name: "wrong password", login: "alice", password: "bob-pw", wantErr: ErrInvalidCredentials},
		{name: "empty password", login: "alice", password: "", wantErr: ErrInvalidCredentials},
		{name: "unknown user", login: "nobody", password: "x", wantErr: ErrInvalidCredentials},
		{name: "wildcard login", login: "*", password: "alice-pw", wantErr: ErrInvalidCredentials},
		{name: "filter injection", login: "alice)(uid=*", password: "alice-pw", wantErr: ErrInvalidCredentials},
		{name: "ambiguous login", login: "twin", password: "twin-pw", wantErr: ErrInvalidCredentials},
		{name: "empty login", login: "", password: "x", wantErr: ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := d.Authenticate(context.Background(), tt.login, tt.password)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Authenticate(%q) = %v, want %v", tt.login, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate(%q): %v", tt.login, err)
			}
			if u.Login != tt.login || u.Email != tt.wantEmail || !slices.Equal(u.Groups, tt.wantGroups) && len(u.Groups)+len(tt.wantGroups) > 0 {
				t.Errorf("Authenticate(%q) = %+v, want groups %v email %q", tt.login, u, tt.wantGroups, tt.wantEmail)
			}
		})
	}
}

// TestEmptyPasswordNeverBinds proves the trap is real on this server and
// that Authenticate refuses an empty password without asking anyone: with
// every server down, the answer is still "invalid credentials", not
// "unavailable".
func TestEmptyPasswordNeverBinds(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	c, err := ldap.DialURL(tree.Main.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SimpleBind(&ldap.SimpleBindRequest{Username: testenv.UserDN("alice"), AllowEmptyPassword: true}); err != nil {
		t.Fatalf("the server should accept an empty-password bind (allow bind_anon_dn): %v", err)
	}

	cfg := treeConfig(tree)
	cfg.URLs = []string{"ldap://127.0.0.1:1"}
	d := newDir(t, cfg)
	_, err = d.Authenticate(context.Background(), "alice", "")
	if !errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Authenticate with empty password = %v, want invalid credentials without a connection", err)
	}
}

func TestNestedGroupsBounded(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	tests := []struct {
		nesting int
		want    []string
	}{
		{1, []string{"devs", "loop-a"}},
		{2, []string{"devs", "eng", "loop-a", "loop-b"}},
		{10, []string{"all", "devs", "eng", "loop-a", "loop-b"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.nesting), func(t *testing.T) {
			cfg := treeConfig(tree)
			cfg.MaxNesting = tt.nesting
			u, err := newDir(t, cfg).Lookup(context.Background(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(u.Groups, tt.want) {
				t.Errorf("groups = %v, want %v", u.Groups, tt.want)
			}
		})
	}
}

func TestReferralsNotFollowed(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	cfg := treeConfig(tree)
	cfg.FollowReferrals = false
	_, err := newDir(t, cfg).Lookup(context.Background(), "dave")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(dave) without referrals = %v, want not found", err)
	}
}

func TestSSHKeyAttribute(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
	tree.Main.Modify(t, "dn: "+testenv.UserDN("alice")+"\nchangetype: modify\nadd: sshPublicKey\nsshPublicKey: "+key+"\n")
	u, err := newDir(t, treeConfig(tree)).Lookup(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.SSHKeys, []string{key}) {
		t.Errorf("keys = %q, want %q", u.SSHKeys, key)
	}
}

func TestCacheTTL(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := treeConfig(tree)
	cfg.CacheTTL = time.Minute
	cfg.Now = clock
	cached := newDir(t, cfg)
	cfg.CacheTTL = 0
	uncached := newDir(t, cfg)

	groups := func(d *Directory) []string {
		t.Helper()
		u, err := d.Lookup(context.Background(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		return u.Groups
	}
	if g := groups(cached); !slices.Equal(g, []string{"ops"}) {
		t.Fatalf("groups = %v", g)
	}
	tree.Main.Modify(t, "dn: "+testenv.GroupDN("ops")+"\nchangetype: modify\nreplace: member\nmember: "+testenv.UserDN("carol")+"\n")

	if g := groups(uncached); len(g) != 0 {
		t.Errorf("cache_ttl 0: groups after removal = %v, want none", g)
	}
	advance(59 * time.Second)
	if g := groups(cached); !slices.Equal(g, []string{"ops"}) {
		t.Errorf("within cache_ttl: groups = %v, want the cached [ops]", g)
	}
	advance(time.Second)
	if g := groups(cached); len(g) != 0 {
		t.Errorf("after cache_ttl: groups = %v, want none", g)
	}
}

func TestUnavailable(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	// A server that accepts connections and never answers: the request
	// must end with the timeout, not hang.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	}()
	down := "ldap://127.0.0.1:" + fmt.Sprint(testenv.FreePort(t))
	slow := "ldap://" + silent.Addr().String()

	tests := []struct {
		name    string
		urls    []string
		wantErr error
	}{
		{"down", []string{down}, ErrUnavailable},
		{"slow", []string{slow}, ErrUnavailable},
		{"first down, second answers", []string{down, tree.Main.URL}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := treeConfig(tree)
			cfg.URLs = tt.urls
			cfg.Timeout = 300 * time.Millisecond
			_, err := newDir(t, cfg).Authenticate(context.Background(), "alice", "alice-pw")
			if !errors.Is(err, tt.wantErr) && (tt.wantErr != nil || err != nil) {
				t.Fatalf("Authenticate = %v, want %v", err, tt.wantErr)
			}
		})
	}

	t.Run("service account refused", func(t *testing.T) {
		cfg := treeConfig(tree)
		cfg.BindPassword = "wrong"
		_, err := newDir(t, cfg).Authenticate(context.Background(), "alice", "alice-pw")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Authenticate = %v, want unavailable", err)
		}
	})
	t.Run("server stopped", func(t *testing.T) {
		d := newDir(t, treeConfig(tree))
		if _, err := d.Lookup(context.Background(), "bob"); err != nil {
			t.Fatal(err)
		}
		tree.Main.Stop()
		if _, err := d.Lookup(context.Background(), "bob"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Lookup after stop = %v, want unavailable", err)
		}
	})
}

// TestPoolBound runs many lookups at once and checks that no more than
// PoolSize service connections were ever open together.
func TestPoolBound(t *testing.T) {
	tree := testenv.StartLDAPTree(t)
	cfg := treeConfig(tree)
	cfg.PoolSize = 2
	d := newDir(t, cfg)
	var open, most, dials atomic.Int32
	dial := d.pool.dial
	d.pool.dial = func() (*ldap.Conn, error) {
		c, err := dial()
		if err == nil {
			dials.Add(1)
			n := open.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
		}
		return c, err
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := d.Lookup(context.Background(), "alice"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if most.Load() > 2 || dials.Load() > 2 {
		t.Errorf("dialed %d connections, %d at most open, want at most 2", dials.Load(), most.Load())
	}
}

func TestNewRejects(t *testing.T) {
	good := Config{URLs: []string{"ldap://127.0.0.1:389"}, UserBase: "dc=x", UserFilter: "(uid={login})"}
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no url", func(c *Config) { c.URLs = nil }},
		{"bad scheme", func(c *Config) { c.URLs = []string{"http://x"} }},
		{"no user base", func(c *Config) { c.UserBase = "" }},
		{"filter without login", func(c *Config) { c.UserFilter = "(uid=x)" }},
		{"broken filter", func(c *Config) { c.UserFilter = "(uid={login}" }},
		{"unknown placeholder", func(c *Config) { c.UserFilter = "(uid={user})" }},
		{"group filter without dn", func(c *Config) { c.GroupFilter = "(member=x)" }},
	}
	if _, err := New(good); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			if _, err := New(c); err == nil {
				t.Errorf("New accepted %+v", c)
			}
		})
	}
}

func TestParseReferral(t *testing.T) {
	tests := []struct{ ref, server, base string }{
		{"ldap://127.0.0.1:1234/ou=partners,dc=example,dc=test??sub", "ldap://127.0.0.1:1234", "ou=partners,dc=example,dc=test"},
		{"ldaps://dc2.example.test/DC=corp,DC=example", "ldaps://dc2.example.test", "DC=corp,DC=example"},
		{"ldap://gc.example.test:3268/", "ldap://gc.example.test:3268", ""},
		{"ldap://h/ou=a%20b,dc=x", "ldap://h", "ou=a b,dc=x"},
	}
	for _, tt := range tests {
		server, base, err := parseReferral(tt.ref)
		if err != nil || server != tt.server || base != tt.base {
			t.Errorf("parseReferral(%q) = %q, %q, %v; want %q, %q", tt.ref, server, base, err, tt.server, tt.base)
		}
	}
	for _, bad := range []string{"http://h/x", "ldap:///dc=x", "::"} {
		if _, _, err := parseReferral(bad); err == nil {
			t.Errorf("parseReferral(%q) accepted", bad)
		}
	}
}
