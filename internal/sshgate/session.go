package sshgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/shellcmd"
	"github.com/portcullis/portcullis/internal/store"
)

// handleSession serves one "session" channel: it collects the setup
// requests (pty, env), authorizes the shell, exec or subsystem request, and
// bridges the channel to a session on the target.
//
// done is called once the channel is served; when the connection's loop
// serves the running session's requests (runSession), that is after
// handleSession has returned.
func (c *conn) handleSession(nch ssh.NewChannel, done func()) {
	handedOff := false
	defer func() {
		if !handedOff {
			done()
		}
	}()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer func() {
		if !handedOff {
			ch.Close()
		}
	}()
	// A session that never asks for a shell, exec or subsystem is closed
	// after setupTimeout, so it cannot hold memory forever.
	timer := time.AfterFunc(setupTimeout, func() { ch.Close() })
	defer timer.Stop()
	// pty-req and env are replayed on the target once the session is
	// authorized; they carry no access of their own. Both are bounded.
	var setup []*ssh.Request
	setupBytes := 0
	// Several goroutines write to the client's stderr (the refusal
	// notices below, the target's stderr, the line gate, notices);
	// x/crypto needs them serialized.
	stderr := &lockedWriter{w: ch.Stderr()}
	var notices noticeQueue
	for req := range reqs {
		switch sessionSteps[req.Type] {
		case stepSetup:
			if req.Type == "env" {
				// Only AcceptEnv passes; the rest is dropped and logged
				// at debug, not audited: a client may send dozens.
				if name, ok := c.srv.envAccepted(req.Payload); !ok {
					c.srv.cfg.Log.Debug("env variable dropped", "session", c.id, "name", name)
					if req.WantReply {
						_ = req.Reply(false, nil)
					}
					continue
				}
			}
			setupBytes += len(req.Payload)
			if len(setup) >= maxSetupRequests || setupBytes > maxSetupBytes {
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
				continue
			}
			setup = append(setup, req)
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		case stepRefuse:
			r := refusedForwarding[req.Type]
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
			c.deny(metrics.DenyForward, r.action, "", r.audit)
			notices.add(stderr, r.tell)
		case stepStart:
			timer.Stop()
			handedOff = c.runSession(ch, stderr, reqs, req, setup, done)
			return
		case stepIgnore:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// Bounds on a session before it is authorized.
const (
	setupTimeout     = 30 * time.Second
	maxSetupRequests = 64
	maxSetupBytes    = 64 << 10
)

// tell writes one line to the client's stderr. "\r\n" because with a pty
// the client's terminal is in raw mode.
func tell(ch ssh.Channel, msg string) {
	_, _ = ch.Stderr().Write([]byte("portcullis: " + msg + "\r\n"))
}

// noticeQueue writes a session's refusal notices (agent, X11) beside its
// request loop, which must go on taking requests: a write waits for window
// from a client that may not read, and the connection's read loop, which
// brings both the window and the hang-up, waits for the request loop once
// the channel's request queue is full. A client that does not read gets
// at most maxPendingNotices lines queued, the rest dropped (each refusal
// is still answered and counted).
type noticeQueue struct {
	mu      sync.Mutex
	pending []string
	running bool // the writer goroutine runs
}

// maxPendingNotices bounds the notices waiting for a client's window.
const maxPendingNotices = 4

// add queues one line for w. The writer goroutine it may start ends when
// the queue is empty; a write blocked on the window ends with the channel.
func (q *noticeQueue) add(w io.Writer, msg string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= maxPendingNotices {
		return
	}
	q.pending = append(q.pending, msg)
	if q.running {
		return
	}
	q.running = true
	go q.run(w)
}

func (q *noticeQueue) run(w io.Writer) {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		msg := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		_, _ = w.Write([]byte("portcullis: " + msg + "\r\n"))
	}
}

// refuse ends a session with one line and exit status 1. The request
// itself is acknowledged so that the client prints our line instead of its
// own "exec request failed". The channel's further requests are drained
// before the line is written: the write may wait for window from a client
// that does not read, and the window (and the hang-up) comes through the
// connection's read loop, which stops while the channel's request queue
// is full. The line and the half-close go under stderr's lock: a Recheck
// may write a notice through it meanwhile, and x/crypto reads a channel's
// EOF flag unlocked in Write.
func refuse(ch ssh.Channel, stderr *lockedWriter, req *ssh.Request, reqs <-chan *ssh.Request, msg string) {
	if req != nil && req.WantReply {
		_ = req.Reply(true, nil)
	}
	drain(reqs)
	stderr.do(func() {
		tell(ch, msg)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
		_ = ch.CloseWrite()
	})
}

// classify maps a session request to the action it needs and the command
// that policy sees.
func classify(req *ssh.Request) (action, command string, err error) {
	switch req.Type {
	case "shell":
		return resource.ActionShell, "", nil
	case "exec":
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return "", "", errors.New("malformed exec request")
		}
		if isFileTransfer(p.Command) {
			return resource.ActionFileTransfer, p.Command, nil
		}
		// "bash", "bash -i", "python": a shell session by another name.
		return policy.SessionAction(resource.ActionExec, p.Command), p.Command, nil
	case "subsystem":
		var p struct{ Name string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			return "", "", errors.New("malformed subsystem request")
		}
		if p.Name != "sftp" {
			return "", "", fmt.Errorf("subsystem %q is not supported through the gateway", p.Name)
		}
		return resource.ActionFileTransfer, "sftp", nil
	}
	return "", "", fmt.Errorf("request %q is not supported", req.Type)
}

// isFileTransfer recognises the server side of scp (legacy protocol),
// rsync and sftp run as commands. A policy that grants only file-transfer
// thus admits exactly these programs, in their server modes.
//
// The target's sshd runs the command through the account's shell, so a
// command with anything the shell would interpret (";", "$(", "&&", ...)
// could run more than the transfer program: such a command is exec, never
// file-transfer, whatever its first word.
func isFileTransfer(cmd string) bool {
	for _, r := range cmd {
		if !transferSafe(r) {
			return false
		}
	}
	fields := strings.Fields(cmd)
	if len(fields) < 2 {
		return len(fields) == 1 && path.Base(fields[0]) == "sftp-server"
	}
	switch path.Base(fields[0]) {
	case "scp":
		for _, f := range fields[1:] {
			if f == "-t" || f == "-f" {
				return true
			}
		}
	case "rsync":
		return fields[1] == "--server"
	case "sftp-server":
		return true
	}
	return false
}

// transferSafe lists the characters a scp, rsync or sftp-server command
// line needs, none of which makes the shell run anything else. A single
// quote is allowed (scp quotes paths with it); without any other shell
// metacharacter it can only quote.
func transferSafe(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("._/=:@%+,-~ '", r)
}

// runSession authorizes the session request and bridges it to the target.
// The setup (decision, dial, audit, recording) runs on a goroutine of its
// own (onOwnStack): this goroutine lives as long as the session, mostly
// waiting in the bridge's request loop, and keeps the small stack that
// needs. Or it does not live on: when the connection's loop takes the
// bridge's loop on (hostBridge), runSession returns true at once, and
// the connection calls done once the session has ended; otherwise
// runSession returns false when the session has ended.
func (c *conn) runSession(ch ssh.Channel, stderr *lockedWriter, reqs <-chan *ssh.Request, req *ssh.Request, setup []*ssh.Request, done func()) (handedOff bool) {
	var s *startedSession
	onOwnStack(func() { s = c.startSession(ch, stderr, reqs, req, setup) })
	if s == nil {
		return false
	}
	b := newBridge(ch, reqs, s.uch, s.ureqs, s.opts)
	if c.hostBridge(&hostedBridge{b: b, end: func(res sessionResult) {
		c.finishSession(s, res)
		ch.Close()
		done()
	}}) {
		return true
	}
	c.finishSession(s, b.run())
	return false
}

// finishSession ends a started session whose bridge has returned res: it
// closes its recording, records its command's exit and writes its end
// event.
func (c *conn) finishSession(s *startedSession, res sessionResult) {
	defer c.removeGrant(s.g)
	defer s.uch.Close()
	defer c.srv.cfg.Metrics.SessionEnded(res.in, res.out)
	g, d, action, targetUser, obs, cmdID := s.g, s.d, s.action, s.targetUser, s.opts.obs, s.cmdID
	s.stop()
	endDetail := map[string]any{"action": action, "bytes_in": res.in, "bytes_out": res.out,
		"duration_ms": time.Since(s.start).Milliseconds()}
	if obs != nil {
		obs.close()
		if obs.rec != nil {
			size, sum, err := obs.rec.Close(context.WithoutCancel(c.ctx))
			if err != nil {
				_ = c.audit(store.AuditEvent{Type: audit.RecordingFailure, Outcome: audit.Failure, SessionID: g.id,
					Message: "close recording: " + err.Error()})
			}
			endDetail["recording"] = g.id
			endDetail["recording_sha256"] = sum
			endDetail["recording_bytes"] = size
			if gap := obs.rec.Gap(); gap.Bytes > 0 {
				// What the recording lacks, for whoever reads it later.
				endDetail["recording_state"] = store.RecordingIncomplete
				endDetail["recording_lost_bytes"] = gap.Bytes
				endDetail["recording_gap_from_s"] = gap.From.Seconds()
				endDetail["recording_gap_to_s"] = gap.To.Seconds()
			}
		}
	}
	if cmdID != 0 && res.exitStatus != nil && c.srv.cfg.Commands != nil {
		_ = c.srv.cfg.Commands.SetCommandExit(context.WithoutCancel(c.ctx), cmdID, int(*res.exitStatus))
	}
	if res.exitStatus != nil {
		endDetail["exit_status"] = *res.exitStatus
	}
	if res.exitSignal != "" {
		endDetail["exit_signal"] = res.exitSignal
	}
	if res.lost == "" && res.exitStatus == nil && c.upStalled.Load() {
		// The client's hang-up or the gateway came first, but what ended
		// the session is the target that stopped reading.
		res.lost = errUpstreamStalled.Error()
	}
	outcome := audit.Success
	if res.lost != "" {
		// Not a success: the command did not finish and say how.
		outcome = audit.Failure
		endDetail["end_reason"] = res.lost
	}
	c.auditEndAs(g, d, targetUser, outcome, endDetail)
}

// startedSession is a session startSession authorized, audited and
// started on the target, for runSession to bridge and end.
type startedSession struct {
	g          *grant
	d          policy.Decision
	action     string
	targetUser string
	uch        ssh.Channel
	ureqs      <-chan *ssh.Request
	opts       bridgeOpts
	stop       func() // stops the session limits
	start      time.Time
	cmdID      int64 // the command history line of an exec, 0 if none
}

// startSession authorizes the session request, opens the session on the
// target, audits its start, starts its recording and sends the request
// on. It returns nil when the session does not run: the client was told
// why, and nothing is left to undo.
func (c *conn) startSession(ch ssh.Channel, stderr *lockedWriter, reqs <-chan *ssh.Request, req *ssh.Request, setup []*ssh.Request) *startedSession {
	// The client's requests on the channel are taken while the setup
	// waits (setupRequests), and answered only after req is.
	hold := holdRequests(reqs)
	defer hold.stop()
	refuseLocked := func(msg string) {
		held := hold.stop()
		if req.WantReply {
			_ = req.Reply(true, nil)
		}
		c.heldRefused(held.refuse())
		refuse(ch, stderr, nil, reqs, msg)
	}
	action, command, err := classify(req)
	if err != nil {
		c.deny(metrics.DenyUnsupported, req.Type, "", err.Error())
		refuseLocked(err.Error())
		return nil
	}
	// What a session that does not start leaves behind is undone on the
	// way out; one that starts hands it to runSession.
	var (
		ok      bool
		g       *grant
		uch     ssh.Channel
		counted bool // Metrics.SessionStarted was called
	)
	defer func() {
		if ok {
			return
		}
		if counted {
			c.srv.cfg.Metrics.SessionEnded(0, 0)
		}
		if uch != nil {
			uch.Close()
		}
		if g != nil {
			c.removeGrant(g)
		}
	}()
	// The grant is registered before the decision, so that a policy change
	// landing in between is re-checked against it (Recheck).
	ng := &grant{action: action, command: command, notify: func(msg string) {
		_, _ = stderr.Write([]byte(msg + "\r\n"))
	}}
	if !c.addGrant(ng) {
		refuseLocked("the connection is ending")
		return nil
	}
	g = ng
	if !c.srv.cfg.Files.Admit(sessionFiles, 100) {
		c.srv.cfg.Metrics.Denied(metrics.DenyLimit)
		c.srv.auditFilesRefusal(c, g, action)
		refuseLocked(errFilesFull)
		return nil
	}
	d, targetUser := c.decide(action, command)
	if !d.Allow {
		c.deny(metrics.DenyPolicy, action, command, d.Reason)
		refuseLocked(d.Reason + c.jitHint())
		return nil
	}

	up, err := c.upstreamFor(d.Obligations)
	if err != nil {
		msg := c.targetErrorMessage(err)
		_ = c.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, Account: targetUser,
			SessionID: g.id, Message: err.Error(), Detail: map[string]any{"action": action}})
		refuseLocked(msg)
		return nil
	}
	uch, ureqs, err := up.OpenChannel("session", nil)
	if err != nil {
		uch = nil
		_ = c.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, SessionID: g.id,
			Message: "open session on target: " + err.Error()})
		refuseLocked(fmt.Sprintf("target %s refused a session", c.login.Target))
		return nil
	}
	for _, r := range setup {
		// pty and env were already acknowledged to the client; a target
		// that refuses an env variable (AcceptEnv) is not an error.
		_, _ = uch.SendRequest(r.Type, r.Type == "pty-req", r.Payload)
	}
	var guard streamGuard
	if action == resource.ActionFileTransfer {
		if guard, err = c.transferGuard(g, targetUser, up, command, d.Paths); err != nil {
			refuseLocked(err.Error())
			return nil
		}
	}
	detail := map[string]any{"action": action}
	if command != "" {
		detail["command"] = command
	}
	if d.Operation != "" {
		detail["operation"] = d.Operation
	}
	if err := c.audit(store.AuditEvent{Type: audit.SessionStart, Outcome: audit.Success, Account: targetUser,
		SessionID: g.id, Policy: d.Policy, Message: fmt.Sprintf("%s session on %s as %s", action, c.login.Target, targetUser),
		Detail: detail}); err != nil {
		// Fail closed: a session whose start cannot be recorded does not run.
		refuseLocked("the audit trail cannot be written; session refused")
		return nil
	}
	// From here every way out writes an end event; the metrics count the
	// session as running until then.
	c.srv.cfg.Metrics.SessionStarted(action)
	counted = true
	start := time.Now()
	act := &activity{}
	abort := make(chan struct{})
	var endOnce sync.Once
	var stopped atomic.Bool // the gateway ended the session (end)
	end := func(reason string) {
		endOnce.Do(func() {
			stopped.Store(true)
			// A client that stopped reading must not keep the session
			// alive: the notice gets a second, then the session ends.
			writeWithin(stderr, []byte("portcullis: session ended: "+reason+"\r\n"), time.Second)
			endSession(uch, abort, c.upWrite)
		})
	}
	c.setEnd(g, end, targetUser)
	limitEnd := end
	if d.JIT != nil {
		c.jitUsed(d, g.id)
		limitEnd = func(reason string) {
			if !d.NotAfter.IsZero() && !time.Now().Before(d.NotAfter) {
				reason = fmt.Sprintf("just-in-time access ended: request %s expired (policy %s)", d.JIT.Request, d.Policy)
			}
			end(reason)
		}
	}
	stop := c.enforceLimits(g, d.Obligations, act, limitEnd)
	opts := bridgeOpts{act: act, abort: abort, pty: hasPTY(setup), stderr: stderr, guard: guard, upWrite: c.upWrite,
		lost: func(signal string) string {
			if c.upStalled.Load() {
				return errUpstreamStalled.Error()
			}
			if stopped.Load() || c.ctx.Err() != nil {
				return "" // ended by the gateway, which said why
			}
			if signal != "" {
				return fmt.Sprintf("the session on %s ended: its process was killed by signal %s", c.login.Target, signal)
			}
			return fmt.Sprintf("the session on %s ended without an exit status: its process there died or the connection to it was lost", c.login.Target)
		}}
	if d.CheckCommands && (action == resource.ActionShell || (action == resource.ActionExec && hasPTY(setup))) {
		// An exec with a terminal reads keystrokes like a shell does: the
		// program may be a REPL the parser did not recognise.
		opts.gate = c.newLineGate(stderr, g, hasPTY(setup), d.Fullscreen, d.AllowUncertain)
	}
	obs, err := c.newObserver(g, d.Obligations, targetUser, setup, end, opts.gate)
	if err != nil {
		stop()
		c.auditEnd(g, d, targetUser, map[string]any{"action": action, "refused": err.Error()})
		refuseLocked("the session recording cannot be written; session refused")
		return nil
	}
	opts.obs = obs
	// Only now, with the start audited and the recording running, does
	// the command reach the target.
	accepted, err := uch.SendRequest(req.Type, true, req.Payload)
	if err != nil || !accepted {
		stop()
		if obs != nil {
			obs.close()
			_, _, _ = obs.rec.Close(context.WithoutCancel(c.ctx))
		}
		_ = c.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, SessionID: g.id,
			Message: fmt.Sprintf("target refused %s request", req.Type)})
		c.auditEnd(g, d, targetUser, map[string]any{"action": action, "refused": "by the target"})
		refuseLocked(fmt.Sprintf("target %s refused the %s request", c.login.Target, req.Type))
		return nil
	}
	held := hold.stop()
	if req.WantReply {
		_ = req.Reply(true, nil)
	}
	// What the client asked during the setup reaches the target now, as
	// the running session's request loop would have passed it on.
	c.heldRefused(held.replay(func(r *ssh.Request) {
		if r.Type == "window-change" {
			if cols, rows, ok := windowChange(r.Payload); ok {
				obs.resize(cols, rows)
			}
		}
		forwardClientRequest(uch, r)
	}))
	var cmdID int64
	if action == resource.ActionExec || (action == resource.ActionShell && command != "") {
		cmdID = c.logCommand(g, targetUser, command, false, true)
	}
	ok = true
	return &startedSession{g: g, d: d, action: action, targetUser: targetUser, uch: uch, ureqs: ureqs,
		opts: opts, stop: stop, start: start, cmdID: cmdID}
}

