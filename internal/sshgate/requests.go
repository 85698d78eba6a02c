package sshgate

import (
	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/metrics"
)

// This file is the one list of what a client may ask the gateway for: the
// channel types it may open, the global requests it may make, and the
// requests a session channel takes before and while it runs. Everything
// else gets a plain refusal. The dispatchers in conn.go and session.go
// look their answer up here, so a new type cannot be served without being
// listed, and the authorization matrix test (matrix_test.go) fails for any
// listed type it has no row for.

// channelHandler serves one channel type.
type channelHandler struct {
	// session marks channels counted against maxSessions.
	session bool
	// serve serves one channel and calls done once it is over, which may
	// be after serve returned (a session whose requests the connection's
	// loop serves, runSession).
	serve func(c *conn, nch ssh.NewChannel, done func())
}

// channelHandlers are the channel types a client may open; any other is
// rejected and audited.
var channelHandlers = map[string]channelHandler{
	"session": {session: true, serve: (*conn).handleSession},
	"direct-tcpip": {serve: func(c *conn, nch ssh.NewChannel, done func()) {
		defer done()
		c.handleDirectTCPIP(nch)
	}},
}

// globalHandlers answer the global requests the gateway acts on; any other
// gets a failure reply (if it wants one) and nothing else.
var globalHandlers = map[string]func(c *conn, req *ssh.Request){
	"tcpip-forward":                   (*conn).refuseRemoteForward,
	"streamlocal-forward@openssh.com": (*conn).refuseRemoteForward,
	"no-more-sessions@openssh.com":    (*conn).noMoreSessions,
}

// sessionStep is what a session channel does with a request that arrives
// before the session runs.
type sessionStep int

const (
	// stepIgnore is for anything unlisted: a failure reply.
	stepIgnore sessionStep = iota
	// stepSetup requests carry no access of their own: they are
	// acknowledged, kept, and replayed on the target once the session is
	// authorized.
	stepSetup
	// stepStart requests are authorized, then run on the target.
	stepStart
	// stepRefuse requests ask for forwarding the gateway never does.
	stepRefuse
)

// sessionSteps lists the requests a session channel takes before it runs.
var sessionSteps = map[string]sessionStep{
	"pty-req":                    stepSetup,
	"env":                        stepSetup,
	"shell":                      stepStart,
	"exec":                       stepStart,
	"subsystem":                  stepStart,
	"auth-agent-req@openssh.com": stepRefuse,
	"x11-req":                    stepRefuse,
}

// refusedForwarding says, for each stepRefuse request, the action audited
// and the line the client sees.
var refusedForwarding = map[string]struct{ action, audit, tell string }{
	"auth-agent-req@openssh.com": {"agent-forwarding", "agent forwarding is refused",
		"agent forwarding is refused: the gateway never forwards an agent"},
	"x11-req": {"x11-forwarding", "X11 forwarding is refused",
		"X11 forwarding is refused through the gateway"},
}

// bridgedRequests are the requests a running session passes to the
// target; they change the session it was granted, never what it may do.
var bridgedRequests = map[string]bool{
	"window-change":   true,
	"signal":          true,
	"break":           true,
	"eow@openssh.com": true,
}

// refuseRemoteForward answers -R: the gateway never listens for a client.
// There is no way to put a reason in a global request failure; OpenSSH
// prints "remote port forwarding failed". The audit event and the server
// log carry the reason.
func (c *conn) refuseRemoteForward(req *ssh.Request) {
	c.deny(metrics.DenyForward, "remote-forward", "", "remote forwarding (-R) is not allowed through the gateway")
	if req.WantReply {
		_ = req.Reply(false, nil)
	}
}

// noMoreSessions records the client's promise (OpenSSH sends it unless it
// multiplexes) that it opens no further session channels: like OpenSSH's
// sshd, the gateway then refuses them, so that whoever takes over the
// client's connection cannot open one.
func (c *conn) noMoreSessions(req *ssh.Request) {
	c.noMoreSessionsSet.Store(true)
	if req.WantReply {
		_ = req.Reply(true, nil)
	}
}
