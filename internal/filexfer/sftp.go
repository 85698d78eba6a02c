package filexfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Limits that bound what an SFTP tracker holds, whatever the peers send.
const (
	// maxPacket is the largest packet whose fields are parsed (OpenSSH's
	// sftp-server refuses larger ones too). Larger packets are skipped by
	// their length, except WRITE and DATA, whose few header bytes are read
	// whatever the length because their data is never buffered.
	maxPacket = 256 << 10
	// maxTracked bounds both the requests awaiting a response and the open
	// file handles; the oldest is dropped past it. OpenSSH's sftp client
	// keeps at most 64 requests in flight and sftp-server 100 handles open.
	maxTracked = 1024
	// maxHandle is the longest handle SFTP v3 allows (256 bytes); a longer
	// one cannot be a valid handle and is not tracked.
	maxHandle = 256
	// maxStatusMsg is how much of a STATUS message is kept for Op.Error.
	maxStatusMsg = 1024
)

// SFTP packet types, version 3 (draft-ietf-secsh-filexfer-02 section 3).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpRemove        = 13
	fxpMkdir         = 14
	fxpRmdir         = 15
	fxpRename        = 18
	fxpSymlink       = 20
	fxpStatus        = 101
	fxpHandle        = 102
	fxpData          = 103
	fxpName          = 104
	fxpAttrs         = 105
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// Open flags (pflags) and status codes.
const (
	fxfRead   = 0x01
	fxfWrite  = 0x02
	fxfAppend = 0x04
	fxfCreat  = 0x08
	fxfTrunc  = 0x10

	// writeFlags mark an open that means to put data on the target.
	writeFlags = fxfWrite | fxfAppend | fxfCreat | fxfTrunc

	fxOK  = 0
	fxEOF = 1
)

var statusNames = [...]string{
	"OK", "end of file", "no such file", "permission denied", "failure",
	"bad message", "no connection", "connection lost", "operation unsupported",
}

// fileState is one file the target handed out a handle for.
type fileState struct {
	path    string
	pflags  uint32
	read    int64 // bytes returned by DATA responses
	written int64 // bytes of WRITE requests the target answered OK
	err     string
	seq     uint64 // when it was opened, to report in order at the end
}

func (f *fileState) op() Op {
	o := Op{Path: f.path, Error: f.err}
	switch {
	case f.written > 0:
		o.Kind, o.Bytes = "upload", f.written
	case f.read > 0:
		o.Kind, o.Bytes = "download", f.read
	case f.pflags&writeFlags != 0:
		o.Kind = "upload"
	default:
		o.Kind = "download"
	}
	return o
}

// request is one request awaiting its response.
type request struct {
	typ    byte
	kind   string // Op.Kind for the path operations
	path   string
	path2  string
	pflags uint32     // OPEN
	file   *fileState // CLOSE, READ, WRITE, FSETSTAT
	n      int64      // WRITE: data length
	seq    uint64
}

// SFTP follows one SFTP session (protocol version 3, what OpenSSH speaks)
// and reports its file operations. It is safe for concurrent use: the two
// directions may be fed from different goroutines.
type SFTP struct {
	mu      sync.Mutex
	report  func(Op)
	client  framer // requests
	server  framer // responses
	pending *fifoMap[uint32, *request]
	handles *fifoMap[string, *fileState]
	seq     uint64
	err     error
	closed  bool
}

// NewSFTP returns a tracker that calls report for each file operation, in
// the order they complete. report is called synchronously from FromClient,
// FromServer or Close, never concurrently, with the tracker's lock held: it
// must not call back into the tracker and should be quick, since the
// channel's data waits for it.
func NewSFTP(report func(Op)) *SFTP {
	if report == nil {
		report = func(Op) {}
	}
	return &SFTP{
		report:  report,
		pending: newFIFOMap[uint32, *request](maxTracked),
		handles: newFIFOMap[string, *fileState](maxTracked),
	}
}

// FromClient observes bytes the client sent (requests), before they are
// forwarded to the target. p is not modified or retained.
func (s *SFTP) FromClient(p []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closed {
		return
	}
	if err := s.client.feed(p, s.request); err != nil {
		s.fail(fmt.Errorf("sftp client: %w", err))
	}
}

// FromServer observes bytes the target sent (responses), before they are
// forwarded to the client. p is not modified or retained.
func (s *SFTP) FromServer(p []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closed {
		return
	}
	if err := s.server.feed(p, s.response); err != nil {
		s.fail(fmt.Errorf("sftp server: %w", err))
	}
}

