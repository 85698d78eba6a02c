package store

import (
	"math"
	"strconv"
	"strings"
)

// A chunk of indexed text holds up to a screenful of lines that appeared at
// different times, but is stored with one offset, its first line's. So
// that a hit is reported where the matched word appeared and not where its
// chunk began (a word typed at 11 s reported at 6.3 s), each chunk also
// keeps when its later lines appeared: a few bytes per chunk, and nothing
// for a chunk whose lines all came at once (a command's output). Lines, not
// byte offsets, because text goes through CleanText, which may change its
// length but never its line breaks.

// LineTime says that line Line (0-based) of a chunk appeared at Offset
// seconds from the recording's start.
type LineTime struct {
	Line   int
	Offset float64
}

// maxTimes bounds how many entries HitOffset reads: a chunk has at most a
// few dozen lines; anything longer came from somewhere else.
const maxTimes = 4096

// EncodeLineTimes encodes when the lines of a chunk starting at base
// appeared, for TextChunk.Times: "DL:DMS,..." where DL is the number of
// lines since the previous entry and DMS the milliseconds since its time
// (the first entry counts from line 0 at base). Entries must be in line
// order; those that would not change the time are left out.
func EncodeLineTimes(base float64, times []LineTime) string {
	var b []byte
	prevLine, prevMs := 0, int64(math.Round(base*1000))
	for _, t := range times {
		ms := int64(math.Round(t.Offset * 1000))
		if t.Line <= prevLine || ms == prevMs {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(t.Line-prevLine), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, ms-prevMs, 10)
		prevLine, prevMs = t.Line, ms
	}
	return string(b)
}

// HitOffset returns when line (0-based) of a chunk starting at base
// appeared, from the chunk's times (EncodeLineTimes). Times that do not
// parse, or a line before 0, give base: the chunk's start is never wrong,
// only early.
func HitOffset(base float64, times string, line int) float64 {
	if times == "" || line <= 0 {
		return base
	}
	ms, atLine := int64(math.Round(base*1000)), 0
	found := ms
	for i, e := range strings.SplitN(times, ",", maxTimes+1) {
		if i == maxTimes {
			return base
		}
		dl, dms, ok := strings.Cut(e, ":")
		l, err1 := strconv.Atoi(dl)
		d, err2 := strconv.ParseInt(dms, 10, 64)
		if !ok || err1 != nil || err2 != nil || l <= 0 || l > maxTimes || d > math.MaxInt64/4 || d < math.MinInt64/4 {
			return base
		}
		atLine += l
		ms += d
		if ms > 1<<52 || ms < -(1<<52) {
			return base
		}
		if atLine > line {
			break
		}
		found = ms
	}
	return float64(found) / 1000
}

// MatchLine returns the line (0-based) of marked, a chunk's text as the
// index returned it with mark inserted before every match, where the first
// match is; 0 when there is none.
func MatchLine(marked, mark string) int {
	i := strings.Index(marked, mark)
	if i < 0 {
		return 0
	}
	return strings.Count(marked[:i], "\n")
}
