package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is the OpenSSH server binary. It must be an absolute path:
// sshd re-executes itself for every connection and refuses otherwise.
const SSHDPath = "/usr/sbin/sshd"

// sshdReadyTimeout bounds the wait for a started sshd to accept
// connections; it normally takes a few milliseconds, but a loaded CI
// machine running many test packages at once can be slow.
const sshdReadyTimeout = 10 * time.Second

// SSHD is a running OpenSSH server on 127.0.0.1, private to one test.
type SSHD struct {
	Addr    string        // "127.0.0.1:PORT"
	Port    int           // the port of Addr, for clients that take it separately (scp -P)
	HostKey ssh.PublicKey // the server's ed25519 host key
	Dir     string        // its config dir: config, host key, authorized keys, CA file, user homes

	cfgPath string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{} // closed when the sshd process has been reaped
	waitErr error         // set before exited is closed

	mu sync.Mutex // serializes appends to authorized keys and CA files
}

// Log returns everything sshd has written so far (it runs with -e, so
// that is its whole log at LogLevel VERBOSE). Tests use it to assert
// what the target saw, e.g. which key or certificate authenticated.
func (s *SSHD) Log() string { return s.log.String() }

// PID returns the process ID of the listening sshd. Benchmarks move it into
// a CPU-accounting cgroup, which then counts every session process it
// starts.
func (s *SSHD) PID() int { return s.cmd.Process.Pid }

// ConfigPath returns the path of the sshd_config the server runs with.
func (s *SSHD) ConfigPath() string { return s.cfgPath }

// syncBuffer is a bytes.Buffer safe for the exec copy goroutine writing
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// managedKeywords are sshd options the harness must control itself:
// readiness checks and clients depend on the address and the host key.
var managedKeywords = map[string]bool{"port": true, "listenaddress": true, "hostkey": true}

// StartSSHD starts `sshd -D -e -f CONFIG` on a free 127.0.0.1 port with a
// fresh ed25519 host key and a configuration that keeps it away from the
// machine's real accounts (see baseConfig). It waits until the server
// completes an SSH key exchange with the expected host key, and stops it
// (and its per-connection children) when the test ends; if the test
// failed, the server's log is added to the test output.
//
// opts are sshd_config lines ("Keyword value"). Because sshd keeps the
// first value it reads for most keywords, an option in opts replaces the
// harness default with the same keyword instead of being silently
// ignored; opts are written after the defaults, so they may end with
// Match blocks. Port, ListenAddress and HostKey cannot be overridden.
func StartSSHD(t testing.TB, opts ...string) *SSHD {
	t.Helper()
	RequireRoot(t)
	Require(t, SSHDPath)
	for _, o := range opts {
		if kw, _ := optionKey(o); managedKeywords[kw] {
			t.Fatalf("StartSSHD: option %q is managed by the harness", o)
		}
	}
	// sshd refuses to start without its privilege-separation directory,
	// which systemd creates at boot only when the service is enabled;
	// containers and CI images often lack it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("StartSSHD: create /run/sshd: %v", err)
	}

	s := &SSHD{Dir: sshdBaseDir(t)}
	// sshd reads authorized keys as the target user and starts sessions
	// in homes below Dir: everyone must be able to traverse it.
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		t.Fatalf("StartSSHD: %v", err)
	}
	for _, d := range []string{"authorized_keys", "home"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o755); err != nil {
			t.Fatalf("StartSSHD: %v", err)
		}
	}
	// Created empty so the TrustedUserCAKeys line is valid before any CA
	// is trusted; an empty file trusts nothing.
	if err := os.WriteFile(filepath.Join(s.Dir, "ca.pub"), nil, 0o644); err != nil {
		t.Fatalf("StartSSHD: %v", err)
	}
	hostKeyPath := filepath.Join(s.Dir, "ssh_host_ed25519_key")
	pub, err := writeEd25519Key(hostKeyPath, "portcullis-test-sshd")
	if err != nil {
		t.Fatalf("StartSSHD: host key: %v", err)
	}
	s.HostKey = pub
	s.cfgPath = filepath.Join(s.Dir, "sshd_config")

	// FreePort can race with another process grabbing the port; a fresh
	// port on "address in use" makes that harmless.
	const attempts = 5
	for i := 1; ; i++ {
		port := FreePort(t)
		cfg := buildConfig(port, hostKeyPath, s.Dir, perSourcePenaltiesSupported(), opts)
		if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatalf("StartSSHD: %v", err)
		}
		err := s.start(port)
		if err == nil {
			break
		}
		if i < attempts && strings.Contains(s.Log(), "Address already in use") {
			t.Logf("StartSSHD: port %d taken, retrying", port)
			continue
		}
		t.Fatalf("StartSSHD: %v\nconfig %s:\n%s\nsshd log:\n%s", err, s.cfgPath, cfg, s.Log())
	}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.Log())
		}
	})
	return s
}

// sshdBaseDir returns the instance directory. It must be traversable by
// the test users, so it sits under /tmp when TMPDIR is somewhere private
// (e.g. below /root).
func sshdBaseDir(t testing.TB) string {
	t.Helper()
	base := os.TempDir()
	if !worldTraversable(base) {
		base = "/tmp"
	}
	return shortTempDirIn(t, base)
}

func worldTraversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// start launches sshd with the current config and waits until it is ready
// or has died. On error the process is gone.
func (s *SSHD) start(port int) error {
	s.Port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.log = &syncBuffer{}
	s.exited = make(chan struct{})
	s.waitErr = nil
	// -D: stay in the foreground so we own the process; -e: log to
	// stderr so the log is ours, not the machine's syslog.
	s.cmd = exec.Command(SSHDPath, "-D", "-e", "-f", s.cfgPath)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.WaitDelay = waitDelay
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(sshdReadyTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited before accepting connections: %v", s.waitErr)
		default:
		}
		err := s.probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("sshd on %s not ready after %v: %v", s.Addr, sshdReadyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errHostKeyOK aborts the probe handshake once the host key is verified:
// reaching authentication would only add noise to the sshd log.
var errHostKeyOK = errors.New("host key verified")

// probe checks that our sshd, not some other process that grabbed the
// port, is answering: it runs a key exchange and verifies the host key.
func (s *SSHD) probe() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	want := string(s.HostKey.Marshal())
	_, _, _, err = ssh.NewClientConn(conn, s.Addr, &ssh.ClientConfig{
		User: "readiness-probe",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if string(key.Marshal()) != want {
				return fmt.Errorf("unexpected host key %s on %s", ssh.FingerprintSHA256(key), s.Addr)
			}
			return errHostKeyOK
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	})
	if errors.Is(err, errHostKeyOK) {
		return nil
	}
	if err == nil {
		return errors.New("probe handshake unexpectedly authenticated")
	}
	return err
}

// stop ends the listener and its per-connection children. Those children
// call setsid, so killing a process group would miss them; they are found
// by parent pid before the listener dies and they get reparented.
func (s *SSHD) stop(t testing.TB) {
	t.Helper()
	for _, pid := range childPIDs(s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.kill()
	}
}

func (s *SSHD) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// childPIDs lists the direct children of pid from /proc.
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces or
		// parentheses, so parse after the last ')': " STATE PPID ...".
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// baseConfig is the harness's sshd_config; each line is there so the
// server is hermetic (no real home dirs, no PAM, no syslog) and behaves
// like a typical hardened target for the gateway.
func baseConfig(port int, hostKeyPath, dir string, penalties bool) []string {
	lines := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"PidFile none",
		// PAM would consult the machine's real account stack; without it
		// sshd needs the '*' password field AddUser sets.
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		// Keys live below Dir, never in real home directories.
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys", "%u"),
		"TrustedUserCAKeys " + filepath.Join(dir, "ca.pub"),
		// With no principals file a certificate must name the user
		// itself, which is what the gateway's certificates do.
		"AuthorizedPrincipalsFile none",
		// Temp dirs are not owned the way StrictModes insists on.
		"StrictModes no",
		"AllowTcpForwarding yes",
		"PermitTTY yes",
		"X11Forwarding no",
		// Nothing here should ever log in as root on the test machine.
		"PermitRootLogin no",
		// Keep session output exactly what the command printed.
		"PrintMotd no",
		"PrintLastLog no",
		"Banner none",
		"UseDNS no",
		// internal-sftp needs no helper binary and works in a chroot.
		"Subsystem sftp internal-sftp",
		// Parallel tests open many connections at once; the default
		// 10:30:100 starts dropping unauthenticated ones at 10.
		"MaxStartups 200",
		"LogLevel VERBOSE",
	}
	if penalties {
		// OpenSSH 9.8+ penalizes sources after failed logins; every
		// test connects from 127.0.0.1 and some fail on purpose.
		lines = append(lines, "PerSourcePenalties no")
	}
	return lines
}

// buildConfig renders the config with opts replacing same-keyword
// defaults (see StartSSHD).
func buildConfig(port int, hostKeyPath, dir string, penalties bool, opts []string) string {
	override := map[string]bool{}
	for _, o := range opts {
		kw, key := optionKey(o)
		if kw == "match" {
			break // options after Match are conditional, not overrides
		}
		if key != "" {
			override[key] = true
		}
	}
	var b strings.Builder
	b.WriteString("# written by portcullis internal/testenv\n")
	for _, l := range baseConfig(port, hostKeyPath, dir, penalties) {
		if _, key := optionKey(l); override[key] {
			continue
		}
		b.WriteString(l + "\n")
	}
	for _, o := range opts {
		b.WriteString(o + "\n")
	}
	return b.String()
}

// optionKey returns an sshd_config line's lower-case keyword and the key
// that identifies what it sets: the keyword, or for Subsystem the keyword
// and the subsystem name, since each subsystem is a separate setting.
// sshd accepts "Keyword value" and "Keyword=value".
func optionKey(line string) (keyword, key string) {
	f := strings.FieldsFunc(strings.TrimSpace(line), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '='
	})
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return "", ""
	}
	keyword = strings.ToLower(f[0])
	key = keyword
	if keyword == "subsystem" && len(f) > 1 {
		key += " " + f[1]
	}
	return keyword, key
}

var (
	penaltiesOnce      sync.Once
	penaltiesSupported bool
)

// perSourcePenaltiesSupported asks the installed sshd whether it knows
// PerSourcePenalties (OpenSSH 9.8+); older versions, like Debian 12's
// 9.2, reject unknown keywords and would refuse to start.
func perSourcePenaltiesSupported() bool {
	penaltiesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pcprobe")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		cfg := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfg, []byte("PerSourcePenalties no\n"), 0o644); err != nil {
			return
		}
		// -t fails either way (no host keys); only the message matters.
		out, _ := exec.Command(SSHDPath, "-t", "-f", cfg).CombinedOutput()
		penaltiesSupported = !strings.Contains(string(out), "Bad configuration option")
	})
	return penaltiesSupported
}

// writeEd25519Key writes a fresh ed25519 private key in OpenSSH format
// with mode 0600 (ssh and sshd reject group- or world-readable keys) and
// its public key next to it as path.pub.
func writeEd25519Key(path, comment string) (ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}
