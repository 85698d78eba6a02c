package sshgate

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cmdqueue"
	"github.com/portcullis/portcullis/internal/filexfer"
	"github.com/portcullis/portcullis/internal/lineedit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/shellcmd"
	"github.com/portcullis/portcullis/internal/store"
)

// CommandLog stores the command history.
type CommandLog interface {
	AppendCommand(ctx context.Context, c store.Command) (int64, error)
	SetCommandExit(ctx context.Context, id int64, status int) error
}

// observer sees what passes through one session without changing it: the
// recording, the command history of a shell, and file operations of a
// transfer. A session with nothing to observe has no observer and pays
// nothing for it.
type observer struct {
	rec         *recording.Recorder // nil when the session is not recorded
	recordInput bool
	hist        *lineedit.Editor // shell history when no line gate reconstructs lines
	onLine      func(line string, certain bool)
	sftp        *filexfer.SFTP
	scp         *filexfer.SCP
	// cmds and lastCmd are the command history queue and this session's
	// last ticket in it: close waits for it, so that the history is
	// complete when the session's end event is written.
	cmds    *cmdqueue.Queue
	lastCmd atomic.Uint64
}

// fromClient observes input on its way to the target.
func (o *observer) fromClient(p []byte) {
	if o.rec != nil && o.recordInput {
		o.rec.Input(p)
	}
	if o.hist != nil {
		o.hist.Write(p, o.onLine)
	}
	if o.sftp != nil {
		o.sftp.FromClient(p)
	}
	if o.scp != nil {
		o.scp.FromClient(p)
	}
}

// fromTarget observes output on its way to the client.
func (o *observer) fromTarget(p []byte) {
	if o.rec != nil {
		o.rec.Output(p)
	}
	if o.sftp != nil {
		o.sftp.FromServer(p)
	}
	if o.scp != nil {
		o.scp.FromServer(p)
	}
}

func (o *observer) resize(cols, rows int) {
	if o != nil && o.rec != nil {
		o.rec.Resize(cols, rows)
	}
}

func (o *observer) close() {
	if t := o.lastCmd.Load(); t != 0 {
		o.cmds.Wait(t)
	}
	if o.sftp != nil {
		o.sftp.Close()
	}
	if o.scp != nil {
		o.scp.Close()
	}
}

// teeWriter shows every write to observe before passing it on.
type teeWriter struct {
	w       io.Writer
	observe func([]byte)
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.observe(p)
	return t.w.Write(p)
}

// ptySize reads the terminal size and type from a pty-req, 80x24 if none.
func ptySize(setup []*ssh.Request) (cols, rows int, term string) {
	cols, rows = 80, 24
	for _, r := range setup {
		if r.Type != "pty-req" {
			continue
		}
		var p struct {
			Term          string
			Cols, Rows    uint32
			Width, Height uint32
			Modes         string
		}
		if ssh.Unmarshal(r.Payload, &p) == nil {
			if p.Cols > 0 && p.Rows > 0 {
				cols, rows = int(min(p.Cols, 1000)), int(min(p.Rows, 500))
			}
			term = p.Term
		}
	}
	return cols, rows, term
}

// windowChange parses a window-change request.
func windowChange(payload []byte) (cols, rows int, ok bool) {
	var p struct{ Cols, Rows, Width, Height uint32 }
	if ssh.Unmarshal(payload, &p) != nil || p.Cols == 0 || p.Rows == 0 {
		return 0, 0, false
	}
	return int(min(p.Cols, 1000)), int(min(p.Rows, 500)), true
}

// newObserver sets up what a session needs observed. It returns nil when
// there is nothing to observe. A recording that cannot start ends the
// session (error returned) unless the policy says on_failure: continue.
func (c *conn) newObserver(g *grant, ob policy.Obligations, targetUser string, setup []*ssh.Request,
	endSession func(reason string), gate *lineGate) (*observer, error) {
	o := &observer{}
	if ob.Record {
		rec, err := c.startRecording(g, ob, targetUser, setup, endSession)
		if err != nil {
			return nil, err
		}
		o.rec, o.recordInput = rec, ob.RecordInput
	}
	switch g.action {
	case resource.ActionShell:
		// Lines are queued, not written here: this runs on the session's
		// data path (cmdqueue.Queue says why).
		o.cmds = c.srv.commands
		onLine := func(line string, certain bool) {
			if o.cmds != nil {
				o.lastCmd.Store(o.cmds.Add(c.commandFor(g, targetUser, line, true, certain)))
			}
		}
		if gate != nil {
			// The gate reconstructs lines already; log the ones it lets through.
			check := gate.check
			gate.check = func(line string, certain bool) (bool, string) {
				ok, reason := check(line, certain)
				if ok && line != "" {
					onLine(line, certain)
				}
				return ok, reason
			}
		} else {
			// Lines the shell joins (a trailing backslash, an open quote,
			// a here-document) are logged joined, as the gate judges them.
			var held string
			heldCertain := true
			o.hist, o.onLine = &lineedit.Editor{}, func(line string, certain bool) {
				full := held + line
				if len(full) < maxPending && shellcmd.Incomplete(full) {
					held, heldCertain = full+"\n", heldCertain && certain
					return
				}
				certain = certain && heldCertain
				held, heldCertain = "", true
				if full != "" {
					onLine(full, certain)
				}
			}
		}
	case resource.ActionFileTransfer:
		// The recording of a transfer (recording.KindFileTransfer) is
		// these operations: the recorder drops the channel's bytes.
		report := func(op filexfer.Op) {
			c.logFileOp(g, targetUser, op)
			o.rec.FileOp(recording.FileOp{Op: op.Kind, Path: op.Path, Path2: op.Path2, Bytes: op.Bytes, Error: op.Error})
		}
		if g.command == "sftp" || isSFTPServer(g.command) {
			o.sftp = filexfer.NewSFTP(report)
		} else {
			o.scp = filexfer.NewSCP(g.command, report)
		}
	}
	if o.rec == nil && o.hist == nil && o.sftp == nil && o.scp == nil && o.cmds == nil {
		return nil, nil
	}
	return o, nil
}