// heldRefused counts the requests a session's setup refused past the
// bounds of what it holds (setupRequests): a denial each, one log line.
func (c *conn) heldRefused(n int) {
	if n == 0 {
		return
	}
	for range n {
		c.srv.cfg.Metrics.Denied(metrics.DenyLimit)
	}
	c.srv.cfg.Log.Warn("session requests refused during setup: too many held", "session", c.id, "refused", n, "bound", maxHeldRequests)
}

// auditEnd writes a session's end event.
func (c *conn) auditEnd(g *grant, d policy.Decision, targetUser string, detail map[string]any) {
	c.auditEndAs(g, d, targetUser, audit.Success, detail)
}

// auditEndAs is auditEnd with an outcome: audit.Failure for a session the
// target ended without an exit status.
func (c *conn) auditEndAs(g *grant, d policy.Decision, targetUser, outcome string, detail map[string]any) {
	_ = c.audit(store.AuditEvent{Type: audit.SessionEnd, Outcome: outcome, Account: targetUser,
		SessionID: g.id, Policy: d.Policy, Message: fmt.Sprintf("%s session on %s ended", g.action, c.login.Target),
		Detail: detail})
}

// targetErrorMessage turns a dial error into the line the client sees; the
// detail stays in the log and audit trail.
func (c *conn) targetErrorMessage(err error) string {
	switch {
	case errors.Is(err, errHostKeyMismatch):
		return fmt.Sprintf("target %s presented an unexpected host key; no credential was offered", c.login.Target)
	case errors.Is(err, errTargetDown):
		return fmt.Sprintf("target %s is unreachable", c.login.Target)
	default:
		return fmt.Sprintf("the gateway could not log in to %s", c.login.Target)
	}
}

