package termtext

import (
	"encoding/binary"
	"unicode/utf8"
)

// This file holds the operations on the cell grid: cursor motion,
// scrolling, erasing, emitting and resizing.

// clear blanks the row. last is kept so that a repaint with the same text
// (a cleared screen drawn again) is not emitted again.
func (r *row) clear() {
	clear(r.cells[:r.used])
	r.used = 0
	r.dirty = false
	r.stash = r.stash[:0]
}

// reset blanks the row for reuse as a new line (scrolled in or inserted):
// its text will be a different line, however it compares.
func (r *row) reset() {
	r.clear()
	r.last = r.last[:0]
	r.inBatch = false
	r.emitted = false
}

// trim lowers used past trailing blanks.
func (r *row) trim() {
	for r.used > 0 && r.cells[r.used-1] <= ' ' {
		r.used--
	}
}

// blank reports whether cells hold nothing but blanks and spaces.
func blank(cells []rune) bool {
	for _, c := range cells {
		if c > ' ' {
			return false
		}
	}
	return true
}

// reserve makes room for n more bytes in the batch. The batch and ends
// grow only here and in addEnd; everywhere else they are resliced, which
// stores just the length: a slice assignment that may move the array
// stores a pointer, and with the garbage collector running (often, at the
// allocation rate of this package) every such store costs a write barrier.
func (s *Screen) reserve(n int) {
	if cap(s.batch)-len(s.batch) < n {
		b := make([]byte, len(s.batch), max(2*cap(s.batch), len(s.batch)+n, 2*batchSize))
		copy(b, s.batch)
		s.batch = b
	}
}

// addEnd records that a line ends at end in the batch.
func (s *Screen) addEnd(end int) {
	if len(s.ends) == cap(s.ends) {
		s.ends = append(s.ends, 0)[:len(s.ends)]
	}
	s.ends = s.ends[:len(s.ends)+1]
	s.ends[len(s.ends)-1] = end
}

// appendText appends cells to the batch as UTF-8, blanks as spaces,
// trailing spaces trimmed.
func (s *Screen) appendText(cells []rune) {
	start := len(s.batch)
	s.reserve(len(cells) * utf8.UTFMax)
	t := s.batch[start : start+len(cells)*utf8.UTFMax]
	// ASCII eight cells at a time, packed into one word (blank cells,
	// zero bytes, become spaces: a zero byte is the one whose top bit
	// stays clear after adding 0x7f to its low seven bits); the rest of
	// the row from the first non-ASCII rune on is encoded rune by rune.
	n := 0
	for n+8 <= len(cells) {
		c := cells[n : n+8 : n+8]
		if c[0]|c[1]|c[2]|c[3]|c[4]|c[5]|c[6]|c[7] >= utf8.RuneSelf {
			break
		}
		v := uint64(c[0]) | uint64(c[1])<<8 | uint64(c[2])<<16 | uint64(c[3])<<24 |
			uint64(c[4])<<32 | uint64(c[5])<<40 | uint64(c[6])<<48 | uint64(c[7])<<56
		v |= ^((v & 0x7f7f7f7f7f7f7f7f) + 0x7f7f7f7f7f7f7f7f | v) & 0x8080808080808080 >> 2
		binary.LittleEndian.PutUint64(t[n:], v)
		n += 8
	}
	for _, c := range cells[n:] {
		switch {
		case c == blankCell:
			t[n] = ' '
			n++
		case c < utf8.RuneSelf:
			t[n] = byte(c)
			n++
		default:
			n += utf8.EncodeRune(t[n:], c)
		}
	}
	for n > 0 && t[n-1] == ' ' {
		n--
	}
	s.batch = s.batch[:start+n]
}

// finish emits the row if it holds text that was not emitted yet (or, if
// it is blank, the text an in-place erase removed), and marks it emitted.
// The line goes into the batch; see [Screen.deliver].
func (s *Screen) finish(r *row) {
	if !r.dirty {
		return
	}
	r.dirty = false
	start := len(s.batch)
	s.appendText(r.cells[:r.used])
	if len(s.batch) == start {
		if len(r.stash) == 0 {
			return
		}
		s.appendText(r.stash)
	}
	r.stash = r.stash[:0]
	s.commit(r, start)
}

