package store

import "time"

// States of a JITRequest.
const (
	JITPending   = "pending"
	JITApproved  = "approved"
	JITDenied    = "denied"
	JITExpired   = "expired"
	JITRevoked   = "revoked"
	JITCancelled = "cancelled"
)

// JITRequest is one just-in-time access request and where it stands. It
// is kept after the access it granted ends.
type JITRequest struct {
	ID        string
	Requester string
	// Policy is the jit policy the request is made under.
	Policy   string
	Target   string
	Account  string // the target user asked for; "" for any the children grant
	Duration time.Duration
	Reason   string
	State    string
	// Approval is "manual" or "auto" once decided.
	Approval string
	// Grant is the JIT-xxxxxxxx policy created on approval.
	Grant     string
	DecidedBy string
	CreatedAt time.Time
	DecidedAt time.Time // zero while pending
	ExpiresAt time.Time // zero while pending: when the grant ends
}

// JITEvent is one step in a request's history.
type JITEvent struct {
	ID      int64
	Request string
	Time    time.Time
	// Kind is requested, approved, denied, granted, used, expired,
	// revoked, cancelled, notified or notify-failed.
	Kind    string
	Actor   string
	Channel string
	Detail  string
}

// JITFilter selects requests for ListJITRequests.
type JITFilter struct {
	State     string
	Requester string
	// Limit of zero or less means 1000.
	Limit int
}

// JITLink is a single-use approve or deny link of the generic webhook.
type JITLink struct {
	TokenHash string
	Request   string
	Action    string // approve or deny
	ExpiresAt time.Time
	UsedAt    time.Time
}
