// Package termtext turns a terminal output stream into the lines of text a
// user saw, for keyword search over session recordings.
//
// Stripping escape sequences is not enough for search: a shell redraws the
// line being edited with carriage returns, backspaces and erase sequences, a
// progress bar rewrites one line hundreds of times, and full-screen programs
// (vim, top, less) paint the screen with cursor addressing. A [Screen] is a
// small virtual terminal that interprets the stream the way xterm would and
// reports each line once, when it is finished, with the text that was
// visible on it at that moment.
//
// # When a line is emitted
//
// The rules follow from what a user sees, and from what must not flood the
// index: output that scrolls is emitted line by line, as it is written;
// anything redrawn in place (the line being edited, a progress bar, a
// full-screen program) is emitted in its final state.
//
//   - A row is emitted when the cursor leaves it by a line feed (LF, VT,
//     FF, IND, NEL or an automatic wrap), when it scrolls out of the screen
//     or the scroll region, when it is deleted (DL) or pushed out (IL,
//     reverse index, SD), when the screen is erased around it (ED 0/1/2,
//     RIS), when a resize cuts text off it, and by [Screen.Flush].
//   - A row is emitted only if text was written to it since it was last
//     emitted, and not if its text equals what it last emitted (kept even
//     across a clear): a prompt redrawn with \r, or a screen repainted with
//     the same text, is not reported again.
//   - Erasing (EL, ECH, DCH, or ED 0/1 on the cursor row) the row that was
//     written last is a redraw: its text is not emitted, unless nothing
//     replaces it before the row is finished. That keeps line editing and
//     \r-and-erase progress bars to one line. Erasing text that was never
//     emitted from a row the cursor moved to emits it first: it is gone.
//   - A row that has emitted and is then written again (the cursor went
//     back up: a multi-line progress display, top or watch drawing on the
//     main screen) is not emitted when a line feed leaves it. Such rows are
//     emitted, with every other row holding unemitted text, top to bottom,
//     by the next line feed that scrolls the screen, that is when output
//     flows line by line again; or by any of the other events above. The
//     intermediate frames are not indexed.
//   - The alternate screen (private modes 1049, 1047 and 47) is where
//     full-screen programs (vim, less, htop) draw. Entering it emits the
//     main screen's pending rows and keeps the main screen as it was. Line
//     feeds there are cursor motion, not finished lines, so the alternate
//     screen's rows are emitted when it is left, when it is erased (ED),
//     and when rows scroll or are pushed out of it (paging in less).
//
// # Limits
//
// This is a subset of xterm, good enough for text extraction, not a
// terminal emulator:
//
//   - Every rune takes one column: East Asian wide characters, emoji and
//     combining marks are not measured, so on lines that contain them,
//     text placed by later cursor movement can land a few columns off
//     from where the real terminal put it, and such a line can hold more
//     characters than fit on the real screen.
//   - Tab stops are fixed every 8 columns (HTS/TBC are ignored); left and
//     right margins (DECSLRM), double-width lines and the scrollback buffer
//     do not exist; a resize truncates or pads rows and never reflows.
//   - Attributes (SGR), colours, hyperlinks, titles and other OSC, DCS, APC,
//     PM and SOS strings are consumed and ignored; their length is not
//     limited because nothing of them is kept.
//   - Everything is bounded: the screen to [MaxCols] x [MaxRows] (a Screen
//     holds at most two screens of 4-byte cells, 2 MB each at that size),
//     lines to the width, control sequences to 16 parameters of at most
//     65535 each, REP to one screen width per sequence.
//   - Of the character sets only the DEC special graphics set (line
//     drawing, ESC ( 0 with SO/SI) is translated; C1 controls are not
//     recognised as 8-bit bytes (the stream is taken to be UTF-8) and
//     malformed UTF-8 becomes U+FFFD.
//   - A bare LF moves down without returning to column 0, as on a real
//     terminal. Output that did not go through a pty (an exec session
//     without one) relies on the user's own terminal to add the carriage
//     return; write [NewlineMode] first for such streams.
//   - By the rules above, text that is replaced in place before its row is
//     finished is lost to search: what was typed and then erased, the
//     intermediate states of progress bars and of programs that redraw.
//     Conversely, transient text a program erases by moving the cursor to
//     it (a status message) is emitted.
//
// A Screen is not safe for concurrent use.
package termtext

import (
	"encoding/binary"
	"unicode/utf8"
)

// Screen sizes used by [New] and [Screen.Resize].
const (
	DefaultCols = 80
	DefaultRows = 24
	MaxCols     = 1000
	MaxRows     = 500
)