// forwardClientRequest passes the requests a live session may make to the
// target; anything else (a second exec, say) is refused.
func forwardClientRequest(up ssh.Channel, r *ssh.Request) {
	switch {
	case bridgedRequests[r.Type]:
		// Forwarded without asking for a reply, so that a target that never
		// answers cannot stall this loop (and with it kill and limits).
		_, _ = up.SendRequest(r.Type, false, r.Payload)
		if r.WantReply {
			_ = r.Reply(true, nil)
		}
	default:
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
}

func hasPTY(setup []*ssh.Request) bool {
	for _, r := range setup {
		if r.Type == "pty-req" {
			return true
		}
	}
	return false
}

// newLineGate builds the line checker for a shell session: each line is
// decided as the shell action with the line as its command, and a denied
// line is reported to the client and the audit trail.
//
// fullscreen says that the session's own command is a program the policy
// lists as full-screen: checking may pause once it enters the alternate
// screen. Later, each allowed line says the same for itself.
//
// allowUncertain is the session's commands.uncertain: allow; without it a
// line the gateway could not reconstruct exactly is refused, blank or not.
func (c *conn) newLineGate(stderr io.Writer, g *grant, pty, fullscreen, allowUncertain bool) *lineGate {
	lg := &lineGate{pty: pty}
	if pty {
		lg.alt = &altScreen{onEnter: func() {
			_ = c.audit(store.AuditEvent{Type: audit.CommandCheckPaused, Outcome: audit.Info, SessionID: g.id,
				Message: "full-screen program (alternate screen): lines typed now are not checked until it ends"})
		}, onRefused: func() {
			_ = c.audit(store.AuditEvent{Type: audit.CommandCheckPaused, Outcome: audit.Info, SessionID: g.id,
				Message: "the target switched to the alternate screen without a full-screen program; checking continues",
				Detail:  map[string]any{"paused": false}})
		}}
		lg.alt.arm(fullscreen)
	}
	lg.check = func(line string, certain bool) (bool, string) {
		if !certain && !allowUncertain {
			// Recalled from history, completed with Tab or edited with
			// keys the gateway does not follow: what the shell holds may
			// not be what the gateway reconstructed ("#rm x", Up, Home,
			// Delete runs rm, and may look blank here). Judging a guess
			// would be no control.
			const reason = "access denied: the gateway could not read this line exactly " +
				"(history recall, tab completion or line editing); type the command out in full"
			lg.alt.arm(false)
			c.srv.cfg.Metrics.Denied(metrics.DenyCommand)
			_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, SessionID: g.id, Message: reason,
				Detail: map[string]any{"action": g.action, "command": line, "certain": false, "interactive": true}})
			return false, reason
		}
		if strings.TrimSpace(line) == "" {
			lg.alt.arm(false)
			return true, ""
		}
		// A shell's lines are shell commands; an exec with a terminal is
		// decided as exec, so that a grant of exec alone still works.
		d, _ := c.decide(g.action, line)
		if d.Allow && pty && shellcmd.HistoryExpansion(line) {
			// "!!:s/echo //" runs a command the line does not show.
			d = policy.Decision{Reason: "access denied: history expansion (! or ^) cannot be judged by the gateway"}
		}
		// Only a line that runs a listed program may pause checking, and
		// only until that program leaves the alternate screen.
		lg.alt.arm(d.Allow && d.Fullscreen)
		if d.Allow {
			return true, ""
		}
		detail := map[string]any{"action": g.action, "command": line, "certain": certain, "interactive": true}
		if d.Operation != "" {
			detail["operation"] = d.Operation
		}
		c.srv.cfg.Metrics.Denied(metrics.DenyCommand)
		_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, SessionID: g.id, Message: d.Reason, Detail: detail})
		return false, d.Reason
	}
	lg.deny = func(reason string) {
		_, _ = stderr.Write([]byte("\r\nportcullis: " + reason + "; the line was not run\r\n"))
	}
	return lg
}

