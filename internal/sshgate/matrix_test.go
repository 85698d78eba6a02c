package sshgate_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// The authorization matrix: every channel and request type a client can
// send, by every kind of caller that must be refused, with an allowed
// caller as the control. Each cell states what the client sees, which
// audit event it leaves, and checks that the target saw nothing of a
// refused request: no login as the caller's account, no file, no
// connection on the listener a tunnel would reach.
//
// Rows are driven through the real OpenSSH client wherever it can send
// the request (for the revoked caller, through a ControlMaster connection
// opened before the policy was deleted) and through a raw x/crypto client
// where it cannot.
//
// sshgate.HandledTypes lists every type the gateway serves; a type without
// a row here fails TestAuthorizationMatrixCoversHandlers.

// mxCaller is one kind of caller. Each logs in as its own target account,
// so that a leak shows in the target's log as a login for that account.
type mxCaller struct {
	name    string
	ident   string // the gateway identity
	account string // the target account named in the login string
	key     *testenv.ClientKey
	allowed bool
	// deny is the denial an authorized request gets.
	deny string
	// revoke is a policy deleted after the caller connected and before
	// it sends the request; it is applied again after the cell.
	revoke string
}

func (c *mxCaller) login() string { return c.ident + "~" + c.account + "~web1" }

// mxOutcome is what a cell must show.
type mxOutcome struct {
	// reached: the target did what was asked (ran the command, accepted
	// the tunnel, got the forwarding or the request).
	reached bool
	// line is a text the client must have seen; mxDeny stands for the
	// caller's denial.
	line string
	// event is the audit event type the cell must leave for the caller;
	// "" means it must leave no request.deny.
	event string
}

const mxDeny = "\x00deny"

// mxCell is what a cell did.
type mxCell struct {
	reached bool
	out     string // what the client saw: stderr, a reject message, a reply
}

type mxRow struct {
	name string
	// covers are the sshgate.HandledTypes entries ("kind:type") the row
	// exercises.
	covers  []string
	openssh bool
	allowed mxOutcome
	// refused is the outcome for every other caller; nil means the
	// caller's denial, audited as request.deny, target untouched.
	refused *mxOutcome
	// muxLine, if set, replaces the line the revoked caller sees, whose
	// request goes through an OpenSSH ControlMaster.
	muxLine string
	run     func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell
}

// matrix is the shared world: one sshd, one gateway, every caller.
type matrix struct {
	gw        *gateway
	sshd      *testenv.SSHD
	clientDir string
	fx        string // a directory every target account may write to
	yaml      map[string]string
	callers   []*mxCaller

	tcpAddr string // a listener on the target host, for tunnels
	// elsewhere is a listener on another loopback address: another
	// host, as far as tunnel destinations go.
	elsewhere string
	sockPath  string // a unix socket listener on the target host
	// agentPath is the socket of an empty ssh-agent, the client's.
	agentPath string
	mu        sync.Mutex
	seen      map[string]bool // first lines the listeners received
}