// NewlineMode is the xterm sequence that sets line feed/new line mode
// (LNM): afterwards LF, VT and FF also return the cursor to column 0. Write
// it to a new Screen before output that was produced without a pty (where
// lines end in a bare "\n"), so that each line starts at column 0 as it did
// on the user's terminal.
const NewlineMode = "\x1b[20h"

const (
	// maxParams bounds how many CSI parameters are kept; later ones are
	// parsed and dropped.
	maxParams = 16
	// maxParamValue bounds each parameter so that digit runs cannot
	// overflow; every use clamps further to the screen size.
	maxParamValue = 65535
)

// Parser states. Everything that is not ground consumes bytes one at a
// time; ground is where the fast path for printable ASCII runs.
const (
	stGround     uint8 = iota
	stUTF8             // inside a multi-byte rune
	stEsc              // after ESC
	stEscInter         // after ESC and an intermediate byte (charset designation etc.)
	stCSI              // inside ESC [
	stString           // inside an OSC, DCS, APC, PM or SOS string
	stDiscardCSI       // inside an over-long or malformed CSI, waiting for its final byte
)

// row is one line of a screen buffer.
type row struct {
	// cells holds one rune per column; blank cells are blankCell, so
	// that clearing is a memory clear. Every cell at or after used is
	// blank, so clearing and rendering stop at used.
	cells []rune
	used  int
	// dirty is set when text was written since the row was last emitted.
	dirty bool
	// emitted is set once the row has emitted its text, and cleared when
	// it becomes a new line (scrolled in, inserted) or is cleared by ED.
	// A line feed emits only rows that have not emitted yet: a row that
	// emitted and is then written again is being redrawn (a progress
	// display, a full-screen program that does not use the alternate
	// screen), and is emitted later (see Screen.deferred).
	emitted bool
	// wseq is the Screen's write counter when text was last written to
	// the row: it tells the row that is being typed or redrawn (the last
	// one written) from rows the cursor merely moved to.
	wseq uint64
	// last is the text (UTF-8) this row last emitted; a row whose text
	// equals it is not emitted again. It survives erases (so identical
	// repaints are quiet) and is reset when the row scrolls in as a new
	// line. While the line is in the undelivered batch (inBatch), it is
	// batch[lastStart:lastEnd] instead, and it is copied to last only if
	// the row is still on screen when the batch is delivered: most rows
	// scroll away first, and then the copy is saved.
	last               []byte
	inBatch            bool
	lastStart, lastEnd int
	// stash keeps the text of a dirty row that an in-place erase blanked,
	// to be emitted if nothing else is written to the row before it is
	// finished.
	stash []rune
}

// blankCell is an empty cell, shown as a space.
const blankCell = 0

// cursor is what DECSC (ESC 7) saves.
type cursor struct {
	x, y     int
	wrapnext bool
	origin   bool
	charset  [2]byte
	gl       int
	valid    bool
}

// buffer is the main or the alternate screen.
type buffer struct {
	// lines is a ring: screen row y is lines[(off+y) % len(lines)], so
	// that scrolling the whole screen by one row (every line feed at the
	// bottom, the hottest path) moves off instead of every row pointer.
	lines []*row
	off   int
	saved cursor
	spare []*row // rows a resize removed, for reuse
}

// row returns screen row y.
func (b *buffer) row(y int) *row {
	i := b.off + y
	if i >= len(b.lines) {
		i -= len(b.lines)
	}
	return b.lines[i]
}

// rotate scrolls the whole buffer up by one row: the top row becomes the
// bottom row.
func (b *buffer) rotate() {
	b.off++
	if b.off == len(b.lines) {
		b.off = 0
	}
}

// ordered returns the rows top to bottom, after rotating the ring so that
// screen order and storage order agree. The operations that work on
// several rows use it; they are not on the hot path.
func (b *buffer) ordered() []*row {
	if b.off != 0 {
		reverse(b.lines[:b.off])
		reverse(b.lines[b.off:])
		reverse(b.lines)
		b.off = 0
	}
	return b.lines
}

func reverse(r []*row) {
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
}

