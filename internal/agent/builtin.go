package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/upstream"
)

// BuiltinConfig configures the built-in server.
type BuiltinConfig struct {
	Log *slog.Logger
	// SFTPServer is the system's sftp-server, run as the target user for
	// the sftp subsystem; default the first of the usual paths that exists.
	SFTPServer string
	// Passwd is the passwd file login shells are read from; default
	// /etc/passwd.
	Passwd string
}

// Builtin is the agent's own SSH server, run on each session channel when
// the agent does not forward to an sshd. It accepts only certificates of
// the gateway's user CA (the gateway signs one per connection, for the
// target user the policy chose), and runs sessions as that user: a pty,
// the login shell and a clean environment, setuid/setgid with the user's
// supplementary groups, exit status and signals, and the system's
// sftp-server for SFTP.
//
// Running as root it serves any existing user; it never creates one.
// Running as an ordinary user it serves only that user.
type Builtin struct {
	cfg  BuiltinConfig
	self *user.User // the user the agent runs as
	root bool
}

// NewBuiltin returns the built-in server and says whom it can serve.
func NewBuiltin(cfg BuiltinConfig) (*Builtin, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Passwd == "" {
		cfg.Passwd = "/etc/passwd"
	}
	if cfg.SFTPServer == "" {
		for _, p := range []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/sftp-server", "/usr/libexec/sftp-server"} {
			if _, err := os.Stat(p); err == nil {
				cfg.SFTPServer = p
				break
			}
		}
	}
	self, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("built-in server: who am I: %w", err)
	}
	b := &Builtin{cfg: cfg, self: self, root: os.Geteuid() == 0}
	if b.root {
		cfg.Log.Info("built-in mode: running as root, serving any existing user the gateway's policy allows")
	} else {
		cfg.Log.Warn("built-in mode: not running as root, so only user " + self.Username + " can be served")
	}
	return b, nil
}

// account is a target user resolved for a session.
type account struct {
	name, home, shell string
	uid, gid          uint32
	groups            []uint32
}

// lookup resolves name, refusing what this agent cannot serve.
func (b *Builtin) lookup(name string) (*account, error) {
	if !b.root && name != b.self.Username {
		return nil, fmt.Errorf("this agent runs as %s and serves only that user", b.self.Username)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("no user %q on this host", name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	a := &account{name: u.Username, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid), shell: b.loginShell(name)}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of %q: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.groups = append(a.groups, uint32(n))
		}
	}
	return a, nil
}

// loginShell reads name's shell from the passwd file (os/user does not
// expose it); /bin/sh when it says nothing.
func (b *Builtin) loginShell(name string) string {
	f, err := os.Open(b.cfg.Passwd)
	if err != nil {
		return "/bin/sh"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name && fields[6] != "" {
			return fields[6]
		}
	}
	return "/bin/sh"
}

// ServeConn serves one SSH connection from the gateway on nc.
func (b *Builtin) ServeConn(ctx context.Context, nc net.Conn, hostKey ssh.Signer, userCAs []ssh.PublicKey) {
	checker := &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
		for _, ca := range userCAs {
			if bytes.Equal(auth.Marshal(), ca.Marshal()) {
				return true
			}
		}
		return false
	}}
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-PortcullisAgent",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if _, ok := key.(*ssh.Certificate); !ok {
				return nil, errors.New("only certificates of the gateway's user CA")
			}
			perms, err := checker.Authenticate(meta, key)
			if err != nil {
				return nil, err
			}
			if _, err := b.lookup(meta.User()); err != nil {
				return nil, err
			}
			return perms, nil
		},
	}
	cfg.KeyExchanges = upstream.KeyExchanges
	cfg.Ciphers = upstream.Ciphers
	cfg.MACs = upstream.MACs
	cfg.AddHostKey(hostKey)
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		b.cfg.Log.Warn("built-in server: login refused", "err", err)
		return
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	go ssh.DiscardRequests(reqs)
	acct, err := b.lookup(sc.User())
	if err != nil {
		return
	}
	ext := sc.Permissions.Extensions
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			ch, creqs, err := nch.Accept()
			if err != nil {
				continue
			}
			s := &session{b: b, acct: acct, ch: ch, allowPTY: hasExt(ext, "permit-pty")}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(creqs)
			}()
		case "direct-tcpip":
			if !hasExt(ext, "permit-port-forwarding") {
				_ = nch.Reject(ssh.Prohibited, "port forwarding is not permitted")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				directTCPIP(ctx, nch)
			}()
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