func newMatrix(t *testing.T) *matrix {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", "sftp", "ssh-agent", "xauth", testenv.SSHDPath)
	// X11, agent and environment forwarding are switched on at the target,
	// so that one the gateway let through would show there.
	sshd := testenv.StartSSHD(t, "X11Forwarding yes", "AllowAgentForwarding yes", "AcceptEnv LC_* MATRIX_*",
		"AllowStreamLocalForwarding yes")
	gw := startGateway(t)
	m := &matrix{gw: gw, sshd: sshd, clientDir: testenv.ShortTempDir(t), yaml: map[string]string{}, seen: map[string]bool{}}
	m.fx = testenv.ShortTempDir(t)
	if err := os.Chmod(m.fx, 0o1777); err != nil {
		t.Fatal(err)
	}
	m.listen(t)

	key := func() *testenv.ClientKey { return testenv.NewClientKey(t, m.clientDir) }
	okKey := key()
	acct := map[string]string{}
	for _, n := range []string{"ok", "wrong", "nopol", "far", "old", "bot", "rev"} {
		acct[n] = sshd.AddUser(t)
	}
	m.callers = []*mxCaller{
		{name: "allowed", ident: "ok", account: acct["ok"], key: okKey, allowed: true},
		{name: "no policy", ident: "nopol", account: acct["nopol"], key: key(),
			deny: "access denied: nopol may not reach web1"},
		{name: "wrong target user", ident: "ok", account: acct["wrong"], key: okKey,
			deny: fmt.Sprintf("access denied: ok may not log in to web1 as %s", acct["wrong"])},
		{name: "wrong source", ident: "far", account: acct["far"], key: key(),
			deny: "access denied: far may not reach web1 from 127.0.0.1"},
		{name: "expired", ident: "old", account: acct["old"], key: key(),
			deny: "access denied: old's access to web1 is outside its validity window"},
		{name: "autologin outside its networks", ident: "bot", account: acct["bot"], key: key(),
			deny: "access denied: bot may not reach web1 from 127.0.0.1"},
		{name: "revoked mid-session", ident: "rev", account: acct["rev"], key: key(), revoke: "rev-web1",
			deny: "access denied: rev may not reach web1"},
	}
	keys := map[string]string{}
	for _, c := range m.callers {
		keys[c.ident] = c.key.AuthorizedKey
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kind: Target\nname: web1\naddress: %s\nhost_key: %q\n", sshd.Addr, authorizedLine(sshd.HostKey))
	for _, u := range []string{"ok", "nopol", "far", "old", "rev"} {
		fmt.Fprintf(&b, "---\nkind: User\nname: %s\nssh_keys: [%q]\n", u, keys[u])
	}
	fmt.Fprintf(&b, "---\nkind: ServiceAccount\nname: bot\nowner: ok\nssh_keys: [%q]\n", keys["bot"])
	for _, n := range slices.Sorted(maps.Keys(acct)) {
		fmt.Fprintf(&b, "---\nkind: Account\nname: %s\ntarget: web1\n", acct[n])
	}
	policy := func(name, subjects, user, extra string) string {
		return fmt.Sprintf(`kind: Policy
name: %s
type: target-access
subjects: %s
targets: {names: [web1]}
target_users: [%s]
actions: [shell, exec, file-transfer, tunnel]
%s
`, name, subjects, user, extra)
	}
	m.yaml["ok-web1"] = policy("ok-web1", "{users: [ok]}", acct["ok"], "source_cidrs: [127.0.0.0/8]")
	m.yaml["far-web1"] = policy("far-web1", "{users: [far]}", acct["far"], "source_cidrs: [10.0.0.0/8]")
	m.yaml["old-web1"] = policy("old-web1", "{users: [old]}", acct["old"],
		"valid_from: 2020-01-01T00:00:00Z\nvalid_until: 2020-01-02T00:00:00Z")
	m.yaml["bot-web1"] = policy("bot-web1", "{service_accounts: [bot]}", acct["bot"],
		"autologin: true\nsource_cidrs: [10.0.0.0/8]")
	m.yaml["rev-web1"] = policy("rev-web1", "{users: [rev]}", acct["rev"], "source_cidrs: [127.0.0.0/8]")
	for _, n := range []string{"ok-web1", "far-web1", "old-web1", "bot-web1", "rev-web1"} {
		b.WriteString("---\n" + m.yaml[n])
	}
	gw.apply(b.String())
	for _, a := range acct {
		sshd.AuthorizeKey(t, a, gw.accountPub("web1", a))
	}
	return m
}

// listen starts the TCP and unix socket listeners a tunnel would reach;
// each records the first line it reads.
func (m *matrix) listen(t *testing.T) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.sockPath = filepath.Join(m.fx, "sock")
	ul, err := net.Listen("unix", m.sockPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(m.sockPath, 0o777)
	m.tcpAddr = tl.Addr().String()
	el, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	m.elsewhere = el.Addr().String()
	// An empty agent: ssh -A forwards only an agent it can reach.
	m.agentPath = filepath.Join(m.fx, "agent")
	agent := exec.Command("ssh-agent", "-D", "-a", m.agentPath)
	agent.Stdout, agent.Stderr = io.Discard, io.Discard
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(m.agentPath); err == nil {
			break
		}
		if i == 200 {
			t.Fatal("ssh-agent did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, l := range []net.Listener{tl, el, ul} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				nc, err := l.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer nc.Close()
					_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
					line, _ := bufio.NewReader(nc).ReadString('\n')
					m.mu.Lock()
					m.seen[strings.TrimSpace(line)] = true
					m.mu.Unlock()
					_, _ = nc.Write([]byte("pong\n"))
				}()
			}
		}()
	}
	t.Cleanup(func() {
		tl.Close()
		el.Close()
		ul.Close()
		wg.Wait()
	})
}