// startRecording begins a session's recording; a failure later (disk full,
// store down) is audited and, unless the policy fails open, ends the
// session.
func (c *conn) startRecording(g *grant, ob policy.Obligations, targetUser string, setup []*ssh.Request, endSession func(string)) (*recording.Recorder, error) {
	if c.srv.cfg.Recordings == nil {
		err := fmt.Errorf("recording is required by policy %s but the gateway has no recordings directory", ob.RecordingPolicy)
		return nil, c.recordingFailed(g, ob, err, nil)
	}
	cols, rows, term := ptySize(setup)
	var once sync.Once
	meta := recording.Meta{
		ID: g.id, User: c.ident.Name, Target: c.login.Target, Account: targetUser, Source: c.srcStr,
		Action: g.action, Command: g.command, Width: cols, Height: rows, Term: term, RecordInput: ob.RecordInput,
		OnFailure: func(err error) {
			once.Do(func() { _ = c.recordingFailed(g, ob, err, endSession) })
		},
	}
	rec, err := c.srv.cfg.Recordings.Start(c.ctx, meta)
	if err != nil {
		return nil, c.recordingFailed(g, ob, err, nil)
	}
	return rec, nil
}

// recordingFailed audits a recording failure and returns the error when the
// session must not go on (on_failure: terminate), ending it if it runs.
func (c *conn) recordingFailed(g *grant, ob policy.Obligations, err error, endSession func(string)) error {
	outcome := "session ended"
	if ob.RecordFailOpen {
		outcome = "session continues unrecorded (on_failure: continue)"
	}
	_ = c.audit(store.AuditEvent{Type: audit.RecordingFailure, Outcome: audit.Failure, SessionID: g.id,
		Policy: ob.RecordingPolicy, Message: fmt.Sprintf("recording failed: %v; %s", err, outcome)})
	if ob.RecordFailOpen {
		return nil
	}
	if endSession != nil {
		// Not on the caller's goroutine: it may be the recorder's flusher,
		// which every recording shares.
		go endSession("the session recording cannot be written")
	}
	return fmt.Errorf("recording failed: %w", err)
}

// logCommand adds an exec command to the history now and returns its ID,
// for its exit status. Interactive lines go through Server.commands
// instead; certain says whether the line reconstructor could be sure.
func (c *conn) logCommand(g *grant, targetUser, command string, interactive, certain bool) int64 {
	if c.srv.cfg.Commands == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	defer cancel()
	id, err := c.srv.cfg.Commands.AppendCommand(ctx, c.commandFor(g, targetUser, command, interactive, certain))
	if err != nil {
		c.srv.cfg.Log.Error("command history not stored", "session", g.id, "err", err)
	}
	return id
}

// commandFor is the history entry of a command run or typed now.
func (c *conn) commandFor(g *grant, targetUser, command string, interactive, certain bool) store.Command {
	return store.Command{
		Time: time.Now().UTC(), User: c.ident.Name, Target: c.login.Target, Account: targetUser,
		SessionID: g.id, Source: c.srcStr, Command: command, Interactive: interactive, Certain: certain,
	}
}

// logFileOp writes one file operation of a transfer to the audit trail.
func (c *conn) logFileOp(g *grant, targetUser string, op filexfer.Op) {
	detail := map[string]any{"operation": op.Kind, "path": op.Path}
	if op.Path2 != "" {
		detail["path2"] = op.Path2
	}
	if op.Kind == "upload" || op.Kind == "download" {
		detail["bytes"] = op.Bytes
	}
	outcome, msg := audit.Success, fmt.Sprintf("%s %s", op.Kind, op.Path)
	if op.Error != "" {
		outcome, msg = audit.Failure, msg+": "+op.Error
		detail["error"] = op.Error
	}
	_ = c.audit(store.AuditEvent{Type: audit.FileTransfer, Outcome: outcome, Account: targetUser, SessionID: g.id,
		Message: msg, Detail: detail})
}
