// Package lineedit reconstructs the command line a user is typing into an
// interactive shell from the raw keystrokes the SSH client sends.
//
// The gateway (internal/sshgate) never sees the shell's own line buffer, only
// the pty input bytes. When a policy restricts which commands an interactive
// shell may run, the gateway feeds every input byte to an [Editor]; when
// [Editor.Feed] reports [Enter] it checks [Editor.Line] against policy before
// it lets the byte that would run the line reach the target. Session
// recording reuses the same Editor (through [Editor.Write]) to build a
// command history from the keystrokes.
//
// The model is GNU readline in its default emacs mode (bash), with the
// places where zsh's default emacs keymap would end up with a different line
// detected and reported as uncertain.
//
// # Best effort only
//
// This is a heuristic, not a sandbox. Keystrokes describe edits, not the
// command the shell runs, and the following are invisible or unknowable
// here:
//
//   - tab completion, history recall and search (arrows, Ctrl-P/N/R/S,
//     Alt-p/n, Alt-.), yanking killed text back (Ctrl-Y), undo and keyboard
//     macros put text into the shell's buffer that never crosses the wire;
//   - aliases, functions, variables, globs, eval, $(...), scripts and
//     anything else the shell expands after the line is accepted: a checked
//     line is the text typed, not the program that runs;
//   - a customised ~/.inputrc or zle keymap, vi mode, or any program other
//     than the shell reading the terminal (editors, pagers, REPLs, a nested
//     ssh, Ctrl-X Ctrl-E's editor): their keystrokes are modelled as if typed
//     at a bash prompt;
//   - timing: a lone Escape key followed by another key is indistinguishable
//     from an Alt- or escape sequence.
//
// The Editor therefore reports, with every line, whether it is certain: a
// line is uncertain as soon as any key whose effect the model cannot know
// (or where bash and zsh disagree) was used since the line started; and
// once the input may have switched the shell's editing mode (Alt-Enter puts
// bash in vi mode, Insert toggles overwrite mode) every later line of that
// Editor is uncertain. A certain line means only "if the shell is bash or zsh with default key
// bindings, at a prompt, this is the text it will run". Callers that block
// must decide what to do with uncertain lines; callers that record must
// label them.
//
// Where the model has to guess whether the shell runs a line, it errs
// toward reporting [Enter] (a newline inside a bracketed paste, Alt-#,
// keypad Enter, Ctrl-O, Ctrl-X Ctrl-E), so that a blocker gets a chance to
// check, and it starts the following line uncertain when the shell may have
// kept text the model no longer has.
package lineedit

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine bounds the reconstructed line, in runes. No one types 64 Ki
// characters at a prompt; past this the input is more likely a flood, so
// the Editor stops growing and reports the line as uncertain instead.
const maxLine = 64 << 10

// keepCap is the largest line buffer Reset keeps for reuse; a buffer grown
// by one huge paste is released rather than held for the whole session.
const keepCap = 4 << 10

// Event is what Feed reports for one input byte.
type Event int

const (
	// None means the byte was absorbed into the line, or ignored.
	None Event = iota
	// Enter means the byte completes the line: the shell is expected to (or
	// may) run it. Besides CR and LF this is reported for Ctrl-O, a newline
	// inside a bracketed paste (see InPaste), and the last byte of Alt-#,
	// keypad Enter (ESC O M), Ctrl-X Ctrl-E and Ctrl-X e; for those four a
	// caller that withholds the byte leaves the shell in the middle of a key
	// sequence (see Clear). Call Line before the next Feed, which starts a
	// new line.
	Enter
	// Cancel means the line was abandoned (Ctrl-C, or Ctrl-D on an empty
	// line). Line still returns the abandoned text until the next Feed.
	Cancel
)

// String names the event, for logs and test failures.
func (ev Event) String() string {
	switch ev {
	case None:
		return "None"
	case Enter:
		return "Enter"
	case Cancel:
		return "Cancel"
	}
	return "Event(?)"
}

