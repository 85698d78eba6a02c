package api

import (
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// The JSON shapes of the API that are not resources. Resources travel as
// their package resource structs; an apply answers inventory.ApplyResult.

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong: Code is stable for programs
// ("forbidden", "not_found", "csrf", ...), Message is one line for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CAResponse is the answer of GET /api/v1/ca.
type CAResponse struct {
	// PublicKey is the CA's key in authorized_keys format, the line a
	// target's sshd lists in TrustedUserCAKeys.
	PublicKey string `json:"public_key"`
}

// DeleteResponse is the answer of a successful DELETE.
type DeleteResponse struct {
	// Deleted is "Kind/name".
	Deleted string `json:"deleted"`
}

// Event is one audit event as the API returns it. Every field is always
// present, so that scripts (jq) need not guess which ones an event type
// fills.
type Event struct {
	ID        int64          `json:"id"`
	Time      time.Time      `json:"time"` // RFC 3339 with nanoseconds, UTC
	Type      string         `json:"type"`
	Outcome   string         `json:"outcome"`
	User      string         `json:"user"`
	Source    string         `json:"source"`
	Target    string         `json:"target"`
	Account   string         `json:"account"`
	SessionID string         `json:"session_id"`
	Policy    string         `json:"policy"`
	Message   string         `json:"message"`
	Detail    map[string]any `json:"detail"`
}

// eventFromStore converts a stored event to its wire form.
func eventFromStore(ev store.AuditEvent) Event {
	detail := ev.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	return Event{
		ID: ev.ID, Time: ev.Time.UTC(), Type: ev.Type, Outcome: ev.Outcome, User: ev.User,
		Source: ev.Source, Target: ev.Target, Account: ev.Account, SessionID: ev.SessionID,
		Policy: ev.Policy, Message: ev.Message, Detail: detail,
	}
}
