// Package store is the persistence boundary of the gateway: the Store
// interface, the records it keeps, and the errors it returns. The embedded
// SQLite implementation lives in store/sqlite; PostgreSQL (for several
// gateways sharing one database) will sit beside it. Both run the same
// conformance suite in store/storetest.
//
// The store knows nothing of resource shapes: a resource is a kind, a name,
// a JSON spec and an optional sealed secret. Domain packages decode specs;
// that keeps the schema stable while resource fields grow.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// ErrNotFound is returned when a named record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write races another (for example a host key
// recorded twice for the same target).
var ErrConflict = errors.New("conflict")

// Record is one stored resource.
type Record struct {
	Kind string
	Name string
	// Spec is the resource as JSON, without secrets.
	Spec json.RawMessage
	// Secret is sealed by the vault (AES-256-GCM under the master key); nil
	// when the resource has none. On Apply, a nil Secret keeps the stored one.
	Secret    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Change is one write in an atomic batch: a put of Record, or a delete of
// Kind/Name when Delete is set.
type Change struct {
	Record Record
	Delete bool
	// Create makes a put fail with ErrConflict (and the whole batch with
	// it) when Kind/Name exists: a writer that read "absent" must not
	// overwrite what another gateway created meanwhile.
	Create bool
}

// AuditEvent is one entry of the audit trail. Fields that do not apply to an
// event are empty.
type AuditEvent struct {
	ID        int64
	Time      time.Time
	Type      string // e.g. "login.success", "session.start", "session.deny"
	Outcome   string // "success", "deny", "failure", "info"
	User      string // the gateway identity (user or service account)
	Source    string // client address, host:port
	Target    string
	Account   string // target user
	SessionID string
	Policy    string // policy that allowed it, if any
	Message   string // one line for humans
	// Detail holds event-specific fields (bytes each way, exit status, ...).
	Detail map[string]any
	// PrevHash and Hash chain the trail (see HashEvent); set by the store.
	PrevHash string
	Hash     string
}

// Recording states.
const (
	RecordingActive      = "active"
	RecordingEnded       = "ended"
	RecordingInterrupted = "interrupted"
	// RecordingIncomplete: ended, but output was lost on the way to the
	// file (a write error, a full disk); the file marks where, and the
	// session.end event says how much.
	RecordingIncomplete = "incomplete"
)

// Recording is the metadata of one session recording; the asciicast file
// itself lives in the gateway's recordings directory.
type Recording struct {
	ID        string // the session (grant) id; also the file's base name
	User      string
	Target    string
	Account   string
	Source    string
	Action    string // shell or exec
	Command   string // for exec
	StartedAt time.Time
	EndedAt   time.Time // zero while active
	State     string    // RecordingActive, RecordingEnded, RecordingInterrupted, RecordingIncomplete
	Size      int64     // bytes of the file when it ended
	SHA256    string    // hex, of the file when it ended
	// Gateway is the id of the gateway that records it: the one whose
	// InterruptActive closes it if it is left active. Empty for
	// recordings stored before gateways had ids.
	Gateway string
	// IndexState says how much of the recording search sees: IndexLive,
	// IndexPartial, IndexComplete or IndexFailed. IndexOffset is how far
	// into the file the catch-up has indexed (0: not started).
	IndexState  string
	IndexOffset int64
	// LostBytes is the output a recording could not write (state
	// RecordingIncomplete); GapFrom and GapTo bound when, since its start.
	LostBytes      int64
	GapFrom, GapTo time.Duration
}

// Search index states of a recording.
const (
	// IndexLive: the session runs; text is indexed as it comes, within
	// the live budget.
	IndexLive = "live"
	// IndexPartial: the recording ended and its index misses text (the
	// budget, a store that refused it); its gateway indexes it again from
	// the file in the background.
	IndexPartial = "partial"
	// IndexComplete: everything the file holds is searchable.
	IndexComplete = "complete"
	// IndexFailed: the file could not be read to index it.
	IndexFailed = "failed"
)

// RecordingFilter narrows a recordings listing. Zero fields do not filter.
type RecordingFilter struct {
	User   string
	Target string
	State  string
	Since  time.Time // started at or after
	// BeforeStarted and BeforeID, when BeforeID is set, keep only the
	// recordings listed after that one (newest first): started earlier,
	// or at the same time with a smaller id. The cursor of the next page.
	BeforeStarted time.Time
	BeforeID      string
	Limit         int // 0 means 1000
}

// TextChunk is text that appeared in (or was typed into) a recording,
// starting at Offset seconds from its start, for keyword search.
type TextChunk struct {
	RecordingID string
	Offset      float64
	Text        string
	// Times says when the chunk's later lines appeared, where that is not
	// at Offset (EncodeLineTimes); empty when every line appeared then.
	// A search hit is reported at the time of the line that holds it.
	Times string
}

// SearchHit is one recording where a search matched.
type SearchHit struct {
	RecordingID string
	User        string
	Target      string
	Offset      float64 // seconds from the recording's start to the line of the best chunk that holds the match
	Snippet     string  // the matching text with some context
}

// Command is one command a subject ran: an exec request exactly, or a line
// entered in an interactive shell as reconstructed from keystrokes.
type Command struct {
	ID          int64
	Time        time.Time
	User        string
	Target      string
	Account     string
	SessionID   string
	Source      string
	Command     string
	Interactive bool
	// Certain is false when the line reconstructor could not be sure
	// (tab completion, history recall, ...).
	Certain    bool
	ExitStatus *int // exec only, once known
}

// CommandFilter narrows a command listing. Zero fields do not filter.
type CommandFilter struct {
	User      string
	Target    string
	SessionID string
	Since     time.Time
	AfterID   int64
	// BeforeID keeps only commands with a smaller ID: the cursor of a
	// newest-first listing's next page.
	BeforeID int64
	// Newest lists newest first (descending ID) rather than in the order
	// appended, so that a page without Since shows what happened last.
	Newest bool
	Limit  int // 0 means 1000
}

// Hash and PrevHash of an AuditEvent chain the trail: Hash is
// HashEvent(PrevHash, event) and PrevHash is the Hash of the event before
// it (empty for the first). The store fills both on AppendAudit, inside the
// transaction that appends, so the chain has no gaps or forks.

// AuditFilter narrows an audit listing. Zero fields do not filter.
type AuditFilter struct {
	Since     time.Time
	Until     time.Time
	Type      string // exact, or a prefix ending in "." ("session.")
	User      string
	Target    string
	SessionID string
	AfterID   int64 // only events with a larger ID, for paging and tailing
	BeforeID  int64 // only events with a smaller ID: the cursor of a newest-first page
	// Newest lists newest first (descending ID) rather than in the order
	// appended, so that a page without Since shows what happened last.
	Newest bool
	Limit  int // 0 means 1000
}

// Kinds of AuditCheckpoint.
const (
	// CheckpointHead states the trail's newest event: whatever the
	// trail holds later must still hold that event with that hash.
	CheckpointHead = "head"
	// CheckpointRetention states where retention cut the trail: the first
	// kept event and the hash it continues from (its PrevHash), so that
	// exactly that missing prefix is accepted.
	CheckpointRetention = "retention"
)

// AuditCheckpoint is a signed statement about the audit trail, kept in the
// store and outside it (a file, syslog), so that removing the newest or
// oldest events, or rewriting the trail from some event on, shows even to
// someone who can write the database. Package audit signs and checks it.
type AuditCheckpoint struct {
	// Seq is the checkpoint's own id in the store; 0 when read elsewhere.
	Seq int64
	// Kind is CheckpointHead or CheckpointRetention.
	Kind string
	// EventID and Hash: for a head checkpoint, the newest event's ID and
	// Hash; for a retention checkpoint, the first kept event's ID and the
	// Hash of the last removed one (the kept event's PrevHash).
	EventID int64
	Hash    string
	// Time is when it was signed; Gateway the id of the gateway that did.
	Time    time.Time
	Gateway string
	// Signature is the base64 Ed25519 signature of the audit key over
	// everything above but Seq (audit.CheckpointMessage).
	Signature string
}

// AuditKey is the gateway's audit signing key as stored: one key for every
// gateway sharing the store, so that one public key checks the whole trail.
type AuditKey struct {
	// PublicKey is the key in OpenSSH authorized_keys form (ssh-ed25519).
	PublicKey string
	// Sealed is the private key sealed under the master key.
	Sealed    []byte
	CreatedAt time.Time
}

// HostKey is a target host key learned on first use.
type HostKey struct {
	Target    string
	Key       string // authorized_keys format
	FirstSeen time.Time
}

// API key kinds.
const (
	// APIKeyAccess authenticates API requests as the key's owner.
	APIKeyAccess = "access"
	// APIKeyRegistration may only register targets.
	APIKeyRegistration = "registration"
)

// APIKey is an API key as stored: never its secret, only a hash of it.
type APIKey struct {
	ID   string // public; the first part of the X-API-KEY value
	Name string
	Kind string // APIKeyAccess or APIKeyRegistration
	// Owner is the user the key acts as; empty for a global registration
	// key.
	Owner      string
	CreatedBy  string
	SecretHash string // see package apikey
	// SourceCIDRs, when not empty, are the only client networks the key
	// is accepted from.
	SourceCIDRs []string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	RevokedAt   time.Time // zero: not revoked
	// Registration keys only: Environment, when set, is the only
	// environment the key registers targets in; MaxUses, when above zero,
	// bounds how many registrations it makes (Uses counts them);
	// NamePattern, when set, is a glob (path.Match) the registered target's
	// name must match.
	Environment string
	MaxUses     int64
	Uses        int64
	NamePattern string
}

// Agent is a target that dials out to the gateway: the identity it
// authenticates with and its connection as the gateways see it.
type Agent struct {
	Target string
	// PublicKey is the agent's Ed25519 identity, authorized_keys format.
	PublicKey string
	// Mode is "forward" (to the host's sshd) or "builtin".
	Mode    string
	Version string
	// Gateway is the id of the gateway holding the agent's connection; ""
	// when none does.
	Gateway      string
	KeyID        string // the registration key that registered it
	RegisteredAt time.Time
	ConnectedAt  time.Time // zero: not connected
	LastSeen     time.Time
}

// WebSession is a signed-in web console session. The cookie value itself
// is never stored: IDHash is its hex SHA-256.
type WebSession struct {
	IDHash    string
	User      string
	CSRFToken string
	Source    string // client address at sign-in
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time // absolute end, whatever the activity
}

// MFA enrollment states.
const (
	// MFAPending is an enrollment whose secret was handed out but no code
	// has confirmed yet: it is not used to sign in.
	MFAPending = "pending"
	// MFAActive is a confirmed enrollment: its codes are asked and
	// accepted.
	MFAActive = "active"
)

// MFAEnrollment is a user's TOTP enrollment. The seed is kept only sealed
// by the vault; recovery codes only as hashes (see the MFA methods).
type MFAEnrollment struct {
	User string
	// Secret is the TOTP seed sealed by the vault (AES-256-GCM under the
	// master key, bound to the user's name); never plaintext.
	Secret      []byte
	State       string // MFAPending or MFAActive
	CreatedAt   time.Time
	ActivatedAt time.Time // zero while pending
	// RecoveryLeft counts the recovery codes not used yet; set on read.
	RecoveryLeft int
}

// Session review decisions.
const (
	// ReviewOK: an auditor watched the recording and found nothing wrong.
	ReviewOK = "reviewed"
	// ReviewFlagged: an auditor found something to follow up.
	ReviewFlagged = "flagged"
)

// SessionReview is an auditor's verdict on one recording. Reviews are
// appended; the latest of a recording counts.
type SessionReview struct {
	ID          int64
	RecordingID string
	Reviewer    string
	Decision    string // ReviewOK or ReviewFlagged
	Comment     string
	Time        time.Time
}

// SessionReviewFilter narrows a session review listing. Zero fields do not
// filter.
type SessionReviewFilter struct {
	RecordingID string
}

// Access review decisions on a ReviewItem.
const (
	ReviewKeep   = "keep"
	ReviewRevoke = "revoke"
)

// ReviewCampaign is an access review: every entitlement as it started,
// each kept or revoked by a reviewer, closed with a sign-off.
type ReviewCampaign struct {
	ID        int64
	Name      string
	StartedBy string
	StartedAt time.Time
	ClosedBy  string
	ClosedAt  time.Time // zero while open
	SignOff   string
}

// ReviewItem is one entitlement of a campaign and its decision.
type ReviewItem struct {
	CampaignID int64
	Item       int64 // 1, 2, ... within the campaign
	// Identity, IdentityKind ("user", "service_account"), Via ("direct",
	// "group:NAME", "directory-group:NAME"), Policy, JITPolicy, Target,
	// TargetUser, Privileged and GrantedBy describe the entitlement as the
	// entitlements report does.
	Identity, IdentityKind, Via, Policy, JITPolicy string
	Target, TargetUser, Privileged, GrantedBy      string
	// Decision is "" (pending), ReviewKeep or ReviewRevoke; Effect says
	// what a revoke changed.
	Decision, Reviewer, Comment, Effect string
	DecidedAt                           time.Time
}

// ReportSchedule is a report generated every so often (or, for kind
// "review", an access review campaign opened every so often).
type ReportSchedule struct {
	ID    int64
	Kind  string
	Every time.Duration
	// Dest is a directory on the gateway's machine or an https:// webhook;
	// empty for a review.
	Dest      string
	Formats   []string
	CreatedBy string
	CreatedAt time.Time
	LastRun   time.Time // zero: never
}

// Store is the gateway's persistent state. Every method is safe for
// concurrent use. Methods return errors that name what failed; callers add
// what they were doing.
type Store interface {
	// Apply writes every change in one transaction: all or nothing. A put of
	// an existing kind/name replaces its spec, keeps CreatedAt, and keeps the
	// stored Secret when the new record's Secret is nil.
	Apply(ctx context.Context, changes []Change) error
	// Get returns one resource, ErrNotFound if absent.
	Get(ctx context.Context, kind, name string) (Record, error)
	// List returns every resource of a kind ("" for all kinds), ordered by
	// kind then name.
	List(ctx context.Context, kind string) ([]Record, error)
	// Revision is a number that grows with every Apply; gateways sharing a
	// store poll it to notice changes made elsewhere.
	Revision(ctx context.Context) (int64, error)
	// CheckWritable reports whether the store takes writes now, with a
	// write that changes nothing. A store can answer reads and refuse
	// writes (a read-only or locked SQLite file, a PostgreSQL standby).
	CheckWritable(ctx context.Context) error

	// AppendAudit stores an event and returns its ID. IDs grow.
	AppendAudit(ctx context.Context, ev AuditEvent) (int64, error)
	// ListAudit returns events matching f, oldest first, with their hashes.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// DeleteAuditBefore removes events older than t (retention) and returns
	// how many. The chain then starts at the oldest kept event, whose
	// PrevHash no longer matches anything: verification starts there. It
	// removes a prefix of the trail (events up to the first one, in ID
	// order, at or after t), so that an event older than t appended after a
	// newer one (the clock stepped back) stays, and the rest still chains.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error)
	// AuditHead returns the newest event's ID and Hash; 0 and "" for an
	// empty trail.
	AuditHead(ctx context.Context) (id int64, hash string, err error)
	// PruneAudit is retention with a signed record of what it removed. In
	// one transaction, it removes the oldest events up to (not including)
	// the first one, in ID order, whose time is at or after t, but never
	// the newest event (the chain must go on from somewhere), then stores
	// the checkpoint seal returns for the first kept event's ID and
	// PrevHash. It returns how many events it removed (0: seal was not
	// called, nothing changed) and the stored checkpoint.
	PruneAudit(ctx context.Context, t time.Time, seal func(firstKept int64, anchor string) (AuditCheckpoint, error)) (int64, AuditCheckpoint, error)
	// AppendCheckpoint stores a checkpoint and returns its Seq.
	AppendCheckpoint(ctx context.Context, cp AuditCheckpoint) (int64, error)
	// LatestCheckpoint returns the stored checkpoint of a kind with the
	// largest EventID (the latest Seq among equals), ErrNotFound if none.
	LatestCheckpoint(ctx context.Context, kind string) (AuditCheckpoint, error)
	// GetAuditKey returns the audit key, ErrNotFound before it is made.
	GetAuditKey(ctx context.Context) (AuditKey, error)
	// CreateAuditKey stores the audit key unless one exists (another
	// gateway made it first): ErrConflict then, and the stored one wins.
	CreateAuditKey(ctx context.Context, k AuditKey) error

	// CreateRecording stores a new active recording's metadata;
	// ErrConflict if the ID exists.
	CreateRecording(ctx context.Context, r Recording) error
	// FinishRecording sets a recording's end time, state (ended or
	// interrupted), size and hash; ErrNotFound if absent.
	FinishRecording(ctx context.Context, id, state string, endedAt time.Time, size int64, sha256 string) error
	// GetRecording returns one recording, ErrNotFound if absent.
	GetRecording(ctx context.Context, id string) (Recording, error)
	// ListRecordings returns recordings matching f, newest first.
	ListRecordings(ctx context.Context, f RecordingFilter) ([]Recording, error)
	// SetRecordingIndex stores a recording's index state and catch-up
	// offset; ErrNotFound if the recording does not exist.
	SetRecordingIndex(ctx context.Context, id, state string, offset int64) error
	// SetRecordingGap stores what a recording lost: bytes, and when
	// (since its start); ErrNotFound if the recording does not exist.
	SetRecordingGap(ctx context.Context, id string, lostBytes int64, from, to time.Duration) error
	// IndexBacklog returns up to limit recordings of gateway that ended
	// (or were interrupted) and whose index is not complete or failed
	// (live or partial), oldest first: what that gateway indexes from
	// its files.
	IndexBacklog(ctx context.Context, gateway string, limit int) ([]Recording, error)
	// DeleteRecordingText removes a recording's indexed text (before it is
	// indexed again from the file).
	DeleteRecordingText(ctx context.Context, id string) error
	// DeleteRecording removes a recording's metadata and its text index;
	// ErrNotFound if absent.
	DeleteRecording(ctx context.Context, id string) error
	// InterruptActive marks gateway's active recordings interrupted (at
	// start, for sessions its previous run did not end) and returns them.
	// Other gateways' recordings are left alone: on a shared database they
	// may still be writing them. Gateway "" matches the recordings stored
	// with no gateway, as those from before gateways had ids were.
	InterruptActive(ctx context.Context, gateway string, endedAt time.Time) ([]Recording, error)
	// IndexText adds text chunks to the search index.
	IndexText(ctx context.Context, chunks []TextChunk) error
	// SearchText finds recordings whose text matches query (words, all of
	// which must appear in one chunk; a quoted "phrase" must appear as
	// is), newest first: the recording whose matching text was indexed
	// last comes first, with its latest matching chunk. See ParseSearch;
	// a query without words is ErrEmptyQuery. A limit of zero or less
	// means 100.
	SearchText(ctx context.Context, query string, limit int) ([]SearchHit, error)

	// AppendCommand stores a command and returns its ID.
	AppendCommand(ctx context.Context, c Command) (int64, error)
	// SetCommandExit records the exit status of an exec command;
	// ErrNotFound if absent.
	SetCommandExit(ctx context.Context, id int64, status int) error
	// ListCommands returns commands matching f, oldest first.
	ListCommands(ctx context.Context, f CommandFilter) ([]Command, error)

	// HostKey returns the key recorded for target on first use, ErrNotFound
	// if none.
	HostKey(ctx context.Context, target string) (HostKey, error)
	// RecordHostKey stores a first-use key; ErrConflict if one is already
	// recorded for target (the caller then compares against it).
	RecordHostKey(ctx context.Context, hk HostKey) error
	// ForgetHostKey removes a learned key (after an admin confirms a change).
	ForgetHostKey(ctx context.Context, target string) error

	// CreateAPIKey stores a new key; ErrConflict if the ID exists.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKey returns one key, ErrNotFound if absent.
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns every key, revoked ones included, oldest first.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks a key revoked at t; ErrNotFound if absent. Revoking
	// a revoked key keeps the first time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// UseRegistrationKey counts one registration made with key id at
	// time at: ErrConflict if the key has used up its MaxUses, is
	// revoked or has expired by then, ErrNotFound if absent. The check and
	// the count are one statement, so concurrent uses cannot overdraw.
	UseRegistrationKey(ctx context.Context, id string, at time.Time) error

	// PutAgent stores an agent's registration (identity, mode, key),
	// replacing the row of its target and clearing its connection.
	PutAgent(ctx context.Context, a Agent) error
	// GetAgent returns one agent, ErrNotFound if absent.
	GetAgent(ctx context.Context, target string) (Agent, error)
	// ListAgents returns every agent by target name.
	ListAgents(ctx context.Context) ([]Agent, error)
	// AgentConnected records that gateway now holds the agent's
	// connection, of version, at time at; ErrNotFound if absent.
	AgentConnected(ctx context.Context, target, gateway, version string, at time.Time) error
	// AgentSeen records a heartbeat on gateway's connection; a row another
	// gateway has taken over since is left alone.
	AgentSeen(ctx context.Context, target, gateway string, at time.Time) error
	// AgentDisconnected records that gateway no longer holds the agent's
	// connection; a row another gateway has taken over is left alone.
	AgentDisconnected(ctx context.Context, target, gateway string, at time.Time) error
	// DeleteAgent removes an agent's row; absent is not an error.
	DeleteAgent(ctx context.Context, target string) error

	// GetSetting returns a setting's stored value, ErrNotFound if it was
	// never set (the caller applies its default).
	GetSetting(ctx context.Context, name string) (string, error)
	// SetSetting stores a setting's value.
	SetSetting(ctx context.Context, name, value string) error
	// ListSettings returns the settings whose names start with prefix.
	ListSettings(ctx context.Context, prefix string) (map[string]string, error)

	// SetPassword stores a user's password hash, replacing any.
	SetPassword(ctx context.Context, user, hash string, at time.Time) error
	// PasswordHash returns a user's password hash, ErrNotFound if none.
	PasswordHash(ctx context.Context, user string) (string, error)
	// DeletePassword removes a user's password hash; absent is not an
	// error.
	DeletePassword(ctx context.Context, user string) error

	// CreateWebSession stores a console session; ErrConflict if IDHash
	// exists.
	CreateWebSession(ctx context.Context, s WebSession) error
	// GetWebSession returns a session, ErrNotFound if absent (expired
	// ones are returned until deleted; the caller checks ExpiresAt).
	GetWebSession(ctx context.Context, idHash string) (WebSession, error)
	// TouchWebSession sets a session's LastSeen; ErrNotFound if absent.
	TouchWebSession(ctx context.Context, idHash string, lastSeen time.Time) error
	// DeleteWebSession removes a session; absent is not an error.
	DeleteWebSession(ctx context.Context, idHash string) error
	// DeleteUserWebSessions removes every session of a user (password
	// changed, user removed).
	DeleteUserWebSessions(ctx context.Context, user string) error
	// DeleteExpiredWebSessions removes sessions whose ExpiresAt is before
	// now and returns how many.
	DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error)

	// PutMFAEnrollment stores a new enrollment for e.User with the hashes
	// of its recovery codes, in one transaction, replacing any enrollment,
	// recovery codes and used time steps the user had: enrolling again
	// starts over. The State given is stored (callers store MFAPending).
	PutMFAEnrollment(ctx context.Context, e MFAEnrollment, recoveryHashes []string) error
	// GetMFAEnrollment returns a user's enrollment, ErrNotFound if none.
	GetMFAEnrollment(ctx context.Context, user string) (MFAEnrollment, error)
	// ActivateMFA marks a pending enrollment active at t; ErrNotFound if
	// the user has no pending enrollment (none, or already active).
	ActivateMFA(ctx context.Context, user string, at time.Time) error
	// DeleteMFA removes a user's enrollment, recovery codes and used time
	// steps; absent is not an error.
	DeleteMFA(ctx context.Context, user string) error
	// UseMFAStep records that a code of user's for TOTP time step was
	// accepted; ErrConflict if that step was already used. The insert is
	// the check, so that of two concurrent uses of one code exactly one
	// succeeds, on one gateway or several sharing the store. It also
	// forgets the user's steps older than step-10, which no skew accepts.
	UseMFAStep(ctx context.Context, user string, step int64, at time.Time) error
	// UseRecoveryCode marks the user's unused recovery code with this hash
	// used at t; ErrNotFound if there is none (unknown or already used).
	// Like UseMFAStep, of concurrent uses exactly one succeeds.
	UseRecoveryCode(ctx context.Context, user, hash string, at time.Time) error

	// CreateJITRequest stores a new request with its first history
	// event, in one transaction; ErrConflict if the ID exists.
	CreateJITRequest(ctx context.Context, r JITRequest, ev JITEvent) error
	// GetJITRequest returns one request, ErrNotFound if absent.
	GetJITRequest(ctx context.Context, id string) (JITRequest, error)
	// ListJITRequests returns requests matching f, newest first.
	ListJITRequests(ctx context.Context, f JITFilter) ([]JITRequest, error)
	// TransitionJITRequest stores r (its state and decision fields) only
	// if the stored request is still in state from, and appends ev, in one
	// transaction; ErrConflict if the state moved (another approver or
	// gateway won), ErrNotFound if absent.
	TransitionJITRequest(ctx context.Context, r JITRequest, from string, ev JITEvent) error
	// AppendJITEvent adds a step to a request's history.
	AppendJITEvent(ctx context.Context, ev JITEvent) error
	// ListJITEvents returns a request's history, oldest first.
	ListJITEvents(ctx context.Context, request string) ([]JITEvent, error)
	// CreateJITLink stores a webhook link.
	CreateJITLink(ctx context.Context, l JITLink) error
	// GetJITLink returns a link, used or not; ErrNotFound if unknown.
	GetJITLink(ctx context.Context, tokenHash string) (JITLink, error)
	// UseJITLink marks an unused, unexpired link used at t and returns it;
	// ErrNotFound if there is none (unknown, used or expired). Of
	// concurrent uses exactly one succeeds.
	UseJITLink(ctx context.Context, tokenHash string, at time.Time) (JITLink, error)
	// AddSessionReview appends a review and returns its ID.
	AddSessionReview(ctx context.Context, r SessionReview) (int64, error)
	// ListSessionReviews returns reviews matching f, oldest first.
	ListSessionReviews(ctx context.Context, f SessionReviewFilter) ([]SessionReview, error)
	// CreateReviewCampaign stores an open campaign and its items (numbered
	// from 1 in the order given) in one transaction and returns its ID.
	CreateReviewCampaign(ctx context.Context, c ReviewCampaign, items []ReviewItem) (int64, error)
	// ListReviewCampaigns returns every campaign, oldest first.
	ListReviewCampaigns(ctx context.Context) ([]ReviewCampaign, error)
	// GetReviewCampaign returns one campaign, ErrNotFound if absent.
	GetReviewCampaign(ctx context.Context, id int64) (ReviewCampaign, error)
	// ListReviewItems returns a campaign's items in order.
	ListReviewItems(ctx context.Context, campaign int64) ([]ReviewItem, error)
	// DecideReviewItem stores the decision of an item of an open
	// campaign: ErrNotFound if either is absent, ErrConflict if the
	// campaign is closed or the item already decided (a decision is final:
	// a revoke has taken effect).
	DecideReviewItem(ctx context.Context, it ReviewItem) error
	// CloseReviewCampaign closes an open campaign with a sign-off;
	// ErrNotFound if absent, ErrConflict if closed.
	CloseReviewCampaign(ctx context.Context, id int64, by, signOff string, at time.Time) error
	// CreateReportSchedule stores a schedule and returns its ID.
	CreateReportSchedule(ctx context.Context, s ReportSchedule) (int64, error)
	// ListReportSchedules returns every schedule, oldest first.
	ListReportSchedules(ctx context.Context) ([]ReportSchedule, error)
	// DeleteReportSchedule removes a schedule; ErrNotFound if absent.
	DeleteReportSchedule(ctx context.Context, id int64) error
	// SetReportScheduleRun records when a schedule last ran; ErrNotFound
	// if absent.
	SetReportScheduleRun(ctx context.Context, id int64, at time.Time) error

	// Close releases the database.
	Close() error
}

