package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store"
)

// Event types of the PostgreSQL front, beside the common ones of package
// audit.
const (
	// EventStatement records one statement and its outcome.
	EventStatement = "db.statement"
	// EventCancel records a cancel request, forwarded or dropped.
	EventCancel = "db.cancel"
)

// Bounds on what a session keeps of its prepared statements and portals:
// a client cannot grow the gateway's memory without end by preparing.
const (
	maxPrepared      = 10000
	maxPreparedBytes = 32 << 20
	maxAuditSQL      = 8192 // statement text kept in an audit event
	// maxDrain and drainTimeout bound what is read of a refused
	// oversized message before the connection closes.
	maxDrain     = 16 << 20
	drainTimeout = 5 * time.Second
	// parseWait bounds how long an Execute waits for the answer to its
	// statement's Parse sent in an earlier batch.
	parseWait = 5 * time.Second
)

// group is one simple Query, FunctionCall or extended-protocol batch (up
// to its Sync): the server answers each with exactly one ReadyForQuery.
// Its statements wait there for their results, in order.
type group struct {
	stmts  []*stmt
	next   int  // index of the next statement awaiting a result
	closed bool // its Sync (or Query) went out: a ReadyForQuery ends it
	failed bool // the server answered an error: the rest did not run
	// replace is the gateway's refusal of a statement: the server is
	// sent markerQuery in place of the refused message (a Query for a
	// simple query or function call, a Parse and Flush in an extended
	// batch), fails it with a syntax error at once, and that error is
	// replaced by this one on the way back. So the refusal reaches the
	// client where the statement's own error would have, in order, also
	// for clients that pipeline; and the server's own state follows as
	// for any failed statement: an open transaction is aborted (no later
	// statement of it runs, COMMIT rolls back), and an extended batch is
	// skipped to its Sync.
	replace *pgproto3.ErrorResponse
	// parses are the outcomes of the batch's Parse messages, in order;
	// parsedN of them were answered with ParseComplete.
	parses  []*atomic.Int32
	parsedN int
}

// The outcome of a Parse: until the database answers it, the gateway
// cannot know whether the name holds the parsed text or what it held
// before (a statement made with SQL PREPARE, which the database keeps
// when it refuses the Parse).
const (
	parsePending = iota
	parseDone
	parseFailed
)

// stmt is one statement waiting for its result.
type stmt struct {
	kind   string // query, execute, function
	sql    string
	name   string // prepared statement, for execute
	portal string
	params int
	// outcome is its Parse's, for execute: sql is what ran only if the
	// Parse succeeded.
	outcome *atomic.Int32
}

// prepared is what the statement and portal maps keep.
type prepared struct {
	sql    string
	name   string
	params int
	// parsed is false for a statement this gateway did not see parsed:
	// one made with SQL PREPARE, whose text the gateway cannot judge
	// again at Execute.
	parsed bool
	// judged are the rules the statement was judged under at its Parse:
	// an Execute under the same rules needs no second look, one after a
	// recheck changed them is judged again.
	judged *policy.StatementRules
	// outcome is the Parse's (parsePending...), batch the group it was
	// sent in; nil for a statement the gateway did not see parsed.
	outcome *atomic.Int32
	batch   *group
}

