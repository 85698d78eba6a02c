package sshgate_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestSSHAuditNoFailures runs Debian's ssh-audit against the gateway: no
// algorithm it offers may be flagged [fail] (warnings about algorithms
// ssh-audit 2.5 does not know yet, such as ML-KEM, are fine), and strict
// key exchange (the Terrapin fix) must be advertised.
func TestSSHAuditNoFailures(t *testing.T) {
	testenv.Require(t, "ssh-audit")
	gw := startGateway(t)
	host, port, _ := net.SplitHostPort(gw.addr)
	out, errOut, code := testenv.Run(t, 60*time.Second, "ssh-audit", "-n", "-p", port, host)
	if code == -1 || !strings.Contains(out, "(kex) curve25519-sha256") {
		t.Fatalf("ssh-audit did not audit the gateway (exit %d):\n%s\n%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[fail]") {
			t.Errorf("ssh-audit: %s", strings.TrimSpace(line))
		}
	}
	if !strings.Contains(out, "kex-strict-s-v00@openssh.com") {
		t.Errorf("strict key exchange not advertised:\n%s", out)
	}
}
