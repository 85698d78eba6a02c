package sshgate

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// handleDirectTCPIP serves ssh -L, -W and -D: each opens a direct-tcpip
// channel, which needs the tunnel action. The connection is made by the
// target's sshd, so the target's own AllowTcpForwarding still applies.
func (c *conn) handleDirectTCPIP(nch ssh.NewChannel) {
	var p struct {
		DestAddr string
		DestPort uint32
		OrigAddr string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		c.deny(metrics.DenyUnsupported, resource.ActionTunnel, "", "malformed direct-tcpip request")
		_ = nch.Reject(ssh.ConnectionFailed, "portcullis: malformed direct-tcpip request")
		return
	}
	// Decided on the destination as sent: the target's sshd resolves it,
	// so a name is matched as a name (policy tunnels.to).
	dest := net.JoinHostPort(p.DestAddr, strconv.FormatUint(uint64(p.DestPort), 10))
	g := &grant{action: resource.ActionTunnel, dest: dest}
	if !c.addGrant(g) {
		_ = nch.Reject(ssh.ConnectionFailed, "portcullis: the connection is ending")
		return
	}
	defer c.removeGrant(g)
	d, targetUser := c.decideTo(resource.ActionTunnel, "", dest)
	if !d.Allow {
		c.deny(metrics.DenyPolicy, resource.ActionTunnel, dest, d.Reason)
		_ = nch.Reject(ssh.Prohibited, "portcullis: "+d.Reason)
		return
	}
	up, err := c.upstreamFor(d.Obligations)
	if err != nil {
		_ = c.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, SessionID: g.id, Message: err.Error()})
		_ = nch.Reject(ssh.ConnectionFailed, "portcullis: "+c.targetErrorMessage(err))
		return
	}
	uch, ureqs, err := up.OpenChannel("direct-tcpip", nch.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		reason, msg := ssh.ConnectionFailed, err.Error()
		if errors.As(err, &oce) {
			reason, msg = oce.Reason, oce.Message
		}
		_ = c.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, SessionID: g.id,
			Message: fmt.Sprintf("target refused forwarding to %s: %s", dest, msg)})
		_ = nch.Reject(reason, fmt.Sprintf("portcullis: target %s refused forwarding to %s: %s", c.login.Target, dest, msg))
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		uch.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go ssh.DiscardRequests(ureqs)
	if err := c.audit(store.AuditEvent{Type: audit.SessionStart, Outcome: audit.Success, Account: targetUser,
		SessionID: g.id, Policy: d.Policy, Message: fmt.Sprintf("tunnel through %s to %s", c.login.Target, dest),
		Detail: map[string]any{"action": resource.ActionTunnel, "destination": dest}}); err != nil {
		ch.Close()
		uch.Close()
		return
	}
	start := time.Now()
	act := &activity{}
	end := func(string) {
		// A tunnel has no stderr to explain on; the audit event does.
		uch.Close()
		ch.Close()
	}
	c.setEnd(g, end, targetUser)
	stop := c.enforceLimits(g, d.Obligations, act, end)
	c.srv.cfg.Metrics.SessionStarted(resource.ActionTunnel)
	in, out := pipe(ch, uch, act)
	stop()
	c.srv.cfg.Metrics.SessionEnded(in, out)
	_ = c.audit(store.AuditEvent{Type: audit.SessionEnd, Outcome: audit.Success, Account: targetUser,
		SessionID: g.id, Policy: d.Policy, Message: fmt.Sprintf("tunnel to %s ended", dest),
		Detail: map[string]any{"action": resource.ActionTunnel, "destination": dest, "bytes_in": in, "bytes_out": out,
			"duration_ms": time.Since(start).Milliseconds()}})
}

// pipe copies both ways, half-closing each side as its source ends, and
// closes both channels when both directions are done.
//
// Both directions are pumps (copyStream): an idle tunnel holds no goroutine
// of its own but the one waiting here.
func pipe(client, up ssh.Channel, act *activity) (in, out int64) {
	i := copyStream(up, client, 0, act, nil, func() { _ = up.CloseWrite() })
	o := copyStream(client, up, 0, act, nil, func() { _ = client.CloseWrite() })
	<-i.done
	<-o.done
	client.Close()
	up.Close()
	return i.n(), o.n()
}
