package sshgate

import (
	"bytes"
	"io"
	"sync/atomic"

	"github.com/portcullis/portcullis/internal/lineedit"
	"github.com/portcullis/portcullis/internal/shellcmd"
)

// lineGate sits on the client-to-target input of an interactive shell whose
// policy restricts commands, and checks each line before the Enter that
// would run it reaches the target.
//
// This is best-effort, and the docs say so: with a pty the line is
// reconstructed from keystrokes (package lineedit), so tab completion,
// history recall, aliases, functions and programs that read their own input
// can make the target run something other than what was checked. Exec
// requests are checked exactly; use them where control must be exact.
//
// Without a pty the target's shell reads raw bytes: the gate holds each
// line until its newline and sends it only when allowed, so nothing denied
// ever reaches the target.
type lineGate struct {
	pty   bool
	ed    lineedit.Editor
	alt   *altScreen // with a pty: a full-screen program owns the input
	check func(line string, certain bool) (ok bool, reason string)
	deny  func(reason string)
	// pending holds, without a pty, the line not yet sent.
	pending []byte
	// dropPaste is set after a line inside a bracketed paste was denied:
	// the rest of that paste is not sent.
	dropPaste bool
	// held is, with a pty, the text of lines the shell has not run yet
	// because they continue on the next (a trailing backslash, an open
	// quote, a here-document): they are judged together, as the shell
	// will run them. heldUncertain is set when one of them was uncertain.
	held          string
	heldUncertain bool
}

// pasteEnd ends a bracketed paste on the target's line editor.
var pasteEnd = []byte("\x1b[201~")

// cancelKey is Ctrl-G: it aborts a multi-key sequence the target's line
// editor may be in the middle of (Ctrl-X ..., ESC ...), so that the erase
// that follows is taken as plain editing. bash rings the bell.
const cancelKey = 0x07

// interruptKey is Ctrl-C: with the terminal's default settings the target's
// shell gets SIGINT and drops the command it is reading, all its lines.
const interruptKey = 0x03

// maxPending bounds a held line without a pty; a longer one is refused
// rather than sent unchecked.
const maxPending = 64 << 10

// filter appends to out what may be sent for in.
func (g *lineGate) filter(out, in []byte) []byte {
	if !g.pty {
		return g.filterRaw(out, in)
	}
	for _, b := range in {
		if g.alt.active() {
			// vim, less, top...: keystrokes are not shell lines.
			out = append(out, b)
			continue
		}
		wasPaste := g.ed.InPaste()
		ev := g.ed.Feed(b)
		if g.dropPaste {
			if g.ed.InPaste() {
				continue
			}
			// The client's own end of paste was the last byte dropped.
			g.dropPaste = false
			if ev != lineedit.Enter {
				continue
			}
		}
		switch ev {
		case lineedit.Enter:
			line, certain := g.ed.Line()
			g.ed.Reset()
			full := g.held + line
			certain = certain && !g.heldUncertain
			if len(full) < maxPending && shellcmd.Incomplete(full) {
				// The shell waits for the rest (its PS2 prompt): let the
				// newline through and judge the whole when it is complete.
				g.held, g.heldUncertain = full+"\n", !certain
				out = append(out, b)
				continue
			}
			continued := g.held != ""
			g.held, g.heldUncertain = "", false
			ok, reason := g.check(full, certain)
			if ok {
				out = append(out, b)
				continue
			}
			if wasPaste {
				// Inside a bracketed paste the shell inserts everything
				// literally: end the paste first, or the erase below would
				// become pasted text and the denied line would stay.
				out = append(out, pasteEnd...)
				g.dropPaste = g.ed.InPaste()
			}
			// Erase the line on the target's line editor and give it an
			// empty line, so the user gets a fresh prompt.
			out = append(out, cancelKey)
			out = append(out, lineedit.Clear()...)
			if continued {
				// The shell holds earlier lines of this command: an Enter
				// would run them. Ctrl-C (SIGINT through the terminal)
				// makes it drop the whole command.
				out = append(out, interruptKey)
			} else {
				out = append(out, '\r')
			}
			g.deny(reason)
		case lineedit.Cancel:
			g.ed.Reset()
			g.held, g.heldUncertain = "", false
			out = append(out, b)
		default:
			out = append(out, b)
		}
	}
	return out
}