func (m *matrix) listenerSaw(tok string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[tok]
}

// file is the path a cell's command writes.
func (m *matrix) file(tok string) string { return filepath.Join(m.fx, tok) }

func (m *matrix) exists(tok string) bool {
	_, err := os.Stat(m.file(tok))
	return err == nil
}

func (m *matrix) read(tok string) string {
	b, _ := os.ReadFile(m.file(tok))
	return string(b)
}

// mxClient drives one cell for one caller.
type mxClient struct {
	m   *matrix
	c   *mxCaller
	ctl string      // ControlPath of a master opened before revocation
	pre *ssh.Client // a raw connection opened before revocation
}

// env is the ssh client's environment: a display and an agent socket,
// so that -Y and -A send their requests.
func (cl *mxClient) env() []string {
	return append(os.Environ(), "DISPLAY=:97", "SSH_AUTH_SOCK="+cl.m.agentPath, "LC_MATRIX=from-client", "MATRIX_VAR=from-client")
}

func (cl *mxClient) opts() []string {
	o := testenv.SSHArgs(cl.m.clientDir, cl.c.key, cl.m.gw.addr, cl.m.gw.hostKey)
	for i := range o {
		switch o[i] {
		case "LogLevel=ERROR":
			o[i] = "LogLevel=INFO"
		case "IdentityAgent=none":
			// ssh -A asks to forward an agent only when it has one.
			o[i] = "IdentityAgent=" + cl.m.agentPath
		}
	}
	o = append(o, "-l", cl.c.login())
	if cl.ctl != "" {
		o = append(o, "-o", "ControlMaster=no", "-o", "ControlPath="+cl.ctl)
	}
	return o
}

// run runs an OpenSSH client program with a bounded timeout.
func (cl *mxClient) run(t *testing.T, stdin, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cl.env()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 3 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("%s %q timed out; stderr %q", name, args, e.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return o.String(), e.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return o.String(), e.String(), ee.ExitCode()
	}
	t.Errorf("%s %q: %v; stderr %q", name, args, err, e.String())
	return o.String(), e.String(), -1
}

// ssh runs ssh with flags, then the host, then the command, if any.
func (cl *mxClient) ssh(t *testing.T, stdin string, flags []string, command ...string) (stdout, stderr string, code int) {
	t.Helper()
	args := append(cl.opts(), flags...)
	args = append(args, "127.0.0.1")
	return cl.run(t, stdin, "ssh", append(args, command...)...)
}

