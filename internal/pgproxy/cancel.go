package pgproxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// CancelPeers carries cancel requests between gateways sharing a store: a
// client's CancelRequest may land on another gateway than its session (a
// load balancer picks each connection anew). Messages carry the process
// id and a SHA-256 of the secret, never the secret itself.
type CancelPeers interface {
	// PublishCancel sends msg to every gateway, this one included.
	PublishCancel(ctx context.Context, msg string) error
	// WatchCancels returns a channel of the messages published by any
	// gateway; it is closed when ctx ends.
	WatchCancels(ctx context.Context) <-chan string
}

// cancelRequest handles a CancelRequest packet: forwarded to the database
// when its key is one of this gateway's live sessions, else passed to the
// peers (which check it the same way), else dropped. The client is never
// answered, as PostgreSQL does not answer.
func (s *Server) cancelRequest(p startupPacket, src string) {
	if len(p.body) < 8 || len(p.body) > 4+256 {
		return
	}
	pid := binary.BigEndian.Uint32(p.body[:4])
	secret := p.body[4:]
	sum := sha256.Sum256(secret)
	if s.cancelLocal(pid, sum[:], src, "") {
		return
	}
	if s.cfg.Peers != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		msg := strconv.FormatUint(uint64(pid), 10) + " " + hex.EncodeToString(sum[:]) + " " + src
		err := s.cfg.Peers.PublishCancel(ctx, msg)
		ev := store.AuditEvent{Type: EventCancel, Outcome: audit.Info, Source: src,
			Message: "cancel request for a session not held here passed to the gateways sharing the store",
			Detail:  map[string]any{"pid": pid}}
		if err != nil {
			ev.Outcome, ev.Message = audit.Failure, "cancel request could not be passed to the other gateways: "+err.Error()
		}
		s.audit(ev)
		return // the gateway holding the session audits the cancel itself
	}
	s.audit(store.AuditEvent{Type: EventCancel, Outcome: audit.Deny, Source: src,
		Message: "cancel request with an unknown key dropped", Detail: map[string]any{"pid": pid}})
}

// cancelLocal forwards a cancel whose key (pid and SHA-256 of the secret)
// matches a live session of this gateway, and reports whether it did.
// via names the gateway that received it, when not this one.
func (s *Server) cancelLocal(pid uint32, secretSum []byte, src, via string) bool {
	s.mu.Lock()
	sess := s.byPID[pid]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	want := sha256.Sum256(sess.secret)
	if subtle.ConstantTimeCompare(want[:], secretSum) != 1 {
		if via == "" {
			s.audit(store.AuditEvent{Type: EventCancel, Outcome: audit.Deny, Source: src, SessionID: sess.id,
				Message: "cancel request with a wrong key dropped", Detail: map[string]any{"pid": pid}})
		}
		// A peer's message with a wrong key may still be another
		// gateway's session: only the holder audits.
		return via == ""
	}
	err := s.sendCancel(sess)
	ev := store.AuditEvent{Type: EventCancel, Outcome: audit.Success, Source: src, SessionID: sess.id,
		User: sess.ident.Name, Target: sess.login.Target, Account: sess.targetUser,
		Message: "cancel request forwarded to the database", Detail: map[string]any{"database": sess.database}}
	if via != "" {
		ev.Detail["via_peer"] = true
	}
	if err != nil {
		ev.Outcome, ev.Message = audit.Failure, "cancel request could not reach the database: "+err.Error()
	}
	s.audit(ev)
	return true
}

// sendCancel sends the database's own cancel key for sess, over TLS when
// the target uses TLS.
func (s *Server) sendCancel(sess *session) error {
	snap := s.cfg.Snapshot()
	t := snap.Engine.Target(sess.login.Target)
	if t == nil {
		return fmt.Errorf("target %s vanished", sess.login.Target)
	}
	host, port, err := splitHostPort(t.Address)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	conn, err := d.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
	tcfg, err := upstreamTLS(t, host)
	if err != nil {
		return err
	}
	var c net.Conn = conn
	if tcfg != nil {
		req := (&pgproto3.SSLRequest{}).Encode
		buf, _ := req(nil)
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil {
			return err
		}
		if b[0] != 'S' {
			return fmt.Errorf("database refused TLS for the cancel request")
		}
		tc := tls.Client(conn, tcfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		c = tc
	}
	sess.mu.Lock()
	upPID, upSecret := sess.upPID, sess.upSecret
	sess.mu.Unlock()
	if upSecret == nil {
		return fmt.Errorf("the session is not connected to the database yet")
	}
	buf, err := (&pgproto3.CancelRequest{ProcessID: upPID, SecretKey: upSecret}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(buf); err != nil {
		return err
	}
	// The server closes the connection when done; waiting for that keeps
	// the cancel from racing the close.
	var b [1]byte
	_, _ = c.Read(b[:])
	return nil
}

// watchPeers handles cancel requests other gateways received, until ctx
// ends.
func (s *Server) watchPeers(ctx context.Context) {
	if s.cfg.Peers == nil {
		return
	}
	for msg := range s.cfg.Peers.WatchCancels(ctx) {
		f := strings.Fields(msg)
		if len(f) != 3 {
			continue
		}
		pid, err := strconv.ParseUint(f[0], 10, 32)
		sum, err2 := hex.DecodeString(f[1])
		if err != nil || err2 != nil || len(sum) != sha256.Size {
			continue
		}
		s.cancelLocal(uint32(pid), sum, f[2], "peer")
	}
}
