// Package audit writes the audit trail: every authentication, session,
// request and refusal becomes one stored event and one structured log line.
//
// Events are written synchronously. A session does not start unless its
// start event is stored (fail closed); the few milliseconds this costs per
// connection buy an audit trail that a SIGKILL cannot shorten.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Event types written by the gateway.
const (
	LoginSuccess   = "login.success"
	LoginFailure   = "login.failure"
	LoginMalformed = "login.malformed"
	SessionStart   = "session.start"
	SessionEnd     = "session.end"
	SessionRevoke  = "session.revoke"
	// SessionShutdown records a connection closed because the gateway
	// stopped; each of its sessions still writes its own session.end.
	SessionShutdown = "session.shutdown"
	// SessionLimit records a session ended by max_session or idle_timeout.
	SessionLimit    = "session.limit"
	RequestDeny     = "request.deny"
	TargetError     = "target.error"
	HostKeyLearned  = "hostkey.learned"
	HostKeyMismatch = "hostkey.mismatch"
	ResourceApply   = "resource.apply"
	ResourceDelete  = "resource.delete"
	// RecordingFailure records a recording that could not be written.
	RecordingFailure = "recording.failure"
	// FileTransfer records one file operation of an SFTP or scp transfer.
	FileTransfer = "file.transfer"
	// CommandCheckPaused records a shell entering full-screen mode, where
	// typed lines are not checked against command rules.
	CommandCheckPaused = "command.check_paused"
	// SessionKill records an admin ending a session.
	SessionKill = "session.kill"
	// RecordingInterrupted records a recording closed at start because the
	// gateway stopped without ending its session.
	RecordingInterrupted = "recording.interrupted"
	// RecordingView, RecordingDownload and RecordingDelete record what
	// auditors and admins do with recordings.
	RecordingView     = "recording.view"
	RecordingDownload = "recording.download"
	RecordingDelete   = "recording.delete"
	// RecordingTampered records a read of an ended recording whose file
	// (or stored hash) is not what was recorded: once per recording and
	// file content found.
	RecordingTampered = "recording.tampered"

	// Just-in-time access (package jit): a request filed, approved,
	// denied, and its grant ending at expiry or by revocation.
	JITRequest = "jit.request"
	JITApprove = "jit.approve"
	JITDeny    = "jit.deny"
	JITExpire  = "jit.expire"
	JITRevoke  = "jit.revoke"

	// API keys and the HTTPS API.
	APIKeyCreate = "apikey.create"
	APIKeyRevoke = "apikey.revoke"
	APIKeyUse    = "apikey.use"  // every request made with a key
	APIKeyDeny   = "apikey.deny" // a key refused (unknown, revoked, expired, wrong source)
	APIDeny      = "api.deny"    // a request refused by roles or registration rules

	// Settings, passwords, registration and the web console.
	SettingChange    = "setting.change"
	PasswordChange   = "password.change"
	TargetRegister   = "target.register"
	ConsoleLogin     = "console.login"
	ConsoleLoginFail = "console.login_failure"
	ConsoleLockout   = "console.lockout"
	ConsoleLogout    = "console.logout"

	// Multi-factor authentication (TOTP), on the SSH front and the
	// console alike; Detail "via" says which.
	MFASuccess      = "mfa.success"
	MFAFailure      = "mfa.failure" // a wrong, replayed or refused code
	MFALockout      = "mfa.lockout" // a user or source ran out of attempts
	MFAEnroll       = "mfa.enroll"  // enrolled, confirmed or reset
	MFARecoveryUsed = "mfa.recovery_used"

	// Credential takeover and provisioning on targets. Details carry key
	// fingerprints, never keys.
	AccountRotate    = "account.rotate"    // an account key rotated (or a rotation that failed)
	AccountProvision = "account.provision" // a login created on a target for a subject

	// Compliance reports and reviews (package report).
	ReportGenerate  = "report.generate"  // a report exported, by hand or on schedule
	ReportSchedule  = "report.schedule"  // a schedule added or removed
	RecordingReview = "recording.review" // an auditor marked a recording reviewed or flagged
	ReviewStart     = "review.start"     // an access review campaign opened
	ReviewDecide    = "review.decide"    // an entitlement kept or revoked in a campaign
	ReviewClose     = "review.close"     // a campaign signed off
	// Agents: targets that dial out. Details carry key fingerprints and
	// registration key ids, never key values.
	AgentRegister   = "agent.register"   // a target registered (or refused) with a registration key
	AgentConnect    = "agent.connect"    // an agent's connection taken by a gateway
	AgentDisconnect = "agent.disconnect" // it ended (or another connection replaced it)
	AgentRefuse     = "agent.refuse"     // a connection refused: unknown identity, version
)

// spoolResult is what Write returns for a spooled event: nil when it is
// safe on disk (it will reach the store), else the error, as for a store
// failure, so that callers that fail closed still can.
func (l *Log) spoolResult(ev store.AuditEvent, err error) error {
	if err != nil {
		l.log.Error("audit event neither stored nor spooled", "type", ev.Type, "err", err)
		return fmt.Errorf("store audit event %s: %w", ev.Type, err)
	}
	return nil
}