// run relays the session until either side ends, then writes its end.
func (sess *session) run(ctx context.Context) {
	s := sess.srv
	defer s.unregister(sess)
	limit, idle := sess.limits()
	var timers []*time.Timer
	if limit > 0 {
		timers = append(timers, time.AfterFunc(limit, func() {
			sess.terminate("the session reached its time limit", audit.SessionLimit)
		}))
	}
	sess.touch()
	if idle > 0 {
		// Re-armed for the idle time left; it stops re-arming once the
		// session is over.
		var t *time.Timer
		t = time.AfterFunc(idle, func() {
			if sess.over.Load() {
				return
			}
			quiet := time.Since(time.Unix(0, sess.active.Load()))
			if quiet >= idle {
				sess.terminate(fmt.Sprintf("the session was idle for %s", idle), audit.SessionLimit)
				return
			}
			t.Reset(idle - quiet)
		})
		timers = append(timers, t)
	}
	defer func() {
		sess.over.Store(true)
		for _, t := range timers {
			t.Stop()
		}
	}()
	// The first side to end closes both, which ends the other.
	var first sync.Once
	var reason string
	end := func(r string) {
		first.Do(func() {
			reason = r
			sess.client.Close()
			sess.upstream.Close()
		})
	}
	fromServer := make(chan struct{})
	go func() {
		defer close(fromServer)
		// fromServer only ends on an error: closed by us (the client
		// side ended first) or by the database.
		if err := sess.fromServer(); !errors.Is(err, net.ErrClosed) {
			end("the database closed the connection")
		}
	}()
	err := sess.fromClient()
	switch {
	case err == nil || errors.Is(err, io.EOF):
		end("client closed the connection")
	case errors.Is(err, net.ErrClosed):
		end("") // the other side or terminate closed it
	default:
		end("ended: " + err.Error())
	}
	<-fromServer
	sess.auditUnanswered()
	sess.closeRecording()
	if m := sess.endMsg.Load(); m != nil {
		reason = *m
	}
	sess.sendAudit(store.AuditEvent{Type: audit.SessionEnd, Outcome: audit.Info, Message: reason,
		Detail: map[string]any{"database": sess.database, "statements": sess.stmtCount.Load(),
			"denied": sess.denied.Load(), "duration_ms": time.Since(sess.started).Milliseconds()}})
	_ = ctx
}

// touch records activity, for idle_timeout.
func (sess *session) touch() { sess.active.Store(time.Now().UnixNano()) }

// limits are how long the session may run, from the grant's max_session
// and validity window, and how long it may be idle (idle_timeout); zero
// for no limit.
func (sess *session) limits() (out, idle time.Duration) {
	d, _, _, _ := decideLogin(sess.srv.cfg.Snapshot(), sess.ident, sess.login, sess.srcAddr, sess.database, sess.targetUser)
	idle = d.IdleTimeout
	if d.MaxSession > 0 {
		out = d.MaxSession
	}
	if !d.NotAfter.IsZero() {
		if until := time.Until(d.NotAfter); out == 0 || until < out {
			out = max(until, time.Millisecond)
		}
	}
	return out, idle
}

// sendAudit queues an event of this session for the audit writer.
func (sess *session) sendAudit(ev store.AuditEvent) {
	ev.User, ev.Source, ev.Target, ev.Account, ev.SessionID = sess.ident.Name, sess.src, sess.login.Target, sess.targetUser, sess.id
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	ev.Detail["front"] = "postgres"
	sess.queueAudit(auditItem{ev: &ev})
}