func (g *lineGate) filterRaw(out, in []byte) []byte {
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			g.pending = append(g.pending, in...)
			if len(g.pending) > maxPending {
				g.deny("line too long to check")
				g.pending = g.pending[:0]
			}
			return out
		}
		g.pending = append(g.pending, in[:i+1]...)
		in = in[i+1:]
		if len(g.pending) > maxPending {
			g.deny("line too long to check")
			g.pending = g.pending[:0]
			continue
		}
		line := string(bytes.TrimRight(g.pending, "\r\n"))
		if shellcmd.Incomplete(line) {
			// Continued on the next line (a trailing backslash, an open
			// quote, a here-document): held and judged whole, as the
			// shell will run it.
			continue
		}
		if ok, reason := g.check(line, true); ok {
			out = append(out, g.pending...)
		} else {
			g.deny(reason)
		}
		g.pending = g.pending[:0]
	}
	return out
}

// copyChecked copies the client's input to the target through g.
func copyChecked(dst io.Writer, src io.Reader, g *lineGate, act *activity) (int64, error) {
	// Interactive input arrives a few bytes at a time: small buffers, as
	// they stay with an idle session (a paste takes a few more reads).
	buf := make([]byte, smallBuf)
	out := make([]byte, 0, smallBuf)
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			act.touch()
			out = g.filter(out[:0], buf[:n])
			if len(out) > 0 {
				w, werr := dst.Write(out)
				total += int64(w)
				if werr != nil {
					return total, werr
				}
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return total, nil
			}
			return total, rerr
		}
	}
}

// altScreen follows whether the target switched its terminal to the
// alternate screen (what full-screen programs do), by watching its output.
// A switch split across two writes is missed: best-effort, like the rest.
//
// Output alone never pauses checking: the gate arms the pause when it lets
// through a line that runs a program the policy lists as full-screen
// (commands.fullscreen), each later line re-arms or disarms it, and the
// target leaving the alternate screen (the program ended) disarms it.
// Output that enters the alternate screen while disarmed (printf
// '\033[?1049h', cat of a file) leaves checking on.
type altScreen struct {
	on    atomic.Bool
	armed atomic.Bool
	// onEnter, if set, is called when the target enters the alternate
	// screen while armed: line checking pauses there, so the pause is
	// audited. onRefused, if set, is called the first time the target
	// enters it while disarmed.
	onEnter   func()
	onRefused func()
	refused   atomic.Bool
}

// arm says whether the line just let through runs a full-screen program.
// A nil altScreen (no pty) ignores it.
func (a *altScreen) arm(fullscreen bool) {
	if a != nil {
		a.armed.Store(fullscreen)
	}
}

var (
	altEnter = [][]byte{[]byte("\x1b[?1049h"), []byte("\x1b[?1047h"), []byte("\x1b[?47h")}
	altLeave = [][]byte{[]byte("\x1b[?1049l"), []byte("\x1b[?1047l"), []byte("\x1b[?47l")}
)

func (a *altScreen) active() bool { return a != nil && a.on.Load() }

// observe updates the state from one chunk of target output.
func (a *altScreen) observe(p []byte) {
	if bytes.IndexByte(p, 0x1b) < 0 {
		return
	}
	last := func(seqs [][]byte) int {
		at := -1
		for _, s := range seqs {
			at = max(at, bytes.LastIndex(p, s))
		}
		return at
	}
	enter, leave := last(altEnter), last(altLeave)
	switch {
	case enter > leave:
		if !a.armed.Load() {
			if !a.refused.Swap(true) && a.onRefused != nil {
				a.onRefused()
			}
			return
		}
		if !a.on.Swap(true) && a.onEnter != nil {
			a.onEnter()
		}
	case leave > enter:
		// The full-screen program is ending: whatever enters the
		// alternate screen later needs a line of its own.
		a.on.Store(false)
		a.armed.Store(false)
	}
}

// observingWriter passes output to w and shows it to an altScreen.
type observingWriter struct {
	w   io.Writer
	alt *altScreen
}

func (o observingWriter) Write(p []byte) (int, error) {
	o.alt.observe(p)
	return o.w.Write(p)
}
