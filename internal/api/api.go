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
}

// api is the handler set; its methods are the routes.
type api struct {
	inv   *inventory.Inventory
	store store.Store
	ca    *vault.CA
	audit *audit.Log
	log   *slog.Logger
}

// New returns the API handler. The caller wraps it with the front's
// authentication (WithLocalAdmin for the unix socket).
func New(cfg Config) http.Handler {
	a := &api{inv: cfg.Inventory, store: cfg.Store, ca: cfg.CA, audit: cfg.Audit, log: cfg.Log}
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

	var h http.Handler = jsonMuxErrors(mux)
	h = a.requirePrincipal(h)
	h = a.recoverPanics(h)
	h = withRequestID(h)
	return h
}