// finishText is finish for a row whose text is known to be exactly text
// (printable ASCII): the fast path's line written in one run from column
// 0, which saves rendering it back from the cells.
func (s *Screen) finishText(r *row, text []byte) {
	r.dirty = false
	for len(text) > 0 && text[len(text)-1] == ' ' {
		text = text[:len(text)-1]
	}
	start := len(s.batch)
	s.reserve(len(text))
	s.batch = s.batch[:start+len(text)]
	copy(s.batch[start:], text)
	s.commit(r, start)
}

// commit emits batch[start:], the text just rendered for r, unless it is
// empty or what r last emitted.
func (s *Screen) commit(r *row, start int) {
	line := s.batch[start:]
	if len(line) > 0 {
		r.emitted = true
	}
	last := r.last
	if r.inBatch {
		last = s.batch[r.lastStart:r.lastEnd]
	}
	// The conversions in the comparison do not allocate.
	if len(line) == 0 || string(line) == string(last) {
		s.batch = s.batch[:start]
		return
	}
	r.inBatch, r.lastStart, r.lastEnd = true, start, len(s.batch)
	s.addEnd(len(s.batch))
	if len(s.batch) >= batchSize {
		s.deliver()
	}
}

// lineFeed moves the cursor down one row, scrolling the region when it is
// on the bottom margin. On the main screen the row being left is finished;
// on the alternate screen a line feed is only cursor motion (curses uses
// it to move down), so nothing is emitted.
func (s *Screen) lineFeed() {
	if !s.inAlt {
		r := s.cur.row(s.y)
		if r.dirty && r.emitted {
			s.deferred = true
		}
		if s.deferred && s.y == s.bottom {
			s.flushDeferred()
		}
		if !r.emitted {
			s.finish(r)
		}
	}
	s.down()
}

// flushDeferred finishes every row of the main screen, top to bottom; see
// Screen.deferred.
func (s *Screen) flushDeferred() {
	s.deferred = false
	for y := 0; y < s.rows; y++ {
		s.finish(s.cur.row(y))
	}
}

// down is the cursor motion of a line feed.
func (s *Screen) down() {
	s.wrapnext = false
	if s.y == s.bottom {
		s.scrollUp(s.top, s.bottom, 1)
	} else if s.y < s.rows-1 {
		s.y++
	}
}

func (s *Screen) reverseIndex() {
	s.wrapnext = false
	if s.y == s.top {
		s.scrollDown(s.top, s.bottom, 1)
	} else if s.y > 0 {
		s.y--
	}
}

// scrollUp scrolls rows top..bottom up by n: the top n rows leave (and are
// finished, since their text is gone from the screen) and blank rows enter
// at the bottom.
func (s *Screen) scrollUp(top, bottom, n int) {
	if n == 1 && top == 0 && bottom == s.rows-1 {
		// The common case: a line feed at the bottom of the screen.
		r := s.cur.row(0)
		s.finish(r)
		s.cur.rotate()
		r.reset()
		return
	}
	rows := s.cur.ordered()
	if h := bottom - top + 1; n > h {
		n = h
	}
	if n <= 0 {
		return
	}
	for _, r := range rows[top : top+n] {
		s.finish(r)
	}
	seg := rows[top : bottom+1]
	s.tmpRows = append(s.tmpRows[:0], seg[:n]...)
	copy(seg, seg[n:])
	copy(seg[len(seg)-n:], s.tmpRows)
	for _, r := range seg[len(seg)-n:] {
		r.reset()
	}
	clear(s.tmpRows)
}

// scrollDown scrolls rows top..bottom down by n: the bottom n rows are
// pushed out (and finished) and blank rows enter at the top.
func (s *Screen) scrollDown(top, bottom, n int) {
	rows := s.cur.ordered()
	if h := bottom - top + 1; n > h {
		n = h
	}
	if n <= 0 {
		return
	}
	seg := rows[top : bottom+1]
	for _, r := range seg[len(seg)-n:] {
		s.finish(r)
	}
	s.tmpRows = append(s.tmpRows[:0], seg[len(seg)-n:]...)
	copy(seg[n:], seg[:len(seg)-n])
	copy(seg, s.tmpRows)
	for _, r := range seg[:n] {
		r.reset()
	}
	clear(s.tmpRows)
}

