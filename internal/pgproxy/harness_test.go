package pgproxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is a PostgreSQL front on loopback with its own store.
type gateway struct {
	t     *testing.T
	addr  string
	port  int
	store store.Store
	inv   *inventory.Inventory
	srv   *pgproxy.Server
	rec   *recording.Manager
	mfa   *mfa.Service
}

// selfSigned returns a TLS certificate for 127.0.0.1 and localhost.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startGateway starts a gateway on a store of its own, or on st when
// given (gateways sharing a store).
func startGateway(t *testing.T, st store.Store, v *vault.Vault, opts ...func(*pgproxy.Config)) *gateway {
	t.Helper()
	dir := testenv.ShortTempDir(t)
	ctx := context.Background()
	if v == nil {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		var err error
		if v, err = vault.New(key); err != nil {
			t.Fatal(err)
		}
	}
	if st == nil {
		lite, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lite.Close() })
		st = lite
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := recording.NewManager(filepath.Join(dir, "rec"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	mfaSvc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pgproxy.Config{TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, Snapshot: inv.Snapshot,
		Vault: v, Credentials: st, MFA: mfaSvc, Audit: auditLog, Log: log, Recordings: rm, DialTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := pgproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv.Subscribe(srv.Recheck)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done, recDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(recDone)
		rm.Run(sctx)
	}()
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln)
	}()
	t.Cleanup(func() {
		shut, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(shut)
		cancel()
		<-done
		<-recDone
	})
	return &gateway{t: t, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, store: st, inv: inv, srv: srv, rec: rm, mfa: mfaSvc}
}

func (g *gateway) apply(yaml string) {
	g.t.Helper()
	objs, err := resource.DecodeYAML([]byte(yaml))
	if err != nil {
		g.t.Fatalf("decode: %v", err)
	}
	for _, o := range objs {
		// The password travels as the CLI sends it: never in YAML.
		if a, ok := o.(*resource.Account); ok && a.Target == "db1" && a.Name == "app" {
			a.Password = appPassword
		}
	}
	if _, err := g.inv.Apply(context.Background(), objs); err != nil {
		g.t.Fatalf("apply: %v", err)
	}
}

func (g *gateway) setPassword(user, pw string) {
	g.t.Helper()
	h, err := password.Hash(pw)
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.store.SetPassword(context.Background(), user, h, time.Now()); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) events(typ string) []store.AuditEvent {
	g.t.Helper()
	evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// waitEvent polls for an audit event of typ that match accepts: statement
// events are written by the gateway's audit writer after the client got
// its answer.
func (g *gateway) waitEvent(typ string, match func(store.AuditEvent) bool) store.AuditEvent {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range g.events(typ) {
			if match == nil || match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, ev := range g.events("") {
				all = append(all, fmt.Sprintf("%s %s %q %v", ev.Type, ev.Outcome, ev.Message, ev.Detail))
			}
			g.t.Fatalf("no %s event matched; have:\n%s", typ, strings.Join(all, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// site is a PostgreSQL server that wants SCRAM passwords, with roles app
// (owner of databases app and other) and a gateway where alice may open
// database app on target db1 as app, with DROP and TRUNCATE denied.
type site struct {
	t  *testing.T
	pg *testenv.Postgres
	gw *gateway
}

const (
	appPassword   = "app-db-secret"
	alicePassword = "alice-gw-password"
)

func newSite(t *testing.T, opts ...func(*pgproxy.Config)) *site {
	t.Helper()
	testenv.RequireRoot(t)
	pg := testenv.StartPostgres(t)
	pg.RequireSCRAM(t)
	pg.Exec(t, "", "CREATE ROLE app LOGIN PASSWORD '"+appPassword+"'")
	pg.Exec(t, "", "CREATE ROLE boss NOLOGIN")
	pg.Exec(t, "", "CREATE DATABASE app OWNER app")
	pg.Exec(t, "", "CREATE DATABASE other OWNER app")
	pg.Exec(t, "app", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3); ALTER TABLE t OWNER TO app")
	s := &site{t: t, pg: pg, gw: startGateway(t, nil, nil, opts...)}
	s.gw.apply(s.resources(s.gw))
	s.gw.setPassword("alice", alicePassword)
	return s
}

// resources is the YAML of the site's gateway resources.
func (s *site) resources(g *gateway) string {
	return fmt.Sprintf(`kind: User
name: alice
---
kind: User
name: bob
---
kind: Target
name: db1
address: 127.0.0.1:%d
protocol: postgres
tls_mode: disable
---
kind: Account
target: db1
name: app
---
kind: Policy
name: alice-db
type: proxy
subjects: {users: [alice]}
targets: {names: [db1]}
target_users: [app]
databases: [app]
commands: {deny: ["^DROP ", "^TRUNCATE "]}
`, s.pg.Port)
}

// conninfo is a libpq connection string to the gateway.
func (g *gateway) conninfo(user, db, pw string, extra ...string) string {
	parts := []string{"host=127.0.0.1", fmt.Sprintf("port=%d", g.port), "user=" + user, "dbname=" + db,
		"password=" + pw, "sslmode=require", "connect_timeout=10"}
	return strings.Join(append(parts, extra...), " ")
}

// psql runs psql against the gateway with -c statements.
func (g *gateway) psql(conninfo string, args ...string) (stdout, stderr string, code int) {
	g.t.Helper()
	all := append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo}, args...)
	return testenv.Run(g.t, 30*time.Second, "psql", all...)
}

// connect opens a pgx connection through the gateway.
func (g *gateway) connect(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, conninfo)
}

// testCA returns a CA certificate and a server certificate and key it
// signed for host, all PEM.
func testCA(t testing.TB, host string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(host)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
