package pgproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/store"
)

// TestPsqlThroughGateway: stock psql reaches the database as the injected
// target user, and each statement is audited with its result.
func TestPsqlThroughGateway(t *testing.T) {
	s := newSite(t)
	g := s.gw
	out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select current_user, current_database()")
	if code != 0 || strings.TrimSpace(out) != "app|app" {
		t.Fatalf("psql: code %d, out %q, err %q", code, out, errOut)
	}
	ev := g.waitEvent(pgproxy.EventStatement, func(ev store.AuditEvent) bool {
		return strings.Contains(ev.Message, "current_user")
	})
	st := statement(t, ev, "current_user")
	if ev.User != "alice" || ev.Account != "app" || ev.Target != "db1" || ev.Detail["database"] != "app" || st["tag"] != "SELECT 1" || st["rows"] != float64(1) {
		t.Errorf("statement event = %+v", ev)
	}
	// USER~TARGET: the one allowed target user is taken.
	out, errOut, code = g.psql(g.conninfo("alice~db1", "app", alicePassword), "-c", "select current_user")
	if code != 0 || strings.TrimSpace(out) != "app" {
		t.Fatalf("psql alice~db1: code %d, out %q, err %q", code, out, errOut)
	}
	// pgx, extended protocol: rows from CommandComplete, tied to the SQL.
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, "update t set id = id + $1 where id > $2", 10, 1)
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("update: %v %v", tag, err)
	}
	ev = g.waitEvent(pgproxy.EventStatement, func(ev store.AuditEvent) bool {
		return strings.Contains(ev.Message, "update t set")
	})
	if st := statement(t, ev, "update t set"); st["rows"] != float64(2) || st["kind"] != "execute" || st["parameters"] != float64(2) {
		t.Errorf("execute event detail = %v", ev.Detail)
	}
}

// statement returns the entry of a db.statement event whose SQL holds
// part.
func statement(t *testing.T, ev store.AuditEvent, part string) map[string]any {
	t.Helper()
	list, _ := ev.Detail["statements"].([]any)
	for _, s := range list {
		if m, ok := s.(map[string]any); ok && strings.Contains(fmt.Sprint(m["sql"]), part) {
			return m
		}
	}
	t.Fatalf("event %+v lists no statement with %q", ev, part)
	return nil
}