// cursorUp is CUU: it stops at the top margin when starting inside the
// scroll region, at the top of the screen otherwise.
func (s *Screen) cursorUp(n int) {
	lim := 0
	if s.y >= s.top {
		lim = s.top
	}
	s.y = max(s.y-n, lim)
	s.wrapnext = false
}

// cursorDown is CUD: it stops at the bottom margin when starting inside
// the scroll region. Moving down is not a line feed and emits nothing.
func (s *Screen) cursorDown(n int) {
	lim := s.rows - 1
	if s.y <= s.bottom {
		lim = s.bottom
	}
	s.y = min(s.y+n, lim)
	s.wrapnext = false
}

func (s *Screen) setX(x int) {
	s.x = clamp(x, 0, s.cols-1)
	s.wrapnext = false
}

// moveTo is CUP with 0-based coordinates, relative to the scroll region in
// origin mode.
func (s *Screen) moveTo(x, y int) {
	if s.origin {
		s.y = clamp(y+s.top, s.top, s.bottom)
	} else {
		s.y = clamp(y, 0, s.rows-1)
	}
	s.setX(x)
}

// eraseDisplay is ED. Rows that are wholly erased are finished first: their
// text disappears from the screen. The cursor row is erased in place like
// EL, because shells (zsh) clear below the prompt with ED 0 on every
// redraw of the line being edited; ED 2 finishes every row, the cursor row
// included. ED 3 only clears xterm's scrollback, which is not modelled.
func (s *Screen) eraseDisplay(mode int) {
	b := s.cur
	s.wrapnext = false
	switch mode {
	case 0:
		s.eraseCells(b.row(s.y), s.x, s.cols)
		for y := s.y + 1; y < s.rows; y++ {
			s.finishClear(b.row(y))
		}
	case 1:
		for y := 0; y < s.y; y++ {
			s.finishClear(b.row(y))
		}
		s.eraseCells(b.row(s.y), 0, s.x+1)
	case 2:
		for y := 0; y < s.rows; y++ {
			s.finishClear(b.row(y))
		}
	}
}

// finishClear is how ED removes a row: what it held is finished, and it
// is a fresh row for the line feed rule afterwards (a cleared screen is
// written line by line again, as after the clear command).
func (s *Screen) finishClear(r *row) {
	s.finish(r)
	r.clear()
	r.emitted = false
}

// eraseLine is EL.
func (s *Screen) eraseLine(mode int) {
	r := s.cur.row(s.y)
	s.wrapnext = false
	switch mode {
	case 0:
		s.eraseCells(r, s.x, s.cols)
	case 1:
		s.eraseCells(r, 0, s.x+1)
	case 2:
		s.eraseCells(r, 0, s.cols)
	}
}

// eraseCells blanks columns [a, b) of r in place. When that leaves a row
// holding unemitted text blank, what happens to the text depends on why
// it is erased (see the package documentation). Erasing does not mark the
// row dirty: it adds no text.
func (s *Screen) eraseCells(r *row, a, b int) {
	a = max(a, 0)
	b = min(b, r.used)
	if a >= b {
		return
	}
	if b == r.used && r.dirty && blank(r.cells[:a]) && !blank(r.cells[a:b]) {
		switch {
		case r.wseq == s.wseq:
			// The row just written is erased: a redraw of the line
			// being edited or of a progress bar.
			r.stash = append(r.stash[:0], r.cells[:b]...)
		case !r.emitted:
			// The cursor came here to erase text that was never
			// emitted: it is gone from the screen now.
			s.finish(r)
		}
		// Otherwise a row that was emitted and then changed is being
		// redrawn (a multi-line progress display): its intermediate
		// state is dropped.
	}
	clear(r.cells[a:b])
	if b == r.used {
		r.used = a
		r.trim()
	}
}

// insertBlanks is ICH: n blanks at the cursor, shifting the rest of the row
// right; what is shifted past the last column is lost.
func (s *Screen) insertBlanks(r *row, n int) {
	x := s.x
	if x >= r.used || n <= 0 {
		return
	}
	n = min(n, s.cols-x)
	copy(r.cells[x+n:], r.cells[x:s.cols-n])
	clear(r.cells[x : x+n])
	r.used = min(r.used+n, s.cols)
	r.trim()
}

