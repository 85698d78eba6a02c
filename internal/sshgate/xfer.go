package sshgate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/filexfer"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/pathrule"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// File transfers are judged per operation, on paths (see pathrule):
//
//   - sftp (and scp, which speaks SFTP since OpenSSH 9): an SFTPGuard sits
//     in the channel and answers a refused request itself.
//   - legacy scp ("scp -t", "scp -f", what scp -O runs): an SCPGuard judges
//     every file and directory record of the stream, and refuses a record
//     the way the receiving scp would, so the sender skips it.
//   - rsync ("rsync --server"): its file list is not judged; the command's
//     options and paths are (checkRsync), strictly.
//
// Why the gateway does not speak scp to the client and SFTP to the target
// for scp -O: the login shell the issue wanted to keep from running runs
// anyway. OpenSSH's sshd starts every session command, subsystems
// included ("Subsystem sftp /usr/lib/openssh/sftp-server"), as
// "SHELL -c COMMAND" with the account's login shell, and bash reads
// .bashrc when started by sshd. So translating would not stop start-up
// files from running; what stops them is that a file transfer can never
// write them (pathrule.Protected), whichever protocol carries it. A
// translator would also be a second scp implementation (times, modes,
// recursion, error replies) in the gateway for a protocol OpenSSH has
// deprecated, which is more code to get wrong than a guard on the stream.

// homeProbeTimeout bounds the probe for the account's home directory.
const homeProbeTimeout = 10 * time.Second

// probeHome asks the target for the account's home directory (the
// working directory sftp-server and scp start in) with an SFTP REALPATH
// of "." on a channel of its own. Relative paths and "~" are resolved
// against it; without it they are refused.
func probeHome(up ssh.Conn) (string, error) {
	ch, reqs, err := up.OpenChannel("session", nil)
	if err != nil {
		return "", fmt.Errorf("open channel: %w", err)
	}
	go ssh.DiscardRequests(reqs)
	timer := time.AfterFunc(homeProbeTimeout, func() { ch.Close() })
	defer timer.Stop()
	defer ch.Close()
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
	if err != nil || !ok {
		return "", errors.New("the target refused the sftp subsystem")
	}
	packet := func(typ byte, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
		return append(append(b, typ), body...)
	}
	read := func() (byte, []byte, error) {
		var hdr [4]byte
		if _, err := io.ReadFull(ch, hdr[:]); err != nil {
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > 64<<10 {
			return 0, nil, fmt.Errorf("SFTP packet of %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(ch, b); err != nil {
			return 0, nil, err
		}
		return b[0], b[1:], nil
	}
	if _, err := ch.Write(packet(1, binary.BigEndian.AppendUint32(nil, 3))); err != nil {
		return "", err
	}
	if typ, _, err := read(); err != nil || typ != 2 {
		return "", fmt.Errorf("no SFTP version from the target (%v)", err)
	}
	body := binary.BigEndian.AppendUint32(nil, 1)              // id
	body = append(binary.BigEndian.AppendUint32(body, 1), '.') // path "."
	if _, err := ch.Write(packet(16, body)); err != nil {
		return "", err
	}
	typ, b, err := read()
	if err != nil {
		return "", err
	}
	// NAME: id, count, then the first name.
	if typ != 104 || len(b) < 12 || binary.BigEndian.Uint32(b[4:]) < 1 {
		return "", errors.New("the target did not resolve its working directory")
	}
	n := binary.BigEndian.Uint32(b[8:])
	if uint64(n) > uint64(len(b)-12) || n == 0 || b[12] != '/' {
		return "", errors.New("the target returned no absolute working directory")
	}
	return string(b[12 : 12+n]), nil
}

// pathJudge builds the judge of one transfer session: paths are cleaned
// against home and decided by the grant's current rules (a policy change
// applies to the next request); refusals are audited.
func (c *conn) pathJudge(g *grant, targetUser string, home string) filexfer.Judge {
	return filexfer.Judge{
		Allow: func(op string, a pathrule.Access, p string) error {
			return allowPath(g.paths.Load(), a, p, home)
		},
		Refused: func(op, p, reason string) {
			c.denyFileOp(g, targetUser, op, p, home, reason)
		},
	}
}

// allowPath decides one access to p as a client wrote it.
func allowPath(rules *pathrule.Rules, a pathrule.Access, p, home string) error {
	clean, err := pathrule.Clean(p, home)
	if err != nil {
		return fmt.Errorf("permission denied by the gateway: %v", err)
	}
	if ok, why := rules.Allow(a, clean, home); !ok {
		return errors.New("permission denied by the gateway: " + why)
	}
	return nil
}

// denyFileOp audits a refused file operation, counted with the
// connection's other refusals so that a client looping on refused
// requests cannot flood the trail.
func (c *conn) denyFileOp(g *grant, targetUser, op, p, home, reason string) {
	c.srv.cfg.Metrics.Denied(metrics.DenyPolicy)
	switch n := c.denials.Add(1); {
	case n == maxAuditedDenials+1:
		_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, SessionID: g.id,
			Message: fmt.Sprintf("more than %d refusals on this connection; further ones are not audited", maxAuditedDenials)})
		return
	case n > maxAuditedDenials:
		return
	}
	detail := map[string]any{"action": resource.ActionFileTransfer, "operation": op}
	if p != "" {
		detail["path"] = p
		if clean, err := pathrule.Clean(p, home); err == nil && clean != p {
			detail["resolved"] = clean
		}
	}
	_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Account: targetUser, SessionID: g.id,
		Message: reason, Detail: detail})
}