// fromClient reads the client's messages, judges and queues statements,
// and forwards what may go.
func (sess *session) fromClient() error {
	s := sess.srv
	in := &msgReader{r: sess.in, max: s.cfg.MaxMessage}
	up := bufio.NewWriterSize(sess.upstream, 32<<10)
	statements := map[string]prepared{}
	portals := map[string]prepared{}
	preparedBytes := 0
	skipping := false // a refused extended message: drop until Sync
	for {
		typ, raw, body, err := in.next()
		if tl := (*tooLargeError)(nil); errors.As(err, &tl) {
			sess.fatal(stateProgramLimit, fmt.Sprintf("message too large: the gateway accepts messages of at most %d bytes", s.cfg.MaxMessage))
			// What the client is still sending is read and dropped, a
			// bounded amount for a bounded time, so that closing does
			// not reset the connection before the client reads why.
			_ = sess.client.SetReadDeadline(time.Now().Add(drainTimeout))
			_, _ = io.CopyN(io.Discard, sess.in, min(tl.n, maxDrain))
			sess.sendAudit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny,
				Message: fmt.Sprintf("message %q over %d bytes refused; connection closed", typ, s.cfg.MaxMessage),
				Detail:  map[string]any{"database": sess.database, "limit": s.cfg.MaxMessage, "bytes": tl.n}})
			return err
		}
		if err != nil {
			return err
		}
		sess.touch()
		forward := true
		switch typ {
		case 'Q':
			q := cstring(body)
			refused, why, which, split := sess.judge(q)
			if refused {
				sess.refuse(q, which, why, true)
				raw = markerSimple
				break
			}
			g := &group{closed: true}
			for _, st := range split {
				g.stmts = append(g.stmts, &stmt{kind: "query", sql: st.Text})
			}
			sess.enqueue(g)
		case 'P':
			if skipping {
				forward = false
				break
			}
			var m pgproto3.Parse
			if err := m.Decode(body); err != nil {
				return sess.violation(err)
			}
			rules := sess.rules.Load()
			if refused, why, which, _ := sess.judge(m.Query); refused {
				sess.refuse(m.Query, which, why, false)
				skipping = true
				raw = markerMessages
				break
			}
			if old, ok := statements[m.Name]; ok && m.Name != "" && old.outcome.Load() != parseFailed {
				// PostgreSQL refuses a second Parse of a named statement
				// and keeps the first; replacing the entry here would
				// audit and re-judge at Execute a text that never runs.
				why := fmt.Sprintf("prepared statement %q already exists; close it before parsing the name again", m.Name)
				sess.refuseWith(sqlError(stateDuplicatePrepared, "portcullis: "+why), m.Query, m.Query, why, false)
				skipping = true
				raw = markerMessages
				break
			}
			if old, ok := statements[m.Name]; ok {
				preparedBytes -= len(old.sql)
			}
			if len(statements) >= maxPrepared || preparedBytes+len(m.Query) > maxPreparedBytes {
				sess.fatal(stateProgramLimit, "too many prepared statements for the gateway")
				return errors.New("prepared statement bound")
			}
			outcome := new(atomic.Int32)
			g := sess.openGroup()
			sess.mu.Lock()
			g.parses = append(g.parses, outcome)
			sess.mu.Unlock()
			statements[m.Name] = prepared{sql: m.Query, name: m.Name, parsed: true, judged: rules, outcome: outcome, batch: g}
			preparedBytes += len(m.Query)
		case 'B':
			if skipping {
				forward = false
				break
			}
			var m pgproto3.Bind
			if err := m.Decode(body); err != nil {
				return sess.violation(err)
			}
			p, ok := statements[m.PreparedStatement]
			if !ok {
				p.name = m.PreparedStatement
			}
			p.params = len(m.Parameters)
			if len(portals) >= maxPrepared {
				sess.fatal(stateProgramLimit, "too many portals for the gateway")
				return errors.New("portal bound")
			}
			portals[m.DestinationPortal] = p
			sess.openGroup()
		case 'E':
			if skipping {
				forward = false
				break
			}
			var m pgproto3.Execute
			if err := m.Decode(body); err != nil {
				return sess.violation(err)
			}
			p := portals[m.Portal]
			// A Parse sent in an earlier batch and not yet answered (a
			// pipelining client) may fail, and then the name runs what it
			// held before: under rules, its answer is awaited.
			earlier := p.outcome != nil && p.batch != sess.openGroup()
			if earlier && p.outcome.Load() == parsePending && sess.rules.Load() != nil {
				if err := up.Flush(); err != nil {
					return err
				}
				for deadline := time.Now().Add(parseWait); p.outcome.Load() == parsePending && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
			if p.outcome != nil && p.outcome.Load() == parseFailed {
				// The name holds what it held before, if anything: not
				// a text the gateway saw parsed.
				p.parsed, p.sql = false, ""
			}
			if earlier && p.outcome.Load() == parsePending && sess.rules.Load() != nil {
				why := fmt.Sprintf("the database did not answer the Parse of statement %q within %s; with statement rules, it cannot be executed before", p.name, parseWait)
				sess.refuse("EXECUTE "+p.name, "EXECUTE "+p.name, why, false)
				skipping = true
				raw = markerMessages
				break
			}
			// Judged again: the statement may have been prepared before
			// the rules that deny it were applied. One prepared with SQL
			// PREPARE was judged when it was made, but not against rules
			// that came later, and its text is not here: under statement
			// rules it is refused (run it with EXECUTE in a query).
			if !p.parsed && sess.rules.Load() != nil {
				sess.refuse("EXECUTE "+p.name, "EXECUTE "+p.name,
					"a statement prepared with SQL PREPARE cannot be bound through the gateway while statement rules apply", false)
				skipping = true
				raw = markerMessages
				break
			}
			if rules := sess.rules.Load(); rules == p.judged && p.parsed {
				// Judged at its Parse under these very rules.
			} else if refused, why, which, _ := sess.judge(p.sql); refused {
				sess.refuse(p.sql, which, why, false)
				skipping = true
				raw = markerMessages
				break
			}
			g := sess.openGroup()
			sess.mu.Lock()
			g.stmts = append(g.stmts, &stmt{kind: "execute", sql: p.sql, name: p.name, portal: m.Portal, params: p.params, outcome: p.outcome})
			sess.mu.Unlock()
		case 'C':
			if skipping {
				forward = false
				break
			}
			var m pgproto3.Close
			if err := m.Decode(body); err != nil {
				return sess.violation(err)
			}
			if m.ObjectType == 'S' {
				preparedBytes -= len(statements[m.Name].sql)
				delete(statements, m.Name)
			} else {
				delete(portals, m.Name)
			}
			sess.openGroup()
		case 'D', 'H':
			if skipping {
				forward = false
				break
			}
			sess.openGroup()
		case 'S':
			skipping = false
			sess.closeGroup()
		case 'F':
			var m pgproto3.FunctionCall
			if err := m.Decode(body); err != nil {
				return sess.violation(err)
			}
			desc := fmt.Sprintf("function call oid %d with %d arguments", m.Function, len(m.Arguments))
			if rules := sess.rules.Load(); rules != nil {
				// A function call has no SQL to match: where statements
				// are restricted, it cannot be judged and is refused.
				sess.refuse(desc, desc, "a function call cannot be judged by the gateway where statements are restricted", true)
				raw = markerSimple
				break
			}
			sess.enqueue(&group{closed: true, stmts: []*stmt{{kind: "function", sql: desc}}})
		case 'X':
			_, _ = up.Write(raw)
			_ = up.Flush()
			return nil
		}
		if forward {
			if _, err := up.Write(raw); err != nil {
				return err
			}
		}
		if sess.in.Buffered() == 0 {
			if err := up.Flush(); err != nil {
				return err
			}
		}
	}
}

