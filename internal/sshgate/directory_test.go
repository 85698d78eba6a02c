package sshgate_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/testenv"
)

// dirWorld is a world whose gateway signs in users from an LDAPTree, with
// a clock the test moves to expire the directory cache.
type dirWorld struct {
	*world
	tree  *testenv.LDAPTree
	mu    sync.Mutex
	now   time.Time
	admin ssh.Signer // the local admin's key (break glass)
}

func (w *dirWorld) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

// newDirWorld starts slapd, sshd and a gateway with cache_ttl 1s, and
// grants directory group eng (alice is in it through devs) and the local
// admin exec and shell on web1. urls, if given, replace the directory's
// address.
func newDirWorld(t *testing.T, urls ...string) *dirWorld {
	t.Helper()
	tree := testenv.StartLDAPTree(t)
	dw := &dirWorld{tree: tree, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if len(urls) == 0 {
		urls = []string{tree.Main.URL}
	}
	d, err := directory.New(directory.Config{
		URLs: urls, BindDN: tree.Main.AdminDN, BindPassword: tree.Main.AdminPassword,
		UserBase: testenv.LDAPSuffix, UserFilter: "(&(objectClass=inetOrgPerson)(uid={login}))",
		GroupBase: "ou=groups," + testenv.LDAPSuffix, EmailAttribute: "mail", SSHKeyAttribute: "sshPublicKey",
		FollowReferrals: true, Timeout: 2 * time.Second, CacheTTL: time.Second,
		Now: func() time.Time { dw.mu.Lock(); defer dw.mu.Unlock(); return dw.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	var gw *gateway // set before any connection is accepted
	dl := &sshgate.DirectoryLogin{Directory: d,
		IsLocal: func(ctx context.Context, name string) (bool, error) { return gw.inv.IsLocalIdentity(ctx, name) },
		Ensure: func(ctx context.Context, name, email string) error {
			return gw.inv.EnsureDirectoryUser(ctx, name, email)
		},
	}
	dw.world = newWorld(t, "exec, shell", func(c *sshgate.Config) { c.Directory = dl })
	gw = dw.gw
	// newWorld's local alice would shadow the directory's: a local user
	// is never a directory user.
	// Its policy would grant the directory's alice by name.
	for _, o := range []struct {
		kind resource.Kind
		name string
	}{{resource.KindUser, "alice"}, {resource.KindPolicy, "alice-web1"}} {
		if err := gw.inv.Delete(context.Background(), o.kind, o.name); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	dw.admin, _ = ssh.NewSignerFromKey(priv)
	gw.apply(fmt.Sprintf(`
kind: Policy
name: eng-web1
type: target-access
subjects: {groups: [eng]}
targets: {names: [web1]}
target_users: [%[1]s]
actions: [exec, shell]
---
kind: User
name: root-admin
ssh_keys: [%[2]q]
---
kind: User
name: bob
---
kind: Policy
name: admin-web1
type: target-access
subjects: {users: [root-admin, bob]}
targets: {names: [web1]}
target_users: [%[1]s]
actions: [exec]
`, dw.unixUser, authorizedLine(dw.admin.PublicKey())))
	return dw
}

// dial connects with the Go client; banner collects what the gateway
// shows before authentication ends.
func (w *dirWorld) dial(t *testing.T, login string, auth ...ssh.AuthMethod) (*ssh.Client, string, error) {
	t.Helper()
	var banner strings.Builder
	c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{
		User: login, Auth: auth, HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey),
		BannerCallback: func(m string) error { banner.WriteString(m); return nil },
		Timeout:        10 * time.Second,
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, banner.String(), err
}

func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

func kbdPassword(pw string) ssh.AuthMethod {
	return ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		answers := make([]string, len(questions))
		for i := range answers {
			answers[i] = pw
		}
		return answers, nil
	})
}

func TestDirectoryLogin(t *testing.T) {
	w := newDirWorld(t)
	tests := []struct {
		name   string
		login  string
		auth   ssh.AuthMethod
		wantOK bool
	}{
		{"password", "alice~web1", ssh.Password("alice-pw"), true},
		{"keyboard-interactive", "alice~web1", kbdPassword("alice-pw"), true},
		{"wrong password", "alice~web1", ssh.Password("bob-pw"), false},
		{"empty password", "alice~web1", ssh.Password(""), false},
		{"empty keyboard-interactive", "alice~web1", kbdPassword(""), false},
		{"unknown user", "nobody~web1", ssh.Password("x"), false},
		{"local user's name", "bob~web1", ssh.Password("bob-pw"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := w.dial(t, tt.login, tt.auth)
			if !tt.wantOK {
				if err == nil {
					t.Fatalf("%s signed in", tt.login)
				}
				return
			}
			if err != nil {
				t.Fatalf("sign in: %v", err)
			}
			if out, err := run(c, "echo hi"); err != nil || out != "hi\n" {
				t.Fatalf("exec = %q, %v", out, err)
			}
		})
	}
	o, err := w.gw.inv.Get(context.Background(), resource.KindUser, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u := o.(*resource.User); u.Source != resource.SourceLDAP || u.Email != "alice@example.test" || len(u.Groups) != 0 {
		t.Errorf("alice's User = %+v, want source ldap, the directory's email and no copied groups", u)
	}
	if _, err := w.gw.inv.Get(context.Background(), resource.KindUser, "nobody"); err == nil {
		t.Error("a failed sign-in created a User")
	}
}

// TestDirectoryGroupRemovalDeniesLiveSession removes alice from a group in
// the directory: her open connection goes on within cache_ttl and is
// denied on the next request after it.
func TestDirectoryGroupRemovalDeniesLiveSession(t *testing.T) {
	w := newDirWorld(t)
	c, _, err := w.dial(t, "alice~web1", ssh.Password("alice-pw"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(c, "echo one"); err != nil || out != "one\n" {
		t.Fatalf("first exec = %q, %v", out, err)
	}
	w.tree.Main.Modify(t, "dn: "+testenv.GroupDN("devs")+"\nchangetype: modify\nreplace: member\nmember: "+testenv.UserDN("carol")+"\n")
	if out, err := run(c, "echo two"); err != nil || out != "two\n" {
		t.Fatalf("exec within cache_ttl = %q, %v; want the cached groups to allow it", out, err)
	}
	w.advance(time.Second)
	out, err := run(c, "echo three")
	if err == nil || !strings.Contains(out, "access denied") {
		t.Fatalf("exec after cache_ttl = %q, %v; want a denial", out, err)
	}
}

// TestDirectoryDown: with the directory stopped, a directory sign-in
// fails at once with a clear banner, and the local admin still gets in
// with a key.
func TestDirectoryDown(t *testing.T) {
	w := newDirWorld(t)
	w.tree.Main.Stop()
	_, banner, err := w.dial(t, "alice~web1", ssh.Password("alice-pw"))
	if err == nil || !strings.Contains(banner, "directory service is unavailable") {
		t.Fatalf("sign-in with directory down: err %v, banner %q", err, banner)
	}
	c, _, err := w.dial(t, "root-admin~web1", ssh.PublicKeys(w.admin))
	if err != nil {
		t.Fatalf("local admin with directory down: %v", err)
	}
	if out, err := run(c, "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("local admin exec = %q, %v", out, err)
	}
}

// TestDirectoryStalledDoesNotBlockOthers: while a password sign-in waits
// on a directory that accepted the connection and says nothing, the
// local admin signs in and runs a command; the waiting sign-in then fails
// with the directory message once the directory connection drops.
func TestDirectoryStalledDoesNotBlockOthers(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := silent.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	w := newDirWorld(t, "ldap://"+silent.Addr().String())

	type result struct {
		banner string
		err    error
	}
	stalled := make(chan result, 1)
	go func() {
		_, banner, err := w.dial(t, "alice~web1", ssh.Password("alice-pw"))
		stalled <- result{banner, err}
	}()
	held := <-accepted // the sign-in is now waiting on the directory

	c, _, err := w.dial(t, "root-admin~web1", ssh.PublicKeys(w.admin))
	if err != nil {
		t.Fatalf("local admin while the directory stalls: %v", err)
	}
	if out, err := run(c, "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("local admin exec = %q, %v", out, err)
	}
	held.Close()
	r := <-stalled
	if r.err == nil || !strings.Contains(r.banner, "directory service is unavailable") {
		t.Fatalf("stalled sign-in: err %v, banner %q", r.err, r.banner)
	}
}

// TestDirectoryDownDeniesLiveSession: a directory user's next request
// after cache_ttl is denied when the groups cannot be read.
func TestDirectoryDownDeniesLiveSession(t *testing.T) {
	w := newDirWorld(t)
	c, _, err := w.dial(t, "alice~web1", ssh.Password("alice-pw"))
	if err != nil {
		t.Fatal(err)
	}
	w.tree.Main.Stop()
	w.advance(time.Second)
	out, err := run(c, "echo x")
	if err == nil || !strings.Contains(out, "directory service is unavailable") {
		t.Fatalf("exec with directory down = %q, %v; want a denial naming the directory", out, err)
	}
}

func TestDirectoryKey(t *testing.T) {
	w := newDirWorld(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	_, _, err := w.dial(t, "alice~web1", ssh.PublicKeys(signer))
	if err == nil {
		t.Fatal("a key on no directory entry signed in")
	}
	w.tree.Main.Modify(t, "dn: "+testenv.UserDN("alice")+"\nchangetype: modify\nadd: sshPublicKey\nsshPublicKey: "+
		authorizedLine(signer.PublicKey())+" alice@laptop\n")
	w.advance(time.Second) // past the cached entry without the key
	c, _, err := w.dial(t, "alice~web1", ssh.PublicKeys(signer))
	if err != nil {
		t.Fatalf("directory key: %v", err)
	}
	if out, err := run(c, "echo k"); err != nil || out != "k\n" {
		t.Fatalf("exec = %q, %v", out, err)
	}
}

// TestDirectoryKeyboardInteractiveOpenSSH signs in with the real OpenSSH
// client typing the password at the keyboard-interactive prompt.
func TestDirectoryKeyboardInteractiveOpenSSH(t *testing.T) {
	w := newDirWorld(t)
	out, stderr, code, prompts := w.sshWithCode(t, "alice-pw", "alice~web1", "echo", "hello")
	if code != 0 || out != "hello\n" {
		t.Fatalf("ssh = %q, exit %d, stderr %q", out, code, stderr)
	}
	if len(prompts) != 1 || !strings.Contains(prompts[0], "Password") {
		t.Errorf("prompts = %q, want one password prompt", prompts)
	}
}
