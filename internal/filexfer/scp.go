package filexfer

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
)

// Limits that bound what an SCP tracker holds.
const (
	// maxSCPLine bounds a control record ("C0644 SIZE NAME"). OpenSSH's
	// sink reads at most 2047 bytes of one; a longer record is not scp.
	maxSCPLine = 8 << 10
	// maxSCPExpect bounds the records awaiting a response. A real source
	// waits for the response to each record, so two is the most seen.
	maxSCPExpect = 64
	// maxSCPDepth bounds the directories entered, and so the path names
	// kept and rebuilt for every record.
	maxSCPDepth = 256
)

// SCP follows a legacy scp exec channel ("scp -t TARGET" = the client
// uploads; "scp -f SOURCE" = the client downloads) and reports one upload
// or download per file. It is safe for concurrent use: the two directions
// may be fed from different goroutines.
//
// The protocol: the side that sends files (the source: the client for -t,
// the target for -f) sends records, each a line: "C0644 SIZE NAME" followed
// by SIZE bytes of data and a "\0" (or "\x01message\n" when it failed to
// read the file), "D0755 0 NAME" to enter a directory and "E" to leave it
// (-r), "T..." for times (-p), and "\x01message\n" for an error of its own.
// The other side (the sink) answers the start and each record, and each
// file's end, with "\0" or "\x01message\n" (or "\x02message\n", fatal).
// A record the sink refuses is not followed by its data or its contents.
type SCP struct {
	mu     sync.Mutex
	report func(Op)

	upload    bool     // -t: the client is the source
	target    string   // -t: where files go
	targetDir bool     // -t: top-level names go inside target
	sources   []string // -f: what the client asked for

	rec    scpRecords   // the source's stream
	resp   scpResponses // the sink's stream
	expect []scpExpect  // records awaiting the sink's response, oldest first
	dirs   []string     // names of the directories entered

	err    error
	closed bool
}

// scpFile is one file being transferred.
type scpFile struct {
	path     string
	size     int64
	moved    int64
	accepted bool   // the sink answered the C record with OK
	srcErr   string // the source's message when it failed to read the file
}

// scpExpect is a record awaiting the sink's response.
type scpExpect struct {
	what byte     // 's' start, 'T', 'C', 'D', 'E', or 'e' for a file's end
	file *scpFile // 'C' and 'e'
	path string   // 'D'
}

// scpRecords is the state of the source's stream.
type scpRecords struct {
	state   byte // 'l' line, 'd' data, 'e' end-of-file marker
	line    []byte
	over    bool     // the line outgrew maxSCPLine; the rest is discarded
	fileErr bool     // the line is the source's error message about file
	file    *scpFile // the file whose data or end is next
}

// scpResponses is the state of the sink's stream.
type scpResponses struct {
	inMsg bool
	msg   []byte
}

// NewSCP returns a tracker for the exec command, or nil if command is not a
// legacy scp server command ("scp [-r] [-p] [-d] -t TARGET" or "scp [-r]
// [-p] -f SOURCE..."). report is called as for [NewSFTP].
//
// Paths are built from the command's path and the names in the records.
// For a download, a top-level file or directory is the SOURCE itself when
// there is one source without glob characters, and SOURCE's directory plus
// the record's name otherwise. For an upload the target side decides
// whether TARGET is a directory to put NAME in or the file to write, by
// looking at its own file system, and nothing in the protocol tells which:
// the tracker takes TARGET as a directory when the client said so (-d,
// which scp sends for several sources; -r) or its spelling does (a trailing
// slash, ".", "..", "~"), and as the file itself otherwise. So "scp FILE
// host:/tmp" is reported as an upload to /tmp, while the file lands at
// /tmp/FILE if /tmp is a directory.
func NewSCP(command string, report func(Op)) *SCP {
	words := shellWords(command)
	if len(words) == 0 || path.Base(words[0]) != "scp" {
		return nil
	}
	flags, args := scpFlags(words[1:])
	if report == nil {
		report = func(Op) {}
	}
	s := &SCP{report: report}
	switch {
	case flags['f'] && len(args) > 0:
		s.sources = args
	case flags['t'] && len(args) > 0:
		t := args[0]
		if t == "" {
			t = "."
		}
		s.upload, s.target = true, t
		b := path.Base(t)
		s.targetDir = flags['d'] || flags['r'] || strings.HasSuffix(t, "/") ||
			b == "." || b == ".." || strings.HasPrefix(t, "~") && !strings.Contains(t, "/")
	default:
		return nil
	}
	s.rec.state = 'l'
	// The sink speaks first: it answers the start of the session.
	s.expect = append(s.expect, scpExpect{what: 's'})
	return s
}

