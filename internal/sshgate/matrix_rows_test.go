package sshgate_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
)

// matrixRows lists the rows of the authorization matrix. Each row is run
// for every caller; a row says what the allowed caller gets, and, when it
// is not the caller's own denial, what every other caller gets.
func matrixRows() []mxRow {
	// allowedRun is what an allowed request does.
	allowedRun := mxOutcome{reached: true}
	// Refused for every caller, the allowed one included.
	refusedAll := func(line, event string) *mxOutcome { return &mxOutcome{line: line, event: event} }
	// Accepted from every caller, and nothing reaches the target.
	nothing := mxOutcome{}

	rows := []mxRow{
		{
			name: "exec", covers: []string{"channel:session", "session:exec"}, openssh: true,
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T"}, "touch "+m.file(tok))
				return mxCell{reached: m.exists(tok), out: errOut}
			},
		},
		{
			name: "shell", covers: []string{"session:shell"}, openssh: true,
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "touch "+m.file(tok)+"\nexit\n", []string{"-T"})
				return mxCell{reached: m.exists(tok), out: errOut}
			},
		},
		{
			name: "pty-req", covers: []string{"session:pty-req"}, openssh: true,
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-tt"}, "tty > "+m.file(tok))
				return mxCell{reached: strings.HasPrefix(m.read(tok), "/dev/pts/"), out: errOut}
			},
		},
		{
			// LC_* passes today and after the env allow-list (issue 11,
			// point 4), so this cell holds across that change.
			name: "env", covers: []string{"session:env"}, openssh: true,
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T", "-o", "SendEnv=LC_MATRIX"}, `printf %s "$LC_MATRIX" > `+m.file(tok))
				return mxCell{reached: m.read(tok) == "from-client", out: errOut}
			},
		},
		{
			// The target accepts MATRIX_*, but the gateway passes only
			// ssh_accept_env (LANG, LC_*, TERM, TZ, COLORTERM by
			// default): dropped without a word (debug log, no event), as
			// sshd drops what its AcceptEnv does not list.
			name: "env outside the default allow-list", covers: []string{"session:env"}, openssh: true,
			allowed: mxOutcome{},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T", "-o", "SendEnv=MATRIX_VAR"}, `printf %s "$MATRIX_VAR" > `+m.file(tok))
				return mxCell{reached: m.read(tok) == "from-client", out: errOut}
			},
		},
		{
			name: "subsystem sftp", covers: []string{"session:subsystem"}, openssh: true,
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				o := cl.opts()
				// sftp takes ssh's options except -l and -p.
				var args []string
				for i := 0; i < len(o); i++ {
					switch o[i] {
					case "-l":
						i++
					case "-p":
						args = append(args, "-P", o[i+1])
						i++
					default:
						args = append(args, o[i])
					}
				}
				args = append(args, "-b", "-", cl.c.login()+"@127.0.0.1")
				_, errOut, _ := cl.run(t, "mkdir "+m.file(tok)+"\n", "sftp", args...)
				return mxCell{reached: m.exists(tok), out: errOut}
			},
		},
		{
			// The gateway serves no subsystem but sftp, for anyone, and
			// says so before asking policy.
			name: "subsystem unknown", covers: []string{"session:subsystem"}, openssh: true,
			allowed: *refusedAll(`subsystem "mx-`, audit.RequestDeny),
			refused: refusedAll(`subsystem "mx-`, audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T", "-s"}, "mx-"+tok)
				return mxCell{reached: strings.Contains(m.sshd.Log(), "mx-"+tok), out: errOut}
			},
		},
		{
			// The listener is on the target host itself: the tunnel
			// destination rules (issue 11, point 4) keep this allowed.
			name: "direct-tcpip", covers: []string{"channel:direct-tcpip"}, openssh: true,
			allowed: allowedRun,
			// OpenSSH's multiplexer prints its own words, not the reason.
			muxLine: "Stdio forwarding request failed: Session open refused by peer",
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				out, errOut, _ := cl.ssh(t, tok+"\n", []string{"-W", m.tcpAddr})
				return mxCell{reached: m.listenerSaw(tok), out: errOut + out}
			},
		},
		{
			// Without tunnels.to a tunnel reaches only the target host
			// itself: another address is refused and audited.
			name: "direct-tcpip to another host", covers: []string{"channel:direct-tcpip"}, openssh: true,
			allowed: mxOutcome{line: "reaches only web1 itself", event: audit.RequestDeny},
			muxLine: "Stdio forwarding request failed: Session open refused by peer",
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				out, errOut, _ := cl.ssh(t, tok+"\n", []string{"-W", m.elsewhere})
				return mxCell{reached: m.listenerSaw(tok), out: errOut + out}
			},
		},
		{
			// OpenSSH 9.2 sends this for -L PORT:/PATH only, behind a
			// local listener: sent raw instead.
			name:    "direct-streamlocal@openssh.com",
			allowed: *refusedAll("direct-streamlocal@openssh.com is not allowed through the gateway", audit.RequestDeny),
			refused: refusedAll("direct-streamlocal@openssh.com is not allowed through the gateway", audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				ch, reqs, err := cl.raw(t).OpenChannel("direct-streamlocal@openssh.com", ssh.Marshal(struct {
					Path     string
					Reserved string
					Port     uint32
				}{m.sockPath, "", 0}))
				if err != nil {
					return mxCell{out: err.Error()}
				}
				go ssh.DiscardRequests(reqs)
				defer ch.Close()
				_, _ = ch.Write([]byte(tok + "\n"))
				_, _ = bufio.NewReader(ch).ReadString('\n')
				return mxCell{reached: m.listenerSaw(tok), out: "accepted"}
			},
		},
		{
			// -R: the gateway never listens for a client. OpenSSH has no
			// reason to print, only that it failed.
			name: "tcpip-forward", covers: []string{"global:tcpip-forward"}, openssh: true,
			allowed: *refusedAll("forwarding", audit.RequestDeny),
			refused: refusedAll("forwarding", audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return remoteForward(t, cl, "0:"+m.tcpAddr)
			},
		},
		{
			name: "streamlocal-forward@openssh.com", covers: []string{"global:streamlocal-forward@openssh.com"}, openssh: true,
			allowed: *refusedAll("forwarding", audit.RequestDeny),
			refused: refusedAll("forwarding", audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return remoteForward(t, cl, filepath.Join(m.fx, tok+".sock")+":"+m.tcpAddr)
			},
		},
		{
			// The allowed caller's command runs, without a display.
			name: "x11-req", covers: []string{"session:x11-req"}, openssh: true,
			allowed: mxOutcome{line: "X11 forwarding is refused through the gateway", event: audit.RequestDeny},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T", "-Y"}, `printf %s "$DISPLAY" > `+m.file(tok))
				return mxCell{reached: m.read(tok) != "", out: errOut}
			},
		},
		{
			name: "auth-agent-req@openssh.com", covers: []string{"session:auth-agent-req@openssh.com"}, openssh: true,
			allowed: mxOutcome{line: "agent forwarding is refused", event: audit.RequestDeny},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				_, errOut, _ := cl.ssh(t, "", []string{"-T", "-A"}, `printf %s "$SSH_AUTH_SOCK" > `+m.file(tok))
				return mxCell{reached: m.read(tok) != "", out: errOut}
			},
		},
		{
			// A session channel is accepted from anyone: it is each
			// request on it that is authorized.
			name: "session without a request", covers: []string{"channel:session"},
			allowed: nothing, refused: &nothing,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				ch, reqs, err := cl.raw(t).OpenChannel("session", nil)
				if err != nil {
					return mxCell{out: err.Error()}
				}
				go ssh.DiscardRequests(reqs)
				ch.Close()
				return mxCell{}
			},
		},
		{
			name: "signal", covers: []string{"bridged:signal"},
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return rawSession(t, cl, false, "sleep 5; touch "+m.file(tok), func(s *ssh.Session, stdin io.Writer) bool {
					_ = s.Signal(ssh.SIGTERM)
					var ee *ssh.ExitError
					err := s.Wait()
					return errors.As(err, &ee) && ee.Signal() == "TERM" && !m.exists(tok)
				})
			},
		},
		{
			name: "window-change", covers: []string{"bridged:window-change"},
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return rawSession(t, cl, true, "read x; stty size > "+m.file(tok), func(s *ssh.Session, stdin io.Writer) bool {
					_ = s.WindowChange(50, 100)
					syncRequests(s)
					_, _ = stdin.Write([]byte("\r"))
					_ = s.Wait()
					return strings.TrimSpace(m.read(tok)) == "50 100"
				})
			},
		},
		{
			// A break has nothing to show at the target; the reply says
			// whether the gateway passed it on.
			name: "break", covers: []string{"bridged:break"},
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return rawSession(t, cl, true, "read x", func(s *ssh.Session, stdin io.Writer) bool {
					ok, err := s.SendRequest("break", true, ssh.Marshal(struct{ Ms uint32 }{10}))
					_ = s.Close()
					return err == nil && ok
				})
			},
		},
		{
			// eow ("I read no more"): the target closes the command's
			// output, so its next write kills it before the touch.
			name: "eow@openssh.com", covers: []string{"bridged:eow@openssh.com"},
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return rawSession(t, cl, false, "read x; echo more; touch "+m.file(tok), func(s *ssh.Session, stdin io.Writer) bool {
					_, _ = s.SendRequest("eow@openssh.com", false, nil)
					syncRequests(s)
					_, _ = stdin.Write([]byte("\n"))
					err := s.Wait()
					return err != nil && !m.exists(tok)
				})
			},
		},
		{
			// A keepalive on a session is answered "no" by the gateway,
			// for anyone; the session goes on.
			name:    "keepalive@openssh.com on a session",
			allowed: allowedRun,
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return rawSession(t, cl, false, "read x; touch "+m.file(tok), func(s *ssh.Session, stdin io.Writer) bool {
					ok, err := s.SendRequest("keepalive@openssh.com", true, nil)
					if err != nil || ok {
						return false
					}
					_, _ = stdin.Write([]byte("\n"))
					_ = s.Wait()
					return m.exists(tok)
				})
			},
		},
		{
			name:    "keepalive@openssh.com global",
			allowed: mxOutcome{line: "reply false"}, refused: &mxOutcome{line: "reply false"},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return globalRequest(t, cl, "keepalive@openssh.com")
			},
		},
		{
			name:    "cancel-tcpip-forward",
			allowed: mxOutcome{line: "reply false"}, refused: &mxOutcome{line: "reply false"},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return globalRequest(t, cl, "cancel-tcpip-forward")
			},
		},
		{
			name:    "unknown global request",
			allowed: mxOutcome{line: "reply false"}, refused: &mxOutcome{line: "reply false"},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				return globalRequest(t, cl, "mx-unknown@example.com")
			},
		},
		{
			// Like OpenSSH's sshd: after the client's promise, no session
			// channel is opened on its connection. (Accepted before.)
			name: "no-more-sessions@openssh.com", covers: []string{"global:no-more-sessions@openssh.com"},
			allowed: *refusedAll("no more sessions on this connection", audit.RequestDeny),
			refused: refusedAll("no more sessions on this connection", audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				c := cl.raw(t)
				if _, _, err := c.SendRequest("no-more-sessions@openssh.com", false, nil); err != nil {
					t.Fatal(err)
				}
				// Global requests and channel opens reach the gateway's
				// loop by separate queues: a request with a reply orders
				// them. (OpenSSH sends no-more-sessions after its session
				// is open.)
				_, _, _ = c.SendRequest("keepalive@openssh.com", true, nil)
				s, err := c.NewSession()
				if err != nil {
					return mxCell{out: err.Error()}
				}
				defer s.Close()
				err = s.Run("touch " + m.file(tok))
				return mxCell{reached: m.exists(tok), out: fmt.Sprint(err)}
			},
		},
	}
	// The second leg: a running session asks for another command, a
	// shell, a subsystem, a terminal, a variable or a forwarding. Only the
	// requests in bridgedRequests reach the target; these are answered
	// "no" and the first command goes on.
	for _, second := range []struct {
		typ     string
		payload []byte
	}{
		{"exec", ssh.Marshal(struct{ Command string }{"touch FILE"})},
		{"shell", nil},
		{"subsystem", ssh.Marshal(struct{ Name string }{"sftp"})},
		{"pty-req", ssh.Marshal(struct {
			Term             string
			Cols, Rows, W, H uint32
			Modes            string
		}{"xterm", 80, 24, 0, 0, ""})},
		{"env", ssh.Marshal(struct{ Name, Value string }{"LC_MATRIX", "late"})},
		{"x11-req", ssh.Marshal(struct {
			Single        bool
			Proto, Cookie string
			Screen        uint32
		}{false, "MIT-MAGIC-COOKIE-1", "00", 0})},
		{"auth-agent-req@openssh.com", nil},
	} {
		rows = append(rows, mxRow{
			name:    second.typ + " on a running session",
			allowed: mxOutcome{line: "reply false"},
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				payload := bytes.ReplaceAll(second.payload, []byte("FILE"), []byte(m.file(tok)))
				if second.typ == "exec" {
					// The length prefix changed with the path.
					payload = ssh.Marshal(struct{ Command string }{"touch " + m.file(tok)})
				}
				var reply bool
				c := rawSession(t, cl, false, "read x", func(s *ssh.Session, stdin io.Writer) bool {
					reply, _ = s.SendRequest(second.typ, true, payload)
					_, _ = stdin.Write([]byte("\n"))
					_ = s.Wait()
					return reply || m.exists(tok)
				})
				if c.out == "" {
					c.out = fmt.Sprintf("reply %v", reply)
				}
				return c
			},
		})
	}
	// Channel types only a server opens, and one nobody knows: refused
	// for anyone, audited.
	for _, typ := range []string{"mx-unknown@example.com", "x11", "forwarded-tcpip", "auth-agent@openssh.com", "forwarded-streamlocal@openssh.com"} {
		rows = append(rows, mxRow{
			name:    "channel " + typ,
			allowed: *refusedAll(typ+" is not allowed through the gateway", audit.RequestDeny),
			refused: refusedAll(typ+" is not allowed through the gateway", audit.RequestDeny),
			run: func(t *testing.T, m *matrix, cl *mxClient, tok string) mxCell {
				ch, _, err := cl.raw(t).OpenChannel(typ, nil)
				if err == nil {
					ch.Close()
					return mxCell{reached: true, out: "accepted"}
				}
				return mxCell{out: err.Error()}
			},
		})
	}
	return rows
}

