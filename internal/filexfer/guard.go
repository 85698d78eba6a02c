package filexfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"

	"github.com/portcullis/portcullis/internal/pathrule"
)

// Judge is what a guard asks about each operation. Unlike the trackers, a
// guard sits in the data path: it holds a request back until it is decided
// and answers a refused one itself, so the target never sees it.
type Judge struct {
	// Allow decides one access to one path, as the client wrote it (the
	// caller cleans and resolves it). A non-nil error refuses the whole
	// operation; its text is sent to the client.
	Allow func(op string, a pathrule.Access, p string) error
	// Refused is told of every refused operation, for the audit trail:
	// after Allow said no, and for the guard's own reasons (a handle it
	// does not know, an extension it cannot judge). path may be empty.
	Refused func(op, path, reason string)
}

func (j *Judge) allow(op string, a pathrule.Access, p string) error {
	if err := j.Allow(op, a, p); err != nil {
		if j.Refused != nil {
			j.Refused(op, p, err.Error())
		}
		return err
	}
	return nil
}

// allowMeta decides a read of metadata (stat, directory listing, link
// target): allowed where the path may be read or written, so that a
// client can look at a directory it may only upload to.
func (j *Judge) allowMeta(op, p string) error {
	if j.Allow(op, pathrule.Read, p) == nil {
		return nil
	}
	return j.allow(op, pathrule.Write, p)
}

func (j *Judge) refuse(op, p, reason string) error {
	if j.Refused != nil {
		j.Refused(op, p, reason)
	}
	return errors.New(reason)
}

// Bounds of an SFTP guard.
const (
	// maxGuardPacket is the largest request or response a guard passes:
	// OpenSSH's sftp-server and client refuse messages over 256 KiB.
	maxGuardPacket = 256<<10 + 1024
	// maxInjected bounds the refusals waiting for a packet boundary in the
	// target's stream; a client that outruns it is cut off.
	maxInjected = 1024
)

// More SFTP v3 packet types than the tracker needs.
const (
	fxpLstat    = 7
	fxpFstat    = 8
	fxpOpendir  = 11
	fxpReaddir  = 12
	fxpRealpath = 16
	fxpStat     = 17
	fxpReadlink = 19

	fxPermissionDenied = 3
)

// guardHandle is what a guard knows of an open handle: the path it was
// opened with and what the open was allowed to do.
type guardHandle struct {
	path        string
	read, write bool
	dir         bool
}

// SFTPGuard enforces path rules on an SFTP session (protocol version 3)
// by sitting between the client and the target: every request that names
// a path or a handle is decided before it is forwarded, and a refused one
// is answered with SSH_FX_PERMISSION_DENIED for its request id and never
// reaches the target. Requests it cannot judge (unknown types and
// extensions) are refused too.
//
// Requests go through [SFTPGuard.Requests] (client bytes, before the
// tracker and the target), responses through [SFTPGuard.Responses]
// (target bytes, on their way to the client). Refusals are written to the
// client between two of the target's packets, so the client's stream stays
// framed. Memory: one packet of at most 257 KiB while it is decided
// (except WRITE, whose data streams through), 1024 handles and pending
// opens, 1024 queued refusals.
//
// Lock order: wmu (held while writing to the client) before mu.
type SFTPGuard struct {
	judge    Judge
	toTarget io.Writer
	toClient io.Writer

	wmu sync.Mutex
	mu  sync.Mutex
	req guardFramer
	rsp guardFramer

	pending  *fifoMap[uint32, *guardHandle] // OPEN and OPENDIR awaiting a handle
	handles  *fifoMap[string, *guardHandle]
	injected [][]byte // refusals not yet written to the client
	err      error
}

// guardFramer is one direction's position in the packet stream.
type guardFramer struct {
	hdr  [4]byte
	nhdr int
	size int64 // body length of the current packet
	left int64 // body bytes not yet seen
	buf  []byte
	want int  // body bytes to buffer before deciding; 0 once decided
	pass bool // decided: forward the rest of the packet
}

// atBoundary reports whether the stream is between two packets.
func (f *guardFramer) atBoundary() bool { return f.nhdr == 0 }

