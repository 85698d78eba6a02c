package recording

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// MaxLineSize bounds one line of an asciicast file for [Reader]. The
// recorder writes at most 64 KiB of output per event (at most 384 KiB
// escaped); other asciicast writers stay far below this too.
const MaxLineSize = 4 << 20

// maxEventData is the most output one event carries: larger writes are
// split into several events at the same time, so lines stay bounded.
const maxEventData = 64 << 10

// Header is the first line of an asciicast v2 file.
type Header struct {
	Version   int
	Width     int
	Height    int
	Timestamp int64 // Unix seconds of the start; 0 if absent
	Title     string
	Env       map[string]string
	// Portcullis is the gateway's metadata: session, user, target,
	// account, source, action and command. Nil for files recorded
	// elsewhere.
	Portcullis map[string]string
}

// Event is one line after the header: Time in seconds from the start, Type
// "o" (output), "i" (input), "r" (resize, Data "COLSxROWS") or "m" (marker),
// and Data.
type Event struct {
	Time float64
	Type string
	Data string
}

// headerJSON is the header as written. Field order is the order in the file.
type headerJSON struct {
	Version    int               `json:"version"`
	Width      int               `json:"width"`
	Height     int               `json:"height"`
	Timestamp  int64             `json:"timestamp,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Title      string            `json:"title,omitempty"`
	Portcullis *metaJSON         `json:"portcullis,omitempty"`
}

// metaJSON is our metadata in the header, under "portcullis" (players
// ignore keys they do not know).
type metaJSON struct {
	Session string `json:"session"`
	User    string `json:"user"`
	Target  string `json:"target"`
	Account string `json:"account"`
	Source  string `json:"source,omitempty"`
	Action  string `json:"action,omitempty"`
	Command string `json:"command,omitempty"`
	// Kind is KindFileTransfer for a recording of file operations; absent
	// for a terminal.
	Kind string `json:"kind,omitempty"`
	// Protocol and Kubernetes: see Meta.
	Protocol   string    `json:"protocol,omitempty"`
	Kubernetes *KubeMeta `json:"kubernetes,omitempty"`
}

// encodeHeader returns the header line (with its newline) of a recording.
func encodeHeader(meta Meta, timestamp int64) ([]byte, error) {
	h := headerJSON{
		Version:   2,
		Width:     meta.Width,
		Height:    meta.Height,
		Timestamp: timestamp,
		Title:     title(meta),
		Portcullis: &metaJSON{
			Session: meta.ID, User: meta.User, Target: meta.Target, Account: meta.Account,
			Source: meta.Source, Action: meta.Action, Command: meta.Command,
			Protocol: meta.Protocol, Kubernetes: meta.Kube,
		},
	}
	if Kind(meta.Action) == KindFileTransfer {
		h.Portcullis.Kind = KindFileTransfer
	}
	if meta.Term != "" {
		h.Env = map[string]string{"TERM": meta.Term}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode asciicast header: %w", err)
	}
	return append(b, '\n'), nil
}

// title is what players show: the login string the user typed, and the
// command of an exec session.
func title(meta Meta) string {
	t := meta.User + "~" + meta.Account + "~" + meta.Target
	if meta.Command != "" {
		t += " $ " + meta.Command
	}
	return t
}

// Reader reads an asciicast v2 file: the header, then one event at a time.
type Reader struct {
	br     *bufio.Reader
	line   int // number of the last line read
	header Header
	err    error // sticky: once malformed or failed, always
	buf    []byte
	off    int64 // bytes of the file read as whole lines so far
}

// NewReader reads and checks the header line. It fails on anything but a
// version 2 header with a positive width and height.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	line, err := rd.readLine()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("asciicast: empty file, no header")
		}
		return nil, err
	}
	var h struct {
		Version    *int              `json:"version"`
		Width      int               `json:"width"`
		Height     int               `json:"height"`
		Timestamp  float64           `json:"timestamp"`
		Title      string            `json:"title"`
		Env        map[string]string `json:"env"`
		Portcullis map[string]any    `json:"portcullis"`
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("asciicast line 1: header is not a JSON object: %w", err)
	}
	if h.Version == nil {
		return nil, errors.New("asciicast line 1: header has no version")
	}
	if *h.Version != 2 {
		return nil, fmt.Errorf("asciicast line 1: version %d, only version 2 is supported", *h.Version)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return nil, fmt.Errorf("asciicast line 1: bad terminal size %dx%d", h.Width, h.Height)
	}
	rd.header = Header{
		Version: 2, Width: h.Width, Height: h.Height, Timestamp: int64(h.Timestamp),
		Title: h.Title, Env: h.Env,
	}
	if h.Portcullis != nil {
		// Strings only; anything else a future writer adds is shown as JSON.
		rd.header.Portcullis = make(map[string]string, len(h.Portcullis))
		for k, v := range h.Portcullis {
			if s, ok := v.(string); ok {
				rd.header.Portcullis[k] = s
			} else if b, err := json.Marshal(v); err == nil {
				rd.header.Portcullis[k] = string(b)
			}
		}
	}
	return rd, nil
}

// Header returns the header read by NewReader.
func (r *Reader) Header() Header { return r.header }

// Next returns the next event, io.EOF after the last. Blank lines are
// skipped. A malformed line is an error naming its line number, and every
// later call returns the same error.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = err
			return Event{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := parseEvent(line)
		if err != nil {
			r.err = fmt.Errorf("asciicast line %d: %w", r.line, err)
			return Event{}, r.err
		}
		return ev, nil
	}
}

// readLine returns the next line without its newline, or io.EOF. A last
// line without a newline is returned as a line. The returned slice is valid
// until the next call.
func (r *Reader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(frag) > MaxLineSize {
			return nil, fmt.Errorf("asciicast line %d: longer than %d bytes", r.line+1, MaxLineSize)
		}
		r.buf = append(r.buf, frag...)
		switch err {
		case nil:
			r.line++
			r.off += int64(len(r.buf))
			return bytes.TrimSuffix(r.buf[:len(r.buf)-1], []byte("\r")), nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			r.line++
			r.off += int64(len(r.buf))
			return r.buf, nil
		default:
			return nil, fmt.Errorf("asciicast: read line %d: %w", r.line+1, err)
		}
	}
}

// parseEvent decodes [time, "type", "data"].
func parseEvent(line []byte) (Event, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, fmt.Errorf("event is not a JSON array: %w", err)
	}
	if len(parts) != 3 {
		return Event{}, fmt.Errorf("event has %d elements, want 3", len(parts))
	}
	var ev Event
	if err := json.Unmarshal(parts[0], &ev.Time); err != nil {
		return Event{}, errors.New("event time is not a number")
	}
	if math.IsNaN(ev.Time) || math.IsInf(ev.Time, 0) || ev.Time < 0 {
		return Event{}, fmt.Errorf("event time %v is out of range", ev.Time)
	}
	if err := json.Unmarshal(parts[1], &ev.Type); err != nil {
		return Event{}, errors.New("event type is not a string")
	}
	if ev.Type == "" || strings.ContainsFunc(ev.Type, func(r rune) bool { return r < 0x20 }) {
		return Event{}, fmt.Errorf("bad event type %q", ev.Type)
	}
	if err := json.Unmarshal(parts[2], &ev.Data); err != nil {
		return Event{}, errors.New("event data is not a string")
	}
	return ev, nil
}
