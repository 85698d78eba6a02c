package filexfer

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/portcullis/portcullis/internal/pathrule"
)

// SCPCommand is a legacy scp server command ("scp -t TARGET" or "scp -f
// SOURCE...") that a guard can judge.
type SCPCommand struct {
	upload    bool
	target    string   // -t: where files go
	targetDir bool     // -t: TARGET is certainly a directory
	sources   []string // -f: what the client asked for
}

// scpServerFlags are the options scp's server side takes; any other is
// refused, since it is not something a stock client sends.
const scpServerFlags = "tfrpdvq"

// ParseSCPCommand parses command for a guard. expand turns a path as
// written into the one the target will use ("~" and "~/x" are the home);
// it refuses what cannot be judged ("~user").
func ParseSCPCommand(command string, expand func(string) (string, error)) (*SCPCommand, error) {
	words := shellWords(command)
	if len(words) == 0 || path.Base(words[0]) != "scp" {
		return nil, errors.New("not an scp command")
	}
	flags, args := scpFlags(words[1:])
	for f := range flags {
		if strings.IndexByte(scpServerFlags, f) < 0 {
			return nil, fmt.Errorf("scp option -%c is not allowed through the gateway", f)
		}
	}
	if flags['t'] == flags['f'] || len(args) == 0 {
		return nil, errors.New("not an scp server command (-t TARGET or -f SOURCE)")
	}
	c := &SCPCommand{upload: flags['t']}
	for _, a := range args {
		if a == "" {
			a = "."
		}
		raw := a
		a, err := expand(a)
		if err != nil {
			return nil, err
		}
		if c.upload {
			if len(args) != 1 {
				return nil, errors.New("scp -t takes one target")
			}
			c.target = a
			b := path.Base(raw)
			c.targetDir = flags['d'] || strings.HasSuffix(raw, "/") || b == "." || raw == "~"
			continue
		}
		c.sources = append(c.sources, a)
	}
	return c, nil
}

// Upload reports whether the client sends files (-t).
func (c *SCPCommand) Upload() bool { return c.upload }

// SCPGuard judges each file and directory of a legacy scp stream. The
// stream of the side that sends files (the source: the client for -t, the
// target for -f) goes through it: a record the rules refuse is not
// forwarded, and the source is answered "\x01scp: REASON\n", as the
// receiving scp answers a file it cannot write; the source then skips
// that file (or directory, with its contents). The receiving side's
// answers pass untouched. A source waits for the answer to each record,
// so a refusal never lands in the middle of another answer.
//
// A top-level name is judged at every place it may land: for "scp -t T"
// both T itself and T/NAME (the target decides by whether T is a
// directory, which the gateway cannot see), unless T is certainly a
// directory.
type SCPGuard struct {
	mu      sync.Mutex
	cmd     *SCPCommand
	judge   Judge
	toSink  io.Writer // allowed records and data
	toSrc   io.Writer // refusals
	sinkOut io.Writer // the sink's stream, passed through

	state byte // 'l' record line, 'd' file data, 'e' end marker, 'm' message line
	line  []byte
	left  int64
	dirs  [][]string // per directory entered: the paths it may be
	err   error
}

// Guard returns a guard for the command that writes to the target and
// the client; use Requests and Responses as for [SFTPGuard].
func (c *SCPCommand) Guard(j Judge, toTarget, toClient io.Writer) *SCPGuard {
	g := &SCPGuard{cmd: c, judge: j, state: 'l'}
	if c.upload {
		g.toSink, g.toSrc, g.sinkOut = toTarget, toClient, toClient
	} else {
		g.toSink, g.toSrc, g.sinkOut = toClient, toTarget, toTarget
	}
	return g
}

// Requests returns the writer for the client's bytes.
func (g *SCPGuard) Requests() io.Writer {
	if g.cmd.upload {
		return guardWriter(g.fromSource)
	}
	return g.sinkOut
}

// Responses returns the writer for the target's bytes.
func (g *SCPGuard) Responses() io.Writer {
	if g.cmd.upload {
		return g.sinkOut
	}
	return guardWriter(g.fromSource)
}