func hasExt(ext map[string]string, name string) bool {
	_, ok := ext[name]
	return ok
}

// directTCPIP connects a forwarding channel (ssh -L, -W, -D) to its
// destination; the gateway has already decided it is allowed.
func directTCPIP(ctx context.Context, nch ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil || p.Port > 65535 {
		_ = nch.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "connect failed")
		return
	}
	defer up.Close()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = copyBuffer(up, ch)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = copyBuffer(ch, up)
	_ = ch.CloseWrite()
	<-done
}

// session is one session channel: at most one program, with or without a
// pty.
type session struct {
	b        *Builtin
	acct     *account
	ch       ssh.Channel
	allowPTY bool

	mu      sync.Mutex
	env     []string
	term    string
	winsize *pty.Winsize
	ptmx    *os.File
	cmd     *exec.Cmd
	started bool
}

// envAllowed are the variables a client may set: locale and time zone.
// The gateway filters env requests first (accept_env); these are the
// agent's own bound, since a variable like BASH_ENV or LD_PRELOAD would run
// code the gateway's command control never saw.
func envAllowed(name string) bool {
	return name == "LANG" || name == "TZ" || strings.HasPrefix(name, "LC_")
}

func (s *session) serve(reqs <-chan *ssh.Request) {
	defer s.ch.Close()
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			var p struct {
				Term                 string
				Cols, Rows, PxW, PxH uint32
				Modes                string
			}
			if s.allowPTY && ssh.Unmarshal(req.Payload, &p) == nil {
				s.mu.Lock()
				if !s.started {
					s.term = p.Term
					s.winsize = &pty.Winsize{Cols: clamp16(p.Cols), Rows: clamp16(p.Rows)}
					ok = true
				}
				s.mu.Unlock()
			}
		case "env":
			var p struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &p) == nil && envAllowed(p.Name) && !strings.ContainsRune(p.Value, 0) {
				s.mu.Lock()
				s.env = append(s.env, p.Name+"="+p.Value)
				s.mu.Unlock()
				ok = true
			}
		case "window-change":
			var p struct{ Cols, Rows, PxW, PxH uint32 }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				s.mu.Lock()
				if s.ptmx != nil {
					_ = pty.Setsize(s.ptmx, &pty.Winsize{Cols: clamp16(p.Cols), Rows: clamp16(p.Rows)})
				}
				s.mu.Unlock()
				ok = true
			}
		case "signal":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				s.mu.Lock()
				if sig, known := signals[p.Name]; known && s.cmd != nil && s.cmd.Process != nil {
					// The whole session: the program leads its own
					// process group (Setsid).
					_ = syscall.Kill(-s.cmd.Process.Pid, sig)
					ok = true
				}
				s.mu.Unlock()
			}
		case "shell":
			s.start(req, "")
			continue
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				break
			}
			s.start(req, p.Command)
			continue
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" || s.b.cfg.SFTPServer == "" {
				break
			}
			s.start(req, "\x00sftp")
			continue
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
}

func clamp16(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}

