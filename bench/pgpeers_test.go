//go:build bench

package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pgLeg is one way pgbench reaches the database in TestPGCompare: conn is
// its connection string, cpu (nil for none) the CPU seconds so far of the
// process in the middle.
type pgLeg struct {
	name string
	conn string
	cpu  func() float64
}

// pgPeers starts the floor's middle processes in front of the database on
// pgPort and returns their legs: a bare Go relay (in this process, so its
// CPU is the test process's, as the gateway's is; the gateway is idle
// during its runs) and, when installed, pgbouncer with and without TLS on
// the client leg.
func pgPeers(t *testing.T, pgPort int, certPEM, keyPEM []byte) []pgLeg {
	t.Helper()
	relay := startPGRelay(t, pgPort)
	legs := []pgLeg{{name: "go-relay", cpu: selfCPU,
		conn: fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=app password=app-secret sslmode=require", relay)}}
	port, pid, err := startPgbouncer(t, pgPort, certPEM, keyPEM)
	if err != nil {
		fmt.Fprintf(os.Stdout, "  (pgbouncer skipped: %v)\n", err)
		return legs
	}
	cpu := func() float64 { u := procCPU(pid); return u.user + u.sys }
	for _, mode := range []string{"require", "disable"} {
		name := "pgbouncer-tls"
		if mode == "disable" {
			name = "pgbouncer-plain"
		}
		legs = append(legs, pgLeg{name: name, cpu: cpu,
			conn: fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=app sslmode=%s", port, mode)})
	}
	return legs
}

// startPGRelay runs the floor of any Go middle process: two io.Copy
// goroutines per connection, nothing parsed, the client's TLS passed
// through to the database. It returns the relay's port; it stops with
// the test.
func startPGRelay(t *testing.T, pgPort int) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var wg sync.WaitGroup
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener closed: the test ended
			}
			u, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pgPort))
			if err != nil {
				c.Close()
				continue
			}
			track(c, true)
			track(u, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				// Either direction ending ends both.
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// startPgbouncer runs pgbouncer (session pool mode, trust on its client
// leg, SCRAM to the database as app) as the OS user postgres (it refuses
// root) and returns its port and pid; an error when it is not installed
// or does not start.
func startPgbouncer(t *testing.T, pgPort int, certPEM, keyPEM []byte) (int, int, error) {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		return 0, 0, errors.New("not installed (apt-get install pgbouncer)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("no OS user postgres to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("/tmp", "pgb")
	if err != nil {
		return 0, 0, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ini := fmt.Sprintf(`[databases]
app = host=127.0.0.1 port=%d dbname=app user=app password=app-secret

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %[3]s/users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
client_tls_sslmode = allow
client_tls_cert_file = %[3]s/server.crt
client_tls_key_file = %[3]s/server.key
server_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
`, pgPort, port, dir)
	files := map[string][]byte{"pgbouncer.ini": []byte(ini), "users.txt": []byte(`"app" "app-secret"` + "\n"),
		"server.crt": certPEM, "server.key": keyPEM}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return 0, 0, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return 0, 0, err
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return 0, 0, fmt.Errorf("it exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("not listening after 10s: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return port, cmd.Process.Pid, nil
}
