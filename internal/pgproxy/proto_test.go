package pgproxy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// dialRaw opens a TCP connection to the gateway with a generous deadline:
// a hung gateway fails the test instead of hanging it.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func writePacket(t *testing.T, c net.Conn, code uint32, rest []byte) {
	t.Helper()
	b := make([]byte, 8, 8+len(rest))
	binary.BigEndian.PutUint32(b, uint32(8+len(rest)))
	binary.BigEndian.PutUint32(b[4:], code)
	if _, err := c.Write(append(b, rest...)); err != nil {
		t.Fatal(err)
	}
}

// sslRequest does SSLRequest and the TLS handshake.
func sslRequest(t *testing.T, c net.Conn) *tls.Conn {
	t.Helper()
	writePacket(t, c, 80877103, nil)
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest answered %q, %v", b[0], err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

// login sends a startup message of the given protocol version and the
// password, and returns the frontend with every message up to the first
// ReadyForQuery or ErrorResponse.
func login(t *testing.T, c net.Conn, version uint32, params map[string]string, pw string) (*pgproto3.Frontend, []pgproto3.BackendMessage) {
	t.Helper()
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive after %d messages: %v", len(got), err)
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			fe.Send(&pgproto3.PasswordMessage{Password: pw})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		case *pgproto3.BackendKeyData:
			k := *m
			k.SecretKey = append([]byte(nil), m.SecretKey...)
			got = append(got, &k)
			continue
		case *pgproto3.NegotiateProtocolVersion:
			n := *m
			n.UnrecognizedOptions = append([]string(nil), m.UnrecognizedOptions...)
			got = append(got, &n)
			continue
		case *pgproto3.ReadyForQuery, *pgproto3.ErrorResponse:
			return fe, append(got, m)
		}
	}
}

func keyData(msgs []pgproto3.BackendMessage) *pgproto3.BackendKeyData {
	for _, m := range msgs {
		if k, ok := m.(*pgproto3.BackendKeyData); ok {
			return k
		}
	}
	return nil
}

// TestStartupNegotiation covers the packets before the startup message,
// without a database: GSSENCRequest is refused with 'N', a startup in
// clear with 08P01, direct TLS needs ALPN postgresql.
func TestStartupNegotiation(t *testing.T) {
	g := startGateway(t, nil, nil)
	t.Run("gssenc then ssl", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		writePacket(t, c, 80877104, nil)
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("GSSENCRequest answered %q, %v", b[0], err)
		}
		sslRequest(t, c)
	})
	t.Run("startup in clear", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice~db1"}})
		_ = fe.Flush()
		m, err := fe.Receive()
		e, ok := m.(*pgproto3.ErrorResponse)
		if err != nil || !ok || e.Code != "08P01" {
			t.Fatalf("startup in clear answered %#v, %v", m, err)
		}
	})
	t.Run("plaintext after SSLRequest is not taken", func(t *testing.T) {
		// A startup message sent right behind the SSLRequest, before
		// TLS: it must be read as a broken TLS handshake, never as the
		// startup (CVE-2021-23222).
		c := dialRaw(t, g.addr)
		var buf []byte
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint32(buf, 80877103)
		startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice~db1"}}).Encode(nil)
		if _, err := c.Write(append(buf, startup...)); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(c)
		if len(rest) == 0 || rest[0] != 'S' || len(rest) > 1 && rest[1] != 0x15 && rest[1] != 0x16 {
			t.Fatalf("answer %q: want 'S' then at most a TLS alert", rest)
		}
	})
	t.Run("direct TLS without ALPN", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		err := tc.Handshake()
		if err == nil {
			_, err = tc.Read(make([]byte, 1))
		}
		if err == nil {
			t.Fatal("direct TLS without ALPN was served")
		}
	})
	t.Run("startup packet too long", func(t *testing.T) {
		c := dialRaw(t, g.addr)
		var b [8]byte
		binary.BigEndian.PutUint32(b[:], 1<<20)
		binary.BigEndian.PutUint32(b[4:], 196608)
		_, _ = c.Write(b[:])
		if n, _ := io.ReadAll(c); len(n) != 0 {
			t.Fatalf("answer %q to an oversized startup packet", n)
		}
	})
}