// NewSFTPGuard returns a guard that forwards allowed requests to toTarget
// and responses and refusals to toClient.
func NewSFTPGuard(j Judge, toTarget, toClient io.Writer) *SFTPGuard {
	return &SFTPGuard{judge: j, toTarget: toTarget, toClient: toClient,
		pending: newFIFOMap[uint32, *guardHandle](maxTracked),
		handles: newFIFOMap[string, *guardHandle](maxTracked)}
}

// Requests returns the writer for the client's bytes.
func (g *SFTPGuard) Requests() io.Writer { return guardWriter(g.fromClient) }

// Responses returns the writer for the target's bytes.
func (g *SFTPGuard) Responses() io.Writer { return guardWriter(g.fromTarget) }

// Err says why the guard stopped the session, or nil.
func (g *SFTPGuard) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

type guardWriter func([]byte) (int, error)

func (w guardWriter) Write(p []byte) (int, error) { return w(p) }

func (g *SFTPGuard) fail(err error) error {
	if g.err == nil {
		g.err = err
	}
	return g.err
}

// fromClient decides requests and forwards the allowed ones. It does not
// hold the lock while writing to the target, so responses keep flowing
// while the target's window is full.
func (g *SFTPGuard) fromClient(p []byte) (int, error) {
	n := len(p)
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return 0, g.err
	}
	out, err := g.walk(&g.req, p, g.request)
	if err != nil {
		err = g.fail(fmt.Errorf("sftp client: %w", err))
	}
	g.mu.Unlock()
	for _, b := range out {
		if _, werr := g.toTarget.Write(b); werr != nil {
			return 0, werr
		}
	}
	g.flush()
	if err != nil {
		return 0, err
	}
	return n, nil
}

// fromTarget forwards responses, noting handles, and writes queued
// refusals at packet boundaries.
func (g *SFTPGuard) fromTarget(p []byte) (int, error) {
	n := len(p)
	g.wmu.Lock()
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		g.wmu.Unlock()
		return 0, g.err
	}
	var out [][]byte
	var err error
	for len(p) > 0 && err == nil {
		if g.rsp.atBoundary() {
			out = append(out, g.injected...)
			g.injected = nil
		}
		var seg [][]byte
		var used int
		seg, used, err = g.walkOne(&g.rsp, p, g.response)
		out = append(out, seg...)
		p = p[used:]
	}
	if err == nil && g.rsp.atBoundary() {
		out = append(out, g.injected...)
		g.injected = nil
	}
	if err != nil {
		err = g.fail(fmt.Errorf("sftp server: %w", err))
	}
	g.mu.Unlock()
	var werr error
	for _, b := range out {
		if _, werr = g.toClient.Write(b); werr != nil {
			break
		}
	}
	g.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr
	}
	g.flush()
	return n, nil
}

// flush writes queued refusals to the client when the target's stream is
// between packets and nobody else is writing to the client; whoever holds
// wmu flushes after it (fromTarget calls flush once it lets go).
func (g *SFTPGuard) flush() {
	for {
		if !g.wmu.TryLock() {
			return
		}
		g.mu.Lock()
		var out [][]byte
		if g.rsp.atBoundary() {
			out, g.injected = g.injected, nil
		}
		g.mu.Unlock()
		for _, b := range out {
			if _, err := g.toClient.Write(b); err != nil {
				break
			}
		}
		g.wmu.Unlock()
		if len(out) == 0 {
			return
		}
	}
}

// walk runs walkOne over all of p.
func (g *SFTPGuard) walk(f *guardFramer, p []byte, decide func([]byte, int64) (int, bool, error)) ([][]byte, error) {
	var out [][]byte
	for len(p) > 0 {
		seg, used, err := g.walkOne(f, p, decide)
		out = append(out, seg...)
		if err != nil {
			return out, err
		}
		p = p[used:]
	}
	return out, nil
}