// remoteForward asks for -R through OpenSSH: from a fresh connection
// with -N, or from a running ControlMaster with -O forward.
func remoteForward(t *testing.T, cl *mxClient, spec string) mxCell {
	if cl.ctl != "" {
		_, errOut, code := cl.run(t, "", "ssh", append(cl.opts(), "-O", "forward", "-R", spec, "127.0.0.1")...)
		return mxCell{reached: code == 0, out: errOut}
	}
	_, errOut, code := cl.ssh(t, "", []string{"-N", "-o", "ExitOnForwardFailure=yes", "-R", spec})
	return mxCell{reached: code == 0, out: errOut}
}

// globalRequest sends a global request that wants a reply.
func globalRequest(t *testing.T, cl *mxClient, typ string) mxCell {
	ok, _, err := cl.raw(t).SendRequest(typ, true, nil)
	if err != nil {
		return mxCell{out: err.Error()}
	}
	return mxCell{reached: ok, out: fmt.Sprintf("reply %v", ok)}
}

// rawSession starts command on a raw session (with a pty if asked) and,
// once it runs, calls during with the session and its input; during
// reports whether the request reached the target. A refused command never
// runs: its stderr is what the client saw.
func rawSession(t *testing.T, cl *mxClient, pty bool, command string, during func(*ssh.Session, io.Writer) bool) mxCell {
	t.Helper()
	s, err := cl.raw(t).NewSession()
	if err != nil {
		return mxCell{out: err.Error()}
	}
	defer s.Close()
	// A request the gateway mishandles must fail the cell, not hang it.
	watchdog := time.AfterFunc(15*time.Second, func() { s.Close() })
	defer watchdog.Stop()
	stderr := &lockedBuffer{}
	s.Stderr = stderr
	if pty {
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
			return mxCell{out: err.Error()}
		}
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo started; " + command); err != nil {
		return mxCell{out: err.Error()}
	}
	out := bufio.NewReader(stdout)
	line, _ := out.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if !strings.HasPrefix(line, "started") {
		_ = s.Wait()
		return mxCell{out: stderr.String()}
	}
	reached := during(s, stdin)
	return mxCell{reached: reached, out: stderr.String()}
}

// syncRequests waits until the gateway has handled every request sent
// before it on s: it answers a keepalive from the same loop, in order.
func syncRequests(s *ssh.Session) { _, _ = s.SendRequest("keepalive@openssh.com", true, nil) }