func drain(reqs <-chan *ssh.Request) {
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
}

// bridgeOpts are the optional parts of a bridge.
type bridgeOpts struct {
	act    *activity       // stamped as data moves, for idle_timeout
	abort  <-chan struct{} // closed to stop waiting for the target
	gate   *lineGate       // checks shell lines; nil when commands are not restricted
	pty    bool            // the session has a terminal
	obs    *observer       // records and logs; nil when nothing is observed
	stderr *lockedWriter   // the client's stderr, shared with notices
	guard  streamGuard     // judges a file transfer's stream; nil when none
	// lost is asked when the target closed the session without an exit
	// status and before the client closed its side: it returns the reason
	// to tell the client and record, or "" when the gateway itself ended
	// the session (it already told the client why). Nil: nothing is told.
	lost func(signal string) string
	// upWrite runs a write to the target outside the data path, closing
	// the target's connection if it waits too long (conn.upWrite); nil:
	// the write runs as is.
	upWrite func(func())
}

type sessionResult struct {
	in, out    int64
	exitStatus *uint32
	exitSignal string
	// lost says why the target ended the session without an exit status
	// (bridgeOpts.lost); "" when it gave one, or the client or the
	// gateway ended the session.
	lost string
}

// bridge copies data and requests between a client session channel and a
// target session channel until the target closes it or the client goes
// away. Exit status and signal are held back until all output has been
// delivered, so the client sees every byte before it exits. When abort is
// closed the bridge stops waiting for the target: it closes the client's
// channel and ends; copy loops still blocked on the target end when the
// upstream connection closes.
//
// Its streams are pumps that run on their own, and its request loop is a
// handful of events (abort, a client request, a barrier, a target
// request), each handled by a method. Whoever owns the bridge selects on
// its channels and calls them: run, on a goroutine of the session's own,
// or the connection's loop (conn.serve), which takes on one session's
// loop so that an idle one-session connection parks one goroutine fewer,
// and hands every event that writes to the target or the client back to
// a goroutine (a write to a stopped target waits). Only one goroutine at
// a time touches the loop's state (creqs, held, res).
type bridge struct {
	client ssh.Channel
	up     ssh.Channel
	creqs  <-chan *ssh.Request // nil once the client closed its side
	ureqs  <-chan *ssh.Request
	abort  <-chan struct{}
	// barrier takes the client's data's wait for the requests before it
	// (orderedWriter); loopDone is closed when the loop ends.
	barrier  chan chan struct{}
	loopDone chan struct{}
	out      stream
	errOut   stream
	in       stream
	stderr   io.Writer
	o        bridgeOpts
	held     []*ssh.Request // exit-status and exit-signal, sent last
	res      sessionResult
}