// walkOne consumes p up to the end of the current packet and returns the
// bytes to forward. decide is called with the buffered prefix of a packet
// and returns how many bytes it wants (more than it has: call again), or
// whether to forward the packet. Forwarded bytes of p are not copied.
func (g *SFTPGuard) walkOne(f *guardFramer, p []byte, decide func([]byte, int64) (int, bool, error)) ([][]byte, int, error) {
	var out [][]byte
	used := 0
	for used < len(p) {
		if f.nhdr < 4 {
			n := copy(f.hdr[f.nhdr:], p[used:])
			f.nhdr += n
			used += n
			if f.nhdr < 4 {
				return out, used, nil
			}
			f.size = int64(binary.BigEndian.Uint32(f.hdr[:]))
			if f.size == 0 || f.size > maxGuardPacket {
				return out, used, fmt.Errorf("packet of %d bytes", f.size)
			}
			f.left, f.want, f.buf = f.size, 1, f.buf[:0]
			continue
		}
		if f.want > 0 {
			n := min(f.want-len(f.buf), len(p)-used)
			f.buf = append(f.buf, p[used:used+n]...)
			used += n
			f.left -= int64(n)
			if len(f.buf) < f.want {
				return out, used, nil
			}
			w, pass, err := decide(f.buf, f.size)
			if err != nil {
				return out, used, err
			}
			if w > len(f.buf) {
				if int64(w) > f.size {
					return out, used, errMalformed
				}
				f.want = w
				continue
			}
			f.want, f.pass = 0, pass
			if pass {
				b := make([]byte, 0, 4+len(f.buf))
				b = append(append(b, f.hdr[:]...), f.buf...)
				out = append(out, b)
			}
		} else {
			n := int(min(f.left, int64(len(p)-used)))
			if f.pass {
				out = append(out, p[used:used+n])
			}
			used += n
			f.left -= int64(n)
		}
		if f.left == 0 && f.want == 0 {
			f.nhdr = 0
			if cap(f.buf) > 64<<10 {
				f.buf = nil
			}
			return out, used, nil
		}
	}
	return out, used, nil
}

