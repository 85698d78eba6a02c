package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// noSessions serves no session: these tests are about registration and
// the connection, not what runs over it (see the server package's tests
// with OpenSSH for that).
type noSessions struct{}

func (noSessions) ServeConn(context.Context, net.Conn, ssh.Signer, []ssh.PublicKey) {}

func newAgent(t *testing.T, g *gateway, name, key string, edit func(*agent.Config)) (*agent.Agent, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := agent.Config{Gateway: g.addr, StateDir: filepath.Join(testenv.ShortTempDir(t), "state"), Name: name,
		RegistrationKey: key, Builtin: noSessions{}, Version: "1.4.0",
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

func TestRegistrationKeyLimits(t *testing.T) {
	g := startGateway(t, "1.4.0")
	_, plain := g.newKey(nil)
	_, scoped := g.newKey(func(k *store.APIKey) { k.Environment = "prod"; k.NamePattern = "web-*"; k.MaxUses = 2 })
	_, scopedOnly := g.newKey(func(k *store.APIKey) { k.Environment = "prod"; k.NamePattern = "web-*" })
	_, revoked := g.newKey(nil)
	revokedID, _, _ := strings.Cut(strings.TrimPrefix(revoked, "pck_"), ".")
	if err := g.store.RevokeAPIKey(context.Background(), revokedID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, expired := g.newKey(func(k *store.APIKey) { k.ExpiresAt = time.Now().Add(-time.Minute) })
	_, elsewhere := g.newKey(func(k *store.APIKey) { k.SourceCIDRs = []string{"192.0.2.0/24"} })
	_, accessValue := g.newKey(func(k *store.APIKey) { k.Kind = store.APIKeyAccess; k.Owner = "alice" })
	forged := plain[:len(plain)-4] + "AAAA"

	cases := []struct {
		name, target, key, env string
		want                   string // "" registers
	}{
		{"plain key", "db-1", plain, "", ""},
		{"scoped key, its environment", "web-1", scoped, "prod", ""},
		{"scoped key, environment taken from the key", "web-2", scoped, "", ""},
		{"scoped key used up", "web-3", scoped, "prod", "used up"},
		{"plain key, any environment", "web-4", plain, "dev", ""},
		{"scoped key, wrong environment", "web-5", scopedOnly, "dev", `environment "prod" only`},
		{"scoped key, wrong name", "db-2", scopedOnly, "prod", `names matching "web-*" only`},
		{"revoked key", "db-3", revoked, "", "revoked"},
		{"expired key", "db-4", expired, "", "expired"},
		{"other source network", "db-5", elsewhere, "", "not accepted from this address"},
		{"access key", "db-6", accessValue, "", "not a registration key"},
		{"forged secret", "db-7", forged, "", "unknown registration key"},
		{"malformed key", "db-8", "hunter2-not-a-key", "", "malformed"},
		{"bad name", "-x y", plain, "", "field name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, logs := newAgent(t, g, c.target, c.key, func(cfg *agent.Config) { cfg.Environment = c.env })
			err := a.Register(context.Background())
			if c.want == "" {
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
			} else {
				var re *agent.RefusedError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Register = %v, want a refusal with %q", err, c.want)
				}
			}
			// Nothing secret in what the operator or the log sees: not
			// the key, not its secret half.
			_, secret, _ := strings.Cut(c.key, ".")
			for what, text := range map[string]string{"error": errString(err), "log": logs.String()} {
				if strings.Contains(text, c.key) || (len(secret) > 8 && strings.Contains(text, secret)) {
					t.Fatalf("the %s holds the registration key: %s", what, text)
				}
			}
		})
	}
	snap := g.inv.Snapshot()
	web1 := snap.Engine.Target("web-1")
	if web1 == nil || !web1.ThroughAgent() || web1.Labels["environment"] != "prod" || web1.AuthMode() != resource.AuthCertificate {
		t.Fatalf("web-1 as registered: %+v", web1)
	}
	if snap.Engine.Target("web-3") != nil || snap.Engine.Target("db-3") != nil {
		t.Fatal("a refused registration created its target")
	}
	// Every refusal is in the audit trail, with the key's id and never
	// its secret.
	fails := 0
	for _, ev := range g.events(audit.AgentRegister) {
		if ev.Outcome == audit.Failure {
			fails++
		}
		for _, v := range []string{plain, scoped, scopedOnly, revoked, expired, forged} {
			_, secret, _ := strings.Cut(v, ".")
			if strings.Contains(ev.Message, secret) || strings.Contains(strings.Join(detailStrings(ev), " "), secret) {
				t.Fatalf("audit event holds a key secret: %+v", ev)
			}
		}
	}
	if fails != 10 {
		t.Fatalf("%d refused registrations audited, want 10", fails)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func detailStrings(ev store.AuditEvent) []string {
	var out []string
	for k, v := range ev.Detail {
		if s, ok := v.(string); ok {
			out = append(out, k+"="+s)
		}
	}
	return out
}

func TestReRegistrationNeedsForce(t *testing.T) {
	g := startGateway(t, "1.4.0")
	_, key := g.newKey(nil)
	first, _ := newAgent(t, g, "app1", key, nil)
	if err := first.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The same identity again (a script run twice): fine.
	if err := first.Register(context.Background()); err != nil {
		t.Fatalf("the same identity registering again: %v", err)
	}
	second, _ := newAgent(t, g, "app1", key, nil)
	if err := second.Register(context.Background()); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("another identity taking the name = %v, want a refusal naming --force", err)
	}
	forced, _ := newAgent(t, g, "app1", key, func(c *agent.Config) { c.Force = true })
	if err := forced.Register(context.Background()); err != nil {
		t.Fatalf("--force: %v", err)
	}
	a, err := g.store.GetAgent(context.Background(), "app1")
	if err != nil || a.PublicKey != forced.PublicKey() {
		t.Fatalf("agent row after --force: %+v %v", a, err)
	}
	// The replaced identity can no longer connect.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() { _ = first.Run(ctx) }()
	go func() { _ = forced.Run(ctx) }()
	waitFor(t, "the forced agent to connect", func() bool { return g.server().Connected("app1") })
	time.Sleep(500 * time.Millisecond)
	if evs := g.events(audit.AgentConnect); len(evs) != 1 {
		t.Fatalf("%d agent connections, want only the forced identity's", len(evs))
	}

	// A target the gateway dials is never taken over by an agent, even
	// with --force.
	g.apply(t, "kind: Target\nname: ssh1\naddress: 127.0.0.1:22\n")
	thief, _ := newAgent(t, g, "ssh1", key, func(c *agent.Config) { c.Force = true })
	if err := thief.Register(context.Background()); err == nil || !strings.Contains(err.Error(), "not an agent target") {
		t.Fatalf("registering over an OpenSSH target = %v", err)
	}
}

func (g *gateway) apply(t *testing.T, yaml string) {
	t.Helper()
	objs, err := resource.DecodeYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.inv.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityFile(t *testing.T) {
	dir := filepath.Join(testenv.ShortTempDir(t), "state")
	s1, err := agent.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "identity"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, %v", fi.Mode().Perm(), err)
	}
	s2, err := agent.LoadOrCreateIdentity(dir)
	if err != nil || string(s2.PublicKey().Marshal()) != string(s1.PublicKey().Marshal()) {
		t.Fatalf("identity not kept: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "identity"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.LoadOrCreateIdentity(dir); err == nil || !strings.Contains(err.Error(), "accessible to others") {
		t.Fatalf("a world-readable identity = %v, want refused", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "identity"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.LoadOrCreateIdentity(dir); err == nil || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("a garbage identity = %v", err)
	}
}

func TestVersionSkew(t *testing.T) {
	g := startGateway(t, "1.4.0")
	_, key := g.newKey(nil)
	cases := []struct {
		version string
		ok      bool
	}{{"1.4.3", true}, {"1.3.0", true}, {"1.2.0", false}, {"1.5.0", false}, {"2.4.0", false}}
	for _, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			a, _ := newAgent(t, g, "v"+strings.ReplaceAll(c.version, ".", "-"), key, func(cfg *agent.Config) { cfg.Version = c.version })
			err := a.Register(context.Background())
			if c.ok != (err == nil) {
				t.Fatalf("Register with agent %s: %v", c.version, err)
			}
			if !c.ok && (!strings.Contains(err.Error(), "gateway 1.4.0") || !strings.Contains(err.Error(), "this agent is "+c.version) ||
				strings.Contains(err.Error(), "\n")) {
				t.Fatalf("refusal %q does not name both versions on one line", err)
			}
		})
	}
	// A registered agent whose gateway is later downgraded keeps running
	// and retries seldom: no crash loop.
	var dials atomic.Int32
	a, logs := newAgent(t, g, "old", key, func(cfg *agent.Config) {
		cfg.MinBackoff = 10 * time.Millisecond
		cfg.MaxBackoff = 400 * time.Millisecond
		cfg.Dial = countingDial(&dials)
	})
	if err := a.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.stop()
	g.version = "2.0.0"
	g.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	before := dials.Load()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run returned %v; it must keep waiting", err)
	}
	n := dials.Load() - before
	// With the backoff at its cap of 400 ms after a refusal, 2 s allow
	// about 5 tries plus the first; a crash loop would make hundreds.
	t.Logf("refused agent dialed %d times in 2 s", n)
	if n > 12 {
		t.Fatalf("refused agent dialed %d times in 2 s", n)
	}
	if !strings.Contains(logs.String(), "gateway 2.0.0 serves agents of version 2.0") {
		t.Fatalf("agent log does not say why: %s", logs.String())
	}
	if len(g.events(audit.AgentRefuse)) == 0 {
		t.Fatal("version refusals not audited")
	}
}