// TestProtocol32AndDirectTLS: a PostgreSQL 18 client asking protocol 3.2
// over direct TLS gets a 32-byte cancel key; a later 3.x is negotiated
// down to 3.2; a 3.0 client gets a 4-byte key.
func TestProtocol32AndDirectTLS(t *testing.T) {
	s := newSite(t)
	g := s.gw
	params := map[string]string{"user": "alice~app~db1", "database": "app"}
	for _, tt := range []struct {
		name    string
		version uint32
		direct  bool
		extra   map[string]string
		keyLen  int
		newest  uint32 // NegotiateProtocolVersion's minor, 0: none sent
		unknown string
	}{
		{name: "3.0", version: pgproto3.ProtocolVersion30, keyLen: 4},
		{name: "3.2 direct TLS", version: pgproto3.ProtocolVersion32, direct: true, keyLen: 32},
		{name: "3.9 negotiated", version: 3<<16 | 9, keyLen: 32, newest: 2},
		{name: "3.2 with an extension", version: pgproto3.ProtocolVersion32, extra: map[string]string{"_pq_.test": "1"}, keyLen: 32, newest: 2, unknown: "_pq_.test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, g.addr)
			var conn net.Conn
			if tt.direct {
				tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"postgresql"}})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn = tc
			} else {
				conn = sslRequest(t, c)
			}
			p := map[string]string{}
			for k, v := range params {
				p[k] = v
			}
			for k, v := range tt.extra {
				p[k] = v
			}
			_, msgs := login(t, conn, tt.version, p, alicePassword)
			if _, ok := msgs[len(msgs)-1].(*pgproto3.ReadyForQuery); !ok {
				t.Fatalf("login ended with %#v", msgs[len(msgs)-1])
			}
			k := keyData(msgs)
			if k == nil || len(k.SecretKey) != tt.keyLen {
				t.Fatalf("BackendKeyData %+v, want a %d-byte key", k, tt.keyLen)
			}
			var npv *pgproto3.NegotiateProtocolVersion
			for _, m := range msgs {
				if n, ok := m.(*pgproto3.NegotiateProtocolVersion); ok {
					npv = n
				}
			}
			switch {
			case tt.newest == 0 && npv != nil:
				t.Errorf("unexpected NegotiateProtocolVersion %+v", npv)
			case tt.newest != 0 && (npv == nil || npv.NewestMinorProtocol != tt.newest || tt.unknown != "" && (len(npv.UnrecognizedOptions) != 1 || npv.UnrecognizedOptions[0] != tt.unknown)):
				t.Errorf("NegotiateProtocolVersion %+v, want minor %d and %q", npv, tt.newest, tt.unknown)
			}
		})
	}
}

// TestMessageBounds: a 2 MiB query is refused with 54000 and the
// connection closed, from psql and from pgx; nothing of it ran.
func TestMessageBounds(t *testing.T) {
	s := newSite(t)
	g := s.gw
	big := "insert into t select 1 from (select '" + strings.Repeat("x", 2<<20) + "') s;\n"
	_, errOut, code := testenv.RunInput(t, 30*time.Second, big, "psql", "-X", "-v", "ON_ERROR_STOP=1", g.conninfo("alice~app~db1", "app", alicePassword), "-f", "-")
	if code == 0 || !strings.Contains(errOut, "message too large") {
		t.Fatalf("psql 2 MiB: code %d, stderr %q", code, errOut)
	}
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, big)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" {
		t.Fatalf("pgx 2 MiB: %v", err)
	}
	if !conn.IsClosed() {
		if err := conn.Ping(ctx); err == nil {
			t.Error("the connection survived a message over the cap")
		}
	}
	if n, err := s.pg.Query(t, "app", "select count(*) from t"); err != nil || n != "3" {
		t.Fatalf("table t: %q %v", n, err)
	}
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "over 1048576 bytes") })
}