// Clear returns the bytes the gateway sends to the target to erase the line
// being edited: Ctrl-E (end-of-line) then Ctrl-U. Bash's Ctrl-U kills from
// the start of the line to the cursor and zsh's kills the whole line, so the
// cursor is moved to the end first and both end up empty.
//
// Caveats, all consequences of the shell state being hidden: the erased
// text goes to the kill ring (Ctrl-Y brings it back, which the Editor
// reports as uncertain); in zsh a multi-line buffer (after a pasted
// newline) loses only its last line; and if the shell is in the middle of a
// key sequence the two bytes mean something else there. In particular,
// after a withheld Enter that ended a multi-byte key: behind Ctrl-X, Ctrl-E
// is edit-and-execute-command, which runs the line; behind Escape it is
// shell-expand-line. Inside a bracketed paste (InPaste) the shell inserts
// them literally and has not run anything yet.
//
// Each call returns a new slice, so callers may modify it.
func Clear() []byte {
	return []byte{0x05, 0x15}
}

// state is where the Editor is in parsing a multi-byte key.
type state uint8

const (
	stGround state = iota // start of a key
	stEsc                 // after ESC
	stCSI                 // inside ESC [ ... (ECMA-48 control sequence)
	stSS3                 // after ESC O
	stQuoted              // after Ctrl-V: the next byte is inserted literally
	stPrefix              // after Ctrl-X or Ctrl-]: the next byte is an argument
)

// pasteEnd ends a bracketed paste; within one it is the only sequence the
// shell recognises.
const pasteEnd = "\x1b[201~"

// Editor reconstructs the line a user is typing into a readline-like line
// editor (bash/zsh emacs mode defaults) from raw terminal input bytes.
//
// The zero value is ready to use. An Editor is not safe for concurrent use.
type Editor struct {
	line   []rune
	cursor int // index into line, 0..len(line)

	// uncertain: something since the line started had an effect on the
	// shell's line that the model cannot know.
	uncertain bool
	// cursorUnsure: the shell's cursor may differ from ours (bash and zsh
	// move differently by words). Harmless until the next edit, which is
	// then uncertain; an absolute move (Home, End) makes it sure again.
	cursorUnsure bool
	// done: the last Feed returned Enter or Cancel; the next Feed starts a
	// new line.
	done bool

	// Stream state, which outlives a line and survives Reset.
	st     state
	prefix byte     // the key that entered stPrefix
	seq    [16]byte // parameter and intermediate bytes of a CSI sequence
	seqN   int
	seqBig bool // the CSI sequence overflowed seq
	ubuf   [utf8.UTFMax]byte
	un     int  // bytes of a partial UTF-8 sequence in ubuf
	uneed  int  // length of that sequence
	paste  bool // inside a bracketed paste
	pasteM int  // bytes of pasteEnd matched so far
	// carry: the shell may still hold text from the line that just ended,
	// so the next line starts uncertain.
	carry bool
	// sticky: the shell may have switched editing mode (vi mode, overwrite
	// mode); the model is wrong from here on, so every line is uncertain.
	sticky bool
}

// Reset starts a new empty line. Feed calls it itself on the byte after an
// Enter or Cancel; the gateway calls it when it has erased the shell's line
// (see Clear).
//
// Reset does not forget the parsing state of the input stream (a partial
// escape sequence, a bracketed paste in progress); a new line that starts
// inside a paste, after a key that may have left text in the shell, or after
// a possible editing-mode switch is uncertain from the start.
func (e *Editor) Reset() {
	if cap(e.line) > keepCap {
		e.line = nil
	} else {
		e.line = e.line[:0]
	}
	e.cursor = 0
	e.cursorUnsure = false
	e.done = false
	// Inside a paste, the shell keeps the pasted newline in its buffer, and
	// the lines after it are edited as one multi-line buffer.
	e.uncertain = e.sticky || e.paste || e.carry
	e.carry = false
}