// Err says why the guard stopped the channel, or nil.
func (g *SCPGuard) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// fromSource parses the source's stream and forwards what is allowed.
func (g *SCPGuard) fromSource(p []byte) (int, error) {
	n := len(p)
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return 0, g.err
	}
	var fwd, refuse [][]byte
	for len(p) > 0 && g.err == nil {
		switch g.state {
		case 'd':
			k := int(min(g.left, int64(len(p))))
			fwd = append(fwd, p[:k])
			p, g.left = p[k:], g.left-int64(k)
			if g.left == 0 {
				g.state = 'e'
			}
		case 'e':
			fwd = append(fwd, p[:1])
			if p[0] == 0 {
				g.state = 'l'
			} else {
				g.state = 'm' // the source failed to read the file: its message
			}
			p = p[1:]
		case 'l', 'm':
			i := strings.IndexByte(string(p), '\n')
			if i < 0 {
				g.line = append(g.line, p...)
				p = nil
				if len(g.line) > maxSCPLine {
					g.err = errors.New("scp record too long")
				}
				continue
			}
			g.line = append(g.line, p[:i+1]...)
			p = p[i+1:]
			line := string(g.line)
			g.line = g.line[:0]
			if g.state == 'm' {
				g.state = 'l'
				fwd = append(fwd, []byte(line))
				continue
			}
			ok, reason, err := g.record(line)
			switch {
			case err != nil:
				g.err = err
			case ok:
				fwd = append(fwd, []byte(line))
			default:
				refuse = append(refuse, []byte("\x01scp: "+strings.ReplaceAll(reason, "\n", " ")+"\n"))
			}
		}
	}
	err := g.err
	g.mu.Unlock()
	for _, b := range fwd {
		if _, werr := g.toSink.Write(b); werr != nil {
			return 0, werr
		}
	}
	for _, b := range refuse {
		if _, werr := g.toSrc.Write(b); werr != nil {
			return 0, werr
		}
	}
	if err != nil {
		return 0, fmt.Errorf("scp: %w", err)
	}
	return n, nil
}

// record decides one record line (with its newline): ok to forward, or
// the reason to refuse; err for a stream that is not scp.
func (g *SCPGuard) record(line string) (ok bool, reason string, err error) {
	body := strings.TrimSuffix(line, "\n")
	if body == "" {
		return false, "", errors.New("empty scp record")
	}
	switch body[0] {
	case 'T', '\x01', '\x02':
		return true, "", nil
	case 'E':
		if len(g.dirs) > 0 {
			g.dirs = g.dirs[:len(g.dirs)-1]
		}
		return true, "", nil
	case 'C', 'D':
	default:
		return false, "", fmt.Errorf("unexpected scp record %q", body[:1])
	}
	// "C0644 SIZE NAME" or "D0755 0 NAME"
	fields := strings.SplitN(body[1:], " ", 3)
	if len(fields) != 3 {
		return false, "", errors.New("malformed scp record")
	}
	size, perr := strconv.ParseInt(fields[1], 10, 64)
	if perr != nil || size < 0 {
		return false, "", errors.New("malformed scp record size")
	}
	name := fields[2]
	op := "upload"
	if !g.cmd.upload {
		op = "download"
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return false, g.judge.refuse(op, name, "unexpected file name").Error(), nil
	}
	if body[0] == 'D' && len(g.dirs) >= maxSCPDepth {
		return false, "", errors.New("scp directories nested too deep")
	}
	var places []string
	if len(g.dirs) > 0 {
		for _, d := range g.dirs[len(g.dirs)-1] {
			places = append(places, d+"/"+name)
		}
	} else if g.cmd.upload {
		places = append(places, g.cmd.target+"/"+name)
		if !g.cmd.targetDir {
			places = append(places, g.cmd.target)
		}
	} else {
		for _, s := range g.cmd.sources {
			if path.Base(s) == name {
				places = append(places, path.Clean(s))
			}
		}
		if len(places) == 0 {
			return false, g.judge.refuse(op, name, "not a file the client asked for").Error(), nil
		}
	}
	for _, p := range places {
		var err error
		switch {
		case g.cmd.upload:
			err = g.judge.allow(op, pathrule.Write, p)
		case body[0] == 'D':
			err = g.judge.allowMeta(op, p)
		default:
			err = g.judge.allow(op, pathrule.Read, p)
		}
		if err != nil {
			return false, err.Error(), nil
		}
	}
	if body[0] == 'D' {
		g.dirs = append(g.dirs, places)
	} else {
		g.left, g.state = size, 'd'
		if size == 0 {
			g.state = 'e'
		}
	}
	return true, "", nil
}