// newBridge starts the streams of a bridge; its request loop is the
// caller's to run (run, or conn.serve).
func newBridge(client ssh.Channel, creqs <-chan *ssh.Request, up ssh.Channel, ureqs <-chan *ssh.Request, o bridgeOpts) *bridge {
	act := o.act
	var stdout io.Writer = client
	if o.gate != nil && o.gate.alt != nil {
		stdout = observingWriter{w: client, alt: o.gate.alt}
	}
	var stderr io.Writer = client.Stderr()
	if o.stderr != nil {
		stderr = o.stderr
	}
	var input io.Writer = up
	if o.obs != nil {
		input = teeWriter{w: up, observe: o.obs.fromClient}
	}
	if o.guard != nil {
		// The guard comes first on the way in (the observer sees only what
		// reaches the target) and last on the way out (it adds its answers
		// between the target's packets).
		input, stdout = o.guard(input, stdout)
	}
	if o.obs != nil {
		stdout = teeWriter{w: stdout, observe: o.obs.fromTarget}
		if o.obs.rec != nil {
			stderr = teeWriter{w: stderr, observe: o.obs.rec.Output}
		}
	}
	b := &bridge{client: client, up: up, creqs: creqs, ureqs: ureqs, abort: o.abort,
		barrier: make(chan chan struct{}), loopDone: make(chan struct{}), stderr: stderr, o: o}
	// Each stream is a pump: a goroutine only while data moves, so an idle
	// session's only goroutine of its own is the request loop (or none,
	// when the connection's loop serves it).
	// stdout and stderr are copied side by side; with a pty the target's
	// sshd sends no separate stderr (it goes through the terminal), and
	// whatever a non-conforming target sends there is passed on as it
	// comes.
	b.out = copyStream(stdout, up, 0, act, nil, nil)
	b.errOut = copyStream(stderr, up, 1, act, nil, nil)
	// The client's requests and its data reach the gateway in order (one
	// read loop per connection) but leave it on two goroutines: before
	// the client's data is written on, the request loop forwards every
	// request that came before it, so that a line typed right after a
	// resize finds the terminal resized, as it would directly.
	input = orderedWriter{w: input, barrier: b.barrier, loopDone: b.loopDone}
	b.in = copyStream(input, client, 0, act, o.gate, func() { _ = up.CloseWrite() })
	return b
}