// Line returns the completed (or current) line and whether it is certain:
// false when tab completion, history recall (up/down arrows, Ctrl-R,
// Ctrl-P/N), unknown escape sequences, or anything else whose effect the
// gateway cannot know was used since the line started. The line is always
// valid UTF-8. It may contain control characters inserted with Ctrl-V or
// pasted.
func (e *Editor) Line() (line string, certain bool) {
	return string(e.line), !e.uncertain
}

// InPaste reports whether the input is inside a bracketed paste. An Enter
// reported while it is true came from a pasted newline: a shell with
// bracketed paste has run nothing yet, holds the pasted lines in one
// buffer, and inserts whatever it is sent literally until the paste ends.
func (e *Editor) InPaste() bool {
	return e.paste
}

// Write feeds every byte of p and calls onLine (if not nil) with the line
// at each Enter. Cancelled lines are not reported. It is the convenience
// form of Feed for the session recording's command history.
func (e *Editor) Write(p []byte, onLine func(line string, certain bool)) {
	for _, b := range p {
		if e.Feed(b) == Enter && onLine != nil {
			onLine(e.Line())
		}
	}
}

// Feed processes one input byte and reports whether it completed or
// abandoned the line.
func (e *Editor) Feed(b byte) Event {
	if e.done {
		e.Reset()
	}
	// The common case, typing at the end of the line, touches nothing else.
	if b >= 0x20 && b < 0x7f && e.st == stGround && !e.paste && e.un == 0 &&
		!e.cursorUnsure && e.cursor == len(e.line) && len(e.line) < maxLine {
		e.line = append(e.line, rune(b))
		e.cursor++
		return None
	}
	switch b {
	case 0x03:
		// Ctrl-C is turned into SIGINT by the tty driver (ISIG) whatever the
		// shell is doing, and the shell throws its line away; any key
		// sequence or paste in progress is abandoned with it.
		return e.cancel()
	case 0x1a, 0x1c:
		// Ctrl-Z and Ctrl-\ become SIGTSTP and SIGQUIT in the tty driver;
		// an interactive shell at its prompt ignores both, and the byte
		// never reaches the line editor, so it must not disturb its state.
		return None
	}
	if e.paste {
		return e.pasteByte(b)
	}
	switch e.st {
	case stEsc:
		return e.escByte(b)
	case stCSI:
		return e.csiByte(b)
	case stSS3:
		return e.ss3Byte(b)
	case stQuoted:
		e.st = stGround
		e.literal(b)
		return None
	case stPrefix:
		return e.prefixByte(b)
	}
	return e.ground(b)
}