// markerQuery is what the server is asked to run in place of a refused
// message: a syntax error at its first character, which fromServer
// recognizes and replaces with the refusal (group.replace).
const markerQuery = "PORTCULLIS_REFUSED"

// markerSimple is markerQuery as a simple Query, in place of a refused
// Query or FunctionCall: both are answered with an error (or a result)
// and ReadyForQuery.
var markerSimple = func() []byte {
	b, _ := (&pgproto3.Query{String: markerQuery}).Encode(nil)
	return b
}()

// markerMessages are a Parse of markerQuery into a statement name no
// client uses (a failed Parse creates nothing) and a Flush, so that the
// error comes back at once.
var markerMessages = func() []byte {
	b, _ := (&pgproto3.Parse{Name: "portcullis_refused", Query: markerQuery}).Encode(nil)
	b, _ = (&pgproto3.Flush{}).Encode(b)
	return b
}()

// isMarkerError reports whether e is the server's error for markerQuery.
func isMarkerError(e *pgproto3.ErrorResponse) bool {
	return e.Code == "42601" && e.Position == 1
}

// judge checks every statement of sql against the grant's rules, under
// both readings of backslashes (see Statements). which is the statement
// refused. split is sql's statements as read with backslashes plain
// (standard_conforming_strings on), for the audit trail: sql is lexed once
// for both, and a second time only when it holds a backslash, the one
// character the readings differ on.
func (sess *session) judge(sql string) (refused bool, why, which string, split []Statement) {
	split = Split(sql, false)
	rules := sess.rules.Load()
	if rules == nil {
		return false, "", "", split
	}
	readings := [][]Statement{split}
	if strings.IndexByte(sql, '\\') >= 0 {
		readings = append(readings, Split(sql, true))
	}
	for _, reading := range readings {
		for _, st := range reading {
			for _, form := range statementForms(st.Norm) {
				if refused, why := rules.Check(form); refused {
					return true, why, st.Norm, split
				}
			}
		}
	}
	return false, "", "", split
}

