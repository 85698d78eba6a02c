//go:build bench

package bench

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
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// TestPGCompare measures the PostgreSQL front (issue 17, item 7) side by
// side with direct connections to the same PostgreSQL, alternating:
// `pgbench -S -c 4 -T PG_BENCH_SECONDS` transactions per second, and the
// time of `psql -c 'select 1'` (connection setup). Both client legs use
// TLS (sslmode=require); the gateway reaches the database on loopback
// without TLS. The gateway runs in this test process, so the process's CPU
// seconds per 1,000 transactions are the gateway's. It reports; it never
// fails on a timing.
//
//	go test -tags bench -run TestPGCompare -v -count=1 -timeout 20m ./bench/
//
// With PG_BENCH_PEERS=1 (the default) each round also runs the floor: a
// bare Go TCP relay and pgbouncer (session pool mode, with and without
// TLS on the client leg; skipped with a note when pgbouncer is not
// installed), each with the CPU its process spent per 1,000 transactions.
//
// Environment: PG_BENCH_SECONDS (each pgbench run, default 20),
// PG_BENCH_PAIRS (rounds of the legs, default 3), PG_BENCH_PEERS (0 or 1,
// default 1), PG_SETUP_PAIRS
// (default 20), PG_BENCH_PROFILE (a file for the CPU profile of the first
// gateway run: go tool pprof -top FILE).
func TestPGCompare(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "pgbench", "psql")
	seconds := pgEnvInt(t, "PG_BENCH_SECONDS", 20, 1, 600)
	pairs := pgEnvInt(t, "PG_BENCH_PAIRS", 3, 1, 50)
	setupPairs := pgEnvInt(t, "PG_SETUP_PAIRS", 20, 1, 500)

	pg := testenv.StartPostgres(t)
	pg.RequireSCRAM(t)
	caPEM, certPEM, keyPEM := pgBenchCert(t)
	_ = caPEM
	pg.EnableTLS(t, certPEM, keyPEM)
	pg.Exec(t, "", "CREATE ROLE app LOGIN PASSWORD 'app-secret'")
	pg.Exec(t, "", "CREATE DATABASE app OWNER app")
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=app password=app-secret sslmode=require", pg.Port)
	if out, err := exec.Command("pgbench", "-i", "-q", "-s", "10", direct).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	gwAddr := startPGGateway(t, pg.Port, certPEM, keyPEM)
	_, gwPort, _ := net.SplitHostPort(gwAddr)
	viaGW := fmt.Sprintf("host=127.0.0.1 port=%s user=alice~app~db1 dbname=app password=alice-pw sslmode=require", gwPort)

	out := os.Stdout
	// The legs, alternated in each pair. With PG_BENCH_PEERS on (the
	// default), the floor is measured in the same run: a bare Go TCP
	// relay (TLS end to end, client to PostgreSQL, nothing parsed) and
	// pgbouncer in session mode (the client's TLS ended there, as at the
	// gateway, and without TLS), so that the gateway's ratio can be
	// read against what any middle process costs on this machine.
	legs := []pgLeg{{name: "gateway", conn: viaGW, cpu: selfCPU}, {name: "direct", conn: direct}}
	if pgEnvInt(t, "PG_BENCH_PEERS", 1, 0, 1) == 1 {
		legs = append(legs, pgPeers(t, pg.Port, certPEM, keyPEM)...)
	}
	fmt.Fprintf(out, "\n== PostgreSQL front: pgbench -S -c 4 -j 2 -T %d, %d rounds, legs alternating ==\n", seconds, pairs)
	tps := make([][]float64, len(legs))
	cpu := make([][]float64, len(legs))
	for i := 0; i < pairs; i++ {
		for j, leg := range legs {
			var before float64
			if leg.cpu != nil {
				before = leg.cpu()
			}
			stop := pgProfile(t, i == 0 && leg.name == "gateway")
			r, n := pgbench(t, leg.conn, seconds)
			stop()
			line := fmt.Sprintf("  %-15s tps %9.1f  transactions %8d", leg.name, r, n)
			tps[j] = append(tps[j], r)
			if leg.cpu != nil {
				used := leg.cpu() - before
				line += fmt.Sprintf("  middle CPU %.2fs", used)
				if n > 0 {
					cpu[j] = append(cpu[j], used/float64(n)*1000)
				}
			}
			fmt.Fprintln(out, line)
		}
	}
	dir := pgMedian(tps[1])
	fmt.Fprintf(out, "  %-15s %9s %6s %s\n", "median", "tps", "ratio", "middle CPU s/1000 tx")
	for j, leg := range legs {
		c := "-"
		if len(cpu[j]) > 0 {
			c = fmt.Sprintf("%.3f", pgMedian(cpu[j]))
		}
		fmt.Fprintf(out, "  %-15s %9.1f %6.2f %s\n", leg.name, pgMedian(tps[j]), pgMedian(tps[j])/dir, c)
	}
	fmt.Fprintf(out, "  gateway ratio %.2f (target >= 0.8 per DESIGN, 0.7 per issue 17); its CPU is the test process's (the in-process gateway, audit writer included)\n",
		pgMedian(tps[0])/dir)

	fmt.Fprintf(out, "\n== connection setup: psql -c 'select 1', %d pairs, alternating ==\n", setupPairs)
	var gwSetup, dirSetup []float64
	for i := 0; i < setupPairs; i++ {
		gwSetup = append(gwSetup, psqlOnce(t, viaGW))
		dirSetup = append(dirSetup, psqlOnce(t, direct))
	}
	fmt.Fprintf(out, "  median ms: gateway %.1f, direct %.1f, ratio %.2f\n", pgMedian(gwSetup), pgMedian(dirSetup), pgMedian(gwSetup)/pgMedian(dirSetup))
	fmt.Fprintf(out, "  (the gateway's setup includes one argon2id password check and its upstream SCRAM login)\n")
}