// ground handles a byte that starts a key.
func (e *Editor) ground(b byte) Event {
	if e.un > 0 && b&0xc0 != 0x80 {
		e.badUTF8()
	}
	if b >= 0x80 {
		e.literal(b)
		return None
	}
	if b >= 0x20 && b < 0x7f {
		e.insert(rune(b))
		return None
	}
	switch b {
	case '\r', '\n': // accept-line
		return e.enter()
	case 0x00: // Ctrl-@: set-mark, no visible effect
	case 0x01: // Ctrl-A
		e.home()
	case 0x02: // Ctrl-B
		e.left()
	case 0x04: // Ctrl-D
		if len(e.line) == 0 && !e.uncertain {
			// End of file: the shell exits (or, with ignoreeof, complains
			// and keeps an empty line). If the line is uncertain the shell
			// may hold text, and then Ctrl-D deletes a character instead.
			e.done = true
			return Cancel
		}
		e.deleteAt()
	case 0x05: // Ctrl-E
		e.end()
	case 0x06: // Ctrl-F
		e.right()
	case 0x07:
		// Ctrl-G: bash only rings the bell and keeps the line; zsh's
		// send-break discards it. Keeping the text is the safe guess: a
		// line believed empty while bash still holds text would pass a
		// check it should not.
		e.uncertain = true
	case 0x08, 0x7f: // Ctrl-H, Backspace
		e.backspace()
	case 0x09: // Tab: completion
		e.uncertain = true
	case 0x0b: // Ctrl-K
		e.killToEnd()
	case 0x0c: // Ctrl-L: redraws the screen only
	case 0x0e, 0x10, 0x12, 0x13: // Ctrl-N, Ctrl-P, Ctrl-R, Ctrl-S: history
		e.uncertain = true
	case 0x0f:
		// Ctrl-O (operate-and-get-next, zsh accept-line-and-down-history)
		// runs the line and then loads the next history entry into the new
		// one.
		e.carry = true
		return e.enter()
	case 0x14: // Ctrl-T
		e.transpose()
	case 0x15: // Ctrl-U
		e.killToStart()
	case 0x16: // Ctrl-V
		e.st = stQuoted
	case 0x17: // Ctrl-W
		e.unixWordRubout()
	case 0x18, 0x1d:
		// Ctrl-X is a prefix (undo, exchange point and mark, macros, edit
		// in $EDITOR...); Ctrl-] searches for the next byte. Either way the
		// next byte is not inserted and the result is unknown.
		e.uncertain = true
		e.st = stPrefix
		e.prefix = b
	case 0x1b:
		e.st = stEsc
	default:
		// Ctrl-Q, Ctrl-Y (yank), Ctrl-^, Ctrl-_ (undo): unknown effect.
		e.uncertain = true
	}
	return None
}

// escByte handles the byte after ESC: a Meta (Alt) key or the start of a
// CSI or SS3 sequence.
func (e *Editor) escByte(b byte) Event {
	e.st = stGround
	switch b {
	case '[':
		e.st = stCSI
		e.seqN = 0
		e.seqBig = false
	case 'O':
		e.st = stSS3
	case 'b':
		e.wordLeft()
	case 'f':
		e.wordRight()
	case 'd':
		e.killWordForward()
	case 0x7f, 0x08: // Alt-Backspace, Alt-Ctrl-H
		e.killWordBackward()
	case '\r', '\n':
		// Alt-Enter is vi-editing-mode in bash (zsh inserts a newline):
		// from here on the keys mean something else.
		e.sticky = true
		e.uncertain = true
	case '#':
		// insert-comment comments the line out and accepts it; with a
		// numeric argument it uncomments it instead.
		e.uncertain = true
		return e.enter()
	case 'p', 'n':
		// Non-incremental history search: the next Enter ends the search
		// prompt and loads a history line without running it.
		e.uncertain = true
		e.carry = true
	default:
		// Alt-digit (numeric argument), case changes, yank-last-arg,
		// completion and the rest: unknown effect.
		e.uncertain = true
	}
	return None
}

// csiByte handles a byte inside ESC [ ..., parsed per ECMA-48: parameter
// bytes 0x30-0x3f, intermediate bytes 0x20-0x2f, one final byte 0x40-0x7e.
func (e *Editor) csiByte(b byte) Event {
	switch {
	case b >= 0x40 && b <= 0x7e:
		e.st = stGround
		e.csi(b)
	case b >= 0x20 && b <= 0x3f:
		if e.seqN < len(e.seq) {
			e.seq[e.seqN] = b
			e.seqN++
		} else {
			e.seqBig = true
		}
	default:
		// Not part of a control sequence: what the shell does with the
		// broken one is unknown, and the byte acts as a key of its own (so
		// a CR here is still reported as Enter).
		e.uncertain = true
		e.st = stGround
		return e.ground(b)
	}
	return None
}

