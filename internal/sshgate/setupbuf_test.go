package sshgate_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/testenv"
)

// heldTarget is an SSH server that accepts any key and holds the reply to
// every "shell" request and to every "exec" of a command starting with
// "held" until the test closes release (then refuses it if the command
// ends in "refused"): the session's setup on the
// gateway then waits for the target, as it does for a slow one (a dial,
// a login, sshd's session setup). Any other exec runs as "echo": its
// arguments are printed. A held session, once released, answers lines on
// its stdin: "size" prints the terminal's rows and columns (from pty-req
// and the latest window-change), "reqs" the requests it received, in
// order, "exit" ends it with status 0.
type heldTarget struct {
	addr    string
	hostKey ssh.PublicKey
	holding chan struct{} // gets a value each time a request starts being held
	release chan struct{} // closed by letGo: held requests are answered
	wrote   chan struct{} // gets a value when a "big" exec has written all
	once    sync.Once
}

// letGo answers the held requests, and those to come at once.
func (h *heldTarget) letGo() { h.once.Do(func() { close(h.release) }) }

func startHeldTarget(t *testing.T) *heldTarget {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, nil
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &heldTarget{addr: ln.Addr().String(), hostKey: signer.PublicKey(),
		holding: make(chan struct{}, 16), release: make(chan struct{}), wrote: make(chan struct{}, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		// A failing test still lets its held sessions go, so that the
		// gateway and this target end.
		h.letGo()
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				var sessions sync.WaitGroup
				defer sessions.Wait()
				for nch := range chans {
					if nch.ChannelType() != "session" {
						_ = nch.Reject(ssh.Prohibited, "no")
						continue
					}
					ch, creqs, err := nch.Accept()
					if err != nil {
						return
					}
					sessions.Add(1)
					go func() {
						defer sessions.Done()
						h.serveSession(ch, creqs)
						// Requests the gateway sends before it sees the
						// close must not stop this connection's read loop.
						ssh.DiscardRequests(creqs)
					}()
				}
			}()
		}
	}()
	return h
}

func (h *heldTarget) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var (
		rows, cols uint32
		seen       []string
		started    bool
	)
	lines := make(chan string)
	readerDone := make(chan struct{})
	defer func() {
		ch.Close()
		if started {
			<-readerDone
		}
	}()
	exit := func() {
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	}
	handle := func(req *ssh.Request) (end bool) {
		what := req.Type
		switch req.Type {
		case "pty-req":
			var p struct {
				Term             string
				Cols, Rows, W, H uint32
				Modes            string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil {
				cols, rows = p.Cols, p.Rows
			}
		case "window-change":
			var p struct{ Cols, Rows, W, H uint32 }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				cols, rows = p.Cols, p.Rows
			}
		case "exec":
			var p struct{ Command string }
			_ = ssh.Unmarshal(req.Payload, &p)
			what += ":" + p.Command
			if started {
				break
			}
			if n, ok := strings.CutPrefix(p.Command, "big "); ok {
				// "big N" writes N bytes, exits and closes, then says so.
				_ = req.Reply(true, nil)
				size, _ := strconv.Atoi(n)
				_, _ = ch.Write(make([]byte, size))
				exit()
				ch.Close()
				h.wrote <- struct{}{}
				return true
			}
			if !strings.HasPrefix(p.Command, "held") {
				_ = req.Reply(true, nil)
				_, _ = ch.Write([]byte(strings.TrimPrefix(p.Command, "echo ") + "\n"))
				exit()
				return true
			}
		}
		seen = append(seen, what)
		if (req.Type != "shell" && req.Type != "exec") || started {
			_ = req.Reply(req.Type == "pty-req" || req.Type == "env", nil)
			return false
		}
		h.holding <- struct{}{}
		<-h.release
		if strings.HasSuffix(what, "refused") {
			_ = req.Reply(false, nil)
			return true
		}
		started = true
		_ = req.Reply(true, nil)
		go func() {
			defer close(readerDone)
			sc := bufio.NewScanner(ch)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		return false
	}
	for {
		select {
		case req, ok := <-reqs:
			if !ok || handle(req) {
				return
			}
		case line, ok := <-lines:
			if !ok {
				return
			}
			// The requests sent before this line are queued already
			// (one read loop per connection): take them first.
			for more := true; more; {
				select {
				case req, ok := <-reqs:
					if !ok {
						return
					}
					handle(req)
				default:
					more = false
				}
			}
			switch line {
			case "size":
				_, _ = fmt.Fprintf(ch, "%d %d\n", rows, cols)
			case "reqs":
				_, _ = fmt.Fprintf(ch, "%s\n", strings.Join(seen, ","))
			case "exit":
				exit()
				// Let the reader end: the client closes once it has the
				// exit status.
				go func() {
					for range lines {
					}
				}()
				return
			}
		}
	}
}