// Screen is a minimal virtual terminal (a VT100/xterm subset) that turns a
// terminal output stream into the lines of text a user saw. Create one with
// [New]; the zero value is not usable.
type Screen struct {
	cols, rows int

	main, alt *buffer
	cur       *buffer // main or alt
	inAlt     bool

	x, y int
	// wrapnext is xterm's pending-wrap flag: a character written in the
	// last column leaves the cursor there, and only the next printable
	// character wraps. Without it, a line of exactly cols characters
	// followed by CR LF would produce an empty line.
	wrapnext bool

	top, bottom int // scroll region, inclusive

	origin   bool // DECOM: cursor addressing relative to the scroll region
	autowrap bool // DECAWM
	insert   bool // IRM
	lnm      bool // LNM: LF implies CR

	charset [2]byte // G0, G1: 'B' (ASCII) or '0' (DEC special graphics)
	gl      int     // which of G0/G1 is invoked (SI/SO)
	// plain is true when printable ASCII is stored as is (no insert mode,
	// no line-drawing charset): the condition for the fast path.
	plain bool

	lastRune rune // for REP

	// wseq counts writes of text; see row.wseq.
	wseq uint64
	// deferred is set when a line feed left a row that is being redrawn
	// without emitting it. The next line feed that scrolls (output is
	// flowing line by line again) first emits every row with unemitted
	// text, top to bottom: a full-screen program's last frame, the final
	// state of a multi-line progress display.
	deferred bool

	// Parser state.
	state    uint8
	strOSC   bool // the string being consumed is an OSC (BEL ends it)
	escInter byte
	params   [maxParams]int
	nparams  int
	pi       int // index of the parameter being parsed
	private  byte
	inter    byte
	ubuf     [utf8.UTFMax]byte
	un       int
	uneed    int

	tmpRows []*row // rotation buffer, reused

	// Finished lines are rendered into batch, one after the other (ends
	// holds where each one ends), and turned into strings with a single
	// allocation when the batch is delivered: at the end of every Write
	// and Flush, and whenever it grows past batchSize. One allocation per
	// line would cost more than everything else on the seq-like hot path.
	batch []byte
	ends  []int

	emit    func(string) // set for the duration of Write and Flush
	pending []string     // lines finished by Resize, emitted by the next Write or Flush
}

// batchSize is the size at which a batch of finished lines is delivered
// before the end of a Write. It also bounds how much memory one retained
// line can keep alive.
const batchSize = 4096

// New returns a Screen of cols x rows cells. Sizes are clamped to
// [1, MaxCols] x [1, MaxRows]; 0 means the default 80 x 24.
func New(cols, rows int) *Screen {
	cols, rows = clampSize(cols, rows)
	s := &Screen{cols: cols, rows: rows}
	s.main = newBuffer(cols, rows)
	s.cur = s.main
	s.resetModes()
	return s
}