// csi acts on a complete control sequence.
func (e *Editor) csi(final byte) {
	if e.seqBig {
		e.uncertain = true
		return
	}
	p := e.seq[:e.seqN]
	switch final {
	case 'C':
		switch string(p) {
		case "":
			e.right()
		case "1;5": // Ctrl-Right
			e.wordRight()
		default:
			e.uncertain = true
		}
	case 'D':
		switch string(p) {
		case "":
			e.left()
		case "1;5": // Ctrl-Left
			e.wordLeft()
		default:
			e.uncertain = true
		}
	case 'H':
		if len(p) == 0 {
			e.home()
		} else {
			e.uncertain = true
		}
	case 'F':
		if len(p) == 0 {
			e.end()
		} else {
			e.uncertain = true
		}
	case '~':
		switch string(p) {
		case "1":
			e.home()
		case "4":
			e.end()
		case "3":
			e.deleteAt()
		case "200":
			e.paste = true
			e.pasteM = 0
		case "2":
			// Insert toggles overwrite mode in readline, which changes
			// what every later key does.
			e.sticky = true
			e.uncertain = true
		default: // PageUp, PageDown, function keys, a stray paste end...
			e.uncertain = true
		}
	default: // Up, Down and everything else
		e.uncertain = true
	}
}

// ss3Byte handles the byte after ESC O (cursor keys in application mode).
func (e *Editor) ss3Byte(b byte) Event {
	e.st = stGround
	switch b {
	case 'C':
		e.right()
	case 'D':
		e.left()
	case 'H':
		e.home()
	case 'F':
		e.end()
	case 'M':
		// Keypad Enter in application keypad mode. Whether the shell binds
		// it is unknown; a blocker must get to check, and the shell may
		// keep the line if it did not run it.
		e.uncertain = true
		e.carry = true
		return e.enter()
	default:
		e.uncertain = true
		if b < 0x40 || b > 0x7e {
			// Not a final byte: the sequence is broken and the byte is a
			// key of its own.
			return e.ground(b)
		}
	}
	return None
}

// prefixByte handles the argument byte after Ctrl-X or Ctrl-].
func (e *Editor) prefixByte(b byte) Event {
	e.st = stGround
	if b == 0x1b || b >= 0x80 {
		// Too complicated to follow; treat it as a key of its own.
		return e.ground(b)
	}
	if e.prefix == 0x18 {
		switch b {
		case 0x05, 'e':
			// Ctrl-X Ctrl-E edits the line in $EDITOR and runs the result;
			// Ctrl-X e replays a keyboard macro, which may end in Enter.
			return e.enter()
		case 0x0f, 0x16:
			// zsh: Ctrl-X Ctrl-O toggles overwrite mode, Ctrl-X Ctrl-V
			// enters vi command mode.
			e.sticky = true
		}
	}
	return None
}

// pasteByte handles a byte inside a bracketed paste, where the shell
// inserts everything literally until ESC [ 2 0 1 ~.
func (e *Editor) pasteByte(b byte) Event {
	if b == pasteEnd[e.pasteM] {
		if e.un > 0 && b&0xc0 != 0x80 {
			e.badUTF8()
		}
		e.pasteM++
		if e.pasteM == len(pasteEnd) {
			e.paste = false
			e.pasteM = 0
		}
		return None
	}
	if e.pasteM > 0 {
		// What looked like the end marker was pasted text.
		for i := 0; i < e.pasteM; i++ {
			e.literal(pasteEnd[i])
		}
		e.pasteM = 0
		if b == pasteEnd[0] {
			e.pasteM = 1
			return None
		}
	}
	if b == '\r' || b == '\n' {
		// A shell with bracketed paste keeps a pasted newline in its buffer
		// and runs all the pasted lines at the next real Enter; one without
		// it runs each line as it arrives. Reporting each pasted newline as
		// Enter lets a blocker check every pasted line either way; the
		// next line starts uncertain (see Reset) because the shell edits
		// the lines as one buffer.
		if e.un > 0 {
			e.badUTF8()
		}
		return e.enter()
	}
	e.literal(b)
	return None
}