// Notifier is implemented by stores that announce changes made by any
// writer (PostgreSQL: LISTEN/NOTIFY), so that gateways sharing the store
// reload at once instead of waiting for their next poll.
type Notifier interface {
	// WatchChanges returns a channel that receives (coalesced) after every
	// Apply committed by any gateway, and after the store reconnects (a
	// change may have been missed). It is closed when ctx ends.
	WatchChanges(ctx context.Context) <-chan struct{}
}

// HashEvent returns the chain hash of ev after prev: hex SHA-256 over prev
// and a canonical encoding of every field but the hashes (ID included, so
// that reordering shows; Time as UTC nanoseconds; Detail as JSON with sorted
// keys, which encoding/json gives maps). Both backends and the verifier use
// this one function. Stores hash Detail as they will read it back (see
// NormalizeDetail), so that the hash recomputes from a listing.
func HashEvent(prev string, ev AuditEvent) string {
	detail, err := json.Marshal(ev.Detail)
	if err != nil || len(ev.Detail) == 0 {
		detail = nil
	}
	return HashEventJSON(prev, ev, detail)
}

// HashEventJSON is HashEvent with ev.Detail already encoded as
// json.Marshal encodes it (nil for an empty Detail), as an appending
// store has it from NormalizeDetail: the encoding is not done twice.
func HashEventJSON(prev string, ev AuditEvent, detail []byte) string {
	if len(detail) == 0 {
		detail = []byte("{}")
	}
	h := sha256.New()
	for _, part := range []string{
		prev, strconv.FormatInt(ev.ID, 10), strconv.FormatInt(ev.Time.UTC().UnixNano(), 10),
		ev.Type, ev.Outcome, ev.User, ev.Source, ev.Target, ev.Account, ev.SessionID, ev.Policy, ev.Message,
		string(detail),
	} {
		// Length-prefixed, so that moving text between fields changes the hash.
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil))
}