// statementForms returns a normalized statement and the statement it
// wraps, if any: PREPARE name AS <statement>, EXPLAIN [ANALYZE ...]
// <statement>, so that a deny pattern also sees what those run.
func statementForms(st string) []string {
	forms := []string{st}
	if rest, ok := strings.CutPrefix(st, "PREPARE "); ok {
		if i := strings.Index(rest, " AS "); i >= 0 {
			forms = append(forms, strings.TrimSpace(rest[i+4:]))
		}
	}
	if rest, ok := strings.CutPrefix(st, "EXPLAIN "); ok {
		if strings.HasPrefix(rest, "(") {
			if i := strings.IndexByte(rest, ')'); i >= 0 {
				rest = strings.TrimSpace(rest[i+1:])
			}
		}
		for _, w := range []string{"ANALYZE ", "ANALYSE ", "VERBOSE "} {
			rest = strings.TrimPrefix(rest, w)
		}
		forms = append(forms, rest)
	}
	return forms
}

// refuse answers a refused statement through the marker (see
// group.replace): for a simple query or function call (simple), as a
// group of its own; in an extended batch, in the batch. The caller sends
// the marker in place of the message. The refusal is audited and
// recorded.
func (sess *session) refuse(sql, which, why string, simple bool) {
	sess.refuseWith(sqlError(stateInsufficientPriv, "portcullis: "+why), sql, which, why, simple)
}

// refuseWith is refuse answering with e, for a refusal that is not a
// policy's.
func (sess *session) refuseWith(e *pgproto3.ErrorResponse, sql, which, why string, simple bool) {
	sess.denied.Add(1)
	e.Detail = "statement: " + truncate(which, 200)
	sess.sendAudit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Message: truncate(sql, maxAuditSQL),
		Detail: map[string]any{"database": sess.database, "action": actionDatabase, "reason": why}})
	sess.record(sql, "refused by the gateway: "+why)
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if !simple {
		sess.openGroupLocked().replace = e
		return
	}
	sess.pending = append(sess.pending, &group{closed: true, replace: e})
}

func (sess *session) writeLocked(m pgproto3.BackendMessage) {
	buf := encode(nil, m)
	_, _ = sess.out.Write(buf)
}

// fatal sends a FATAL error to the client; the caller then closes.
func (sess *session) fatal(code, msg string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.writeLocked(errorResponse(code, "portcullis: "+msg))
	_ = sess.out.Flush()
}

func (sess *session) violation(err error) error {
	sess.fatal(stateProtocolViolation, "invalid message")
	return fmt.Errorf("protocol violation: %w", err)
}

func (sess *session) enqueue(g *group) {
	sess.mu.Lock()
	sess.pending = append(sess.pending, g)
	sess.mu.Unlock()
}

// openGroup returns the extended batch being built, starting one.
func (sess *session) openGroup() *group {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.openGroupLocked()
}

func (sess *session) openGroupLocked() *group {
	if n := len(sess.pending); n > 0 && !sess.pending[n-1].closed {
		return sess.pending[n-1]
	}
	g := &group{}
	sess.pending = append(sess.pending, g)
	return g
}

// closeGroup marks the batch's Sync as sent.
func (sess *session) closeGroup() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.openGroupLocked().closed = true
}

