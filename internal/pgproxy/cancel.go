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
	"net/netip"
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
//
// A key that matches nothing is a guess, and is charged to the source's
// budget of failed sign-ins (Config.FailuresPerMinute): a source that
// spent it has its cancel requests dropped unchecked, as its sign-ins are
// refused. A request passed to the peers is charged too, since this
// gateway cannot tell a guess from a key another gateway holds; the
// gateway that holds it answers with an acknowledgement that gives the
// charge back (watchPeers), so that pressing Ctrl-C through a load
// balancer costs a user nothing.
func (s *Server) cancelRequest(p startupPacket, src string, srcAddr netip.Addr) {
	if len(p.body) < 8 || len(p.body) > 4+256 {
		return
	}
	pid := binary.BigEndian.Uint32(p.body[:4])
	secret := p.body[4:]
	sum := sha256.Sum256(secret)
	refund, ok := s.failures.Charge(srcAddr)
	if !ok {
		s.audit(store.AuditEvent{Type: EventCancel, Outcome: audit.Deny, Source: src,
			Message: "cancel request dropped unchecked: too many failed sign-ins or guessed cancel keys from this source",
			Detail:  map[string]any{"pid": pid, "reason": "rate_limited"}})
		return
	}
	if s.cancelLocal(pid, sum[:], src, "") {
		refund()
		return
	}
	s.mu.Lock()
	held := s.byPID[pid] != nil
	s.mu.Unlock()
	if held || s.cfg.Peers == nil {
		// A wrong secret for a session of this gateway (audited by
		// cancelLocal), or no one else to ask: a guess, charged.
		if !held {
			s.audit(store.AuditEvent{Type: EventCancel, Outcome: audit.Deny, Source: src,
				Message: "cancel request with an unknown key dropped", Detail: map[string]any{"pid": pid}})
		}
		return
	}
	s.awaitAck(pid, sum[:], refund)
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
	s.audit(ev) // the gateway holding the session audits the cancel itself
}

// cancelLocal forwards a cancel whose key (pid and SHA-256 of the secret)
// matches a live session of this gateway, and reports whether it did. A
// pid of this gateway with a wrong secret is audited as denied, also when
// another gateway received it (via names that gateway).
func (s *Server) cancelLocal(pid uint32, secretSum []byte, src, via string) bool {
	s.mu.Lock()
	sess := s.byPID[pid]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	want := sha256.Sum256(sess.secret)
	if subtle.ConstantTimeCompare(want[:], secretSum) != 1 {
		ev := store.AuditEvent{Type: EventCancel, Outcome: audit.Deny, Source: src, SessionID: sess.id,
			Message: "cancel request with a wrong key dropped", Detail: map[string]any{"pid": pid}}
		if via != "" {
			ev.Detail["via_peer"] = true
		}
		s.audit(ev)
		return false
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

// cancelKey names a cancel request passed to the peers: its pid and the
// SHA-256 of its secret, in hex.
type cancelKey struct {
	pid uint32
	sum string
}

// pendingAck is the charge of a cancel request passed to the peers, given
// back when a peer acknowledges the key.
type pendingAck struct {
	refund func()
	at     time.Time
}

// Bounds of the acknowledgements awaited: a request not acknowledged in
// ackWait stays charged; past maxAcks waiting, new ones are not awaited
// (their charge stays: failing closed).
const (
	ackWait = 30 * time.Second
	maxAcks = 1000
)

// awaitAck keeps refund until a peer acknowledges the key.
func (s *Server) awaitAck(pid uint32, sum []byte, refund func()) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) >= maxAcks {
		for k, a := range s.acks {
			if now.Sub(a.at) > ackWait {
				delete(s.acks, k)
			}
		}
	}
	if len(s.acks) < maxAcks {
		s.acks[cancelKey{pid, hex.EncodeToString(sum)}] = pendingAck{refund: refund, at: now}
	}
}

// acked gives back the charge of an acknowledged cancel request.
func (s *Server) acked(k cancelKey) {
	s.mu.Lock()
	a, ok := s.acks[k]
	delete(s.acks, k)
	s.mu.Unlock()
	if ok && time.Since(a.at) <= ackWait {
		a.refund()
	}
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
// ends. A message is "PID SUM SOURCE", a request to check, or "ack PID
// SUM", the holder's word that a key passed on was right.
func (s *Server) watchPeers(ctx context.Context) {
	if s.cfg.Peers == nil {
		return
	}
	for msg := range s.cfg.Peers.WatchCancels(ctx) {
		f := strings.Fields(msg)
		if len(f) != 3 {
			continue
		}
		ack := f[0] == ackWord
		if ack {
			f = f[1:]
		}
		pid, err := strconv.ParseUint(f[0], 10, 32)
		sum, err2 := hex.DecodeString(f[1])
		if err != nil || err2 != nil || len(sum) != sha256.Size {
			continue
		}
		if ack {
			s.acked(cancelKey{uint32(pid), f[1]})
			continue
		}
		if s.cancelLocal(uint32(pid), sum, f[2], "peer") {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.cfg.Peers.PublishCancel(pctx, ackWord+" "+f[0]+" "+f[1]); err != nil {
				s.cfg.Log.Warn("acknowledge a cancel request to the gateways", "err", err)
			}
			cancel()
		}
	}
}

// ackWord starts an acknowledgement between gateways (watchPeers).
const ackWord = "ack"
