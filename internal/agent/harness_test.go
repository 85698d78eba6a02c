package agent_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentgate"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is the agent front on loopback over a real SQLite store and
// inventory; restart stops it and starts another on the same address.
type gateway struct {
	t       *testing.T
	dir     string
	store   store.Store
	inv     *inventory.Inventory
	audit   *audit.Log
	hostKey ssh.Signer
	addr    string
	version string
	rate    int
	// heartbeat is the gateway's heartbeat; default 3 s.
	heartbeat time.Duration

	mu     sync.Mutex
	srv    *agentgate.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startGateway(t *testing.T, version string) *gateway {
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
	inv, err := inventory.New(ctx, st, v, quiet())
	if err != nil {
		t.Fatal(err)
	}
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(hk)
	g := &gateway{t: t, dir: dir, store: st, inv: inv, audit: audit.New(st, quiet()), hostKey: signer,
		addr: "127.0.0.1:0", version: version}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) start() {
	g.t.Helper()
	srv, err := agentgate.New(agentgate.Config{HostKey: g.hostKey, Store: g.store, Inventory: g.inv, Audit: g.audit,
		Log: quiet(), GatewayID: "gw1", Version: g.version, ReconnectRate: g.rate, Heartbeat: cmp.Or(g.heartbeat, 3*time.Second)})
	if err != nil {
		g.t.Fatal(err)
	}
	var ln net.Listener
	// The old listener's port may take a moment to be free again.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", g.addr)
		if err == nil {
			break
		}
		if i > 100 {
			g.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	g.mu.Lock()
	g.srv, g.cancel, g.done = srv, cancel, done
	g.mu.Unlock()
}

func (g *gateway) stop() {
	g.mu.Lock()
	srv, cancel, done := g.srv, g.cancel, g.done
	g.srv = nil
	g.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	_ = srv.Shutdown(ctx)
	cancel()
	<-done
}

func (g *gateway) server() *agentgate.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.srv
}

// newKey stores a registration key with limits set by edit and returns
// its value.
func (g *gateway) newKey(edit func(*store.APIKey)) (id, value string) {
	g.t.Helper()
	id, value, err := apikey.New()
	if err != nil {
		g.t.Fatal(err)
	}
	_, secret, _ := apikey.Parse(value)
	k := store.APIKey{ID: id, Name: "agents", Kind: store.APIKeyRegistration, SecretHash: apikey.Hash(id, secret),
		CreatedAt: time.Now()}
	if edit != nil {
		edit(&k)
	}
	if err := g.store.CreateAPIKey(context.Background(), k); err != nil {
		g.t.Fatal(err)
	}
	return id, value
}

func (g *gateway) events(typ string) []store.AuditEvent {
	g.t.Helper()
	evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// logBuffer collects an agent's log for checking what it says.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 30*time.Second, what, cond)
}

// waitWithin is waitFor with its own bound, for waits that a loaded
// machine stretches (many agents handshaking at once under -race).
func waitWithin(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
