package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// postgresReadyTimeout bounds the wait for a started server to accept
// connections. It takes a fraction of a second here; the bound only keeps
// a broken server from hanging the test.
const postgresReadyTimeout = 30 * time.Second

// postgresStopTimeout bounds a fast shutdown before the server is killed.
const postgresStopTimeout = 30 * time.Second

// postgresSuperuser is the role initdb creates and every URL connects as,
// whichever OS user runs the server, so that URLs look the same
// everywhere.
const postgresSuperuser = "postgres"

// postgresLibDir is where Debian's postgresql packages install each major
// version's programs (/usr/lib/postgresql/15/bin/postgres).
const postgresLibDir = "/usr/lib/postgresql"

// Postgres is a PostgreSQL server on 127.0.0.1, private to one test and its
// subtests. It trusts every connection from loopback (no password) and
// runs with fsync off: it is a throwaway.
type Postgres struct {
	// URL is a database created for the caller when the server started.
	URL  string
	Port int
	// Dir holds the cluster (Dir/data) and the server's unix socket.
	Dir string

	bin   string              // directory holding initdb and postgres
	cred  *syscall.Credential // the OS user the programs run as; nil: this process's user
	admin *sql.DB             // connected to the "postgres" database, for creating others

	mu      sync.Mutex // guards the fields below, and serializes Start, Stop and NewDatabase
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{} // closed when the server process has been reaped
	waitErr error         // set before exited is closed
	nextDB  int
}

// StartPostgres initializes a new cluster in a fresh temporary directory,
// starts `postgres` on a free 127.0.0.1 port with its socket in that
// directory, waits until it accepts connections and creates a database
// for the caller (Postgres.URL). The server is stopped and its directory
// removed when the test ends; if the test failed, the server's log is
// added to the test output.
//
// PostgreSQL refuses to run as root, so as root the server runs as the OS
// user "postgres" (Debian's postgresql package creates it); otherwise it
// runs as the current user. When PostgreSQL is not installed, the test
// fails as root (`make test-deps` installs it) and, as any other user,
// skips outside CI.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	root := os.Geteuid() == 0
	bin, ok := postgresBinDir()
	if !ok {
		const msg = "PostgreSQL is not installed (no " + postgresLibDir + "/*/bin/postgres, and no postgres and initdb in PATH): run `make test-deps`"
		if root {
			t.Fatalf("StartPostgres: %s", msg)
		}
		unmet(t, inCI(), "%s", msg)
		return nil
	}
	p := &Postgres{bin: bin, log: &syncBuffer{}}
	if root {
		cred, err := postgresCredential()
		if err != nil {
			t.Fatalf("StartPostgres: %v: run `make test-deps` (Debian's postgresql package creates the user)", err)
		}
		p.cred = cred
	}

	// The server's user must reach Dir, so it sits under a traversable
	// base; the path is short so the socket path stays far below the
	// 107-byte limit.
	base := os.TempDir()
	if !worldTraversable(base) {
		base = "/tmp"
	}
	p.Dir = shortTempDirIn(t, base)
	if err := os.Chmod(p.Dir, 0o700); err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	if p.cred != nil {
		if err := os.Chown(p.Dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatalf("StartPostgres: %v", err)
		}
	}
	if out, err := p.command("initdb",
		"-D", p.dataDir(), "-U", postgresSuperuser, "--auth=trust", "--no-sync",
		// A UTF-8 ctype: full-text search then folds case and tells
		// letters apart outside ASCII, as the store needs.
		"--encoding=UTF8", "--locale=C.UTF-8", "--lc-messages=C",
	).CombinedOutput(); err != nil {
		t.Fatalf("StartPostgres: initdb: %v\n%s", err, out)
	}

	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.admin != nil {
			_ = p.admin.Close()
		}
		if p.cmd != nil {
			p.stopLocked()
		}
		if t.Failed() {
			t.Logf("postgres log:\n%s", p.log.String())
		}
	})

	// FreePort races with anyone else binding a port; a fresh port on
	// "address in use" makes that harmless.
	const attempts = 5
	for i := 1; ; i++ {
		p.Port = FreePort(t)
		p.mu.Lock()
		err := p.startLocked()
		p.mu.Unlock()
		if err == nil {
			break
		}
		if i == attempts || !strings.Contains(p.log.String(), "could not bind") {
			t.Fatalf("StartPostgres: %v\n%s", err, p.log.String())
		}
	}
	p.URL = p.NewDatabase(t)
	return p
}

// postgresBinDir finds the directory holding postgres and initdb: the
// newest version under /usr/lib/postgresql, else PATH.
func postgresBinDir() (string, bool) {
	matches, _ := filepath.Glob(filepath.Join(postgresLibDir, "*", "bin", "postgres")) // the pattern is valid
	if p := newestVersion(matches); p != "" {
		return filepath.Dir(p), true
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if st, err := os.Stat(filepath.Join(dir, "initdb")); err == nil && !st.IsDir() {
			return dir, true
		}
	}
	return "", false
}