// setupWorld is a gateway with one target, a heldTarget, and a client
// connected to it as alice~slow.
func setupWorld(t *testing.T) (*heldTarget, *ssh.Client) {
	t.Helper()
	gw := startGateway(t)
	h := startHeldTarget(t)
	key := testenv.NewClientKey(t, testenv.ShortTempDir(t))
	gw.apply(fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
---
kind: Target
name: slow
address: %s
host_key: %q
---
kind: Account
name: app
target: slow
---
kind: Policy
name: alice-slow
type: target-access
subjects: {users: [alice]}
targets: {names: [slow]}
target_users: [app]
actions: [shell, exec]
`, key.AuthorizedKey, h.addr, authorizedLine(h.hostKey)))
	client, err := ssh.Dial("tcp", gw.addr, &ssh.ClientConfig{
		User: "alice~slow", Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.FixedHostKey(gw.hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return h, client
}

// setupDeadline bounds each wait of these tests; it is not a measure:
// what they wait for comes at once unless the gateway is stuck.
const setupDeadline = 30 * time.Second

// awaitSetup waits for c or fails the test at setupDeadline.
func awaitSetup[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(setupDeadline):
		t.Fatalf("%s did not happen within %v", what, setupDeadline)
		panic("unreachable")
	}
}

// runOther runs "echo ok" in a second session on the same connection and
// sends its result (an error when it did not print ok).
func runOther(client *ssh.Client) <-chan error {
	done := make(chan error, 1)
	go func() {
		s, err := client.NewSession()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		out, err := s.Output("echo ok")
		if err == nil && string(out) != "ok\n" {
			err = fmt.Errorf("echo ok printed %q", out)
		}
		done <- err
	}()
	return done
}

// startHeld opens a session channel, sends pre (each acknowledged) and
// then start in the background, and returns once the target holds it.
func startHeld(t *testing.T, h *heldTarget, client *ssh.Client, pre [][2]any, startType string, startPayload []byte) (ssh.Channel, <-chan error) {
	t.Helper()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	for _, r := range pre {
		if ok, err := ch.SendRequest(r[0].(string), true, r[1].([]byte)); err != nil || !ok {
			t.Fatalf("%s: %v %v", r[0], ok, err)
		}
	}
	started := make(chan error, 1)
	go func() {
		ok, err := ch.SendRequest(startType, true, startPayload)
		if err == nil && !ok {
			err = fmt.Errorf("%s refused", startType)
		}
		started <- err
	}()
	awaitSetup(t, h.holding, "the target holding the session's "+startType)
	return ch, started
}

// ask writes line to a released held session and returns the line it
// prints back.
func ask(t *testing.T, ch ssh.Channel, r *bufio.Reader, line string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if _, err := ch.Write([]byte(line + "\n")); err != nil {
			got <- "write: " + err.Error()
			return
		}
		s, err := r.ReadString('\n')
		if err != nil {
			s = "read: " + err.Error()
		}
		got <- strings.TrimRight(s, "\r\n")
	}()
	return awaitSetup(t, got, "the answer to "+line)
}

func windowChange(cols, rows uint32) []byte {
	return ssh.Marshal(struct{ Cols, Rows, W, H uint32 }{cols, rows, 0, 0})
}

// TestSetupRequestsDoNotStallConnection: while a session's setup waits for
// its target (here the target holds its shell request; a dial or a slow
// login does the same), the client's requests on that session (resizes,
// env) must not stop its connection: the channel's request queue is 2
// deep (sshx item 8), and once it was full the connection's read loop
// waited on it, so every other channel on the connection stalled until
// the setup ended. A second session must run meanwhile, and the held
// session must then see the latest size.
func TestSetupRequestsDoNotStallConnection(t *testing.T) {
	h, client := setupWorld(t)
	pty := ssh.Marshal(struct {
		Term             string
		Cols, Rows, W, H uint32
		Modes            string
	}{"xterm", 80, 24, 0, 0, ""})
	a, started := startHeld(t, h, client, [][2]any{{"pty-req", pty}}, "shell", nil)
	for i := range 10 {
		if _, err := a.SendRequest("window-change", false, windowChange(uint32(81+i), uint32(25+i))); err != nil {
			t.Fatal(err)
		}
	}
	env := ssh.Marshal(struct{ Name, Value string }{"LANG", "C"})
	if _, err := a.SendRequest("env", false, env); err != nil {
		t.Fatal(err)
	}
	if err := awaitSetup(t, runOther(client), "a second session on the connection while the first one's setup waits"); err != nil {
		t.Fatal(err)
	}
	h.letGo()
	if err := awaitSetup(t, started, "the shell's reply"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(a)
	if got := ask(t, a, r, "size"); got != "34 90" {
		t.Errorf("the target's terminal is %q (rows cols), want the latest window-change, 34 90", got)
	}
	// The resizes are coalesced to the latest; env after the shell
	// request is refused as it is once the shell runs.
	if got := ask(t, a, r, "reqs"); got != "pty-req,shell,window-change" {
		t.Errorf("the target received %q, want pty-req,shell,window-change", got)
	}
	_, _ = a.Write([]byte("exit\n"))
	_, _ = io.Copy(io.Discard, a)
}

// TestSecondExecDuringSetupRefused: a second exec queued while the first
// one's setup waits for the target is refused exactly as it is once the
// session runs: it never reaches the target, so it cannot run a command
// the policy did not judge.
func TestSecondExecDuringSetupRefused(t *testing.T) {
	h, client := setupWorld(t)
	execPayload := func(cmd string) []byte { return ssh.Marshal(struct{ Command string }{cmd}) }
	a, started := startHeld(t, h, client, nil, "exec", execPayload("held first"))
	if _, err := a.SendRequest("exec", false, execPayload("echo second")); err != nil {
		t.Fatal(err)
	}
	// Two more requests behind it, then a second session that completes:
	// the connection's read loop passed all three on, so the gateway took
	// the second exec off the channel's 2-deep queue during the setup.
	for i := range 3 {
		if _, err := a.SendRequest("window-change", false, windowChange(uint32(100+i), 40)); err != nil {
			t.Fatal(err)
		}
	}
	if err := awaitSetup(t, runOther(client), "a second session on the connection while the first one's setup waits"); err != nil {
		t.Fatal(err)
	}
	h.letGo()
	if err := awaitSetup(t, started, "the exec's reply"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(a)
	if got := ask(t, a, r, "reqs"); got != "exec:held first,window-change" {
		t.Errorf("the target received %q, want exec:held first,window-change", got)
	}
	// The same request once the session runs: refused, and not sent on.
	if ok, err := a.SendRequest("exec", true, execPayload("echo third")); err != nil || ok {
		t.Errorf("a second exec after setup was answered %v, %v; want false", ok, err)
	}
	if got := ask(t, a, r, "reqs"); got != "exec:held first,window-change" {
		t.Errorf("the target received %q, want exec:held first,window-change", got)
	}
	_, _ = a.Write([]byte("exit\n"))
	_, _ = io.Copy(io.Discard, a)
}

// TestRequestsWhileOutputDrains: once the target's command has ended, the
// gateway still delivers its last output to the client, which may take
// long for a slow client; the client's requests meanwhile (a resize while
// the output scrolls by) must not stop the connection's read loop, which
// brings the very window adjustments that delivery waits for.
func TestRequestsWhileOutputDrains(t *testing.T) {
	h, client := setupWorld(t)
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	// 3 MiB: 2 fill the client's window, the last waits on the gateway.
	const size = 3 << 20
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{fmt.Sprintf("big %d", size)})); err != nil || !ok {
		t.Fatalf("exec: %v %v", ok, err)
	}
	awaitSetup(t, h.wrote, "the target writing its output")
	for i := range 5 {
		if _, err := ch.SendRequest("window-change", false, windowChange(uint32(81+i), 24)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, ch)
		got <- n
	}()
	if n := awaitSetup(t, got, "the output delivered"); n != size {
		t.Errorf("%d bytes delivered, want %d", n, size)
	}
}

// TestSetupRequestsAnsweredWhenRefused: a session whose setup ends in a
// refusal (here the target refuses the exec it held) answers the requests
// held meanwhile, after the exec, and ends as a refused session does.
func TestSetupRequestsAnsweredWhenRefused(t *testing.T) {
	h, client := setupWorld(t)
	a, started := startHeld(t, h, client, nil, "exec", ssh.Marshal(struct{ Command string }{"held then refused"}))
	for i := range 5 {
		if _, err := a.SendRequest("window-change", false, windowChange(uint32(81+i), 24)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.SendRequest("signal", false, ssh.Marshal(struct{ Name string }{"INT"})); err != nil {
		t.Fatal(err)
	}
	if err := awaitSetup(t, runOther(client), "a second session on the connection while the first one's setup waits"); err != nil {
		t.Fatal(err)
	}
	h.letGo()
	// The gateway acknowledges the exec so that the client prints its
	// line rather than its own "exec request failed".
	if err := awaitSetup(t, started, "the exec's reply"); err != nil {
		t.Fatal(err)
	}
	msg := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(a.Stderr())
		msg <- b
	}()
	if got := string(awaitSetup(t, msg, "the refusal")); !strings.Contains(got, "refused the exec request") {
		t.Errorf("stderr %q, want the target's refusal", got)
	}
}