func clampSize(cols, rows int) (int, int) {
	if cols == 0 {
		cols = DefaultCols
	}
	if rows == 0 {
		rows = DefaultRows
	}
	return clamp(cols, 1, MaxCols), clamp(rows, 1, MaxRows)
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

func newBuffer(cols, rows int) *buffer {
	b := &buffer{lines: make([]*row, rows)}
	for i := range b.lines {
		b.lines[i] = newRow(cols)
	}
	return b
}

func newRow(cols int) *row {
	return &row{cells: make([]rune, cols)}
}

func (s *Screen) resetModes() {
	s.top, s.bottom = 0, s.rows-1
	s.origin, s.autowrap, s.insert, s.lnm = false, true, false, false
	s.charset = [2]byte{'B', 'B'}
	s.gl = 0
	s.wrapnext = false
	s.lastRune = 0
	s.updatePlain()
}

func (s *Screen) updatePlain() {
	s.plain = !s.insert && s.charset[s.gl] != '0'
}

func discard(string) {}

// Write interprets p, raw terminal output (UTF-8; escape sequences and
// runes may be split across calls), and calls emit with each line that is
// finished: a line is emitted when it scrolls off, when the screen or the
// line is erased while holding text that was not emitted, or when the
// cursor leaves it by line feed. The line is the row's visible text at that
// moment with trailing spaces trimmed; empty lines are not emitted, and a
// row is not emitted twice in a row with the same text (see the package
// documentation for the exact rules). emit may be nil to discard lines.
//
// Lines are delivered in order, before Write returns, but in batches: the
// strings of one batch share their memory, so keeping one line keeps up to
// a few KiB alive. emit must not call the Screen's methods.
func (s *Screen) Write(p []byte, emit func(line string)) {
	s.begin(emit)
	for i := 0; i < len(p); {
		if s.state != stGround {
			i = s.step(p, i)
			continue
		}
		c := p[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			if s.plain {
				i = s.printASCII(p, i)
				continue
			}
			s.printByte(c)
		case c < 0x20:
			s.control(c)
		case c == 0x7f:
			// DEL is ignored by terminals.
		default:
			i = s.utf8Start(p, i)
			continue
		}
		i++
	}
	s.deliver()
	s.emit = nil
}

// Flush emits the rows that are still on screen and not yet emitted (the
// main screen top to bottom, then the alternate screen if it is showing),
// e.g. at the end of a session; rows already emitted and unchanged are not
// emitted again. The screen content
// and any partial escape sequence are kept, so Flush may be called at any
// time (say, to make the line being typed searchable) and writing may
// continue afterwards: a flushed line that is then completed is emitted
// again, complete, when it is finished.
func (s *Screen) Flush(emit func(line string)) {
	s.begin(emit)
	s.flushRows(s.main)
	if s.inAlt {
		s.flushRows(s.alt)
	}
	s.deliver()
	s.emit = nil
}

// flushRows finishes b's rows top to bottom without counting them as
// emitted for the line feed rule, so that Flush changes nothing but what
// counts as already seen.
func (s *Screen) flushRows(b *buffer) {
	for _, r := range b.ordered() {
		emitted := r.emitted
		s.finish(r)
		r.emitted = emitted
	}
}

// begin installs emit for one Write or Flush and first delivers the lines
// that an earlier Resize finished.
func (s *Screen) begin(emit func(string)) {
	if emit == nil {
		emit = discard
	}
	s.emit = emit
	if len(s.pending) > 0 {
		for i, l := range s.pending {
			emit(l)
			s.pending[i] = ""
		}
		s.pending = s.pending[:0]
	}
}

// keepLast copies the last emitted text of b's rows out of the batch
// before the batch is reused.
func (s *Screen) keepLast(b *buffer) {
	for _, r := range b.lines {
		if r.inBatch {
			r.last = append(r.last[:0], s.batch[r.lastStart:r.lastEnd]...)
			r.inBatch = false
		}
	}
}

// deliver turns the batch of finished lines into strings, sharing one
// allocation, and hands them in order to the caller's emit during Write
// and Flush, or to the pending queue during Resize (which has no emit).
func (s *Screen) deliver() {
	if len(s.ends) == 0 {
		return
	}
	s.keepLast(s.main)
	if s.alt != nil {
		s.keepLast(s.alt)
	}
	all := string(s.batch)
	start := 0
	for _, end := range s.ends {
		if s.emit != nil {
			s.emit(all[start:end])
		} else {
			s.pending = append(s.pending, all[start:end])
		}
		start = end
	}
	s.batch = s.batch[:0]
	s.ends = s.ends[:0]
}

// printASCII is the fast path: it copies the run of printable ASCII that
// starts at p[i] straight into the current row, wrapping as needed, and
// returns the index of the first byte it did not consume.
func (s *Screen) printASCII(p []byte, i int) int {
	for {
		if s.wrapnext {
			s.wrapnext = false
			s.lineFeed()
			s.x = 0
		}
		r := s.cur.row(s.y)
		cells := r.cells
		x := s.x
		j := i
		// A run written from column 0 into a blank row is the row's
		// whole text, which a line feed right after it can emit without
		// rendering the cells.
		whole := x == 0 && r.used == 0 && !r.emitted
		// Eight bytes at a time while they are all printable ASCII
		// (checked with word arithmetic: a byte below 0x20 borrows into
		// its top bit, a byte of 0x7f or more has or gets it), then
		// byte by byte.
		for j+8 <= len(p) && x+8 <= len(cells) {
			v := binary.LittleEndian.Uint64(p[j:])
			if (v-0x2020202020202020)&^v&0x8080808080808080 != 0 ||
				(v|(v+0x0101010101010101))&0x8080808080808080 != 0 {
				break
			}
			c := cells[x : x+8 : x+8]
			c[0], c[1], c[2], c[3] = rune(byte(v)), rune(byte(v>>8)), rune(byte(v>>16)), rune(byte(v>>24))
			c[4], c[5], c[6], c[7] = rune(byte(v>>32)), rune(byte(v>>40)), rune(byte(v>>48)), rune(byte(v>>56))
			x += 8
			j += 8
		}
		for j < len(p) && x < len(cells) {
			c := p[j]
			if c < 0x20 || c > 0x7e {
				break
			}
			cells[x] = rune(c)
			x++
			j++
		}
		if j > i {
			r.dirty = true
			if x > r.used {
				r.used = x
			}
			if len(r.stash) != 0 {
				r.stash = r.stash[:0]
			}
			s.lastRune = rune(p[j-1])
			s.wseq++
			r.wseq = s.wseq
		}
		i = j
		if x < len(cells) {
			s.x = x
			// CR LF is what follows most runs; handling it here saves
			// two trips through Write's dispatch per line.
			if i < len(p) && p[i] == '\r' {
				s.x = 0
				i++
			}
			if i < len(p) && p[i] == '\n' {
				if whole && !s.inAlt && !s.deferred {
					s.finishText(r, p[j-x:j])
					s.down()
				} else {
					s.lineFeed()
				}
				if s.lnm {
					s.x = 0
				}
				i++
			}
			if i < len(p) && p[i] >= 0x20 && p[i] <= 0x7e {
				continue
			}
			return i
		}
		// The run reached the last column.
		s.x = len(cells) - 1
		if !s.autowrap {
			// Without autowrap every further character overwrites the
			// last column.
			for i < len(p) && p[i] >= 0x20 && p[i] <= 0x7e {
				cells[s.x] = rune(p[i])
				s.lastRune = rune(p[i])
				i++
			}
			return i
		}
		s.wrapnext = true
		if i >= len(p) || p[i] < 0x20 || p[i] > 0x7e {
			return i
		}
	}
}

// decGraphics maps 0x5f..0x7e in the DEC special graphics set (ESC ( 0) to
// the line-drawing characters they show, so that boxes drawn by curses
// programs come out as box drawing rather than as "lqqqk".
var decGraphics = [...]rune{
	' ', '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼',
	'⎺', '⎻', '─', '⎼', '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
}

// printByte prints a printable ASCII byte outside the fast path.
func (s *Screen) printByte(c byte) {
	r := rune(c)
	if c >= 0x5f && s.charset[s.gl] == '0' {
		r = decGraphics[c-0x5f]
	}
	s.print(r)
}

// print writes one rune at the cursor, honouring pending wrap, insert
// mode and autowrap.
func (s *Screen) print(r rune) {
	if s.wrapnext {
		s.wrapnext = false
		s.lineFeed()
		s.x = 0
	}
	rw := s.cur.row(s.y)
	if s.insert {
		s.insertBlanks(rw, 1)
	}
	rw.cells[s.x] = r
	if s.x >= rw.used {
		rw.used = s.x + 1
	}
	rw.dirty = true
	s.wseq++
	rw.wseq = s.wseq
	if len(rw.stash) != 0 {
		rw.stash = rw.stash[:0]
	}
	s.lastRune = r
	if s.x == s.cols-1 {
		s.wrapnext = s.autowrap
	} else {
		s.x++
	}
}

// printRune prints a decoded non-ASCII rune. Runes U+0080..U+009F are the
// C1 controls; written as UTF-8 they are not executed by xterm and show
// nothing, so they are dropped.
func (s *Screen) printRune(r rune) {
	if r < 0xa0 {
		return
	}
	s.print(r)
}

// utf8Start handles a byte >= 0x80 in the ground state. A complete valid
// rune is decoded at once; anything else (an incomplete rune at the end of
// p, or malformed input) goes through the byte-at-a-time decoder, so that
// the result does not depend on where the stream was split.
func (s *Screen) utf8Start(p []byte, i int) int {
	if r, size := utf8.DecodeRune(p[i:]); size > 1 {
		s.printRune(r)
		return i + size
	}
	c := p[i]
	var n int
	switch {
	case c >= 0xc2 && c <= 0xdf:
		n = 2
	case c >= 0xe0 && c <= 0xef:
		n = 3
	case c >= 0xf0 && c <= 0xf4:
		n = 4
	default:
		s.print(utf8.RuneError)
		return i + 1
	}
	s.ubuf[0] = c
	s.un, s.uneed = 1, n
	s.state = stUTF8
	return i + 1
}

// utf8Continue takes the next byte of a multi-byte rune. It reports false
// when the byte does not continue the rune: the partial rune became U+FFFD
// and the byte must be processed again in the ground state.
func (s *Screen) utf8Continue(c byte) bool {
	lo, hi := byte(0x80), byte(0xbf)
	if s.un == 1 {
		// The second byte's range depends on the first: this rejects
		// overlong forms, surrogates and values above U+10FFFF exactly as
		// utf8.DecodeRune does.
		switch s.ubuf[0] {
		case 0xe0:
			lo = 0xa0
		case 0xed:
			hi = 0x9f
		case 0xf0:
			lo = 0x90
		case 0xf4:
			hi = 0x8f
		}
	}
	if c < lo || c > hi {
		s.state = stGround
		s.print(utf8.RuneError)
		return false
	}
	s.ubuf[s.un] = c
	s.un++
	if s.un == s.uneed {
		s.state = stGround
		r, _ := utf8.DecodeRune(s.ubuf[:s.un])
		s.printRune(r)
	}
	return true
}

// step consumes one byte (or, inside strings, a run of bytes) in a state
// other than ground and returns the index of the next byte to process.
func (s *Screen) step(p []byte, i int) int {
	c := p[i]
	switch s.state {
	case stUTF8:
		if !s.utf8Continue(c) {
			return i // reprocess in ground
		}
	case stEsc:
		switch {
		case c == '[':
			s.startCSI()
		case c == ']':
			s.state, s.strOSC = stString, true
		case c == 'P' || c == '_' || c == '^' || c == 'X':
			s.state, s.strOSC = stString, false
		case c >= 0x20 && c <= 0x2f:
			s.escInter = c
			s.state = stEscInter
		case c >= 0x30 && c <= 0x7e:
			s.state = stGround
			s.escDispatch(c)
		default:
			if !s.controlInSequence(c) {
				return i
			}
		}
	case stEscInter:
		switch {
		case c >= 0x20 && c <= 0x2f:
			// Further intermediates (ESC ( % 5 and the like) are skipped.
		case c >= 0x30 && c <= 0x7e:
			s.state = stGround
			s.designate(s.escInter, c)
		default:
			if !s.controlInSequence(c) {
				return i
			}
		}
	case stCSI, stDiscardCSI:
		if s.inter == 0 {
			// Parameters are most of a sequence (colours, positions):
			// take them in a loop rather than one trip through Write
			// per byte.
			for {
				if c >= '0' && c <= '9' {
					if s.pi < maxParams {
						v := s.params[s.pi]*10 + int(c-'0')
						if v > maxParamValue {
							v = maxParamValue
						}
						s.params[s.pi] = v
						s.nparams = s.pi + 1
					}
				} else if c == ';' || c == ':' {
					// Sub-parameters (":") only occur in SGR, which
					// is ignored, so they are plain separators here.
					if s.pi < maxParams {
						s.pi++
						if s.pi < maxParams {
							s.params[s.pi] = 0
							s.nparams = s.pi + 1
						}
					}
				} else {
					break
				}
				i++
				if i == len(p) {
					return i
				}
				c = p[i]
			}
		}
		switch {
		case c >= '0' && c <= ';':
			// Parameters after an intermediate byte: malformed.
			s.state = stDiscardCSI
		case c >= '<' && c <= '?':
			if s.private != 0 || s.nparams != 0 || s.inter != 0 {
				s.state = stDiscardCSI
			} else {
				s.private = c
			}
		case c >= 0x20 && c <= 0x2f:
			s.inter = c
		case c >= 0x40 && c <= 0x7e:
			discardIt := s.state == stDiscardCSI
			s.state = stGround
			if !discardIt {
				s.csiDispatch(c)
			}
		default:
			if !s.controlInSequence(c) {
				return i
			}
		}
	case stString:
		// Consume the string body in one loop: titles and hyperlinks
		// can be long and nothing of them is kept.
		for ; i < len(p); i++ {
			switch p[i] {
			case 0x07:
				if s.strOSC {
					s.state = stGround
					return i + 1
				}
			case 0x1b:
				// ESC ends the string; ESC \ (ST) is then consumed as
				// an escape sequence without effect, and any other
				// escape sequence starts afresh.
				s.state = stEsc
				return i + 1
			case 0x18, 0x1a:
				s.state = stGround
				return i + 1
			}
		}
		return i
	}
	return i + 1
}

// controlInSequence handles a byte that is neither parameter, intermediate
// nor final inside an escape sequence. As on a DEC terminal, C0 controls
// are executed in the middle of a sequence, ESC restarts it and CAN/SUB
// abort it. A byte >= 0x80 aborts the sequence too (it cannot be part of
// one in a UTF-8 stream); it reports false so that the caller processes
// that byte again as text.
func (s *Screen) controlInSequence(c byte) bool {
	switch {
	case c == 0x1b:
		s.state = stEsc
	case c == 0x18 || c == 0x1a:
		s.state = stGround
	case c < 0x20:
		s.control(c)
	case c == 0x7f:
	default:
		s.state = stGround
		return false
	}
	return true
}

func (s *Screen) startCSI() {
	s.state = stCSI
	// Each parameter is zeroed when parsing reaches it.
	s.params[0] = 0
	s.nparams, s.pi = 0, 0
	s.private, s.inter = 0, 0
}

// param returns parameter i, or def when it is absent or 0 (for the
// cursor and editing functions 0 means "the default").
func (s *Screen) param(i, def int) int {
	if i < s.nparams && s.params[i] != 0 {
		return s.params[i]
	}
	return def
}

// control executes a C0 control character.
func (s *Screen) control(c byte) {
	switch c {
	case '\b':
		s.wrapnext = false
		if s.x > 0 {
			s.x--
		}
	case '\t':
		s.tab(1)
	case '\n', '\v', '\f':
		s.lineFeed()
		if s.lnm {
			s.x = 0
		}
	case '\r':
		s.x = 0
		s.wrapnext = false
	case 0x0e: // SO: invoke G1
		s.gl = 1
		s.updatePlain()
	case 0x0f: // SI: invoke G0
		s.gl = 0
		s.updatePlain()
	case 0x1b:
		s.state = stEsc
	}
	// BEL, NUL, CAN, SUB and the other C0 controls have no effect on the
	// text.
}

func (s *Screen) tab(n int) {
	s.wrapnext = false
	for ; n > 0 && s.x < s.cols-1; n-- {
		s.x = (s.x/8 + 1) * 8
	}
	if s.x > s.cols-1 {
		s.x = s.cols - 1
	}
}

func (s *Screen) backTab(n int) {
	s.wrapnext = false
	for ; n > 0 && s.x > 0; n-- {
		s.x = (s.x - 1) / 8 * 8
	}
}

// escDispatch executes ESC followed by a final byte.
func (s *Screen) escDispatch(c byte) {
	switch c {
	case '7': // DECSC
		s.saveCursor()
	case '8': // DECRC
		s.restoreCursor()
	case 'D': // IND
		s.lineFeed()
	case 'E': // NEL
		s.lineFeed()
		s.x = 0
	case 'M': // RI
		s.reverseIndex()
	case 'c': // RIS
		s.fullReset()
	}
	// Keypad modes (= >), HTS (H), ST (\) and unknown finals: no effect.
}

// designate handles ESC with an intermediate byte: charset designations
// for G0 (ESC ( F) and G1 (ESC ) F, ESC - F); the rest (DECALN, ESC % G,
// ESC SP F, G2/G3) is consumed without effect.
func (s *Screen) designate(inter, final byte) {
	g := -1
	switch inter {
	case '(':
		g = 0
	case ')', '-':
		g = 1
	}
	if g < 0 {
		return
	}
	if final == '0' {
		s.charset[g] = '0'
	} else {
		s.charset[g] = 'B'
	}
	s.updatePlain()
}

// csiDispatch executes a complete control sequence.
func (s *Screen) csiDispatch(f byte) {
	if s.inter != 0 {
		if s.inter == '!' && f == 'p' && s.private == 0 { // DECSTR
			s.softReset()
		}
		return
	}
	if s.private != 0 {
		if s.private == '?' {
			switch f {
			case 'h':
				s.setModes(true)
			case 'l':
				s.setModes(false)
			case 'J': // DECSED: as ED, attributes are not modelled
				s.eraseDisplay(s.param(0, 0))
			case 'K': // DECSEL
				s.eraseLine(s.param(0, 0))
			}
		}
		return
	}
	switch f {
	case '@': // ICH
		s.wrapnext = false
		s.insertBlanks(s.cur.row(s.y), s.param(0, 1))
	case 'A': // CUU
		s.cursorUp(s.param(0, 1))
	case 'B', 'e': // CUD, VPR
		s.cursorDown(s.param(0, 1))
	case 'C', 'a': // CUF, HPR
		s.setX(s.x + s.param(0, 1))
	case 'D': // CUB
		s.setX(s.x - s.param(0, 1))
	case 'E': // CNL
		s.cursorDown(s.param(0, 1))
		s.x = 0
	case 'F': // CPL
		s.cursorUp(s.param(0, 1))
		s.x = 0
	case 'G', '`': // CHA, HPA
		s.setX(s.param(0, 1) - 1)
	case 'H', 'f': // CUP, HVP
		s.moveTo(s.param(1, 1)-1, s.param(0, 1)-1)
	case 'I': // CHT
		s.tab(s.param(0, 1))
	case 'Z': // CBT
		s.backTab(s.param(0, 1))
	case 'J': // ED
		s.eraseDisplay(s.param(0, 0))
	case 'K': // EL
		s.eraseLine(s.param(0, 0))
	case 'L': // IL
		if s.y >= s.top && s.y <= s.bottom {
			s.scrollDown(s.y, s.bottom, s.param(0, 1))
			s.x, s.wrapnext = 0, false
		}
	case 'M': // DL
		if s.y >= s.top && s.y <= s.bottom {
			s.scrollUp(s.y, s.bottom, s.param(0, 1))
			s.x, s.wrapnext = 0, false
		}
	case 'P': // DCH
		s.deleteChars(s.param(0, 1))
	case 'X': // ECH
		s.wrapnext = false
		s.eraseCells(s.cur.row(s.y), s.x, s.x+s.param(0, 1))
	case 'S': // SU
		s.scrollUp(s.top, s.bottom, s.param(0, 1))
	case 'T': // SD (with more parameters it is xterm's mouse tracking)
		if s.nparams <= 1 {
			s.scrollDown(s.top, s.bottom, s.param(0, 1))
		}
	case 'b': // REP
		s.repeat(s.param(0, 1))
	case 'd': // VPA
		s.moveTo(s.x, s.param(0, 1)-1)
	case 'h': // SM
		s.setModes(true)
	case 'l': // RM
		s.setModes(false)
	case 'r': // DECSTBM
		top, bottom := s.param(0, 1)-1, s.param(1, s.rows)-1
		if bottom > s.rows-1 {
			bottom = s.rows - 1
		}
		if top < bottom {
			s.top, s.bottom = top, bottom
			s.moveTo(0, 0)
		}
	case 's': // SCOSC (with parameters it would be DECSLRM, not modelled)
		if s.nparams == 0 {
			s.saveCursor()
		}
	case 'u': // SCORC
		s.restoreCursor()
	}
	// SGR (m), DSR (n), DA (c), window operations (t) and everything
	// else do not change the text.
}

// setModes handles SM/RM and DECSET/DECRST for every parameter.
func (s *Screen) setModes(on bool) {
	for i := 0; i < s.nparams; i++ {
		m := s.params[i]
		if s.private == 0 {
			switch m {
			case 4: // IRM
				s.insert = on
			case 20: // LNM
				s.lnm = on
			}
			continue
		}
		switch m {
		case 6: // DECOM
			s.origin = on
			s.moveTo(0, 0)
		case 7: // DECAWM
			s.autowrap = on
			if !on {
				s.wrapnext = false
			}
		case 47, 1047, 1049:
			if on {
				s.enterAlt(m)
			} else {
				s.leaveAlt(m)
			}
		case 1048:
			if on {
				s.saveCursor()
			} else {
				s.restoreCursor()
			}
		}
	}
	s.updatePlain()
}

func (s *Screen) repeat(n int) {
	if s.lastRune == 0 {
		return
	}
	// Bounded by the width: curses uses REP for runs within a line, and
	// an unbounded count would let a few bytes cost millions of cells.
	if n > s.cols {
		n = s.cols
	}
	r := s.lastRune
	for ; n > 0; n-- {
		s.print(r)
	}
}

func (s *Screen) softReset() {
	s.insert, s.origin, s.autowrap = false, false, true
	s.top, s.bottom = 0, s.rows-1
	s.charset = [2]byte{'B', 'B'}
	s.gl = 0
	s.wrapnext = false
	s.cur.saved = cursor{}
	s.updatePlain()
}

// fullReset is RIS: everything on both screens that was not emitted is
// emitted, then the terminal starts afresh (sizes are kept).
func (s *Screen) fullReset() {
	if s.inAlt {
		s.leaveAlt(1049)
	}
	for _, r := range s.main.ordered() {
		s.finish(r)
		r.clear()
	}
	s.main.saved = cursor{}
	if s.alt != nil {
		s.alt.saved = cursor{}
	}
	s.x, s.y = 0, 0
	s.resetModes()
}

func (s *Screen) saveCursor() {
	s.cur.saved = cursor{
		x: s.x, y: s.y, wrapnext: s.wrapnext, origin: s.origin,
		charset: s.charset, gl: s.gl, valid: true,
	}
}

func (s *Screen) restoreCursor() {
	c := s.cur.saved
	if !c.valid {
		// Restoring without a save goes home with default modes, as in
		// xterm.
		c = cursor{charset: [2]byte{'B', 'B'}}
	}
	s.x, s.y = clamp(c.x, 0, s.cols-1), clamp(c.y, 0, s.rows-1)
	s.wrapnext = c.wrapnext && s.autowrap && s.x == s.cols-1
	s.origin = c.origin
	s.charset, s.gl = c.charset, c.gl
	s.updatePlain()
}

// enterAlt switches to the alternate screen. The main screen's pending rows
// are emitted now, while they are known to be complete; the main screen
// itself is kept for when the program leaves.
func (s *Screen) enterAlt(mode int) {
	if s.inAlt {
		return
	}
	if mode == 1049 {
		s.saveCursor()
	}
	for _, r := range s.main.ordered() {
		s.finish(r)
	}
	s.deferred = false
	if s.alt == nil {
		s.alt = newBuffer(s.cols, s.rows)
	}
	s.cur, s.inAlt = s.alt, true
	if mode == 1049 {
		// Already emitted when the alternate screen was last left.
		for _, r := range s.alt.ordered() {
			r.clear()
		}
	}
}

// leaveAlt switches back to the main screen after emitting what the
// full-screen program left on the alternate screen.
func (s *Screen) leaveAlt(mode int) {
	if !s.inAlt {
		return
	}
	for _, r := range s.alt.ordered() {
		s.finish(r)
		if mode != 47 {
			r.clear()
		}
	}
	s.cur, s.inAlt = s.main, false
	s.wrapnext = false
	if mode == 1049 {
		s.restoreCursor()
	}
}