// TestPreAuthBounds: a source holds at most MaxPreAuthPerSource
// connections before authentication, and a silent one is closed at the
// startup deadline.
func TestPreAuthBounds(t *testing.T) {
	g := startGateway(t, nil, nil, func(c *pgproxy.Config) {
		c.MaxPreAuthPerSource = 2
		c.StartupTimeout = 300 * time.Millisecond
	})
	a, b := dialRaw(t, g.addr), dialRaw(t, g.addr)
	// Both are held (the deadline closes them later); a third from the
	// same source is closed at once, before the deadline could.
	sslRequest(t, a)
	sslRequest(t, b)
	third := dialRaw(t, g.addr)
	writePacket(t, third, 80877103, nil)
	if got, _ := io.ReadAll(third); len(got) != 0 {
		t.Fatalf("third connection answered %q", got)
	}
	// The silent ones end at the startup deadline.
	for _, c := range []net.Conn{a, b} {
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("silent connection: %v", err)
		}
	}
	// Their places are given back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialRaw(t, g.addr)
		writePacket(t, c, 80877103, nil)
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err == nil && one[0] == 'S' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pre-authentication places not given back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExtendedProtocolDeny: a denied statement sent by Parse is refused
// with a clear error, in a batch too, and the session goes on.
func TestExtendedProtocolDeny(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{"drop table t", "  /* x */ truncate t", "DROP TABLE t; select 1"} {
		_, err = conn.Exec(ctx, sql, pgx.QueryExecModeExec)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "statement denied by policy alice-db") {
			t.Fatalf("Exec %q: %v", sql, err)
		}
	}
	b := &pgx.Batch{}
	b.Queue("insert into t values (10)")
	b.Queue("drop table t")
	b.Queue("select 1")
	if err := conn.SendBatch(ctx, b).Close(); err == nil || !strings.Contains(err.Error(), "statement denied") {
		t.Fatalf("batch: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session after refusals: %v", err)
	}
	if n, err := s.pg.Query(t, "app", "select count(*) from pg_tables where tablename = 't'"); err != nil || n != "1" {
		t.Fatalf("table t gone: %q %v", n, err)
	}
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "truncate t") })
}

// TestCancel: Ctrl-C in psql cancels a running statement through the
// gateway; a guessed key cancels nothing. Both are audited.
func TestCancel(t *testing.T) {
	s := newSite(t)
	g := s.gw
	testenv.Require(t, "psql")
	ctx := context.Background()

	// A guessed key for a live session: right pid, wrong secret.
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := conn.PgConn().PID()
	sleeping := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(3)")
		sleeping <- err
	}()
	waitActive(t, s, "select pg_sleep(3)")
	c := dialRaw(t, g.addr)
	body := binary.BigEndian.AppendUint32(nil, pid)
	writePacket(t, c, 80877102, append(body, 1, 2, 3, 4))
	_, _ = io.ReadAll(c)
	if err := <-sleeping; err != nil {
		t.Fatalf("a guessed cancel key cancelled the statement: %v", err)
	}
	g.waitEvent(pgproxy.EventCancel, func(ev store.AuditEvent) bool { return ev.Outcome == "deny" })

	// psql's own Ctrl-C.
	cmd := exec.Command("psql", "-X", g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select pg_sleep(30)")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitActive(t, s, "select pg_sleep(30)")
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("psql's cancel did not end the statement")
	}
	if !strings.Contains(stderr.String(), "canceling statement due to user request") {
		t.Fatalf("psql stderr %q", stderr.String())
	}
	g.waitEvent(pgproxy.EventCancel, func(ev store.AuditEvent) bool { return ev.Outcome == "success" && ev.User == "alice" })
}