// cancel abandons the line and every key sequence in progress (Ctrl-C).
func (e *Editor) cancel() Event {
	// SIGINT also interrupts a paste; the rest of it then arrives as
	// ordinary keys, and the shell's state around that is anyone's guess.
	e.carry = e.paste
	e.paste = false
	e.pasteM = 0
	e.st = stGround
	e.un = 0
	e.done = true
	return Cancel
}

// enter completes the line.
func (e *Editor) enter() Event {
	e.done = true
	return Enter
}

// literal inserts b as text, assembling UTF-8 sequences.
func (e *Editor) literal(b byte) {
	if e.un > 0 {
		if b&0xc0 == 0x80 {
			e.ubuf[e.un] = b
			e.un++
			if e.un == e.uneed {
				r, size := utf8.DecodeRune(e.ubuf[:e.un])
				e.un = 0
				if r == utf8.RuneError && size <= 1 {
					// Overlong encoding or surrogate.
					e.uncertain = true
				}
				e.insert(r)
			}
			return
		}
		e.badUTF8()
	}
	var need int
	switch {
	case b < 0x80:
		e.insert(rune(b))
		return
	case b >= 0xc2 && b <= 0xdf:
		need = 2
	case b >= 0xe0 && b <= 0xef:
		need = 3
	case b >= 0xf0 && b <= 0xf4:
		need = 4
	default: // stray continuation byte or impossible lead byte
		e.uncertain = true
		e.insert(utf8.RuneError)
		return
	}
	e.ubuf[0] = b
	e.un = 1
	e.uneed = need
}

// badUTF8 replaces a truncated UTF-8 sequence with U+FFFD. The shell would
// hold the raw bytes, which a string of runes cannot, so the line is no
// longer exactly what the shell has.
func (e *Editor) badUTF8() {
	e.un = 0
	e.uncertain = true
	e.insert(utf8.RuneError)
}

// edit notes that the line is about to change at the cursor, which is only
// known to be right if the cursor is.
func (e *Editor) edit() {
	if e.cursorUnsure {
		e.uncertain = true
	}
}

// insert puts r at the cursor.
func (e *Editor) insert(r rune) {
	e.edit()
	if len(e.line) >= maxLine {
		e.uncertain = true
		return
	}
	if e.cursor == len(e.line) {
		e.line = append(e.line, r)
	} else {
		e.line = append(e.line, 0)
		copy(e.line[e.cursor+1:], e.line[e.cursor:])
		e.line[e.cursor] = r
	}
	e.cursor++
}

// cut removes line[from:to] and leaves the cursor at from.
func (e *Editor) cut(from, to int) {
	if from >= to {
		return
	}
	e.line = append(e.line[:from], e.line[to:]...)
	e.cursor = from
}

func (e *Editor) home() {
	e.cursor = 0
	e.cursorUnsure = false
}

func (e *Editor) end() {
	e.cursor = len(e.line)
	e.cursorUnsure = false
}

func (e *Editor) left() {
	if e.cursor > 0 {
		e.cursor--
	}
}

func (e *Editor) right() {
	if e.cursor < len(e.line) {
		e.cursor++
	}
}

func (e *Editor) backspace() {
	e.edit()
	if e.cursor > 0 {
		e.cut(e.cursor-1, e.cursor)
	}
}

// deleteAt deletes the character under the cursor (Delete, Ctrl-D).
func (e *Editor) deleteAt() {
	e.edit()
	if e.cursor < len(e.line) {
		c := e.cursor
		e.cut(c, c+1)
	}
}

func (e *Editor) killToEnd() {
	e.edit()
	e.line = e.line[:e.cursor]
}

// killToStart is Ctrl-U: bash kills from the start of the line to the
// cursor, zsh kills the whole line.
func (e *Editor) killToStart() {
	e.edit()
	if e.cursor < len(e.line) {
		e.uncertain = true
	}
	e.cut(0, e.cursor)
}

