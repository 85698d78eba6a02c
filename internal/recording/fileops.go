package recording

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Kinds of recording, from the session's action: what a viewer does with
// one.
const (
	// KindTerminal: output to a terminal, played back as it appeared.
	KindTerminal = "terminal"
	// KindFileTransfer: an sftp, scp or rsync channel, recorded as the
	// file operations seen in it, one "o" event each, never its bytes.
	KindFileTransfer = "file-transfer"
)

// actionFileTransfer is resource.ActionFileTransfer (the recording package
// takes actions as strings and does not depend on the resource model).
const actionFileTransfer = "file-transfer"

// Kind returns the kind of recording a session with this action gets.
func Kind(action string) string {
	if action == actionFileTransfer {
		return KindFileTransfer
	}
	return KindTerminal
}

// FileOp is one file operation of a transfer, as recorded: a JSON object
// per "o" event (then a CRLF, so that `asciinema cat` shows one per line).
// The recording holds the operation, never the data it moved.
type FileOp struct {
	Op    string `json:"op"` // upload, download, remove, rename, mkdir, rmdir, setstat, symlink, hardlink
	Path  string `json:"path"`
	Path2 string `json:"path2,omitempty"` // the new name of a rename, a link's target
	Bytes int64  `json:"bytes,omitempty"` // file data moved, for upload and download
	Error string `json:"error,omitempty"` // the target's refusal, or why the outcome is unknown
}

// FileOp records a file operation of a file-transfer recording as one
// event. It does nothing for a terminal recording. Like Output, it only
// copies into a buffer.
func (r *Recorder) FileOp(op FileOp) {
	if r == nil || !r.fileOps {
		return
	}
	r.add('o', encodeFileOp(op))
}

// encodeFileOp returns op as a JSON line ending in CRLF. Paths come from
// the client byte for byte: every control or non-graphic character
// (C1 controls included, which JSON leaves as they are) is escaped, so
// that no player's terminal interprets a path.
func encodeFileOp(op FileOp) []byte {
	b, err := json.Marshal(op)
	if err != nil { // strings and an int64 always marshal
		b = []byte(`{"op":"unknown"}`)
	}
	var out []byte
	for _, c := range string(b) {
		if c < 0x80 || (unicode.IsGraphic(c) && c != '\u2028' && c != '\u2029') {
			out = append(out, string(c)...)
			continue
		}
		if c > 0xFFFF {
			r1, r2 := utf16Pair(c)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			continue
		}
		out = fmt.Appendf(out, `\u%04x`, c)
	}
	return append(out, '\r', '\n')
}

// utf16Pair splits a rune beyond the BMP into its JSON surrogate pair.
func utf16Pair(c rune) (rune, rune) {
	c -= 0x10000
	return 0xD800 + (c>>10)&0x3FF, 0xDC00 + c&0x3FF
}

// ParseFileOp reads one event of a file-transfer recording. It fails on
// anything else (a terminal recording's output, a gateway marker).
func ParseFileOp(data string) (FileOp, error) {
	var op FileOp
	dec := json.NewDecoder(strings.NewReader(strings.TrimRight(data, "\r\n")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&op); err != nil {
		return FileOp{}, fmt.Errorf("not a file operation: %w", err)
	}
	if op.Op == "" {
		return FileOp{}, errors.New("not a file operation: no op")
	}
	return op, nil
}

// IsFileTransfer says whether a recording's header marks it as file
// operations. Recordings of transfers made before file operations were
// recorded hold the raw channel and are not.
func (h Header) IsFileTransfer() bool {
	return h.Portcullis["kind"] == KindFileTransfer
}

// playOps prints a file-transfer recording as lines "TIME OP PATH [->
// PATH2] [N bytes] [error: ...]", at once: there is no terminal to replay.
// Events that are not operations (a gateway marker) are printed quoted.
func playOps(ctx context.Context, rd *Reader, w io.Writer) error {
	bw := bufio.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return flushPlay(bw)
		}
		if err != nil {
			_ = bw.Flush()
			return fmt.Errorf("play: %w", err)
		}
		if ev.Type != "o" {
			continue
		}
		if _, err := bw.WriteString(FormatFileOp(ev.Time, ev.Data)); err != nil {
			return fmt.Errorf("play: %w", err)
		}
	}
}

// FormatFileOp returns one line (ending in "\n") for an event of a
// file-transfer recording at t seconds. Paths are quoted when they hold
// spaces or characters a terminal would interpret.
func FormatFileOp(t float64, data string) string {
	var b strings.Builder
	b.WriteString(strconv.FormatFloat(t, 'f', 3, 64))
	b.WriteString("s  ")
	op, err := ParseFileOp(data)
	if err != nil {
		b.WriteString(strconv.QuoteToGraphic(strings.TrimRight(data, "\r\n")))
		b.WriteByte('\n')
		return b.String()
	}
	b.WriteString(showText(op.Op))
	b.WriteString("  ")
	b.WriteString(showText(op.Path))
	if op.Path2 != "" {
		b.WriteString(" -> ")
		b.WriteString(showText(op.Path2))
	}
	if op.Op == "upload" || op.Op == "download" {
		fmt.Fprintf(&b, "  %d bytes", op.Bytes)
	}
	if op.Error != "" {
		b.WriteString("  error: ")
		b.WriteString(showText(op.Error))
	}
	b.WriteByte('\n')
	return b.String()
}

// showText returns s as is when it is plain printable text without
// spaces, and Go-quoted otherwise.
func showText(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(c rune) bool { return c == ' ' || c == '"' || !unicode.IsGraphic(c) || c == '\uFFFD' }) {
		return s
	}
	return strconv.QuoteToGraphic(s)
}
