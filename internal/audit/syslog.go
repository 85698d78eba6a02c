package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Syslog sends audit events to a syslog collector as RFC 5424 messages,
// over UDP (one datagram each) or TCP (octet-counted framing, RFC 6587).
//
// It is a copy for collectors, not the record: the store is the audit
// trail. Events are queued and sent by one goroutine so that a slow or
// unreachable collector never delays a session; when the queue is full
// events are dropped and counted, and the count is logged.
type Syslog struct {
	network, addr string
	hostname      string
	queue         chan []byte
	dropped       atomic.Int64
	log           *slog.Logger
	done          chan struct{}
}

// syslogQueue bounds how many events wait for a slow collector.
const syslogQueue = 4096

// ParseSyslogURL checks a sink address: udp://HOST:PORT or tcp://HOST:PORT.
func ParseSyslogURL(s string) (network, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Host == "" || u.Port() == "" {
		return "", "", fmt.Errorf("%q is not udp://HOST:PORT or tcp://HOST:PORT", s)
	}
	return u.Scheme, u.Host, nil
}

// NewSyslog starts a sink; Run sends until its context ends.
func NewSyslog(sinkURL string, log *slog.Logger) (*Syslog, error) {
	network, addr, err := ParseSyslogURL(sinkURL)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	return &Syslog{network: network, addr: addr, hostname: host, queue: make(chan []byte, syslogQueue), log: log,
		done: make(chan struct{})}, nil
}

// enqueue formats ev and queues it without blocking.
func (s *Syslog) enqueue(ev store.AuditEvent) {
	select {
	case s.queue <- s.format(ev):
	default:
		s.dropped.Add(1)
	}
}

// enqueueCheckpoint queues a signed checkpoint, MSGID audit.checkpoint,
// the checkpoint line as the message: a copy the database's writers cannot
// reach.
func (s *Syslog) enqueueCheckpoint(cp store.AuditCheckpoint) {
	line := MarshalCheckpoint(cp)
	msg := fmt.Appendf(nil, "<%d>1 %s %s portcullis %d audit.checkpoint - %s", 10*8+6,
		cp.Time.UTC().Format(time.RFC3339Nano), s.hostname, os.Getpid(), line[:len(line)-1])
	select {
	case s.queue <- msg:
	default:
		s.dropped.Add(1)
	}
}

// format renders one RFC 5424 message: facility authpriv (10), severity
// warning for denials and failures, informational otherwise; MSGID is the
// event type; the event as JSON is the message, so collectors get every
// field.
func (s *Syslog) format(ev store.AuditEvent) []byte {
	sev := 6
	if ev.Outcome == Deny || ev.Outcome == Failure {
		sev = 4
	}
	body, err := json.Marshal(eventJSON(ev))
	if err != nil {
		body = []byte(`{"error":"unencodable event"}`)
	}
	msgID := strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, ev.Type)
	if len(msgID) > 32 {
		msgID = msgID[:32]
	}
	return fmt.Appendf(nil, "<%d>1 %s %s portcullis %d %s - %s", 10*8+sev,
		ev.Time.UTC().Format(time.RFC3339Nano), s.hostname, os.Getpid(), msgID, body)
}

func eventJSON(ev store.AuditEvent) map[string]any {
	return map[string]any{"id": ev.ID, "time": ev.Time.UTC().Format(time.RFC3339Nano), "type": ev.Type,
		"outcome": ev.Outcome, "user": ev.User, "source": ev.Source, "target": ev.Target, "account": ev.Account,
		"session": ev.SessionID, "policy": ev.Policy, "message": ev.Message, "detail": ev.Detail}
}

// Run sends queued events until ctx ends, reconnecting (TCP) with a pause
// after errors.
func (s *Syslog) Run(ctx context.Context) {
	defer close(s.done)
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := s.dropped.Swap(0); n > 0 {
				s.log.Warn("syslog sink dropped events (collector too slow or down)", "dropped", n)
			}
		case msg := <-s.queue:
			if conn == nil {
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err := d.DialContext(ctx, s.network, s.addr)
				if err != nil {
					s.dropped.Add(1)
					s.log.Warn("syslog sink unreachable", "addr", s.addr, "err", err)
					pause(ctx, 5*time.Second)
					continue
				}
				conn = c
			}
			frame := msg
			if s.network == "tcp" {
				frame = fmt.Appendf(nil, "%d %s", len(msg), msg)
			}
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(frame); err != nil {
				s.dropped.Add(1)
				conn.Close()
				conn = nil
			}
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
