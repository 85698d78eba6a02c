package pgproxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Codes of the packets a client may send before its startup message, and
// the protocol versions the gateway speaks (3.0, and 3.2 of PostgreSQL 18
// with its longer cancel keys).
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocol30        = 3 << 16
	protocol32        = 3<<16 | 2
)

// maxStartupLen is PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a startup
// packet is read whole before anything is known of its sender.
const maxStartupLen = 10000

// errTooLarge is returned for a message longer than the reader's cap; the
// connection is answered SQLSTATE 54000 and closed.
var errTooLarge = errors.New("message too large")

// startupPacket is one untyped packet of the startup phase.
type startupPacket struct {
	code uint32
	// version is the protocol a StartupMessage asks for (code is then
	// the version itself).
	params map[string]string
	// order keeps the parameters as sent, for the allow-list and logs.
	order []string
	// body is the rest of the packet after the code (a CancelRequest's
	// process id and key).
	body []byte
}

// readStartup reads one startup-phase packet: a length, a code and the
// rest. It reads exactly the packet, through no buffer, so that nothing
// a client sends after an SSLRequest is taken before TLS starts (the
// buffered-plaintext injection of CVE-2021-23222).
func readStartup(r io.Reader) (startupPacket, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return startupPacket{}, fmt.Errorf("read startup packet: %w", err)
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n < 8 || n > maxStartupLen {
		return startupPacket{}, fmt.Errorf("startup packet length %d out of range", n)
	}
	p := startupPacket{code: binary.BigEndian.Uint32(hdr[4:])}
	p.body = make([]byte, n-8)
	if _, err := io.ReadFull(r, p.body); err != nil {
		return startupPacket{}, fmt.Errorf("read startup packet: %w", err)
	}
	if p.code>>16 == 3 {
		if err := p.parseParams(); err != nil {
			return startupPacket{}, err
		}
	}
	return p, nil
}

// parseParams reads a StartupMessage's NUL-terminated name and value
// pairs, ended by an empty name. A name given twice is refused: which one
// PostgreSQL would take is not the gateway's to guess.
func (p *startupPacket) parseParams() error {
	b := p.body
	p.params = map[string]string{}
	for {
		i := indexNUL(b)
		if i < 0 {
			return errors.New("startup message: parameters not terminated")
		}
		name := string(b[:i])
		b = b[i+1:]
		if name == "" {
			if len(b) != 0 {
				return errors.New("startup message: data after the parameters")
			}
			return nil
		}
		j := indexNUL(b)
		if j < 0 {
			return fmt.Errorf("startup message: parameter %q has no value", name)
		}
		if _, dup := p.params[name]; dup {
			return fmt.Errorf("startup message: parameter %q given twice", name)
		}
		p.params[name] = string(b[:j])
		p.order = append(p.order, name)
		b = b[j+1:]
	}
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// allowedParams are the startup parameters passed to the database; every
// other one is dropped. options (which can say -c role=... or -c
// session_authorization=...), role, session_authorization and
// replication are the ones that would change who the session runs as or
// what it may do; user and database are set by the gateway.
var allowedParams = map[string]bool{
	"application_name":                    true,
	"client_encoding":                     true,
	"DateStyle":                           true,
	"datestyle":                           true,
	"TimeZone":                            true,
	"timezone":                            true,
	"IntervalStyle":                       true,
	"intervalstyle":                       true,
	"extra_float_digits":                  true,
	"search_path":                         true,
	"statement_timeout":                   true,
	"lock_timeout":                        true,
	"idle_in_transaction_session_timeout": true,
	"standard_conforming_strings":         true,
	"bytea_output":                        true,
	"lc_messages":                         true,
	"lc_monetary":                         true,
	"lc_numeric":                          true,
	"lc_time":                             true,
}

// filterParams returns the client's startup parameters the database may
// see, and the names dropped.
func filterParams(p startupPacket) (keep map[string]string, dropped []string) {
	keep = map[string]string{}
	for _, name := range p.order {
		switch {
		case name == "user" || name == "database":
		case allowedParams[name] && !strings.ContainsRune(p.params[name], 0):
			keep[name] = p.params[name]
		default:
			dropped = append(dropped, name)
		}
	}
	return keep, dropped
}

// tooLargeError is errTooLarge with the size the client announced.
type tooLargeError struct{ n int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("message of %d bytes: %v", e.n, errTooLarge)
}
func (e *tooLargeError) Is(target error) bool { return target == errTooLarge }

// msgReader frames protocol messages (a type byte, a length counting
// itself, a body) from a buffered reader. Messages longer than max are
// refused with errTooLarge before their body is read.
type msgReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// header reads the next message's type and body length.
func (m *msgReader) header() (typ byte, n int, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(m.r, hdr[:]); err != nil {
		return 0, 0, err
	}
	l := int64(binary.BigEndian.Uint32(hdr[1:]))
	if l < 4 {
		return 0, 0, fmt.Errorf("message %q: length %d below 4", hdr[0], l)
	}
	if m.max > 0 && l-4 > int64(m.max) {
		return hdr[0], int(l - 4), &tooLargeError{n: l - 4}
	}
	return hdr[0], int(l - 4), nil
}

// next reads one whole message and returns it with its header (raw, ready
// to forward) and its body. Both are valid until the next call.
func (m *msgReader) next() (typ byte, raw, body []byte, err error) {
	typ, n, err := m.header()
	if err != nil {
		return typ, nil, nil, err
	}
	if cap(m.buf) < n+5 {
		m.buf = make([]byte, n+5, max(n+5, 8192))
	}
	raw = m.buf[:n+5]
	raw[0] = typ
	binary.BigEndian.PutUint32(raw[1:], uint32(n+4))
	if _, err := io.ReadFull(m.r, raw[5:]); err != nil {
		return typ, nil, nil, fmt.Errorf("message %q: %w", typ, errUnexpectedEOF(err))
	}
	// A big buffer is not kept: one 1 MiB query must not pin 1 MiB for
	// the life of the connection.
	if cap(m.buf) > 64<<10 {
		m.buf = nil
	}
	return typ, raw, raw[5:], nil
}

func errUnexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errorResponse builds the ErrorResponse the gateway itself answers with.
func errorResponse(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}
}

// sqlError is errorResponse for a refusal that leaves the session open.
func sqlError(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg}
}

// encode appends msg's wire form to dst; the gateway's own messages never
// fail to encode.
func encode(dst []byte, msg pgproto3.BackendMessage) []byte {
	out, err := msg.Encode(dst)
	if err != nil {
		return dst
	}
	return out
}
