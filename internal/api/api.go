// Package api is the gateway's REST API: JSON over HTTP under /api/v1/. One
// handler set serves the admin unix socket (where the caller is the local
// superuser, see WithLocalAdmin) and, later, the HTTPS front (where an API
// key names the caller). Handlers never trust that a front authenticated the
// caller: a request whose context carries no principal is refused.
//
// Routes:
//
//	POST   /api/v1/apply                     apply a stream (JSON array or YAML)
//	GET    /api/v1/resources                 every resource, all kinds
//	GET    /api/v1/resources/{kind}          every resource of a kind
//	GET    /api/v1/resources/{kind}/{name}   one resource (an Account's name is TARGET/NAME)
//	DELETE /api/v1/resources/{kind}/{name}   delete one resource
//	GET    /api/v1/ca                        the user CA's public key
//	GET    /api/v1/audit                     audit events (query: since, until, type, user, target, session, after, limit)
//	POST   /api/v1/policy/explain            decide one access question and say why (ExplainRequest)
//	POST   /api/v1/policy/test               run policy test cases, optionally against extra resources (PolicyTestRequest)
//	GET    /api/v1/audit/verify              check the audit hash chain (Verification; 200 whether intact or not)
//	GET    /api/v1/audit/export              audit events as JSON lines with their hashes (query: since, until)
//	GET    /api/v1/sessions                  running sessions (livesession.Session)
//	POST   /api/v1/sessions/{id}/kill        end a running session (KillRequest)
//	GET    /api/v1/sessions/{id}/watch       stream a running session's recording as asciicast (query: from=start|now)
//	GET    /api/v1/recordings                recordings, newest first (query: user, target, state, since, limit)
//	GET    /api/v1/recordings/search         keyword search over recordings (query: q, limit)
//	GET    /api/v1/recordings/{id}           one recording's metadata
//	GET    /api/v1/recordings/{id}/cast      the asciicast file (query: purpose=play|download)
//	DELETE /api/v1/recordings/{id}           delete a recording, active or not
//	GET    /api/v1/commands                  command history, oldest first (query: user, target, session, since, after, limit)
//
// Watching, downloading and deleting a recording are audited (recording.view,
// recording.download, recording.delete); a view or download the trail
// cannot record is refused. Streams (watch, cast, export) flush as they go;
// one that fails midway is cut off, so that a client never mistakes a
// truncated stream for a whole one.
//
// Every error is {"error": "one line"} with a status that says whose fault
// it was: 4xx for the caller's input, 5xx (with a request id, never the
// internal detail) for the gateway's.
package api

import (
	"log/slog"
	"net/http"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Config holds what the API serves.
type Config struct {
	// Inventory applies, lists and deletes resources.
	Inventory *inventory.Inventory
	// Store is read for the audit trail.
	Store store.Store
	// CA is the user certificate authority; nil means the gateway has none
	// and GET /api/v1/ca answers 404.
	CA *vault.CA
	// Audit records every change made through the API.
	Audit *audit.Log
	// Log receives request failures and recovered panics; nil discards.
	Log *slog.Logger
	// Sessions lists and ends running sessions; nil means none run here
	// (sessions ls answers an empty list, kill 404).
	Sessions livesession.Controller
	// Recordings reads, follows and deletes recording files; nil means
	// this gateway keeps none (their file routes answer 404; listings
	// still read the store).
	Recordings *recording.Manager
}

// api is the handler set; its methods are the routes.
type api struct {
	inv   *inventory.Inventory
	store store.Store
	ca    *vault.CA
	audit *audit.Log
	log   *slog.Logger

	sessions   livesession.Controller
	recordings *recording.Manager
}

// New returns the API handler. The caller wraps it with the front's
// authentication (WithLocalAdmin for the unix socket).
func New(cfg Config) http.Handler {
	a := &api{inv: cfg.Inventory, store: cfg.Store, ca: cfg.CA, audit: cfg.Audit, log: cfg.Log,
		sessions: cfg.Sessions, recordings: cfg.Recordings}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/apply", a.handle(a.apply))
	mux.HandleFunc("GET /api/v1/resources", a.handle(a.listAll))
	mux.HandleFunc("GET /api/v1/resources/{kind}", a.handle(a.list))
	mux.HandleFunc("GET /api/v1/resources/{kind}/{name...}", a.handle(a.get))
	mux.HandleFunc("DELETE /api/v1/resources/{kind}/{name...}", a.handle(a.delete))
	mux.HandleFunc("GET /api/v1/ca", a.handle(a.caPublicKey))
	mux.HandleFunc("GET /api/v1/audit", a.handle(a.listAudit))
	mux.HandleFunc("POST /api/v1/policy/explain", a.handle(a.policyExplain))
	mux.HandleFunc("POST /api/v1/policy/test", a.handle(a.policyTest))
	mux.HandleFunc("GET /api/v1/audit/verify", a.handle(a.verifyAudit))
	mux.HandleFunc("GET /api/v1/audit/export", a.handle(a.exportAudit))
	mux.HandleFunc("GET /api/v1/sessions", a.handle(a.listSessions))
	mux.HandleFunc("POST /api/v1/sessions/{id}/kill", a.handle(a.killSession))
	mux.HandleFunc("GET /api/v1/sessions/{id}/watch", a.handle(a.watchSession))
	mux.HandleFunc("GET /api/v1/recordings", a.handle(a.listRecordings))
	// The literal "search" is more specific than {id}, so the mux sends
	// it here whatever the order; recording ids are session ids, never
	// "search".
	mux.HandleFunc("GET /api/v1/recordings/search", a.handle(a.searchRecordings))
	mux.HandleFunc("GET /api/v1/recordings/{id}", a.handle(a.getRecording))
	mux.HandleFunc("GET /api/v1/recordings/{id}/cast", a.handle(a.castRecording))
	mux.HandleFunc("DELETE /api/v1/recordings/{id}", a.handle(a.deleteRecording))
	mux.HandleFunc("GET /api/v1/commands", a.handle(a.listCommands))

	var h http.Handler = jsonMuxErrors(mux)
	h = a.requirePrincipal(h)
	h = a.recoverPanics(h)
	h = withRequestID(h)
	return h
}