// writable reports whether the store takes writes at all, as opposed to
// refusing one event. Reads are no test: a locked or read-only SQLite
// file reads fine.
func (l *Log) writable(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return l.store.CheckWritable(cctx)
}

// errInvalidEvent marks an event no store would take (no type, a detail
// that does not encode): it is set aside, never spooled, because retrying
// it would hold up every event behind it for ever.
var errInvalidEvent = errors.New("invalid audit event")

// checkEvent reports whether a store can take ev at all. Everything else
// that makes AppendAudit fail (a read-only or locked database, a database
// that is down) passes with time, so that event waits in the spool.
func checkEvent(ev store.AuditEvent) error {
	if ev.Type == "" {
		return fmt.Errorf("%w: no type", errInvalidEvent)
	}
	return nil
}

// encodableDetail returns d, or, if d does not encode as JSON (a NaN, a
// func: a bug in the caller), what can be said of it as text, so that the
// event is kept rather than lost with its detail. normErr is what
// store.NormalizeDetail said of d.
func encodableDetail(d map[string]any, normErr error) map[string]any {
	if normErr == nil {
		return d
	}
	return map[string]any{"detail_error": normErr.Error(), "detail_text": fmt.Sprintf("%v", d)}
}

// Outcomes.
const (
	Success = "success"
	Deny    = "deny"
	Failure = "failure"
	Info    = "info"
)

// Log writes events to the store and the structured log.
type Log struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time
	sink  *Syslog // optional copy to a collector
	spool *Spool  // optional: where events wait while the store is down
	// checkpoints, optional, counts stored events to sign the head
	// every so many.
	checkpoints *Checkpointer

	// order serializes Write's choice between the store and the spool
	// with the append that follows, so that an event cannot reach the
	// store ahead of one that failed a moment before it and went to the
	// spool. (The store serializes appends anyway: one SQLite writer, one
	// PostgreSQL advisory lock.) Run's drain does not take it: events go
	// straight to the store only while the spool is empty.
	order sync.Mutex
	// failure is the last store write that failed, until the spool is
	// empty again; Health reports it.
	failure atomic.Pointer[writeFailure]
}

// writeFailure is a store write that failed, for Health.
type writeFailure struct {
	since time.Time
	err   error
}

// SetCheckpointer lets c count the events l stores. Call before use.
func (l *Log) SetCheckpointer(c *Checkpointer) { l.checkpoints = c }

// SetSyslog sends a copy of every stored event to s. Call before use.
func (l *Log) SetSyslog(s *Syslog) { l.sink = s }

// New returns a Log writing to st and logging to log.
func New(st store.Store, log *slog.Logger) *Log {
	return &Log{store: st, log: log, now: time.Now}
}

// Write stores ev (its Time set if zero) and logs it. The error is returned
// so that callers that must fail closed can; it is also logged.
func (l *Log) Write(ctx context.Context, ev store.AuditEvent) error {
	level := slog.LevelInfo
	if ev.Outcome == Deny || ev.Outcome == Failure {
		level = slog.LevelWarn
	}
	return l.write(ctx, ev, level)
}

// WriteQuiet is Write for events that come by the thousand a second and
// carry what users typed (the PostgreSQL front's statement batches, with
// their SQL and its literals): stored exactly as Write stores them, but
// logged at debug level only, whatever their outcome. The store has every
// field; an info-level log line of each would put the SQL in the logs and
// cost as much CPU as relaying the statements.
func (l *Log) WriteQuiet(ctx context.Context, ev store.AuditEvent) error {
	return l.write(ctx, ev, slog.LevelDebug)
}

