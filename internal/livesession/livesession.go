// Package livesession names what every protocol front offers about the
// sessions it is running, so that the API can list and end them without
// depending on any front (fronts never import each other).
package livesession

import (
	"errors"
	"time"
)

// Session describes one running session or tunnel.
type Session struct {
	ID       string    `json:"id"`
	User     string    `json:"user"`
	Target   string    `json:"target"`
	Account  string    `json:"account"`
	Source   string    `json:"source"`
	Action   string    `json:"action"`
	Command  string    `json:"command,omitempty"`
	Started  time.Time `json:"started"`
	Recorded bool      `json:"recorded"`
	// RecordingIncomplete: the session's recording lost output (a write
	// error, a full disk); Recorded is false while so.
	RecordingIncomplete bool   `json:"recording_incomplete,omitempty"`
	Connection          string `json:"connection"`
}

// ErrNotFound is returned by Kill for an id that is not running.
var ErrNotFound = errors.New("no such session")

// Controller lists and ends running sessions.
type Controller interface {
	// List returns running sessions, oldest first.
	List() []Session
	// Kill ends one session with a message to its user; by names who.
	Kill(id, by, message string) error
}