// start runs the session's program once: the login shell, a command
// through the login shell, or ("\x00sftp") the sftp-server. It answers req
// before the program's output can reach the client.
func (s *session) start(req *ssh.Request, command string) bool {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
		return false
	}
	s.started = true
	s.mu.Unlock()
	a := s.acct
	var cmd *exec.Cmd
	switch command {
	case "":
		cmd = exec.Command(a.shell)
		// A login shell, as sshd starts it: argv[0] is "-" + its name.
		cmd.Args = []string{"-" + filepath.Base(a.shell)}
	case "\x00sftp":
		cmd = exec.Command(s.b.cfg.SFTPServer)
	default:
		cmd = exec.Command(a.shell, "-c", command)
	}
	cmd.Dir = a.home
	if _, err := os.Stat(a.home); err != nil {
		cmd.Dir = "/"
	}
	s.mu.Lock()
	cmd.Env = append([]string{"HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name, "SHELL=" + a.shell,
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/games"}, s.env...)
	usePTY := s.winsize != nil && command != "\x00sftp"
	if usePTY {
		term := s.term
		if term == "" {
			term = "vt100"
		}
		cmd.Env = append(cmd.Env, "TERM="+term)
	}
	winsize := s.winsize
	s.mu.Unlock()
	attrs := &syscall.SysProcAttr{Setsid: true}
	if s.b.root {
		attrs.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
	}
	cmd.SysProcAttr = attrs

	var copies sync.WaitGroup
	if usePTY {
		ptmx, tty, err := pty.Open()
		if err != nil {
			return s.fail(req, "open a pty", err)
		}
		if s.b.root {
			// The terminal belongs to the session's user, as sshd does it.
			_ = os.Chown(tty.Name(), int(a.uid), int(a.gid))
			_ = os.Chmod(tty.Name(), 0o620)
		}
		_ = pty.Setsize(ptmx, winsize)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		attrs.Setctty = true
		attrs.Ctty = 0
		if err := cmd.Start(); err != nil {
			tty.Close()
			ptmx.Close()
			return s.fail(req, "start the session", err)
		}
		tty.Close()
		s.mu.Lock()
		s.ptmx, s.cmd = ptmx, cmd
		s.mu.Unlock()
		if req.WantReply {
			_ = req.Reply(true, nil)
		}
		go func() { _, _ = copyBuffer(ptmx, s.ch) }()
		copies.Add(1)
		go func() {
			defer copies.Done()
			// EIO when the last holder of the terminal has exited.
			_, _ = copyBuffer(s.ch, ptmx)
		}()
	} else {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return s.fail(req, "start the session", err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return s.fail(req, "start the session", err)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return s.fail(req, "start the session", err)
		}
		if err := cmd.Start(); err != nil {
			return s.fail(req, "start the session", err)
		}
		s.mu.Lock()
		s.cmd = cmd
		s.mu.Unlock()
		if req.WantReply {
			_ = req.Reply(true, nil)
		}
		go func() {
			_, _ = copyBuffer(stdin, s.ch)
			stdin.Close()
		}()
		copies.Add(2)
		go func() {
			defer copies.Done()
			_, _ = copyBuffer(s.ch, stdout)
		}()
		go func() {
			defer copies.Done()
			_, _ = copyBuffer(s.ch.Stderr(), stderr)
		}()
	}
	go func() {
		// StdoutPipe's reader must be drained before Wait, so the copies
		// finish first (for a pty, Wait comes first: the terminal hangs
		// up only when the shell has exited).
		if usePTY {
			_ = cmd.Wait()
			copies.Wait()
			s.ptmx.Close()
		} else {
			copies.Wait()
			_ = cmd.Wait()
		}
		s.exit(cmd)
		_ = s.ch.CloseWrite()
		_ = s.ch.Close()
	}()
	return true
}

func (s *session) fail(req *ssh.Request, what string, err error) bool {
	s.b.cfg.Log.Warn("built-in server: "+what, "user", s.acct.name, "err", err)
	if req.WantReply {
		_ = req.Reply(false, nil)
	}
	return false
}

// exit reports how the program ended: exit-status, or exit-signal for a
// program killed by a signal.
func (s *session) exit(cmd *exec.Cmd) {
	var ws syscall.WaitStatus
	ok := false
	if cmd.ProcessState != nil {
		ws, ok = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	if !ok {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 255)
		_, _ = s.ch.SendRequest("exit-status", false, b[:])
		return
	}
	if ws.Signaled() {
		name := signalName(ws.Signal())
		_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Msg, Lang  string
		}{name, ws.CoreDump(), "", ""}))
		return
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(ws.ExitStatus()))
	_, _ = s.ch.SendRequest("exit-status", false, b[:])
}

// signals are the names RFC 4254 gives signals, without "SIG".
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return "KILL"
}