// fromServer relays the database's messages to the client, matching
// results to the queued statements. Large messages (rows) are streamed
// without being held whole.
func (sess *session) fromServer() error {
	r := bufio.NewReaderSize(sess.upstream, 32<<10)
	var hdr [5]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		sess.touch()
		typ := hdr[0]
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 {
			return errors.New("database sent a bad message length")
		}
		switch typ {
		case 'C', 'Z', 'E', 'I', 's', '1':
			if cap(body) < n {
				body = make([]byte, n)
			}
			body = body[:n]
			if _, err := io.ReadFull(r, body); err != nil {
				return err
			}
		default:
			sess.mu.Lock()
			_, err := sess.out.Write(hdr[:])
			if err == nil && n <= r.Size() {
				// Most rows fit the buffer: passed on from it, without
				// CopyN's reader allocated per message.
				var b []byte
				if b, err = r.Peek(n); err == nil {
					_, err = sess.out.Write(b)
					_, _ = r.Discard(n)
				}
			} else if err == nil {
				_, err = io.CopyN(sess.out, r, int64(n))
			}
			if err == nil && r.Buffered() == 0 {
				err = sess.out.Flush()
			}
			sess.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		sess.mu.Lock()
		switch typ {
		case 'C':
			sess.resultLocked(cstring(body), nil)
		case 'I':
			sess.resultLocked("EMPTY", nil)
		case 's':
			sess.resultLocked("SUSPENDED", nil)
		case '1':
			if g := sess.headLocked(); g != nil && g.parsedN < len(g.parses) {
				g.parses[g.parsedN].Store(parseDone)
				g.parsedN++
			}
		case 'E':
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err == nil {
				if g := sess.headLocked(); g != nil && g.replace != nil {
					// The server's first error in a batch with a
					// refusal: its answer to the marker, or an error
					// of an earlier message (then the marker was
					// skipped and the client learns that error).
					if isMarkerError(&e) {
						raw := encode(nil, g.replace)
						copy(hdr[:], raw[:5])
						body = append(body[:0], raw[5:]...)
					}
					g.replace, g.failed = nil, true
					break
				}
				sess.resultLocked("", &e)
			}
		case 'Z':
			if len(sess.pending) > 0 {
				g := sess.pending[0]
				sess.pending = sess.pending[1:]
				sess.finishLocked(g)
			}
		}
		_, err := sess.out.Write(hdr[:])
		if err == nil {
			_, err = sess.out.Write(body)
		}
		if err == nil && r.Buffered() == 0 {
			err = sess.out.Flush()
		}
		sess.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// headLocked is the oldest group waiting for results, or nil.
func (sess *session) headLocked() *group {
	if len(sess.pending) == 0 {
		return nil
	}
	return sess.pending[0]
}

// resultLocked matches one result (a CommandComplete tag, or an error) to
// the next statement waiting in the oldest group.
func (sess *session) resultLocked(tag string, e *pgproto3.ErrorResponse) {
	var g *group
	if len(sess.pending) > 0 {
		g = sess.pending[0]
	}
	var st *stmt
	if g != nil && g.next < len(g.stmts) {
		st = g.stmts[g.next]
		g.next++
	}
	if e != nil && g != nil {
		g.failed = true
	}
	if st == nil {
		if e != nil {
			return // an error of a Parse or Bind: nothing was run
		}
		st = &stmt{kind: "untracked"}
	}
	sess.stmtCount.Add(1)
	sql := st.sql
	if st.outcome != nil && st.outcome.Load() != parseDone {
		// Its Parse failed: the name ran what it held before, whose
		// text the gateway does not know.
		sql = ""
	}
	item := stmtRecord{SQL: truncate(sql, maxAuditSQL), Kind: st.kind, Outcome: audit.Success}
	if st.kind == "execute" {
		item.Statement, item.Portal, item.Parameters = &st.name, &st.portal, &st.params
	}
	if e != nil {
		item.Outcome, item.SQLState, item.Error = audit.Failure, e.Code, truncate(e.Message, 500)
		sess.record(sql, "ERROR "+e.Code+": "+e.Message)
	} else {
		item.Tag = tag
		if rows, ok := tagRows(tag); ok {
			item.Rows = &rows
		}
		sess.record(sql, tag)
	}
	sess.statementEvent(item)
}

// stmtRecord is one statement in a db.statement event: a struct on the
// queue, made a Detail value only once, by the audit writer (detail).
type stmtRecord struct {
	SQL        string  `json:"sql"`
	Kind       string  `json:"kind"` // query, execute, function
	Outcome    string  `json:"outcome"`
	Tag        string  `json:"tag,omitempty"`
	Rows       *int64  `json:"rows,omitempty"`
	SQLState   string  `json:"sqlstate,omitempty"`
	Error      string  `json:"error,omitempty"`
	Statement  *string `json:"statement,omitempty"` // prepared statement name, for execute
	Portal     *string `json:"portal,omitempty"`
	Parameters *int    `json:"parameters,omitempty"`
}

// detail is the statement as a Detail value, already in the form the
// store reads back (store.DetailIsNormal: numbers float64, no structs), so
// that storing it costs one JSON encoding and no round trip. Its keys are
// the JSON names of stmtRecord's fields, each left out where empty as the
// tags say.
func (r *stmtRecord) detail() map[string]any {
	m := make(map[string]any, 6)
	m["sql"], m["kind"], m["outcome"] = r.SQL, r.Kind, r.Outcome
	if r.Tag != "" {
		m["tag"] = r.Tag
	}
	if r.Rows != nil {
		m["rows"] = float64(*r.Rows)
	}
	if r.SQLState != "" {
		m["sqlstate"] = r.SQLState
	}
	if r.Error != "" {
		m["error"] = r.Error
	}
	if r.Statement != nil {
		m["statement"] = *r.Statement
	}
	if r.Portal != nil {
		m["portal"] = *r.Portal
	}
	if r.Parameters != nil {
		m["parameters"] = float64(*r.Parameters)
	}
	return m
}

// statementEvent queues one statement for the audit writer, which writes
// a session's queued statements as one db.statement event (auditWriter).
func (sess *session) statementEvent(item stmtRecord) {
	sess.queueAudit(auditItem{stmt: item})
}

// outcomeUnknown is the outcome of a statement sent to the database whose
// result never came back.
const outcomeUnknown = "unknown"

// auditUnanswered audits the statements sent to the database whose result
// never came back because the connection ended first: a client that hangs
// up right after sending, a kill, a database that went away. They may
// have run (a statement in autocommit commits before its result is sent),
// so they go on the trail with outcome unknown; without this, sending a
// statement and hanging up at once left no trace of it.
func (sess *session) auditUnanswered() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	for _, g := range sess.pending {
		for ; g.next < len(g.stmts); g.next++ {
			st := g.stmts[g.next]
			r := stmtRecord{SQL: truncate(st.sql, maxAuditSQL), Kind: st.kind, Outcome: outcomeUnknown,
				Error: "no result: the connection ended first"}
			if g.failed {
				r.Outcome, r.Error = audit.Failure, "not run: an earlier statement failed"
			}
			sess.statementEvent(r)
		}
	}
	sess.pending = nil
}

// finishLocked audits the statements of a finished group that got no
// result: after an error, the server skipped them.
func (sess *session) finishLocked(g *group) {
	for _, o := range g.parses[g.parsedN:] {
		o.Store(parseFailed)
	}
	for ; g.next < len(g.stmts); g.next++ {
		st := g.stmts[g.next]
		if !g.failed {
			continue // the server's splitting differed: nothing to say
		}
		sess.statementEvent(stmtRecord{SQL: truncate(st.sql, maxAuditSQL), Kind: st.kind, Outcome: audit.Failure,
			Error: "not run: an earlier statement failed"})
	}
}

// record writes a statement and its result to the session's recording.
func (sess *session) record(sql, result string) {
	if sess.rec == nil {
		return
	}
	var b bytes.Buffer
	b.WriteString(strings.TrimRight(sql, "; \n\t"))
	b.WriteString(";\n-- ")
	b.WriteString(strings.ReplaceAll(result, "\n", " "))
	b.WriteString("\n")
	sess.rec.Output(b.Bytes())
}

// tagRows reads the row count of a CommandComplete tag ("INSERT 0 5",
// "SELECT 3", "UPDATE 2").
func tagRows(tag string) (int64, bool) {
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	return n, err == nil
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
