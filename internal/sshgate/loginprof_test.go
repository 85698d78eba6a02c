package sshgate_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestLoginAllocProfile does LOGIN_PROFILE_N interactive logins (pty and
// shell, then close) through the gateway with the x/crypto client, for
// go test -memprofile -memprofilerate=1: what a login allocates on the
// gateway side. Skipped unless LOGIN_PROFILE_N is set.
func TestLoginAllocProfile(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LOGIN_PROFILE_N"))
	if n <= 0 {
		t.Skip("LOGIN_PROFILE_N not set")
	}
	w := newWorld(t, "shell, exec")
	// With LOGIN_PROFILE_HOLD set, sessions stay open and a heap profile
	// of what they hold is written to that file.
	hold := os.Getenv("LOGIN_PROFILE_HOLD") != ""
	login := "alice~" + w.unixUser + "~web1"
	for i := 0; i < n; i++ {
		c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: login,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
			HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 10 * time.Second,
			// As the bench's OpenSSH clients are run.
			Config: ssh.Config{KeyExchanges: []string{"curve25519-sha256"}, Ciphers: []string{"aes128-gcm@openssh.com"}}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		if hold {
			defer c.Close()
			continue
		}
		_ = s.Close()
		_ = c.Close()
	}
	if hold {
		time.Sleep(time.Second)
		runtime.GC()
		f, err := os.Create(os.Getenv("LOGIN_PROFILE_HOLD"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
	}
}