// waitActive waits until the database runs query.
func waitActive(t *testing.T, s *site, query string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := s.pg.Query(t, "", fmt.Sprintf("select count(*) from pg_stat_activity where state = 'active' and query = '%s'", query))
		if err == nil && n != "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never ran: %v", query, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecondFactorAndAPIKey: a user who must present a code appends it to
// the password; an access API key works as the password of a user who
// needs none, and only for its owner.
func TestSecondFactorAndAPIKey(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()

	id, value, err := apikey.New()
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := apikey.Parse(value)
	if err := g.store.CreateAPIKey(ctx, store.APIKey{ID: id, Name: "k", Kind: store.APIKeyAccess, Owner: "alice",
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", value), "-c", "select current_user"); code != 0 || strings.TrimSpace(out) != "app" {
		t.Fatalf("API key: code %d, out %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := g.psql(g.conninfo("bob~app~db1", "app", value), "-c", "select 1"); code == 0 || !strings.Contains(errOut, "password authentication failed") {
		t.Fatalf("another user's API key: code %d, stderr %q", code, errOut)
	}

	g.apply("kind: User\nname: alice\nmfa: required\n")
	en, err := g.mfa.Enroll(ctx, "alice", mfa.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	opts := totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	first, _ := totp.GenerateCodeCustom(en.Secret, time.Now(), opts)
	if err := g.mfa.Confirm(ctx, mfa.Attempt{User: "alice", Code: first, Via: "test"}); err != nil {
		t.Fatal(err)
	}
	next, _ := totp.GenerateCodeCustom(en.Secret, time.Now().Add(30*time.Second), opts)
	if next == first {
		next, _ = totp.GenerateCodeCustom(en.Secret, time.Now().Add(-30*time.Second), opts)
	}
	for _, c := range []struct {
		name, pw, wantErr string
	}{
		{"no code", alicePassword, "verification code is required"},
		{"API key", value, "not an API key"},
		{"wrong password with a code", "nope" + next, "password authentication failed"},
		{"wrong code", alicePassword + wrongCode(en.Secret, opts), "wrong or already used verification code"},
		{"code", alicePassword + next, ""},
		{"code replayed", alicePassword + next, "already used"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", c.pw), "-c", "select current_user")
			if c.wantErr == "" {
				if code != 0 || strings.TrimSpace(out) != "app" {
					t.Fatalf("code %d, out %q, stderr %q", code, out, errOut)
				}
				return
			}
			if code == 0 || !strings.Contains(errOut, c.wantErr) {
				t.Fatalf("code %d, stderr %q; want %q", code, errOut, c.wantErr)
			}
		})
	}
}

// wrongCode returns a six-digit code no step near now accepts.
func wrongCode(secret string, opts totp.ValidateOpts) string {
	valid := map[string]bool{}
	for d := -2; d <= 2; d++ {
		c, _ := totp.GenerateCodeCustom(secret, time.Now().Add(time.Duration(d)*30*time.Second), opts)
		valid[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !valid[c] {
			return c
		}
	}
}

// TestCancelAcrossGateways: two gateways share a PostgreSQL store behind a
// balancer that sends each new connection to the next gateway; psql's
// Ctrl-C lands on the gateway that does not hold the session and still
// cancels the statement, through LISTEN/NOTIFY. A guessed key sent there
// cancels nothing.
func TestCancelAcrossGateways(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, s.pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	peers := func(c *pgproxy.Config) {
		c.Peers = st
		// A budget of two failures that does not refill within the
		// test: the guess below spends one, and a right key passed on
		// must give its charge back.
		c.FailureBurst, c.FailuresPerMinute = 2, 0.001
	}
	g1 := startGateway(t, st, v, peers)
	g2 := startGateway(t, st, v, peers)
	g1.apply(s.resources(g1))
	g1.setPassword("alice", alicePassword)
	if err := g2.inv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	lb := balancer(t, g1.addr, g2.addr)

	cmd := exec.Command("psql", "-X", strings.Replace(g1.conninfo("alice~app~db1", "app", alicePassword), fmt.Sprintf("port=%d", g1.port), "port="+lb, 1),
		"-c", "select pg_sleep(30)")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitActive(t, s, "select pg_sleep(30)")

	// A guessed key on the other gateway: nothing happens.
	live := g1.srv.List()
	if len(live) != 1 {
		t.Fatalf("gateway 1 holds %d sessions", len(live))
	}
	c := dialRaw(t, g2.addr)
	writePacket(t, c, 80877102, []byte{0, 0, 0, 1, 9, 9, 9, 9})
	_, _ = io.ReadAll(c)

	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the cancel sent to the second gateway did not end the statement")
	}
	if !strings.Contains(stderr.String(), "canceling statement due to user request") {
		t.Fatalf("psql stderr %q", stderr.String())
	}
	ev := g1.waitEvent(pgproxy.EventCancel, func(ev store.AuditEvent) bool { return ev.Outcome == "success" })
	if ev.Detail["via_peer"] != true || ev.User != "alice" {
		t.Errorf("cancel event %+v", ev)
	}

	// The guess cost the source one failure on the gateway that got it;
	// the right key passed on was acknowledged and cost nothing: the one
	// failure left lets a wrong password through to be checked (and
	// spends it), after which the source is refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g2.connect(ctx, g2.conninfo("alice~app~db1", "app", "wrong"))
		if err != nil && strings.Contains(err.Error(), "password authentication failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sign-in after a right cancel key through a peer: %v, want a checked password", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := g2.connect(ctx, g2.conninfo("alice~app~db1", "app", alicePassword)); err == nil || !strings.Contains(err.Error(), "too many failed sign-ins") {
		t.Fatalf("sign-in after the guess and a wrong password: %v, want refused for the budget", err)
	}
}

// TestCancelGuessesCharged: a cancel request with a key no session has is
// denied and charged to the source's budget of failed sign-ins, so that
// guessing keys costs as guessing passwords does; once spent, the
// source's cancels are dropped unchecked and its sign-ins refused.
func TestCancelGuessesCharged(t *testing.T) {
	g := startGateway(t, nil, nil, func(c *pgproxy.Config) {
		c.FailureBurst, c.FailuresPerMinute = 2, 0.001
	})
	g.apply("kind: User\nname: alice\n")
	g.setPassword("alice", alicePassword)
	for _, key := range [][]byte{
		{0, 0, 0, 7, 1, 2, 3, 4},                        // protocol 3.0 length
		append([]byte{0, 0, 0, 8}, make([]byte, 32)...), // protocol 3.2 length
		{0, 0, 0, 9, 1, 2, 3, 4},
	} {
		c := dialRaw(t, g.addr)
		writePacket(t, c, 80877102, key)
		_, _ = io.ReadAll(c)
	}
	g.waitEvent(pgproxy.EventCancel, func(ev store.AuditEvent) bool {
		return ev.Outcome == "deny" && ev.Detail["pid"] == float64(7) && strings.Contains(ev.Message, "unknown key")
	})
	g.waitEvent(pgproxy.EventCancel, func(ev store.AuditEvent) bool {
		return ev.Outcome == "deny" && ev.Detail["pid"] == float64(9) && ev.Detail["reason"] == "rate_limited"
	})
	c := sslRequest(t, dialRaw(t, g.addr))
	_, msgs := login(t, c, pgproto3.ProtocolVersion30, map[string]string{"user": "alice~db1", "database": "app"}, alicePassword)
	if e, ok := msgs[len(msgs)-1].(*pgproto3.ErrorResponse); !ok || !strings.Contains(e.Message, "too many failed sign-ins") {
		t.Fatalf("sign-in after two guessed cancel keys: %+v, want refused for the budget", msgs[len(msgs)-1])
	}
}

// balancer listens on loopback and sends its first connection to first
// and every later one to second, as a load balancer may; it returns its
// port.
func balancer(t *testing.T, first, second string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			to := second
			if n == 0 {
				to = first
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestFailedSignInLimit: a source that keeps failing is refused before its
// password is checked, even with the right one.
func TestFailedSignInLimit(t *testing.T) {
	g := startGateway(t, nil, nil, func(c *pgproxy.Config) {
		c.FailureBurst, c.FailuresPerMinute = 2, 0.001
	})
	g.apply("kind: User\nname: alice\n")
	g.setPassword("alice", alicePassword)
	try := func(pw string) string {
		c := sslRequest(t, dialRaw(t, g.addr))
		_, msgs := login(t, c, pgproto3.ProtocolVersion30, map[string]string{"user": "alice~db1", "database": "app"}, pw)
		if e, ok := msgs[len(msgs)-1].(*pgproto3.ErrorResponse); ok {
			return e.Message
		}
		return ""
	}
	// A right password gives its charge back: more sign-ins than the
	// burst (refused here by policy, after the password) spend nothing.
	for i := range 4 {
		if msg := try(alicePassword); strings.Contains(msg, "too many failed") || strings.Contains(msg, "password authentication failed") {
			t.Fatalf("sign-in %d with the right password: %q", i, msg)
		}
	}
	for i := range 2 {
		if msg := try("wrong"); !strings.Contains(msg, "password authentication failed") {
			t.Fatalf("attempt %d: %q", i, msg)
		}
	}
	if msg := try(alicePassword); !strings.Contains(msg, "too many failed sign-ins") {
		t.Fatalf("after the burst: %q", msg)
	}
	g.waitEvent("login.failure", func(ev store.AuditEvent) bool { return ev.Detail["reason"] == "rate_limited" })
}

// TestSharedFailureBudget: given the gateway's budget, the front charges
// it and honours what other fronts charged: failures spent over SSH leave
// none for PostgreSQL from the same source (one /64 for IPv6).
func TestSharedFailureBudget(t *testing.T) {
	shared := authlimit.New(0.001, 2)
	g := startGateway(t, nil, nil, func(c *pgproxy.Config) { c.Failures = shared })
	g.apply("kind: User\nname: alice\n")
	g.setPassword("alice", alicePassword)
	for range 2 { // the SSH front's failures from this source
		shared.Charge(netip.MustParseAddr("127.0.0.1"))
	}
	c := sslRequest(t, dialRaw(t, g.addr))
	_, msgs := login(t, c, pgproto3.ProtocolVersion30, map[string]string{"user": "alice~db1", "database": "app"}, alicePassword)
	if e, ok := msgs[len(msgs)-1].(*pgproto3.ErrorResponse); !ok || !strings.Contains(e.Message, "too many failed sign-ins") {
		t.Fatalf("sign-in after another front spent the budget: %+v", msgs[len(msgs)-1])
	}
}

// TestParallelSignInsCharged: guesses sent side by side are each charged
// before their password is checked; a check-then-charge limiter let all of
// them through while the first argon2id checks ran.
func TestParallelSignInsCharged(t *testing.T) {
	g := startGateway(t, nil, nil, func(c *pgproxy.Config) {
		c.FailureBurst, c.FailuresPerMinute = 2, 0.001
	})
	g.apply("kind: User\nname: alice\n")
	g.setPassword("alice", alicePassword)
	const n = 8
	fes := make([]*pgproto3.Frontend, n)
	for i := range fes {
		// Every connection waits at the password prompt first.
		c := sslRequest(t, dialRaw(t, g.addr))
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "alice~db1", "database": "app"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if m, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*pgproto3.AuthenticationCleartextPassword); !ok {
			t.Fatalf("connection %d: %T, want the password prompt", i, m)
		}
		fes[i] = fe
	}
	for _, fe := range fes {
		fe.Send(&pgproto3.PasswordMessage{Password: "wrong"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	checked := 0
	for i, fe := range fes {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		e, ok := m.(*pgproto3.ErrorResponse)
		switch {
		case !ok:
			t.Fatalf("connection %d: %T, want an error", i, m)
		case strings.Contains(e.Message, "password authentication failed"):
			checked++
		case !strings.Contains(e.Message, "too many failed sign-ins"):
			t.Fatalf("connection %d: %q", i, e.Message)
		}
	}
	if checked != 2 {
		t.Fatalf("%d of %d parallel guesses had their password checked, want the burst of 2", checked, n)
	}
}

// TestIdleTimeout: a proxy policy's idle_timeout ends a quiet session.
func TestIdleTimeout(t *testing.T) {
	s := newSite(t)
	g := s.gw
	g.apply(strings.Replace(s.resources(g), "databases: [app]", "databases: [app]\nidle_timeout: 1s", 1))
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	g.waitEvent("session.limit", func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "idle") })
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(qctx, "select 1"); err == nil {
		t.Fatal("the idle session still runs")
	}
}

// TestMaxSessionsRefusedAndAudited: past MaxSessions an authorized user is
// refused with 53300, and the trail says why (a refusal after the policy
// allowed the session is still a refusal someone must be able to read).
func TestMaxSessionsRefusedAndAudited(t *testing.T) {
	s := newSite(t, func(c *pgproxy.Config) { c.MaxSessions = 1 })
	g := s.gw
	ctx := context.Background()
	first, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	second, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err == nil {
		second.Close(ctx)
		t.Fatal("a second session past MaxSessions 1 was let in")
	}
	if !strings.Contains(err.Error(), "53300") && !strings.Contains(err.Error(), "too many database sessions") {
		t.Fatalf("second session: %v, want 53300 too many database sessions", err)
	}
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool {
		return ev.User == "alice" && strings.Contains(ev.Message, "too many database sessions")
	})
}
