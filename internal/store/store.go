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
	"encoding/json"
	"errors"
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
}

// AuditFilter narrows an audit listing. Zero fields do not filter.
type AuditFilter struct {
	Since     time.Time
	Until     time.Time
	Type      string // exact, or a prefix ending in "." ("session.")
	User      string
	Target    string
	SessionID string
	AfterID   int64 // only events with a larger ID, for paging and tailing
	Limit     int   // 0 means 1000
}

// HostKey is a target host key learned on first use.
type HostKey struct {
	Target    string
	Key       string // authorized_keys format
	FirstSeen time.Time
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

	// AppendAudit stores an event and returns its ID. IDs grow.
	AppendAudit(ctx context.Context, ev AuditEvent) (int64, error)
	// ListAudit returns events matching f, oldest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// HostKey returns the key recorded for target on first use, ErrNotFound
	// if none.
	HostKey(ctx context.Context, target string) (HostKey, error)
	// RecordHostKey stores a first-use key; ErrConflict if one is already
	// recorded for target (the caller then compares against it).
	RecordHostKey(ctx context.Context, hk HostKey) error
	// ForgetHostKey removes a learned key (after an admin confirms a change).
	ForgetHostKey(ctx context.Context, target string) error

	// Close releases the database.
	Close() error
}