// deleteChars is DCH: n characters at the cursor are removed and the rest
// of the row moves left.
func (s *Screen) deleteChars(n int) {
	s.wrapnext = false
	r := s.cur.row(s.y)
	x := s.x
	if x >= r.used || n <= 0 {
		return
	}
	if x+n >= r.used {
		// Everything from the cursor on goes: an erase.
		s.eraseCells(r, x, r.used)
		return
	}
	copy(r.cells[x:], r.cells[x+n:r.used])
	clear(r.cells[r.used-n : r.used])
	r.used -= n
	r.trim()
}

// Resize changes the screen size (clamped as in [New]). Rows are truncated
// or padded, never reflowed; when the screen gets shorter, rows below the
// cursor go first, then rows at the top. Text that a resize removes and
// that was not emitted yet is emitted by the next Write or Flush. The
// scroll region is reset to the whole screen.
func (s *Screen) Resize(cols, rows int) {
	cols, rows = clampSize(cols, rows)
	if cols == s.cols && rows == s.rows {
		return
	}
	y := s.y
	mainY := y
	if s.inAlt {
		mainY = s.main.saved.y
	}
	shift := s.resizeBuffer(s.main, cols, rows, mainY)
	if s.inAlt {
		s.main.saved.y = max(s.main.saved.y-shift, 0)
	} else {
		y -= shift
	}
	if s.alt != nil {
		shift = s.resizeBuffer(s.alt, cols, rows, y)
		if s.inAlt {
			y -= shift
		}
	}
	s.cols, s.rows = cols, rows
	s.x, s.y = clamp(s.x, 0, cols-1), clamp(y, 0, rows-1)
	s.wrapnext = false
	s.top, s.bottom = 0, rows-1
	s.deliver() // into the pending queue
}

// resizeBuffer resizes b's rows to cols x rows, finishing rows that lose
// text, and returns how many rows were removed from the top (cy is the
// cursor row, kept on screen).
func (s *Screen) resizeBuffer(b *buffer, cols, rows, cy int) int {
	lines := b.ordered()
	for _, r := range lines {
		if cols < len(r.cells) {
			if r.used > cols && !blank(r.cells[cols:r.used]) {
				s.finish(r)
			}
			r.cells = r.cells[:cols]
			if r.used > cols {
				r.used = cols
				r.trim()
			}
			if len(r.stash) > cols {
				r.stash = r.stash[:cols]
			}
			continue
		}
		r.widen(cols)
	}
	shift, fromBottom := 0, 0
	if excess := len(lines) - rows; excess > 0 {
		fromBottom = min(excess, max(len(lines)-1-cy, 0))
		shift = excess - fromBottom
		for _, r := range lines[:shift] {
			s.finish(r)
		}
		for _, r := range lines[len(lines)-fromBottom:] {
			s.finish(r)
		}
		// Removed rows are kept for when the screen grows again, so
		// that a client flipping between sizes does not cost an
		// allocation of the whole screen each time.
		b.spare = append(b.spare, lines[:shift]...)
		b.spare = append(b.spare, lines[len(lines)-fromBottom:]...)
	}
	keep := lines[shift : len(lines)-fromBottom]
	b.lines = make([]*row, rows)
	copy(b.lines, keep)
	for i := len(keep); i < rows; i++ {
		if n := len(b.spare); n > 0 {
			r := b.spare[n-1]
			b.spare[n-1] = nil
			b.spare = b.spare[:n-1]
			r.reset()
			r.cells = r.cells[:0]
			r.widen(cols)
			b.lines[i] = r
		} else {
			b.lines[i] = newRow(cols)
		}
	}
	return shift
}

// widen makes r cols wide (cols >= len(r.cells)), with blank new cells.
func (r *row) widen(cols int) {
	old := len(r.cells)
	if cols <= cap(r.cells) {
		r.cells = r.cells[:cols]
	} else {
		c := make([]rune, cols)
		copy(c, r.cells)
		r.cells = c
	}
	clear(r.cells[old:cols])
}