// raw returns a raw x/crypto connection: the one opened before the
// policy was revoked, or a new one.
func (cl *mxClient) raw(t *testing.T) *ssh.Client {
	t.Helper()
	if cl.pre != nil {
		return cl.pre
	}
	c, err := ssh.Dial("tcp", cl.m.gw.addr, &ssh.ClientConfig{
		User:            cl.c.login(),
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(cl.c.key.Signer)},
		HostKeyCallback: ssh.FixedHostKey(cl.m.gw.hostKey),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial gateway as %s: %v", cl.c.login(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startMaster opens an OpenSSH ControlMaster connection for the caller
// and returns its control socket.
func (m *matrix) startMaster(t *testing.T, c *mxCaller, tok string) string {
	t.Helper()
	ctl := filepath.Join(m.clientDir, "ctl-"+tok)
	cl := &mxClient{m: m, c: c}
	args := append(cl.opts(), "-M", "-N", "-o", "ControlPath="+ctl, "-o", "ForwardX11Trusted=yes", "-o", "ForwardX11=yes",
		"-o", "ForwardAgent=yes", "127.0.0.1")
	cmd := exec.Command("ssh", args...)
	cmd.Env = cl.env()
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		if _, _, code := cl.run(t, "", "ssh", "-o", "ControlPath="+ctl, "-O", "check", "127.0.0.1"); code == 0 {
			return ctl
		}
		if i == 200 {
			t.Fatalf("ControlMaster for %s did not start: %s", c.login(), e.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events lists the audit events of type typ left by the caller.
func (m *matrix) events(t *testing.T, c *mxCaller, typ string) []store.AuditEvent {
	t.Helper()
	evs, err := m.gw.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, ev := range evs {
		if ev.User == c.ident && ev.Account == c.account {
			out = append(out, ev)
		}
	}
	return out
}

// targetLoggedIn reports whether the target saw anyone log in, or try to,
// as the caller's account.
func (m *matrix) targetLoggedIn(c *mxCaller) bool {
	return strings.Contains(m.sshd.Log(), "for "+c.account+" from")
}

// cell runs one row for one caller and checks its outcome.
func (m *matrix) cell(t *testing.T, r mxRow, c *mxCaller, tok string) {
	want := r.allowed
	if !c.allowed {
		if r.refused != nil {
			want = *r.refused
		} else {
			want = mxOutcome{line: mxDeny, event: audit.RequestDeny}
		}
	}
	if want.line == mxDeny {
		want.line = c.deny
		if c.revoke != "" && r.openssh && r.muxLine != "" {
			want.line = r.muxLine
		}
	}
	cl := &mxClient{m: m, c: c}
	if c.revoke != "" {
		// Connected while the policy held; the request comes after it
		// was deleted.
		if r.openssh {
			cl.ctl = m.startMaster(t, c, tok)
		} else {
			cl.pre = cl.raw(t)
		}
		if err := m.gw.inv.Delete(context.Background(), resource.KindPolicy, c.revoke); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.gw.apply(m.yaml[c.revoke]) })
	}
	before := len(m.events(t, c, audit.RequestDeny))
	logins := len(m.events(t, c, audit.LoginSuccess))
	got := r.run(t, m, cl, tok)
	t.Logf("%s x %s: want reached=%v line=%q event=%q; got reached=%v, client saw %q",
		c.name, r.name, want.reached, want.line, want.event, got.reached, got.out)

	if got.reached != want.reached {
		t.Errorf("reached the target: %v, want %v; client saw %q", got.reached, want.reached, got.out)
	}
	if want.line != "" && !strings.Contains(got.out, want.line) {
		t.Errorf("client saw %q, want %q", got.out, want.line)
	}
	if !c.allowed && m.targetLoggedIn(c) {
		t.Errorf("the target saw a login as %s", c.account)
	}
	if cl.ctl != "" && len(m.events(t, c, audit.LoginSuccess)) != logins {
		t.Errorf("the client logged in again instead of using its ControlMaster connection")
	}
	// Audit events are written before the client is answered, but a
	// client may exit before the gateway's goroutine writes: poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := len(m.events(t, c, audit.RequestDeny)) - before
		if want.event == "" && n == 0 || want.event != "" && n > 0 {
			break
		}
		if want.event == "" || time.Now().After(deadline) {
			t.Errorf("%d new request.deny events for %s, want %s", n, c.login(), map[bool]string{true: "none", false: "some"}[want.event == ""])
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	m := newMatrix(t)
	rows := matrixRows()
	for ci, c := range m.callers {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for ri, r := range rows {
				t.Run(r.name, func(t *testing.T) {
					m.cell(t, r, c, fmt.Sprintf("c%dr%d", ci, ri))
				})
			}
		})
	}
}

// A handler added without a row fails here.
func TestAuthorizationMatrixCoversHandlers(t *testing.T) {
	covered := map[string]bool{}
	for _, r := range matrixRows() {
		for _, c := range r.covers {
			covered[c] = true
		}
	}
	handled := map[string]bool{}
	for kind, types := range sshgate.HandledTypes() {
		for _, typ := range types {
			handled[kind+":"+typ] = true
			if !covered[kind+":"+typ] {
				t.Errorf("%s %q is handled by the gateway but has no row in the authorization matrix", kind, typ)
			}
		}
	}
	// A row claiming a type the gateway does not serve is a typo that
	// would hide a missing row.
	for c := range covered {
		if !handled[c] {
			t.Errorf("a matrix row covers %q, which the gateway does not serve", c)
		}
	}
}
