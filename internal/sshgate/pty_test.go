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