// run serves the bridge's request loop, one loop for the requests of both
// sides (one goroutine fewer per session than a loop each), until the
// session ends, and returns its result.
func (b *bridge) run() sessionResult {
	for {
		select {
		case <-b.abort:
			return b.aborted()
		case req, ok := <-b.creqs:
			b.clientRequest(req, ok)
		case done := <-b.barrier:
			b.flush(done)
		case req, ok := <-b.ureqs:
			if !b.targetRequest(req, ok) {
				return b.finish()
			}
		}
	}
}

// drain handles the loop's events that are ready, without waiting for
// more; over says the loop has ended, with the session's result.
func (b *bridge) drain() (res sessionResult, over bool) {
	for {
		select {
		case <-b.abort:
			return b.aborted(), true
		case req, ok := <-b.creqs:
			b.clientRequest(req, ok)
		case done := <-b.barrier:
			b.flush(done)
		case req, ok := <-b.ureqs:
			if !b.targetRequest(req, ok) {
				return b.finish(), true
			}
		default:
			return sessionResult{}, false
		}
	}
}

// counts reads the byte counts from the streams: on abort the bridge
// returns while copies may still be running.
func (b *bridge) counts() sessionResult {
	b.res.out, b.res.in = b.out.n()+b.errOut.n(), b.in.n()
	return b.res
}

