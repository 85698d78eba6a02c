package sshgate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestRealOpenSSHRekeysBothLegs: the real ssh client re-keys its
// connection to the gateway every 32 KiB and the target's sshd re-keys its
// connection to the gateway every 32 KiB too, while 2 MB go up and come
// back through `cat` at once: every byte must come back in order and the
// session end normally, with the exchanges OpenSSH itself starts (the
// patched x/crypto, internal/sshx, talking to real peers).
func TestRealOpenSSHRekeysBothLegs(t *testing.T) {
	w := newWorld(t, "exec")
	sshd := testenv.StartSSHD(t, "RekeyLimit 32K")
	w.addTarget(t, "rk", sshd, false, "exec", "")

	var b strings.Builder
	for i := 0; b.Len() < 2<<20; i++ {
		// Lines that differ, so that a lost or repeated chunk shows.
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 1+i%97))
		b.WriteByte('\n')
	}
	in := b.String()
	args := append([]string{"-v"}, w.opts(true)...)
	args = append(args, "-o", "RekeyLimit=32K", "-l", "alice~rk", "127.0.0.1", "cat")
	out, errOut, code := testenv.RunInput(t, 2*time.Minute, in, "ssh", args...)
	if code != 0 || out != in {
		t.Fatalf("exit %d, %d of %d bytes back (equal: %v); stderr tail: %s", code, len(out), len(in), out == in, tail(errOut, 2000))
	}
	// The client's own exchanges with the gateway (the first one and the
	// re-keys): at least one per 64 KiB of the 4 MB that crossed.
	if n := strings.Count(errOut, "SSH2_MSG_KEXINIT sent"); n < 32 {
		t.Fatalf("the ssh client started %d key exchanges, want re-keys every 32 KiB (>= 32)", n)
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