func countingDial(n *atomic.Int32) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func TestSecondConnectionReplacesFirst(t *testing.T) {
	g := startGateway(t, "1.4.0")
	_, key := g.newKey(nil)
	a, _ := newAgent(t, g, "twin", key, nil)
	if err := a.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A copy of the state directory: the same identity twice.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	waitFor(t, "the first connection", func() bool { return len(g.events(audit.AgentConnect)) == 1 })
	first, _ := g.store.GetAgent(context.Background(), "twin")
	b := cloneAgent(t, g, a)
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Run(ctx) }()
	waitFor(t, "the second connection to replace the first", func() bool {
		for _, ev := range g.events(audit.AgentDisconnect) {
			if ev.Detail["replaced"] == true {
				return true
			}
		}
		return false
	})
	ev := g.events(audit.AgentConnect)
	if ev[len(ev)-1].Detail["replaced"] != true {
		t.Fatalf("the second connection did not say it replaced the first: %+v", ev[len(ev)-1])
	}
	now, _ := g.store.GetAgent(context.Background(), "twin")
	if now.Gateway != "gw1" || now.ConnectedAt.Before(first.ConnectedAt) {
		t.Fatalf("agent row after replacement: %+v", now)
	}
}

// cloneAgent makes an agent with a's state directory copied: the same
// identity.
func cloneAgent(t *testing.T, g *gateway, a *agent.Agent) *agent.Agent {
	t.Helper()
	_ = g
	src := a.StateDir()
	dst := filepath.Join(testenv.ShortTempDir(t), "state")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"identity", "agent.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := agent.New(agent.Config{Gateway: g.addr, StateDir: dst, Builtin: noSessions{}, Version: "1.4.0", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = agentproto.ModeBuiltin