// deny queues a PERMISSION_DENIED status for request id.
func (g *SFTPGuard) deny(id uint32, reason string) error {
	if len(g.injected) >= maxInjected {
		return errors.New("too many refused requests waiting for the target's stream")
	}
	if len(reason) > maxStatusMsg {
		reason = reason[:maxStatusMsg]
	}
	body := 1 + 4 + 4 + 4 + len(reason) + 4
	b := make([]byte, 0, 4+body)
	b = binary.BigEndian.AppendUint32(b, uint32(body))
	b = append(b, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, fxPermissionDenied)
	b = binary.BigEndian.AppendUint32(b, uint32(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint32(b, 0) // language tag
	g.injected = append(g.injected, b)
	return nil
}

// request decides one client packet: see walkOne.
func (g *SFTPGuard) request(b []byte, total int64) (int, bool, error) {
	typ := b[0]
	if typ == fxpInit {
		return 0, true, nil
	}
	if typ == fxpWrite {
		// type, id, handle length, handle: the data streams through.
		if len(b) == 1 {
			return 9, false, nil
		}
		if len(b) == 9 {
			hl := int(binary.BigEndian.Uint32(b[5:]))
			if hl > maxHandle || int64(9+hl) > total {
				return 0, false, errMalformed
			}
			if hl > 0 {
				return 9 + hl, false, nil
			}
		}
	} else if int64(len(b)) < total {
		if total < 5 {
			return 0, false, errMalformed
		}
		return int(total), false, nil
	}
	r := reader{b: b[1:]}
	id := r.u32()
	if r.bad {
		return 0, false, errMalformed
	}
	err := g.decideRequest(typ, id, &r)
	if errors.Is(err, errMalformed) {
		return 0, false, err
	}
	if err != nil {
		return 0, false, g.deny(id, err.Error())
	}
	return 0, true, nil
}

// text reads a string field; a packet too short for it is errMalformed.
func (r *reader) text() (string, error) {
	s := r.str()
	if r.bad {
		return "", errMalformed
	}
	return string(s), nil
}

// handleArg reads a handle field and returns the handle it names; an
// unknown handle is refused for op.
func (g *SFTPGuard) handleArg(r *reader, op string) (*guardHandle, error) {
	h, err := r.text()
	if err != nil {
		return nil, err
	}
	gh, ok := g.handles.get(h)
	if !ok {
		return nil, g.judge.refuse(op, "", "unknown handle")
	}
	return gh, nil
}

// twoWrites reads two path fields (rename, link) and allows the request
// only if both are writable for op.
func (g *SFTPGuard) twoWrites(r *reader, op string) error {
	p1, err := r.text()
	if err != nil {
		return err
	}
	p2, err := r.text()
	if err != nil {
		return err
	}
	if err := g.judge.allow(op, pathrule.Write, p1); err != nil {
		return err
	}
	return g.judge.allow(op, pathrule.Write, p2)
}

// decideRequest returns nil to forward the request, errMalformed for a
// packet that does not parse, or the reason to refuse it.
func (g *SFTPGuard) decideRequest(typ byte, id uint32, r *reader) error {
	j := &g.judge
	str := r.text
	handle := func(op string) (*guardHandle, error) { return g.handleArg(r, op) }
	onePath := func(op string, a pathrule.Access) error {
		p, err := str()
		if err != nil {
			return err
		}
		return j.allow(op, a, p)
	}
	twoPaths := func(op string) error { return g.twoWrites(r, op) }
	if typ == fxpOpen || typ == fxpOpendir {
		// The handle is matched to its open by id: a second open with
		// the id of one still pending could give one open's handle the
		// other's path and mode.
		if _, dup := g.pending.get(id); dup {
			return j.refuse("open", "", "request id already in use")
		}
	}
	switch typ {
	case fxpOpen:
		p, err := str()
		if err != nil {
			return err
		}
		pflags := r.u32()
		if r.bad {
			return errMalformed
		}
		// sftp-server opens O_RDONLY unless WRITE is set, so an open
		// without READ still reads (and with CREAT alone, creates).
		readable := pflags&fxfRead != 0 || pflags&fxfWrite == 0
		writes := pflags&writeFlags != 0
		if readable {
			if err := j.allow("open", pathrule.Read, p); err != nil {
				return err
			}
		}
		if writes {
			if err := j.allow("open", pathrule.Write, p); err != nil {
				return err
			}
		}
		g.pending.put(id, &guardHandle{path: p, read: readable, write: pflags&fxfWrite != 0})
	case fxpOpendir:
		p, err := str()
		if err != nil {
			return err
		}
		if err := j.allowMeta("opendir", p); err != nil {
			return err
		}
		g.pending.put(id, &guardHandle{path: p, read: true, dir: true})
	case fxpClose:
		h, err := str()
		if err != nil {
			return err
		}
		// Forgotten now: the target may hand the same string out again.
		g.handles.take(h)
	case fxpRead:
		gh, err := handle("read")
		if err != nil {
			return err
		}
		if !gh.read || gh.dir {
			return j.refuse("read", gh.path, "the handle was not opened for reading")
		}
	case fxpWrite:
		gh, err := handle("write")
		if err != nil {
			return err
		}
		if !gh.write || gh.dir {
			return j.refuse("write", gh.path, "the handle was not opened for writing")
		}
	case fxpReaddir:
		gh, err := handle("readdir")
		if err != nil {
			return err
		}
		if !gh.dir {
			return j.refuse("readdir", gh.path, "the handle is not a directory")
		}
	case fxpFstat:
		_, err := handle("fstat")
		return err
	case fxpFsetstat:
		gh, err := handle("setstat")
		if err != nil {
			return err
		}
		// fchmod works on a handle opened for reading: judged as a write.
		return j.allow("setstat", pathrule.Write, gh.path)
	case fxpLstat, fxpStat, fxpReadlink:
		p, err := str()
		if err != nil {
			return err
		}
		op := "stat"
		if typ == fxpReadlink {
			op = "readlink"
		}
		return j.allowMeta(op, p)
	case fxpRealpath:
		// Canonical names only; clients need it for their working
		// directory, and it reads no file.
		_, err := str()
		return err
	case fxpSetstat:
		return onePath("setstat", pathrule.Write)
	case fxpRemove:
		return onePath("remove", pathrule.Write)
	case fxpMkdir:
		return onePath("mkdir", pathrule.Write)
	case fxpRmdir:
		return onePath("rmdir", pathrule.Write)
	case fxpRename:
		return twoPaths("rename")
	case fxpSymlink:
		// OpenSSH sends the link's target first and the link second, the
		// reverse of the draft. Both ends are writes: the link is created,
		// and whatever is later written through it lands on the target. A
		// relative target is relative to the link's directory.
		target, err := str()
		if err != nil {
			return err
		}
		link, err := str()
		if err != nil {
			return err
		}
		if err := j.allow("symlink", pathrule.Write, link); err != nil {
			return err
		}
		if !path.IsAbs(target) {
			target = path.Dir(link) + "/" + target
		}
		return j.allow("symlink", pathrule.Write, target)
	case fxpExtended:
		return g.decideExtended(id, r)
	default:
		return j.refuse(fmt.Sprintf("type %d", typ), "", fmt.Sprintf("SFTP request type %d is not allowed through the gateway", typ))
	}
	return nil
}

// decideExtended decides the OpenSSH extensions; others are refused,
// since what they do to which file is unknown.
func (g *SFTPGuard) decideExtended(_ uint32, r *reader) error {
	j := &g.judge
	name := r.str()
	if r.bad {
		return errMalformed
	}
	str := r.text
	handle := func(op string) (*guardHandle, error) { return g.handleArg(r, op) }
	switch string(name) {
	case "posix-rename@openssh.com", "hardlink@openssh.com":
		// Both names of a hard link are writes: writing the new one writes
		// the old one's file.
		op := "rename"
		if string(name) == "hardlink@openssh.com" {
			op = "hardlink"
		}
		return g.twoWrites(r, op)
	case "lsetstat@openssh.com":
		p, err := str()
		if err != nil {
			return err
		}
		return j.allow("setstat", pathrule.Write, p)
	case "statvfs@openssh.com":
		p, err := str()
		if err != nil {
			return err
		}
		return j.allowMeta("statvfs", p)
	case "fstatvfs@openssh.com", "fsync@openssh.com":
		_, err := handle(string(name))
		return err
	case "copy-data":
		src, err := handle("copy-data")
		if err != nil {
			return err
		}
		r.u64() // offset
		r.u64() // length
		dst, err := handle("copy-data")
		if err != nil {
			return err
		}
		if !src.read || src.dir {
			return j.refuse("copy-data", src.path, "the source handle was not opened for reading")
		}
		if !dst.write || dst.dir {
			return j.refuse("copy-data", dst.path, "the destination handle was not opened for writing")
		}
	case "limits@openssh.com", "expand-path@openssh.com", "home-directory", "users-groups-by-id@openssh.com":
		// Name lookups: no file is read or changed.
	default:
		return j.refuse(string(name), "", fmt.Sprintf("SFTP extension %q is not allowed through the gateway", name))
	}
	return nil
}

// response notes handles and checks the version; every response is
// forwarded.
func (g *SFTPGuard) response(b []byte, total int64) (int, bool, error) {
	typ := b[0]
	switch {
	case typ == fxpHandle && total <= 9+maxHandle && int64(len(b)) < total:
		return int(total), false, nil
	case (typ == fxpVersion || typ >= fxpStatus) && len(b) < 5:
		if total < 5 {
			return 0, false, errMalformed
		}
		return 5, false, nil
	}
	switch typ {
	case fxpVersion:
		if v := binary.BigEndian.Uint32(b[1:]); v != 3 {
			return 0, false, fmt.Errorf("SFTP version %d cannot be judged (only 3 can)", v)
		}
	case fxpHandle:
		r := reader{b: b[1:]}
		id := r.u32()
		req, ok := g.pending.take(id)
		if h := r.str(); ok && !r.bad && len(b) == int(total) {
			// A handle handed out again replaces the old one: the open
			// that got it decides what it may do.
			g.handles.put(string(h), req)
		}
	default:
		if typ >= fxpStatus {
			g.pending.take(binary.BigEndian.Uint32(b[1:]))
		}
	}
	return 0, true, nil
}
