package sshgate_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"

	"golang.org/x/crypto/ssh"
)

// lockedBuffer collects a session's output from the reading goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls the output until it contains want.
func waitFor(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPTYResizeAndInterrupt drives an interactive shell through the
// gateway: the window size follows window-change, and Ctrl-C interrupts
// the foreground command without ending the session.
func TestPTYResizeAndInterrupt(t *testing.T) {
	w := newWorld(t, "shell")
	cl, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{
		User: "alice~web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	out := &lockedBuffer{}
	stdout, _ := sess.StdoutPipe()
	go func() { _, _ = io.Copy(out, stdout) }()
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "stty size; echo size-$((1+1))\r")
	waitFor(t, out, "24 80")
	// A line typed right after a resize must find the terminal resized:
	// the gateway forwards the client's requests and data on separate
	// goroutines, and holds data until the requests before it are
	// forwarded (a loaded machine showed the old size before it did).
	// Each size is asked once, at once: a stale answer never shows the
	// size waited for.
	for i := range 5 {
		rows, cols := 40+i, 100+i
		if err := sess.WindowChange(rows, cols); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "stty size\r")
		waitFor(t, out, fmt.Sprintf("%d %d", rows, cols))
	}

	io.WriteString(stdin, "sleep 30; echo slept-$((3+3))\r")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(stdin, "\x03")
	io.WriteString(stdin, "echo after-$((4+4))\r")
	waitFor(t, out, "after-8")
	if strings.Contains(out.String(), "slept-6") {
		t.Fatal("Ctrl-C did not interrupt sleep")
	}
	io.WriteString(stdin, "exit 9\r")
	err = sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 9 {
		t.Fatalf("exit: %v", err)
	}
}

// TestTargetKeepaliveDoesNotStallSession: a target whose sshd checks its
// peer (ClientAliveInterval) sends keepalive@openssh.com on the session
// channel, wanting a reply. The gateway used to pass it to the client and
// wait for the client's answer in the loop that also forwards the client's
// requests and orders its data, so a client slow to answer (here: one that
// never does) froze its own shell, resizes and typing alike.
func TestTargetKeepaliveDoesNotStallSession(t *testing.T) {
	w := newWorld(t, "shell")
	sshd := testenv.StartSSHD(t, "ClientAliveInterval 1", "ClientAliveCountMax 3")
	w.addTarget(t, "alive", sshd, false, "shell", "")
	cl, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{
		User: "alice~alive", Auth: []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ch, reqs, err := cl.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	// The client reads the requests it gets but answers none.
	var held []*ssh.Request
	var heldMu sync.Mutex
	go func() {
		for r := range reqs {
			heldMu.Lock()
			held = append(held, r)
			heldMu.Unlock()
		}
	}()
	type winch struct{ Columns, Rows, Width, Height uint32 }
	pty := struct {
		Term                         string
		Columns, Rows, Width, Height uint32
		Modes                        string
	}{"xterm", 80, 24, 0, 0, "\x00"}
	if ok, err := ch.SendRequest("pty-req", true, ssh.Marshal(&pty)); !ok || err != nil {
		t.Fatalf("pty-req: %v %v", ok, err)
	}
	if ok, err := ch.SendRequest("shell", true, nil); !ok || err != nil {
		t.Fatalf("shell: %v %v", ok, err)
	}
	out := &lockedBuffer{}
	go func() { _, _ = io.Copy(out, ch) }()
	// Idle past two of sshd's checks: each came through the gateway.
	time.Sleep(2500 * time.Millisecond)
	for i := range 8 {
		if _, err := ch.SendRequest("window-change", false, ssh.Marshal(&winch{Columns: uint32(100 + i), Rows: uint32(40 + i)})); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(ch, "stty size; echo alive-$((2+3))\r")
	waitFor(t, out, "47 107")
	waitFor(t, out, "alive-5")
	heldMu.Lock()
	defer heldMu.Unlock()
	for _, r := range held {
		if r.WantReply {
			t.Errorf("the client was asked %s and the session waited for its answer", r.Type)
		}
	}
}