func (l *Log) write(ctx context.Context, ev store.AuditEvent, level slog.Level) error {
	if ev.Time.IsZero() {
		ev.Time = l.now().UTC()
	}
	// The log line's detail costs a JSON round trip: build it only for a
	// logger that prints it (a gateway at --log-level warn skips every
	// successful event; the PostgreSQL front writes one per statement batch).
	// One JSON round trip serves the log line and the check below; a
	// Detail already normal is both as it is (it encodes, and the store
	// encodes it once).
	norm, normErr := ev.Detail, error(nil)
	if !store.DetailIsNormal(ev.Detail) {
		norm, _, normErr = store.NormalizeDetail(ev.Detail)
	}
	if l.log.Enabled(ctx, level) {
		// Attrs, not alternating keys and values: no value is boxed in an
		// interface and the array stays on the stack (every login writes
		// two events; their garbage is what an idle session's heap keeps).
		var buf [9]slog.Attr
		attrs := append(buf[:0], slog.String("type", ev.Type), slog.String("outcome", ev.Outcome))
		for _, kv := range [...][2]string{{"user", ev.User}, {"source", ev.Source}, {"target", ev.Target},
			{"account", ev.Account}, {"session", ev.SessionID}, {"policy", ev.Policy}} {
			if kv[1] != "" {
				attrs = append(attrs, slog.String(kv[0], kv[1]))
			}
		}
		if d, ok := detailAttr(norm, normErr); ok {
			attrs = append(attrs, d)
		}
		l.log.LogAttrs(ctx, level, "audit: "+ev.Message, attrs...)
	}
	ev.Detail = encodableDetail(ev.Detail, normErr)
	if err := checkEvent(ev); err != nil {
		if l.spool != nil {
			if rerr := l.spool.reject(spooled{Event: ev}); rerr != nil {
				err = errors.Join(err, fmt.Errorf("set aside: %w", rerr))
			}
		}
		l.log.Error("audit event refused; set aside in the rejected file", "type", ev.Type, "err", err)
		return fmt.Errorf("store audit event %s: %w", ev.Type, err)
	}
	l.order.Lock()
	defer l.order.Unlock()
	if l.spool != nil && l.spool.Pending() > 0 {
		// Events already waiting go first: the trail keeps its order.
		return l.spoolResult(ev, l.spool.add(ev))
	}
	// A cancelled request context must not lose the event that records
	// why it ended.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	id, err := l.store.AppendAudit(wctx, ev)
	if err != nil {
		l.noteFailure(err)
		if l.spool == nil {
			l.log.Error("audit event not stored", "type", ev.Type, "err", err)
			return fmt.Errorf("store audit event %s: %w", ev.Type, err)
		}
		// Any failure, not only a store that does not answer: a
		// read-only or locked SQLite reads fine and refuses writes.
		l.log.Warn("audit store refused a write; spooling the event", "type", ev.Type, "err", err)
		return l.spoolResult(ev, l.spool.add(ev))
	}
	l.failure.Store(nil)
	l.stored(ev, id)
	return nil
}

// stored passes an event the store took to syslog and the checkpointer.
func (l *Log) stored(ev store.AuditEvent, id int64) {
	if l.sink != nil {
		ev.ID = id
		l.sink.enqueue(ev)
	}
	if l.checkpoints != nil {
		l.checkpoints.noteAppend()
	}
}

// noteFailure records a failed store write for Health, keeping the time
// of the first failure of a run of them.
func (l *Log) noteFailure(err error) {
	since := time.Now()
	if old := l.failure.Load(); old != nil {
		since = old.since
	}
	l.failure.Store(&writeFailure{since: since, err: err})
}

// Health reports whether the audit trail is whole in the store: an error
// while events wait in the spool (the store refuses writes, or has just
// come back and the spool is draining) or the last write failed. The
// events are safe on disk then, but not in the store: auditors do not see
// them, and no signed checkpoint covers them.
func (l *Log) Health() error {
	pending := 0
	if l.spool != nil {
		pending = l.spool.Pending()
	}
	f := l.failure.Load()
	if pending == 0 && f == nil {
		return nil
	}
	msg := fmt.Sprintf("%d audit events wait in the spool", pending)
	if f != nil {
		msg += fmt.Sprintf("; the store has refused writes since %s: %v", f.since.UTC().Format(time.RFC3339), f.err)
	}
	return errors.New(msg)
}

// detailAttr turns an event's Detail into one "detail" group for the log
// line, so that a Detail key can never repeat a key of the line itself
// (user, target, ...). Values go through the JSON round trip the store
// uses (store.NormalizeDetail): a json.RawMessage, a struct or a typed map
// would otherwise print as decimal bytes or a Go struct dump. Nested values
// log as JSON (an object in JSON mode, compact JSON text in text mode);
// empty ones are left out, as the line's own empty fields are.
//
// norm and err are what store.NormalizeDetail returned for the Detail.
func detailAttr(norm map[string]any, err error) (slog.Attr, bool) {
	if err != nil {
		return slog.String("detail_error", err.Error()), true
	}
	if len(norm) == 0 {
		return slog.Attr{}, false
	}
	as := make([]slog.Attr, 0, len(norm))
	for _, k := range slices.Sorted(maps.Keys(norm)) {
		switch v := norm[k].(type) {
		case nil:
		case map[string]any, []any:
			as = append(as, slog.Any(k, jsonValue{v}))
		default:
			as = append(as, slog.Any(k, v))
		}
	}
	if len(as) == 0 {
		return slog.Attr{}, false
	}
	return slog.Attr{Key: "detail", Value: slog.GroupValue(as...)}, true
}

// jsonValue logs a nested Detail value as JSON: an object or array in a
// JSON log (json.Marshaler), compact JSON text in a text log
// (encoding.TextMarshaler, which slog's text handler prefers to %+v).
type jsonValue struct{ v any }

func (j jsonValue) MarshalJSON() ([]byte, error) { return json.Marshal(j.v) }

func (j jsonValue) MarshalText() ([]byte, error) { return json.Marshal(j.v) }