// clientRequest handles one request of the client's channel, or (ok
// false) the client closing its side.
func (b *bridge) clientRequest(req *ssh.Request, ok bool) {
	if !ok {
		// The client closed its side: end the target's session too.
		b.creqs = nil
		b.toTarget(func() { b.up.Close() })
		return
	}
	if req.Type == "window-change" {
		if cols, rows, ok := windowChange(req.Payload); ok {
			b.o.obs.resize(cols, rows)
		}
	}
	b.toTarget(func() { forwardClientRequest(b.up, req) })
}

// toTarget runs f, which writes to the target outside the data path,
// under the stall watchdog (bridgeOpts.upWrite).
func (b *bridge) toTarget(f func()) {
	if b.o.upWrite != nil {
		b.o.upWrite(f)
		return
	}
	f()
}

// flush forwards the client's requests queued already, those that came
// before the data now waiting at the barrier, and lets the data go.
func (b *bridge) flush(done chan struct{}) {
	for more := b.creqs != nil; more; {
		select {
		case req, ok := <-b.creqs:
			b.clientRequest(req, ok)
			more = ok
		default:
			more = false
		}
	}
	close(done)
}

// targetRequest handles one request of the target's channel; it returns
// false once the target closed its side (ok false): the loop is over and
// finish is next.
func (b *bridge) targetRequest(r *ssh.Request, ok bool) bool {
	if !ok {
		return false
	}
	switch r.Type {
	case "exit-status":
		var p struct{ Status uint32 }
		if ssh.Unmarshal(r.Payload, &p) == nil {
			b.res.exitStatus = &p.Status
		}
		b.held = append(b.held, r)
	case "exit-signal":
		var p struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}
		if ssh.Unmarshal(r.Payload, &p) == nil {
			b.res.exitSignal = p.Signal
		}
		b.held = append(b.held, r)
	default:
		if r.WantReply {
			// A request the target wants answered (sshd's
			// keepalive@openssh.com, its ClientAliveInterval check, on
			// the session channel) is answered by the gateway as an
			// OpenSSH client answers one it does not act on (failure:
			// any answer tells sshd its peer is alive), not passed to
			// the client: waiting here for the client's reply stopped
			// this loop, so the client's requests queued behind it (a
			// resize drag is many window-changes), then its read loop
			// and its data stalled until the reply came, and for good
			// with a client that never answers. The client's own
			// liveness is the gateway's connection to it.
			b.toTarget(func() { _ = r.Reply(false, nil) })
			return true
		}
		_, _ = b.client.SendRequest(r.Type, false, r.Payload)
	}
	return true
}

