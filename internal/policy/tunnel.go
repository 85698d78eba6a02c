package policy

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// parseDestination reads Request.Destination (HOST:PORT).
func parseDestination(s string) (resource.Endpoint, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return resource.Endpoint{}, fmt.Errorf("not HOST:PORT")
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return resource.Endpoint{}, fmt.Errorf("port %q is not a number", port)
	}
	return resource.ParseTunnelDestination(host, uint32(p))
}

// targetItself lists what "the target host itself" is for a policy without
// tunnels.to: the host of the target's address, as written, and its
// loopback names (localhost, 127.0.0.1, ::1), which the target's sshd
// reaches on itself. Any port.
func targetItself(t *resource.Target) []resource.Endpoint {
	out := []resource.Endpoint{
		{Name: "localhost"},
		mustRule("127.0.0.1:*"),
		mustRule("[::1]:*"),
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		host = t.Address
	}
	if ep, err := resource.ParseTunnelRule(net.JoinHostPort(host, "*")); err == nil {
		out = append(out, ep)
	}
	return out
}

func mustRule(s string) resource.Endpoint {
	ep, err := resource.ParseTunnelRule(s)
	if err != nil {
		panic(err)
	}
	return ep
}

// tunnelAllows reports whether policy c lets a tunnel through target reach
// dest.
func tunnelAllows(c *compiled, target *resource.Target, dest resource.Endpoint) bool {
	rules := c.tunnels
	if rules == nil {
		rules = targetItself(target)
	}
	for _, r := range rules {
		if r.Matches(dest) {
			return true
		}
	}
	return false
}

// tunnelDenial words why c does not let a tunnel reach dest.
func tunnelDenial(c *compiled, target *resource.Target, dest string) string {
	if c.tunnels == nil {
		return fmt.Sprintf("a tunnel through %s reaches only %s itself, not %s (policy %s has no tunnels.to)",
			target.Name, target.Name, dest, c.name)
	}
	return fmt.Sprintf("tunnel to %s is not in tunnels.to of policy %s", dest, c.name)
}

// Grants reports whether some policy grants r.Action to the subject on
// r.Target as r.TargetUser from r.Source now, whatever the command or
// tunnel destination: what a user certificate for that target user may
// permit, since later requests on the same connection are each decided
// again. r.Command and r.Destination are ignored.
func (e *Engine) Grants(r Request) bool {
	var buf [8][]*compiled
	loginName, cands, ok := e.candidates(e.access, &r, buf[:0])
	target := e.targets[r.Target]
	if !ok || target == nil || r.TargetUser == "" {
		return false
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	certAuth := target.AuthMode() == resource.AuthCertificate
	for _, list := range cands {
		for _, c := range list {
			if e.stage(c, &r, loginName, certAuth, now) == stageGranted {
				return true
			}
		}
	}
	return false
}