// transpose is Ctrl-T: swap the characters before and at the cursor (the
// last two at the end of the line) and move forward.
func (e *Editor) transpose() {
	e.edit()
	n := len(e.line)
	if n < 2 {
		return
	}
	if e.cursor == 0 {
		// bash rings the bell; zsh swaps the first two characters.
		e.uncertain = true
		return
	}
	i := e.cursor
	if i == n {
		i--
	}
	e.line[i-1], e.line[i] = e.line[i], e.line[i-1]
	e.cursor = i + 1
}

// Word motion and killing. Readline's words are runs of letters and digits;
// zsh's are letters, digits and the characters in $WORDCHARS (default
// below), and its Alt-f stops at the start of the next word where readline
// stops at the end. Each operation computes both and uses readline's result;
// where they differ, the cursor (for a move) or the line (for a kill) is
// uncertain.

// zshWordChars is zsh's default $WORDCHARS.
const zshWordChars = "*?_-.[]~=/&;!#$%^(){}<>"

func isBashWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isZshWord(r rune) bool {
	return isBashWord(r) || (r < utf8.RuneSelf && strings.ContainsRune(zshWordChars, r))
}

func isNotBlank(r rune) bool { return r != ' ' && r != '\t' }

// wordBack returns where a backward word move from i stops: over non-word
// characters, then over word characters.
func wordBack(line []rune, i int, word func(rune) bool) int {
	for i > 0 && !word(line[i-1]) {
		i--
	}
	for i > 0 && word(line[i-1]) {
		i--
	}
	return i
}

// wordEnd returns the end of the next word from i: over non-word
// characters, then over word characters (readline forward-word and
// kill-word, zsh kill-word).
func wordEnd(line []rune, i int, word func(rune) bool) int {
	for i < len(line) && !word(line[i]) {
		i++
	}
	for i < len(line) && word(line[i]) {
		i++
	}
	return i
}

// wordStart returns the start of the next word from i: over word
// characters, then over non-word characters (zsh forward-word).
func wordStart(line []rune, i int, word func(rune) bool) int {
	for i < len(line) && word(line[i]) {
		i++
	}
	for i < len(line) && !word(line[i]) {
		i++
	}
	return i
}

// wordLeft is Alt-b / Ctrl-Left.
func (e *Editor) wordLeft() {
	b := wordBack(e.line, e.cursor, isBashWord)
	if b != wordBack(e.line, e.cursor, isZshWord) {
		e.cursorUnsure = true
	}
	e.cursor = b
}

// wordRight is Alt-f / Ctrl-Right.
func (e *Editor) wordRight() {
	b := wordEnd(e.line, e.cursor, isBashWord)
	if b != wordStart(e.line, e.cursor, isZshWord) {
		e.cursorUnsure = true
	}
	e.cursor = b
}

// killWordForward is Alt-d.
func (e *Editor) killWordForward() {
	e.edit()
	b := wordEnd(e.line, e.cursor, isBashWord)
	if b != wordEnd(e.line, e.cursor, isZshWord) {
		e.uncertain = true
	}
	e.cut(e.cursor, b)
}

// killWordBackward is Alt-Backspace.
func (e *Editor) killWordBackward() {
	e.edit()
	b := wordBack(e.line, e.cursor, isBashWord)
	if b != wordBack(e.line, e.cursor, isZshWord) {
		e.uncertain = true
	}
	e.cut(b, e.cursor)
}

// unixWordRubout is Ctrl-W: bash deletes back to whitespace, zsh runs
// backward-kill-word.
func (e *Editor) unixWordRubout() {
	e.edit()
	b := wordBack(e.line, e.cursor, isNotBlank)
	if b != wordBack(e.line, e.cursor, isZshWord) {
		e.uncertain = true
	}
	e.cut(b, e.cursor)
}