// newestVersion picks, among paths of the form .../VERSION/bin/postgres,
// the one with the highest version, comparing numerically ("15" above
// "9.6"); "" if there are none.
func newestVersion(paths []string) string {
	version := func(p string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(filepath.Dir(p))), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	best := ""
	for _, p := range paths {
		if version(p) == nil {
			continue
		}
		if best == "" || slices.Compare(version(p), version(best)) > 0 {
			best = p
		}
	}
	return best
}

// postgresCredential is the OS user "postgres", for running the server
// when we are root.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("no OS user \"postgres\" to run PostgreSQL as (it refuses to run as root): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user postgres: gid %q: %w", u.Gid, err)
	}
	// Groups empty: the server gets none of root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }

// command prepares one of the server's programs to run as the server's
// user, with a fixed environment so the machine's locale settings do not
// leak into the cluster.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TZ=UTC"}
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: p.cred,
		// A test binary that dies without running its cleanups (a
		// timeout panic, a kill) takes the server with it: SIGQUIT is
		// PostgreSQL's immediate shutdown. Go sets this after switching
		// users, so the switch does not clear it.
		Pdeathsig: syscall.SIGQUIT,
	}
	cmd.WaitDelay = waitDelay
	return cmd
}

// dsn is the URL of database db on this server.
func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", postgresSuperuser, p.Port, db)
}

// startLocked launches the server on p.Port and waits until it accepts
// connections or has died. On error the process is gone. p.mu is held.
func (p *Postgres) startLocked() error {
	p.log = &syncBuffer{}
	p.exited = make(chan struct{})
	p.waitErr = nil
	p.cmd = p.command("postgres",
		"-D", p.dataDir(),
		"-k", p.Dir, // the socket (and its lock file) in our directory, not /var/run/postgresql
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1",
		// Speed over durability: the cluster is thrown away.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		// Room for the stores of many cases (each pools connections)
		// and a few gateways at once.
		"-c", "max_connections=300",
	)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return fmt.Errorf("start postgres: %w", err)
	}
	cmd, exited := p.cmd, p.exited
	go func() {
		err := cmd.Wait()
		p.waitErr = err
		close(exited)
	}()

	if p.admin == nil {
		db, err := sql.Open("pgx", p.dsn("postgres"))
		if err != nil {
			p.killLocked()
			return fmt.Errorf("open admin connection: %w", err)
		}
		p.admin = db
	}
	deadline := time.Now().Add(postgresReadyTimeout)
	for {
		select {
		case <-p.exited:
			p.cmd = nil
			return fmt.Errorf("postgres exited before accepting connections: %v", p.waitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.admin.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.killLocked()
			return fmt.Errorf("postgres on 127.0.0.1:%d not ready after %v: %w", p.Port, postgresReadyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopLocked shuts the server down fast (SIGINT: connections are ended,
// nothing committed is lost) and waits for it. p.mu is held.
func (p *Postgres) stopLocked() {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(postgresStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func (p *Postgres) killLocked() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Stop shuts the server down (a fast shutdown: open connections are ended,
// everything committed is kept), for tests of what a gateway does while
// its database is away. Start brings it back on the same port.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		t.Fatal("Postgres.Stop: the server is not running")
	}
	p.stopLocked()
}

// Start starts a stopped server again on the same port and data, and
// waits until it accepts connections. Clients keep their URLs; pooled
// connections from before the stop are broken and get replaced.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		t.Fatal("Postgres.Start: the server is already running")
	}
	if err := p.startLocked(); err != nil {
		t.Fatalf("Postgres.Start: %v (was port %d taken while the server was down?)\n%s", err, p.Port, p.log.String())
	}
}

// Log returns what the server has written since it last started.
func (p *Postgres) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// NewDatabase creates a new, empty database on the server and returns its
// URL, so that many tests share one server and each still starts from
// nothing. The database is dropped when the test ends (if the server is
// running then), ending any connection still open to it.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		t.Fatal("Postgres.NewDatabase: the server is not running")
	}
	p.nextDB++
	name := fmt.Sprintf("test%d", p.nextDB) // a plain identifier: no quoting needed
	ctx, cancel := context.WithTimeout(context.Background(), postgresReadyTimeout)
	defer cancel()
	if _, err := p.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("Postgres.NewDatabase: create %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd == nil {
			return // stopped: the whole cluster goes with the directory
		}
		ctx, cancel := context.WithTimeout(context.Background(), postgresReadyTimeout)
		defer cancel()
		// FORCE: a store the test leaked must not keep the database alive.
		if _, err := p.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Postgres.NewDatabase: drop %s: %v", name, err)
		}
	})
	return p.dsn(name)
}