// pgProfile takes a CPU profile of this process (the gateway) into
// $PG_BENCH_PROFILE when on and the variable is set; the returned func
// stops it.
func pgProfile(t *testing.T, on bool) func() {
	path := os.Getenv("PG_BENCH_PROFILE")
	if !on || path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func pgEnvInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)
var txLine = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)

// pgbench runs the select-only benchmark and returns tps and transactions.
func pgbench(t *testing.T, conn string, seconds int) (float64, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pgbench", "-S", "-c", "4", "-j", "2", "-T", strconv.Itoa(seconds), "-n", conn).CombinedOutput()
	if err != nil {
		t.Logf("pgbench: %v\n%s", err, out)
		return 0, 0
	}
	m, n := tpsLine.FindSubmatch(out), txLine.FindSubmatch(out)
	if m == nil || n == nil {
		t.Logf("pgbench output not understood:\n%s", out)
		return 0, 0
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	tx, _ := strconv.ParseInt(string(n[1]), 10, 64)
	return tps, tx
}

func psqlOnce(t *testing.T, conn string) float64 {
	t.Helper()
	start := time.Now()
	out, err := exec.Command("psql", "-X", "-q", conn, "-c", "select 1").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return float64(time.Since(start).Microseconds()) / 1000
}

// selfCPU is this process's user and system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func pgMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// startPGGateway runs the PostgreSQL front in this process with a store
// of its own, alice allowed into database app of target db1 as app.
func startPGGateway(t *testing.T, pgPort int, certPEM, keyPEM []byte) string {
	t.Helper()
	ctx := context.Background()
	dir := testenv.ShortTempDir(t)
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML([]byte(fmt.Sprintf(`kind: User
name: alice
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
commands: {deny: ["^DROP "]}
`, pgPort)))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if a, ok := o.(*resource.Account); ok {
			a.Password = "app-secret"
		}
	}
	if _, err := inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	h, _ := password.Hash("alice-pw")
	if err := st.SetPassword(ctx, "alice", h, time.Now()); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	srv, err := pgproxy.New(pgproxy.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Snapshot: inv.Snapshot,
		Vault: v, Credentials: st, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln)
	}()
	t.Cleanup(func() {
		shut, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(shut)
		cancel()
		<-done
	})
	fmt.Fprintf(os.Stdout, "gateway in process on %s (GOMAXPROCS %d)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	return ln.Addr().String()
}

// pgBenchCert returns a CA and a server certificate and key for 127.0.0.1.
func pgBenchCert(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return c, c, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