// aborted ends the loop on abort: the bridge stops waiting for the
// target and closes the client's channel.
func (b *bridge) aborted() sessionResult {
	close(b.loopDone)
	answerUntilClosed(b.creqs, b.up, b.toTarget)
	b.client.Close()
	return b.counts()
}

// finish ends the bridge once the target closed its side: it waits for
// the target's output to reach the client, then sends the held exit
// status and closes the client's channel. It blocks (on a client that
// does not read, until abort), so the connection's loop runs it on a
// goroutine of its own.
func (b *bridge) finish() sessionResult {
	// The target's side is closed: the order of what the client still
	// sends no longer matters.
	close(b.loopDone)
	clientClosed := answerUntilClosed(b.creqs, b.up, b.toTarget)
	for _, d := range []<-chan struct{}{b.out.done, b.errOut.done} {
		select {
		case <-d:
		case <-b.abort:
			b.client.Close()
			return b.counts()
		}
	}
	if b.res.exitStatus == nil && !clientClosed.Load() && b.o.lost != nil {
		// The target's process died (kill -9, OOM) or the connection to
		// it broke: the client would exit 255 without a word.
		if b.res.lost = b.o.lost(b.res.exitSignal); b.res.lost != "" {
			_, _ = b.stderr.Write([]byte("portcullis: " + b.res.lost + "\r\n"))
		}
	}
	if b.o.stderr != nil {
		b.o.stderr.do(func() { _ = b.client.CloseWrite() })
	} else {
		_ = b.client.CloseWrite()
	}
	for _, r := range b.held {
		_, _ = b.client.SendRequest(r.Type, false, r.Payload)
	}
	b.client.Close()
	<-b.in.done
	return b.counts()
}

// answerUntilClosed answers a session's client requests, on a goroutine
// of its own, from the end of the bridge's request loop until the client
// closes the channel (or the connection ends), and says when it has. What
// follows the loop waits for the client's window (the last output, the
// notices, the hang-up), which the connection's read loop brings, and that
// loop stops on the channel's full request queue (2 deep, sshx item 8):
// three resizes while the last output scrolled by stopped the whole
// connection for good.
func answerUntilClosed(reqs <-chan *ssh.Request, up ssh.Channel, toTarget func(func())) *atomic.Bool {
	closed := &atomic.Bool{}
	if reqs == nil {
		closed.Store(true)
		return closed
	}
	go func() {
		for r := range reqs {
			toTarget(func() { forwardClientRequest(up, r) })
		}
		closed.Store(true)
		toTarget(func() { up.Close() })
	}()
	return closed
}

// orderedWriter writes the client's data on to the target once the
// bridge's request loop has forwarded the requests that arrived before it
// (bridge). After the loop has ended it writes at once.
type orderedWriter struct {
	w        io.Writer
	barrier  chan<- chan struct{}
	loopDone <-chan struct{}
}

func (o orderedWriter) Write(p []byte) (int, error) {
	done := make(chan struct{})
	select {
	case o.barrier <- done:
		<-done
	case <-o.loopDone:
	}
	return o.w.Write(p)
}

// endSession ends a target session the gateway decided to stop: TERM to the
// remote command (OpenSSH's sshd honours "signal" requests), then close.
// A target that does not close its side within abortGrace is abandoned by
// closing abort. The timer is armed first and the writes run on a
// goroutine of their own (under upWrite, which bounds them): a write to a
// target that stopped reading waits, and the caller (a console kill, a
// limit) must return and the session end within abortGrace all the same.
func endSession(up ssh.Channel, abort chan struct{}, upWrite func(func())) {
	time.AfterFunc(abortGrace, func() { close(abort) })
	go upWrite(func() {
		_, _ = up.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"TERM"}))
		_ = up.Close()
	})
}

// abortGrace is how long a target gets to close a session the gateway ended.
const abortGrace = 2 * time.Second

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// do runs f under the writer's lock, for what must not overlap a write
// (a channel's CloseWrite).
func (l *lockedWriter) do(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// writeWithin writes p but waits at most d: a write to a client that
// stopped reading blocks until its channel closes, and control paths
// (revocation, limits, kill, shutdown) must not wait for that.
func writeWithin(w io.Writer, p []byte, d time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = w.Write(p)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