// scpFlags parses scp's options the way its getopt does (no reordering;
// "--" or the first non-option ends them) and returns them with the
// remaining arguments.
func scpFlags(words []string) (map[byte]bool, []string) {
	flags := map[byte]bool{}
	const withArg = "lciPSoFJDX" // options that take an argument
	takesArg := func(c byte) bool { return strings.IndexByte(withArg, c) >= 0 }
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			return flags, words[i+1:]
		}
		if len(w) < 2 || w[0] != '-' {
			return flags, words[i:]
		}
		for j := 1; j < len(w); j++ {
			c := w[j]
			flags[c] = true
			if takesArg(c) {
				if j == len(w)-1 {
					i++ // the argument is the next word
				}
				break
			}
		}
	}
	return flags, nil
}

// shellWords splits a command line the way a POSIX shell would split a
// simple command: blanks separate words, and quotes and backslashes are
// removed. It stops at the first unquoted ; & | or newline, since what
// follows is another command. Expansions ($VAR, globs, ~) are left as
// typed.
func shellWords(cmd string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == ';' || c == '&' || c == '|' || c == '\n':
			if inWord {
				words = append(words, w.String())
			}
			return words
		case c == '\\':
			inWord = true
			if i+1 < len(cmd) {
				i++
				if cmd[i] != '\n' {
					w.WriteByte(cmd[i])
				}
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(cmd[i+1:], '\'')
			if j < 0 {
				j = len(cmd) - i - 1
			}
			w.WriteString(cmd[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(cmd) && cmd[i] != '"'; i++ {
				if cmd[i] == '\\' && i+1 < len(cmd) && strings.IndexByte("\\\"$`\n", cmd[i+1]) >= 0 {
					i++
					if cmd[i] == '\n' {
						continue
					}
				}
				w.WriteByte(cmd[i])
			}
		default:
			inWord = true
			w.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// FromClient observes bytes the client sent, before they are forwarded to
// the target. p is not modified or retained.
func (s *SCP) FromClient(p []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upload {
		s.feedRecords(p)
	} else {
		s.feedResponses(p)
	}
}

// FromServer observes bytes the target sent, before they are forwarded to
// the client. p is not modified or retained.
func (s *SCP) FromServer(p []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upload {
		s.feedResponses(p)
	} else {
		s.feedRecords(p)
	}
}

// Close ends the channel: a file cut off in the middle is reported with the
// bytes that moved and Error "incomplete: N of SIZE bytes", one whose
// record the sink never answered with Error "no response", and one that
// moved whole but whose end the sink never acknowledged as it is. Later
// calls do nothing.
func (s *SCP) Close() {
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
	s.rec.line, s.resp.msg, s.expect, s.dirs = nil, nil, nil, nil
}

// Err tells why the tracker stopped following the channel (input that is
// not the scp protocol), or nil if it did not.
func (s *SCP) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *SCP) kind() string {
	if s.upload {
		return "upload"
	}
	return "download"
}

// fail stops the tracker, reporting first the file whose data was moving,
// as [SFTP] does and for the same reason.
func (s *SCP) fail(err error) {
	s.flush(false)
	s.err = err
	s.rec.line, s.resp.msg, s.expect, s.dirs = nil, nil, nil, nil
}

// flush reports the files still in flight; with unanswered, also those
// whose record the sink has not answered yet.
func (s *SCP) flush(unanswered bool) {
	seen := map[*scpFile]bool{}
	if f := s.rec.file; f != nil && (f.accepted || f.moved > 0) {
		seen[f] = true
		s.reportFile(f, "")
	}
	for _, e := range s.expect {
		if e.file == nil || seen[e.file] {
			continue
		}
		seen[e.file] = true
		switch {
		case e.what == 'e':
			s.reportFile(e.file, "")
		case unanswered:
			s.reportFile(e.file, "no response")
		}
	}
}

func (s *SCP) reportFile(f *scpFile, errMsg string) {
	if errMsg == "" {
		errMsg = f.srcErr
	}
	if errMsg == "" && f.moved < f.size {
		errMsg = fmt.Sprintf("incomplete: %d of %d bytes", f.moved, f.size)
	}
	s.report(Op{Kind: s.kind(), Path: f.path, Bytes: f.moved, Error: errMsg})
}

// path is where the named record lands, inside the directories entered.
func (s *SCP) path(name string) string {
	elems := append(append([]string(nil), s.dirs...), name)
	var root string
	switch {
	case s.upload && s.targetDir:
		root = path.Join(s.target, elems[0])
	case s.upload:
		root = s.target
	case len(s.sources) == 1 && !strings.ContainsAny(s.sources[0], "*?["):
		root = path.Clean(s.sources[0])
	default:
		root = path.Join(path.Dir(path.Clean(s.sources[0])), elems[0])
		for _, src := range s.sources {
			if path.Base(path.Clean(src)) == elems[0] {
				root = path.Clean(src)
				break
			}
		}
	}
	return boundPath([]byte(path.Join(append([]string{root}, elems[1:]...)...)))
}

// feedRecords consumes the source's stream.
func (s *SCP) feedRecords(p []byte) {
	for s.err == nil && !s.closed {
		r := &s.rec
		if r.state == 'd' && r.file.moved == r.file.size {
			r.state = 'e'
		}
		if len(p) == 0 {
			return
		}
		switch r.state {
		case 'd':
			n := min(r.file.size-r.file.moved, int64(len(p)))
			r.file.moved += n
			p = p[n:]
		case 'e':
			switch p[0] {
			case 0:
				s.await(scpExpect{what: 'e', file: r.file})
				r.state, r.file = 'l', nil
			case 1, 2:
				// The source could not read the file; its message ends the
				// file instead of the "\0".
				r.state, r.fileErr = 'l', true
			default:
				s.fail(errors.New("scp: no end marker after file data"))
				return
			}
			p = p[1:]
		default: // 'l'
			i := 0
			for i < len(p) && p[i] != '\n' {
				i++
			}
			if len(r.line)+i > maxSCPLine {
				r.over = true
				r.line = append(r.line, p[:max(0, maxSCPLine-len(r.line))]...)
			} else {
				r.line = append(r.line, p[:i]...)
			}
			if i == len(p) {
				return
			}
			p = p[i+1:]
			line, over := r.line, r.over
			r.line, r.over = r.line[:0], false
			s.record(line, over)
			if cap(r.line) > 1<<10 {
				r.line = nil
			}
		}
	}
}

// record handles one line of the source's stream (without its newline).
func (s *SCP) record(line []byte, over bool) {
	r := &s.rec
	if r.fileErr {
		r.fileErr = false
		r.file.srcErr = message(line)
		s.await(scpExpect{what: 'e', file: r.file})
		r.file = nil
		return
	}
	if len(line) == 0 {
		s.fail(errors.New("scp: empty record"))
		return
	}
	switch line[0] {
	case 1, 2:
		// An error of the source's own, answered by nothing. For a
		// download this is the target refusing (often the requested path
		// itself); for an upload it is the client's local problem.
		if !s.upload {
			p := ""
			if len(s.sources) == 1 {
				p = boundPath([]byte(s.sources[0]))
			}
			s.report(Op{Kind: "download", Path: p, Error: message(line)})
		}
		return
	}
	if over {
		s.fail(errors.New("scp: record too long"))
		return
	}
	switch line[0] {
	case 'T':
		if len(line) < 2 || line[1] < '0' || line[1] > '9' {
			s.fail(errors.New("scp: malformed T record"))
			return
		}
		s.await(scpExpect{what: 'T'})
	case 'E':
		if len(line) != 1 {
			s.fail(errors.New("scp: malformed E record"))
			return
		}
		if len(s.dirs) > 0 {
			s.dirs = s.dirs[:len(s.dirs)-1]
		}
		s.await(scpExpect{what: 'E'})
	case 'C', 'D':
		size, name, ok := parseCD(line)
		if !ok {
			s.fail(fmt.Errorf("scp: malformed %c record", line[0]))
			return
		}
		if line[0] == 'D' {
			if len(s.dirs) >= maxSCPDepth {
				s.fail(errors.New("scp: directories nested too deep"))
				return
			}
			s.await(scpExpect{what: 'D', path: s.path(name)})
			s.dirs = append(s.dirs, name)
			return
		}
		f := &scpFile{path: s.path(name), size: size}
		s.await(scpExpect{what: 'C', file: f})
		// The data follows at once unless the sink refuses the file; its
		// answer comes before any data (see response).
		r.state, r.file = 'd', f
	default:
		s.fail(errors.New("scp: not an scp record"))
	}
}

// parseCD parses "Cmmmm SIZE NAME" or "Dmmmm SIZE NAME" as OpenSSH's sink
// does: four octal digits, a size, and a name that is a single path
// element.
func parseCD(line []byte) (size int64, name string, ok bool) {
	if len(line) < 6 || line[5] != ' ' {
		return 0, "", false
	}
	for _, c := range line[1:5] {
		if c < '0' || c > '7' {
			return 0, "", false
		}
	}
	rest := string(line[6:])
	sp := strings.IndexByte(rest, ' ')
	if sp <= 0 {
		return 0, "", false
	}
	size, err := strconv.ParseInt(rest[:sp], 10, 64)
	if err != nil || size < 0 || rest[0] < '0' || rest[0] > '9' {
		return 0, "", false
	}
	name = rest[sp+1:]
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return 0, "", false
	}
	return size, name, true
}

// await queues a record for the sink's response.
func (s *SCP) await(e scpExpect) {
	if len(s.expect) >= maxSCPExpect {
		s.fail(errors.New("scp: too many records without a response"))
		return
	}
	s.expect = append(s.expect, e)
}

// feedResponses consumes the sink's stream.
func (s *SCP) feedResponses(p []byte) {
	r := &s.resp
	for len(p) > 0 && s.err == nil && !s.closed {
		if !r.inMsg {
			c := p[0]
			p = p[1:]
			if c == 0 {
				s.response(true, "")
				continue
			}
			// OpenSSH's response() takes any other byte as the start of an
			// error message; 1 and 2 are the proper markers.
			r.inMsg, r.msg = true, r.msg[:0]
			if c != 1 && c != 2 {
				r.msg = append(r.msg, c)
			}
			continue
		}
		i := 0
		for i < len(p) && p[i] != '\n' {
			i++
		}
		r.msg = append(r.msg, p[:min(i, max(0, maxStatusMsg-len(r.msg)))]...)
		if i == len(p) {
			return
		}
		p = p[i+1:]
		r.inMsg = false
		s.response(false, message(r.msg))
	}
}

// response matches one answer of the sink to the oldest record awaiting
// one. An answer nothing awaits (OpenSSH's sink sends a late one when it
// cannot set a directory's times) is ignored.
func (s *SCP) response(ok bool, msg string) {
	if len(s.expect) == 0 {
		return
	}
	e := s.expect[0]
	s.expect = s.expect[1:]
	if len(s.expect) == 0 {
		s.expect = nil // let the backing array go
	}
	switch e.what {
	case 's':
		if !ok && s.upload {
			s.report(Op{Kind: "upload", Path: boundPath([]byte(s.target)), Error: msg})
		}
	case 'C':
		if ok {
			e.file.accepted = true
			return
		}
		// Refused: the source sends no data for it. The refusal is seen
		// before any data since the source waits for it.
		if r := &s.rec; r.file == e.file && r.file.moved == 0 {
			r.state, r.file = 'l', nil
		}
		s.report(Op{Kind: s.kind(), Path: e.file.path, Error: msg})
	case 'D':
		if ok {
			return
		}
		// Refused: the source skips the directory's contents and its E.
		if len(s.dirs) > 0 {
			s.dirs = s.dirs[:len(s.dirs)-1]
		}
		s.report(Op{Kind: s.kind(), Path: e.path, Error: msg})
	case 'e':
		s.reportFile(e.file, msg)
	}
}

// message turns an error line into Op.Error: the marker byte is dropped.
func message(b []byte) string {
	if len(b) > 0 && (b[0] == 1 || b[0] == 2) {
		b = b[1:]
	}
	if len(b) > maxStatusMsg {
		b = b[:maxStatusMsg]
	}
	return strings.TrimRight(string(b), "\r\n")
}