// Close ends the session: files still open are reported as they are, and
// operations still awaiting a response are reported with Error "no
// response". Later calls do nothing.
func (s *SFTP) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.err == nil {
		s.flush(true)
	}
	s.client.buf, s.server.buf = nil, nil
}

// Err tells why the tracker stopped following the session (malformed input
// or an unsupported protocol version), or nil if it did not.
func (s *SFTP) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail stops the tracker. What was already confirmed (files open, bytes
// acknowledged) is reported first, so that input which breaks the parser
// cannot hide a transfer that already happened; nothing parsed from here
// on can be trusted, so nothing more is reported.
func (s *SFTP) fail(err error) {
	s.flush(false)
	s.err = err
	s.client.buf, s.server.buf = nil, nil
}

// flush reports open files, and with unanswered, requests still awaiting a
// response, in the order they began.
func (s *SFTP) flush(unanswered bool) {
	type item struct {
		seq uint64
		op  Op
	}
	var items []item
	for _, f := range s.handles.drain() {
		items = append(items, item{f.seq, f.op()})
	}
	for _, r := range s.pending.drain() {
		switch {
		case r.typ == fxpClose:
			items = append(items, item{r.file.seq, r.file.op()})
		case !unanswered:
		case r.typ == fxpOpen:
			f := fileState{path: r.path, pflags: r.pflags, err: "no response"}
			items = append(items, item{r.seq, f.op()})
		case r.kind != "":
			items = append(items, item{r.seq, Op{Kind: r.kind, Path: r.path, Path2: r.path2, Error: "no response"}})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	for _, it := range items {
		s.report(it.op)
	}
}

func (s *SFTP) next() uint64 {
	s.seq++
	return s.seq
}

// track records a request awaiting its response. A request dropped to make
// room is forgotten, except a CLOSE, whose file is reported as it is.
func (s *SFTP) track(id uint32, r *request) {
	r.seq = s.next()
	if old, ok := s.pending.put(id, r); ok && old.typ == fxpClose {
		s.report(old.file.op())
	}
}

// errMalformed is returned for a packet whose fields do not fit.
var errMalformed = errors.New("malformed packet")

// request parses the buffered prefix b of a client packet whose body is
// total bytes long. See framer.feed for the protocol.
func (s *SFTP) request(b []byte, total int64) (int, error) {
	typ := b[0]
	switch typ {
	case fxpWrite:
		// type, id, handle length; then the handle, offset and data
		// length. The data itself is skipped, never buffered.
		if len(b) == 1 {
			return need(9, total)
		}
		if len(b) == 9 {
			hl := int64(binary.BigEndian.Uint32(b[5:]))
			if hl > maxHandle {
				return 0, nil // not a handle we can be tracking
			}
			return need(int(9+hl+12), total)
		}
		r := reader{b: b[1:]}
		id, h, _, n := r.u32(), r.str(), r.u64(), int64(r.u32())
		if r.bad || int64(len(b))+n > total {
			return 0, errMalformed
		}
		if f, ok := s.handles.get(string(h)); ok {
			s.track(id, &request{typ: typ, file: f, n: n})
		}
		return 0, nil
	case fxpOpen, fxpClose, fxpRead, fxpSetstat, fxpFsetstat, fxpRemove,
		fxpMkdir, fxpRmdir, fxpRename, fxpSymlink, fxpExtended:
		if total > maxPacket {
			return 0, nil
		}
		if int64(len(b)) < total {
			return need(int(total), total)
		}
	default:
		return 0, nil // not a file operation: skip it by its length
	}

	// The whole packet is buffered.
	r := reader{b: b[1:]}
	id := r.u32()
	switch typ {
	case fxpOpen:
		p := r.str()
		pflags := r.u32()
		if r.bad {
			return 0, errMalformed
		}
		s.track(id, &request{typ: typ, path: boundPath(p), pflags: pflags})
	case fxpClose:
		h := r.str()
		if r.bad {
			return 0, errMalformed
		}
		// The handle is forgotten now, not at the response: the target may
		// hand the same handle string out again as soon as it has closed
		// this one.
		if f, ok := s.handles.take(string(h)); ok {
			s.track(id, &request{typ: typ, file: f})
		}
	case fxpRead:
		h := r.str()
		if r.bad {
			return 0, errMalformed
		}
		if f, ok := s.handles.get(string(h)); ok {
			s.track(id, &request{typ: typ, file: f})
		}
	case fxpFsetstat:
		h := r.str()
		if r.bad {
			return 0, errMalformed
		}
		if f, ok := s.handles.get(string(h)); ok {
			s.track(id, &request{typ: typ, kind: "setstat", path: f.path, file: f})
		}
	case fxpSetstat, fxpRemove, fxpMkdir, fxpRmdir:
		p := r.str()
		if r.bad {
			return 0, errMalformed
		}
		s.track(id, &request{typ: typ, kind: pathOpKind(typ), path: boundPath(p)})
	case fxpRename:
		p1, p2 := r.str(), r.str()
		if r.bad {
			return 0, errMalformed
		}
		s.track(id, &request{typ: typ, kind: "rename", path: boundPath(p1), path2: boundPath(p2)})
	case fxpSymlink:
		// OpenSSH sends the link's target first and the link second, the
		// reverse of the draft; every server it talks to follows it.
		target, link := r.str(), r.str()
		if r.bad {
			return 0, errMalformed
		}
		s.track(id, &request{typ: typ, kind: "symlink", path: boundPath(link), path2: boundPath(target)})
	case fxpExtended:
		name := r.str()
		if r.bad {
			return 0, errMalformed
		}
		switch string(name) {
		case "posix-rename@openssh.com":
			p1, p2 := r.str(), r.str()
			if r.bad {
				return 0, errMalformed
			}
			s.track(id, &request{typ: typ, kind: "rename", path: boundPath(p1), path2: boundPath(p2)})
		case "hardlink@openssh.com":
			target, link := r.str(), r.str()
			if r.bad {
				return 0, errMalformed
			}
			s.track(id, &request{typ: typ, kind: "hardlink", path: boundPath(link), path2: boundPath(target)})
		case "lsetstat@openssh.com":
			p := r.str()
			if r.bad {
				return 0, errMalformed
			}
			s.track(id, &request{typ: typ, kind: "setstat", path: boundPath(p)})
		}
	}
	if r.bad {
		return 0, errMalformed
	}
	return 0, nil
}

// response parses the buffered prefix b of a target packet whose body is
// total bytes long.
func (s *SFTP) response(b []byte, total int64) (int, error) {
	typ := b[0]
	switch typ {
	case fxpVersion:
		if len(b) == 1 {
			return need(5, total)
		}
		if v := binary.BigEndian.Uint32(b[1:]); v != 3 {
			return 0, fmt.Errorf("SFTP version %d is not followed (only 3 is)", v)
		}
		return 0, nil
	case fxpStatus:
		// id, code, then as much of the message as is kept.
		if len(b) == 1 {
			if total < 9 {
				return 0, errMalformed
			}
			return int(min(total, 13+maxStatusMsg)), nil
		}
		r := reader{b: b[1:]}
		id, code := r.u32(), r.u32()
		msg := ""
		if ml := r.u32(); !r.bad {
			m := r.b[:min(int(min(ml, maxStatusMsg)), len(r.b))]
			msg = string(m)
		}
		if msg == "" {
			msg = "status " + fmt.Sprint(code)
			if int(code) < len(statusNames) {
				msg = statusNames[code]
			}
		}
		s.status(id, code, msg)
		return 0, nil
	case fxpHandle:
		if total > 9+maxHandle {
			if len(b) == 1 {
				return need(5, total)
			}
			s.pending.take(binary.BigEndian.Uint32(b[1:])) // not a handle we can track
			return 0, nil
		}
		if int64(len(b)) < total {
			return need(int(total), total)
		}
		r := reader{b: b[1:]}
		id, h := r.u32(), r.str()
		if r.bad {
			return 0, errMalformed
		}
		if req, ok := s.pending.take(id); ok && req.typ == fxpOpen {
			f := &fileState{path: req.path, pflags: req.pflags, seq: req.seq}
			if old, ok := s.handles.put(string(h), f); ok {
				// Dropped for room, or a handle the target handed out again
				// without our seeing it closed: report it as it stands.
				s.report(old.op())
			}
		}
		return 0, nil
	case fxpData:
		// id and data length; the data is skipped, never buffered.
		if len(b) == 1 {
			return need(9, total)
		}
		id, n := binary.BigEndian.Uint32(b[1:]), int64(binary.BigEndian.Uint32(b[5:]))
		if 9+n > total {
			return 0, errMalformed
		}
		if req, ok := s.pending.take(id); ok && req.typ == fxpRead {
			req.file.read += n
		}
		return 0, nil
	case fxpName, fxpAttrs, fxpExtendedReply:
		// Answers to requests not tracked; the id is still read so that a
		// tracked request answered this way (a confused target) is not kept
		// waiting forever.
		if len(b) == 1 {
			return need(5, total)
		}
		s.pending.take(binary.BigEndian.Uint32(b[1:]))
		return 0, nil
	}
	return 0, nil
}

// status completes the request id with a STATUS response.
func (s *SFTP) status(id, code uint32, msg string) {
	req, ok := s.pending.take(id)
	if !ok {
		return
	}
	errMsg := ""
	if code != fxOK {
		errMsg = msg
	}
	switch req.typ {
	case fxpOpen:
		// A refused open is still an attempted transfer.
		f := fileState{path: req.path, pflags: req.pflags, err: errMsg}
		if errMsg == "" {
			f.err = "open answered without a handle"
		}
		s.report(f.op())
	case fxpClose:
		if req.file.err == "" {
			req.file.err = errMsg
		}
		s.report(req.file.op())
	case fxpRead:
		if code != fxEOF && req.file.err == "" {
			req.file.err = errMsg
		}
	case fxpWrite:
		if code == fxOK {
			req.file.written += req.n
		} else if req.file.err == "" {
			req.file.err = errMsg
		}
	default:
		if req.kind != "" {
			s.report(Op{Kind: req.kind, Path: req.path, Path2: req.path2, Error: errMsg})
		}
	}
}

func pathOpKind(typ byte) string {
	switch typ {
	case fxpSetstat:
		return "setstat"
	case fxpRemove:
		return "remove"
	case fxpMkdir:
		return "mkdir"
	}
	return "rmdir"
}

// need asks the framer for the first n bytes of a packet, or fails if the
// packet is shorter than that.
func need(n int, total int64) (int, error) {
	if int64(n) > total {
		return 0, errMalformed
	}
	return n, nil
}

// framer splits one direction of an SFTP stream into packets (uint32
// length, then that many bytes of body starting with the type byte). It
// buffers only the prefix of each packet that its parse function asks for
// and skips the rest by counting, so file data is never copied.
type framer struct {
	hdr  [4]byte
	nhdr int   // bytes of the length prefix seen
	left int64 // body bytes of the current packet not yet seen
	size int64 // body length of the current packet
	buf  []byte
	want int // body bytes to buffer before calling parse; 0 when parsed
}

// feed consumes p. parse is called with the buffered prefix of a packet
// once it holds the bytes last asked for (first just the type byte) and
// returns how many it wants next: more than it has to be called again
// with that many, 0 to skip the rest of the packet. It never asks for more
// than the packet holds. A parse error, or a zero-length packet, stops the
// stream.
func (f *framer) feed(p []byte, parse func(b []byte, total int64) (int, error)) error {
	for len(p) > 0 {
		if f.nhdr < 4 {
			n := copy(f.hdr[f.nhdr:], p)
			f.nhdr += n
			p = p[n:]
			if f.nhdr < 4 {
				return nil
			}
			f.size = int64(binary.BigEndian.Uint32(f.hdr[:]))
			if f.size == 0 {
				return errors.New("zero-length packet")
			}
			f.left, f.want = f.size, 1
			f.buf = f.buf[:0]
			continue
		}
		if f.want > len(f.buf) {
			n := min(f.want-len(f.buf), len(p))
			f.buf = append(f.buf, p[:n]...)
			p = p[n:]
			f.left -= int64(n)
			for f.want > 0 && len(f.buf) == f.want {
				w, err := parse(f.buf, f.size)
				if err != nil {
					return err
				}
				if w <= len(f.buf) {
					w = 0
				}
				f.want = w
			}
		} else {
			n := int(min(f.left, int64(len(p))))
			p = p[n:]
			f.left -= int64(n)
		}
		if f.left == 0 {
			f.nhdr = 0
			if cap(f.buf) > 64<<10 {
				f.buf = nil // a rare large packet should not pin its buffer
			}
		}
	}
	return nil
}

// reader reads SFTP fields; a read past the end sets bad and yields zeros.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.bad, r.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.bad, r.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str() []byte {
	n := r.u32()
	if r.bad || uint64(n) > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