// streamGuard wraps a session's two streams: toTarget receives the
// client's bytes the guard lets through, toClient the target's bytes and
// the guard's own answers. It returns the writers the bridge copies into.
type streamGuard func(toTarget, toClient io.Writer) (requests, responses io.Writer)

// transferGuard prepares the path checks of a file-transfer session:
// it learns the account's home, judges the command's own paths (scp,
// rsync) and returns the guard for the stream (nil for rsync, whose
// stream is not judged). An error refuses the session; its text is for
// the client.
func (c *conn) transferGuard(g *grant, targetUser string, up ssh.Conn, command string, rules *pathrule.Rules) (streamGuard, error) {
	if rules == nil {
		return nil, errors.New("no path rules for this file transfer")
	}
	home, err := probeHome(up)
	if err != nil {
		// Relative paths and "~" are refused from here on; absolute ones
		// are still judged.
		c.srv.cfg.Log.Warn("home directory of the target account unknown", "session", g.id, "err", err)
		home = ""
	}
	g.paths.Store(rules)
	judge := c.pathJudge(g, targetUser, home)
	if command == "sftp" || isSFTPServer(command) {
		return func(toTarget, toClient io.Writer) (io.Writer, io.Writer) {
			sg := filexfer.NewSFTPGuard(judge, toTarget, toClient)
			return sg.Requests(), sg.Responses()
		}, nil
	}
	expand := func(p string) (string, error) { return expandHome(p, home) }
	switch words := strings.Fields(command); path.Base(words[0]) {
	case "scp":
		cmd, err := filexfer.ParseSCPCommand(command, expand)
		if err != nil {
			return nil, c.refuseTransfer(g, targetUser, command, err.Error())
		}
		return func(toTarget, toClient io.Writer) (io.Writer, io.Writer) {
			sg := cmd.Guard(judge, toTarget, toClient)
			return sg.Requests(), sg.Responses()
		}, nil
	case "rsync":
		cmd, err := filexfer.ParseRsyncCommand(command, expand)
		if err == nil {
			err = checkRsync(cmd, rules, home)
		}
		if err != nil {
			return nil, c.refuseTransfer(g, targetUser, command, err.Error())
		}
		return nil, nil
	}
	return nil, c.refuseTransfer(g, targetUser, command, "this transfer command cannot be judged")
}

// expandHome resolves "~" and "~/..." as the target's shell would, and
// refuses "~user", whose directory the gateway does not know.
func expandHome(p, home string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return "", fmt.Errorf("%q names another account's home, which cannot be judged", p)
	}
	if home == "" {
		return "", errors.New("the account's home directory is unknown, so \"~\" cannot be judged")
	}
	return home + p[1:], nil
}

// checkRsync judges an rsync command on its paths. rsync's file list is
// not judged, so it is strict: a download needs paths.read to cover every
// source as a whole tree (DIR/** or a policy without paths); an upload
// needs an explicit paths.write DIR/** over the destination, a
// destination that is neither the account's home, one of its parents nor
// a protected path, and no symbolic links or device files (-l, -D, as in
// -a), which could point later writes at a start-up file.
func checkRsync(cmd *filexfer.RsyncCommand, rules *pathrule.Rules, home string) error {
	for _, p := range cmd.Paths {
		clean, err := pathrule.Clean(p, home)
		if err != nil {
			return fmt.Errorf("rsync path %q: %v", p, err)
		}
		if cmd.Sender {
			if !rules.CoversTree(pathrule.Read, clean, home, false) {
				return fmt.Errorf("rsync reads the whole tree under %s: paths.read must cover it as DIR/**", clean)
			}
			continue
		}
		switch {
		case !rules.CoversTree(pathrule.Write, clean, home, true):
			return fmt.Errorf("rsync uploads need paths.write to name the destination %s as DIR/** (the gateway cannot see rsync's file list)", clean)
		case pathrule.Protected(clean, home):
			return fmt.Errorf("rsync upload to %s is refused: it could make the target run commands", clean)
		case home == "" || pathrule.Within(home, clean):
			return fmt.Errorf("rsync upload to %s is refused: the destination holds the account's home and its start-up files", clean)
		case cmd.Links || cmd.Devices:
			return errors.New("rsync uploads may not create symbolic links or device files (-l, -D, part of -a): use rsync -rt")
		}
	}
	return nil
}

// refuseTransfer audits a refused transfer command and returns the line
// for the client.
func (c *conn) refuseTransfer(g *grant, targetUser, command, reason string) error {
	c.denyFileOp(g, targetUser, "command", command, "", reason)
	return errors.New("file transfer refused: " + reason)
}

// isSFTPServer recognises sftp-server run as a command, with no options:
// "-d DIR" would start it elsewhere than the home paths are resolved
// against, and the others are not needed.
func isSFTPServer(command string) bool {
	return command != "" && !strings.ContainsAny(strings.TrimSpace(command), " \t") &&
		path.Base(strings.TrimSpace(command)) == "sftp-server"
}