// TestRefusals: what the gateway must refuse, each as a client would try.
func TestRefusals(t *testing.T) {
	s := newSite(t)
	g := s.gw
	tests := []struct {
		name    string
		user    string
		db      string
		pw      string
		extra   []string
		sql     string
		wantErr string
	}{
		{name: "another database", user: "alice~app~db1", db: "other", pw: alicePassword, sql: "select 1", wantErr: `may not open database "other"`},
		{name: "wrong password", user: "alice~app~db1", db: "app", pw: "nope", sql: "select 1", wantErr: "password authentication failed"},
		{name: "unknown user", user: "mallory~app~db1", db: "app", pw: "nope", sql: "select 1", wantErr: "password authentication failed"},
		{name: "bob has no policy", user: "bob~app~db1", db: "app", pw: "x", sql: "select 1", wantErr: "password authentication failed"},
		{name: "malformed login", user: "alice", db: "app", pw: alicePassword, sql: "select 1", wantErr: "USER~TARGET"},
		{name: "unknown target user", user: "alice~postgres~db1", db: "app", pw: alicePassword, sql: "select 1", wantErr: "may not log in to db1 as postgres"},
		{name: "drop denied", user: "alice~app~db1", db: "app", pw: alicePassword, sql: "drop table t", wantErr: "statement denied by policy alice-db"},
		{name: "drop after a comment", user: "alice~app~db1", db: "app", pw: alicePassword, sql: "/* harmless */ -- really\n  DrOp table t", wantErr: "statement denied by policy alice-db"},
		{name: "drop in a multi-statement query", user: "alice~app~db1", db: "app", pw: alicePassword, sql: "select 1; select ';'; drop table t", wantErr: "statement denied by policy alice-db"},
		{name: "drop in prepare", user: "alice~app~db1", db: "app", pw: alicePassword, sql: "prepare x as drop table t", wantErr: "statement denied"},
		{name: "set role refused by postgres", user: "alice~app~db1", db: "app", pw: alicePassword, sql: "set role boss", wantErr: `permission denied to set role "boss"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := g.psql(g.conninfo(tt.user, tt.db, tt.pw, tt.extra...), "-c", tt.sql)
			if code == 0 || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("psql %q: code %d, out %q, stderr %q; want a refusal containing %q", tt.sql, code, out, errOut, tt.wantErr)
			}
		})
	}
	// A statement refused inside a transaction fails the transaction as
	// PostgreSQL fails one on an error: no later statement of it runs,
	// and COMMIT rolls back (the insert below is not kept).
	t.Run("refusal aborts the transaction", func(t *testing.T) {
		ctx := context.Background()
		conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		exec := func(sql string) (string, error) {
			res, err := conn.PgConn().Exec(ctx, sql).ReadAll()
			if err != nil {
				return "", err
			}
			return res[len(res)-1].CommandTag.String(), nil
		}
		for _, step := range []struct{ sql, tag, code string }{
			{"begin", "BEGIN", ""},
			{"insert into t values (99)", "INSERT 0 1", ""},
			{"drop table t", "", "42501"},
			{"insert into t values (100)", "", "25P02"}, // current transaction is aborted
			{"commit", "ROLLBACK", ""},
			{"select 1", "SELECT 1", ""}, // the session goes on
		} {
			tag, err := exec(step.sql)
			var pe *pgconn.PgError
			switch {
			case step.code == "" && (err != nil || tag != step.tag):
				t.Fatalf("%q: tag %q, err %v; want %q", step.sql, tag, err, step.tag)
			case step.code != "" && (!errors.As(err, &pe) || pe.Code != step.code):
				t.Fatalf("%q: tag %q, err %v; want SQLSTATE %s", step.sql, tag, err, step.code)
			}
		}
	})
	// Nothing was dropped.
	if n, err := s.pg.Query(t, "app", "select count(*) from t"); err != nil || n != "3" {
		t.Fatalf("table t: %q %v", n, err)
	}
	// The refusal is audited.
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "DrOp table t") })
}

// TestOptionsRoleDropped: startup options that would change the role are
// not passed to the database.
func TestOptionsRoleDropped(t *testing.T) {
	s := newSite(t)
	g := s.gw
	s.pg.Exec(t, "", "GRANT boss TO app")
	out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", alicePassword, "options='-c role=boss -c session_authorization=postgres'"),
		"-c", "select current_user, session_user")
	if code != 0 || strings.TrimSpace(out) != "app|app" {
		t.Fatalf("psql with options: code %d, out %q, err %q", code, out, errOut)
	}
	ev := g.waitEvent("session.start", nil)
	if d, _ := ev.Detail["dropped_parameters"].([]any); len(d) == 0 || d[0] != "options" {
		t.Errorf("session.start dropped_parameters = %v", ev.Detail["dropped_parameters"])
	}
}

// TestNoTLSRefused: a startup in clear is refused with 08P01.
func TestNoTLSRefused(t *testing.T) {
	s := newSite(t)
	g := s.gw
	_, errOut, code := g.psql(strings.Replace(g.conninfo("alice~app~db1", "app", alicePassword), "sslmode=require", "sslmode=disable", 1), "-c", "select 1")
	if code == 0 || !strings.Contains(errOut, "requires TLS") {
		t.Fatalf("psql sslmode=disable: code %d, stderr %q", code, errOut)
	}
}

// TestRevocationEndsSession: removing the policy ends a live session.
func TestRevocationEndsSession(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	g.apply(strings.Replace(s.resources(g), "databases: [app]", "databases: [other]", 1))
	g.waitEvent("session.revoke", nil)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(qctx, "select 1"); err == nil {
		t.Fatal("the session still runs after revocation")
	}
}

// TestRecordedSession: a session-recording policy records the statements
// and their result tags as text.
func TestRecordedSession(t *testing.T) {
	s := newSite(t)
	g := s.gw
	g.apply("kind: Policy\nname: rec\ntype: session-recording\nsubjects: {users: [alice]}\ntargets: {names: [db1]}\n")
	if out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select count(*) from t; drop table t"); code == 0 {
		t.Fatalf("psql: out %q, stderr %q", out, errOut)
	}
	if out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select id from t where id = 2"); code != 0 {
		t.Fatalf("psql: out %q, stderr %q", out, errOut)
	}
	start := g.waitEvent("session.start", func(ev store.AuditEvent) bool { return ev.Detail["recorded"] == true })
	g.waitEvent("session.end", func(ev store.AuditEvent) bool { return ev.SessionID == start.SessionID })
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc, _, err := g.rec.Open(context.Background(), start.SessionID)
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			text = string(b)
		}
		if strings.Contains(text, "refused by the gateway") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"drop table t;", "refused by the gateway: statement denied by policy alice-db"} {
		if !strings.Contains(text, want) {
			t.Errorf("recording lacks %q:\n%s", want, text)
		}
	}
	// The second session's statement and its tag.
	var second string
	for _, ev := range g.events("session.start") {
		if ev.SessionID != start.SessionID {
			second = ev.SessionID
		}
	}
	g.waitEvent("session.end", func(ev store.AuditEvent) bool { return ev.SessionID == second })
	rc, _, err := g.rec.Open(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), "select id from t where id = 2;") || !strings.Contains(string(b), "-- SELECT 1") {
		t.Errorf("recording:\n%s", b)
	}
	// Searchable as terminal recordings are.
	deadline = time.Now().Add(10 * time.Second)
	for {
		hits, err := g.store.SearchText(context.Background(), `"where id = 2"`, 10)
		if err == nil && len(hits) > 0 && hits[0].RecordingID == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search found %+v, %v; want recording %s", hits, err, second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpstreamTLS: a target with tls_mode verify-full and its CA is
// reached over TLS; one whose CA does not match is refused before the
// password is sent.
func TestUpstreamTLS(t *testing.T) {
	s := newSite(t)
	g := s.gw
	caPEM, certPEM, keyPEM := testCA(t, "127.0.0.1")
	otherCA, _, _ := testCA(t, "127.0.0.1")
	s.pg.EnableTLS(t, certPEM, keyPEM)
	target := func(ca []byte) string {
		return fmt.Sprintf("kind: Target\nname: db1\naddress: 127.0.0.1:%d\nprotocol: postgres\ntls_mode: verify-full\ntls_ca: |\n  %s\n",
			s.pg.Port, strings.ReplaceAll(strings.TrimSpace(string(ca)), "\n", "\n  "))
	}
	g.apply(target(caPEM))
	out, errOut, code := g.psql(g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
	if code != 0 || strings.TrimSpace(out) != "t" {
		t.Fatalf("verify-full: code %d, out %q, stderr %q", code, out, errOut)
	}
	g.apply(target(otherCA))
	_, errOut, code = g.psql(g.conninfo("alice~app~db1", "app", alicePassword), "-c", "select 1")
	if code == 0 || !strings.Contains(errOut, "TLS certificate was not accepted") {
		t.Fatalf("wrong CA: code %d, stderr %q", code, errOut)
	}
}

// TestEveryStatementAudited: a burst of statements from several
// connections is audited whole, each statement once, however the audit
// writer batches them.
func TestEveryStatementAudited(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	const conns, each = 3, 200
	errs := make(chan error, conns)
	for c := range conns {
		go func() {
			conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for i := range each {
				if _, err := conn.Exec(ctx, fmt.Sprintf("select %d /* burst %d */", i, c)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[string]int{}
		for _, ev := range g.events(pgproxy.EventStatement) {
			list, _ := ev.Detail["statements"].([]any)
			for _, it := range list {
				if m, ok := it.(map[string]any); ok && strings.Contains(fmt.Sprint(m["sql"]), "burst") {
					seen[fmt.Sprint(m["sql"])]++
				}
			}
		}
		if len(seen) == conns*each {
			for sql, n := range seen {
				if n != 1 {
					t.Fatalf("%q audited %d times", sql, n)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d statements audited", len(seen), conns*each)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A client that sends statements and hangs up at once, before their
	// results: they may run (autocommit commits before the result is
	// sent), so they are audited, with outcome unknown.
	c := sslRequest(t, dialRaw(t, g.addr))
	fe, msgs := login(t, c, pgproto3.ProtocolVersion30, map[string]string{"user": "alice~app~db1", "database": "app"}, alicePassword)
	if _, ok := msgs[len(msgs)-1].(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("login: %+v", msgs[len(msgs)-1])
	}
	fe.Send(&pgproto3.Query{String: "select pg_sleep(0.5); insert into t values (42) /* hangup */"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ev := g.waitEvent(pgproxy.EventStatement, func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "hangup") })
	list, _ := ev.Detail["statements"].([]any)
	if len(list) != 2 || ev.Outcome != "info" {
		t.Fatalf("statements sent before a hang-up: %+v", ev)
	}
	for _, it := range list {
		if m, _ := it.(map[string]any); m["outcome"] != "unknown" {
			t.Errorf("statement sent before a hang-up: %v, want outcome unknown", m)
		}
	}
}

// TestPreparedBeforeDeny: a statement prepared while it was allowed is
// refused at Execute once a rule denies it.
func TestPreparedBeforeDeny(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Prepare(ctx, "del", "delete from t"); err != nil {
		t.Fatal(err)
	}
	g.apply(strings.Replace(s.resources(g), `"^TRUNCATE "`, `"^TRUNCATE ", "^DELETE "`, 1))
	if _, err := conn.Exec(ctx, "del"); err == nil || !strings.Contains(err.Error(), "statement denied by policy alice-db") {
		t.Fatalf("executing the prepared delete: %v", err)
	}
	if n, err := s.pg.Query(t, "app", "select count(*) from t"); err != nil || n != "3" {
		t.Fatalf("table t: %q %v", n, err)
	}
}

// TestSQLPreparedBeforeDeny: a statement made with SQL PREPARE (the
// gateway never sees its Parse) and bound through the extended protocol
// after a rule denies it must not run: the gateway cannot judge its text
// again, so under statement rules it refuses the Bind's Execute.
func TestSQLPreparedBeforeDeny(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "PREPARE del2 AS delete from t"); err != nil {
		t.Fatal(err)
	}
	g.apply(strings.Replace(s.resources(g), `"^TRUNCATE "`, `"^TRUNCATE ", "^DELETE "`, 1))
	res := conn.PgConn().ExecPrepared(ctx, "del2", nil, nil, nil).Read()
	if res.Err == nil || !strings.Contains(res.Err.Error(), "SQL PREPARE") {
		t.Fatalf("binding the SQL-prepared delete: %v, want a refusal", res.Err)
	}
	if n, err := s.pg.Query(t, "app", "select count(*) from t"); err != nil || n != "3" {
		t.Fatalf("table t: %q %v", n, err)
	}
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool { return strings.Contains(ev.Message, "EXECUTE del2") })
}

// TestPreparedNameReparsed: a second Parse of a named statement, which
// PostgreSQL refuses while keeping the first, is refused by the gateway
// too, so that a decoy text cannot take the name in the gateway's table:
// the trail names the statement that ran, and a rule applied mid-session
// is judged at Execute against it, not against the decoy. A decoy Parse
// of a name made with SQL PREPARE, which the database refuses, leaves the
// name unjudgeable (refused under rules), and a name whose Parse failed
// may be parsed again. The unnamed statement is replaced by every Parse,
// as in PostgreSQL.
func TestPreparedNameReparsed(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pc := conn.PgConn()
	for _, c := range []struct {
		name, first, decoy string
		refused            bool
		runs, id, count    string
	}{
		{name: "s1", first: "insert into t values (4242)", decoy: "select 1", refused: true,
			runs: "insert into t values (4242)", id: "4242", count: "1"},
		{name: "", first: "insert into t values (4243)", decoy: "select 2",
			runs: "select 2", id: "4243", count: "0"},
	} {
		if _, err := pc.Prepare(ctx, c.name, c.first, nil); err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		_, err := pc.Prepare(ctx, c.name, c.decoy, nil)
		var pe *pgconn.PgError
		if c.refused != (errors.As(err, &pe) && pe.Code == "42P05") || (!c.refused && err != nil) {
			t.Fatalf("%q: second Parse: %v, want refused %v", c.name, err, c.refused)
		}
		if _, err := pc.ExecPrepared(ctx, c.name, nil, nil, nil).Close(); err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		if n, err := s.pg.Query(t, "app", "select count(*) from t where id = "+c.id); err != nil || n != c.count {
			t.Fatalf("%q: rows with id %s: %q %v, want %s", c.name, c.id, n, err, c.count)
		}
		g.waitEvent("db.statement", func(ev store.AuditEvent) bool {
			list, _ := ev.Detail["statements"].([]any)
			for _, it := range list {
				if m, _ := it.(map[string]any); m["kind"] == "execute" && m["sql"] == c.runs && m["statement"] == c.name {
					return true
				}
			}
			return false
		})
	}
	g.waitEvent("request.deny", func(ev store.AuditEvent) bool { return ev.Message == "select 1" })

	if _, err := pc.Prepare(ctx, "s2", "insert into t values (4244)", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "s2", "select 1", nil); err == nil {
		t.Fatal("second Parse of s2 accepted")
	}
	if _, err := conn.Exec(ctx, "PREPARE s9 AS insert into t values (4250)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "s9", "select 1", nil); err == nil || !strings.Contains(err.Error(), "42P05") {
		t.Fatalf("Parse of the SQL-prepared s9: %v, want the database's 42P05", err)
	}
	if _, err := pc.Prepare(ctx, "s3", "select * from no_such_table", nil); err == nil {
		t.Fatal("Parse of s3 from a missing table accepted")
	}
	if _, err := pc.Prepare(ctx, "s3", "select 3", nil); err != nil {
		t.Fatalf("Parse of s3 again after its Parse failed: %v", err)
	}
	g.apply(strings.Replace(s.resources(g), `"^TRUNCATE "`, `"^TRUNCATE ", "^INSERT "`, 1))
	for name, want := range map[string]string{"s2": "statement denied", "s9": "SQL PREPARE"} {
		if _, err := pc.ExecPrepared(ctx, name, nil, nil, nil).Close(); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("executing %s under a rule denying its insert: %v, want %q", name, err, want)
		}
	}
	// Pipelined: each Execute is sent before the answer to its Parse.
	pl := pc.StartPipeline(ctx)
	pl.SendPrepare("s9", "select 8", nil)
	pl.SendPipelineSync()
	pl.SendQueryPrepared("s9", nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendPrepare("p1", "select 7", nil)
	pl.SendPipelineSync()
	pl.SendQueryPrepared("p1", nil, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 8 {
		res, err := pl.GetResults()
		if rr, ok := res.(*pgconn.ResultReader); ok {
			tag, rerr := rr.Close()
			got = append(got, fmt.Sprintf("%s %v", tag, rerr))
		} else if err != nil {
			got = append(got, err.Error())
		}
	}
	_ = pl.Close()
	if len(got) != 3 || !strings.Contains(got[0], "42P05") || !strings.Contains(got[1], "SQL PREPARE") || got[2] != "SELECT 1 <nil>" {
		t.Fatalf("pipelined Parse and Execute: %q", got)
	}
	if n, err := s.pg.Query(t, "app", "select count(*) from t where id in (4244, 4250)"); err != nil || n != "0" {
		t.Fatalf("a denied insert ran: %q %v", n, err)
	}
}

// TestShutdownWritesQueuedEvents: when Shutdown returns, the statement
// and session-end events of the sessions it ended are in the store, so
// that the checkpoint the gateway signs next covers them.
func TestShutdownWritesQueuedEvents(t *testing.T) {
	s := newSite(t)
	g := s.gw
	ctx := context.Background()
	conn, err := g.connect(ctx, g.conninfo("alice~app~db1", "app", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "select 42"); err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The session is still open: Shutdown's grace runs out and it ends it.
	shut, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_ = g.srv.Shutdown(shut)
	var stmt, end bool
	for _, ev := range g.events("") {
		stmt = stmt || ev.Type == pgproxy.EventStatement && strings.Contains(ev.Message, "select 42")
		end = end || ev.Type == audit.SessionEnd
	}
	if !stmt || !end {
		t.Fatalf("after Shutdown: statement event %v, session end %v; want both stored", stmt, end)
	}
}
