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
//	POST   /api/v1/accounts/{target}/{name}/rotate  take over and rotate an account's key (rotate.Result)
//	GET    /api/v1/ca                        the user CA's public key
//	GET    /api/v1/audit                     audit events (query: since, until, type, user, target, session, after, limit)
//	POST   /api/v1/policy/explain            decide one access question and say why (ExplainRequest)
//	POST   /api/v1/policy/test               run policy test cases, optionally against extra resources (PolicyTestRequest)
//	GET    /api/v1/audit/verify              check the audit hash chain and checkpoints (Verification; 200 whether intact or not)
//	POST   /api/v1/audit/verify              the same, also against the checkpoint lines in the body (a copy kept elsewhere)
//	GET    /api/v1/audit/pubkey              the audit key that signs checkpoints (AuditKeyResponse)
//	GET    /api/v1/audit/export              audit events as JSON lines with their hashes (query: since, until)
//	GET    /api/v1/sessions                  running sessions (livesession.Session)
//	POST   /api/v1/sessions/{id}/kill        end a running session (KillRequest)
//	GET    /api/v1/sessions/{id}/watch       stream a running session's recording as asciicast (query: from=start|now)
//	GET    /api/v1/recordings                recordings, newest first (query: user, target, state, since, limit)
//	GET    /api/v1/recordings/search         keyword search over recordings (query: q, limit)
//	GET    /api/v1/recordings/check          recordings whose file is missing or changed
//	GET    /api/v1/recordings/{id}           one recording's metadata
//	GET    /api/v1/recordings/{id}/cast      the asciicast file (query: purpose=play|download)
//	DELETE /api/v1/recordings/{id}           delete a recording, active or not
//	GET    /api/v1/commands                  command history, oldest first (query: user, target, session, since, after, limit)
//	GET    /api/v1/users/{name}/mfa          a user's second factor state (the user or an admin)
//	POST   /api/v1/users/{name}/mfa          enroll a TOTP second factor, pending until confirmed (MFAEnrollResponse)
//	POST   /api/v1/users/{name}/mfa/confirm  activate it with a first code (MFAConfirmRequest)
//	DELETE /api/v1/users/{name}/mfa          reset it (admins)
//	POST   /api/v1/jit/requests              request just-in-time access as the caller (JITRequestBody)
//	GET    /api/v1/jit/requests              requests the caller may see, newest first (query: state, requester)
//	GET    /api/v1/jit/requests/{id}         one request with its history
//	POST   /api/v1/jit/requests/{id}/approve approve (an approver of its jit policy or an admin; never the requester)
//	POST   /api/v1/jit/requests/{id}/deny    deny, with a reason (JITDecisionBody)
//	POST   /api/v1/jit/requests/{id}/revoke  end an approved request's access now (admins)
//	GET    /api/v1/reports                   the report kinds (ReportKind)
//	POST   /api/v1/reports/{kind}            generate a signed export (ReportRequest -> ReportExport); audited
//	GET    /api/v1/reports/schedules         report schedules (admins)
//	POST   /api/v1/reports/schedules         schedule a report to a directory or webhook (ScheduleRequest, admins)
//	DELETE /api/v1/reports/schedules/{id}    remove a schedule (admins)
//	GET    /api/v1/recordings/{id}/reviews   a recording's reviews
//	POST   /api/v1/recordings/{id}/reviews   mark a recording reviewed or flagged (SessionReviewRequest)
//	GET    /api/v1/reviews                   access review campaigns
//	POST   /api/v1/reviews                   open a campaign over every entitlement (CampaignRequest)
//	GET    /api/v1/reviews/{id}              a campaign and its items
//	POST   /api/v1/reviews/{id}/items/{item} keep or revoke one entitlement (DecisionRequest)
//	POST   /api/v1/reviews/{id}/close        sign a campaign off (SignOffRequest)
//	POST   /api/v1/jit/links/{token}         decide through a webhook's single-use link, as the caller
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
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/jit"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/rotate"
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
	// Metrics counts requests; nil counts nothing.
	Metrics *metrics.Metrics
	// MFA enrolls and resets second factors; nil answers 503 on the MFA
	// routes.
	MFA *mfa.Service
	// Rotator rotates account keys; nil answers 503 on the rotate route.
	Rotator *rotate.Rotator
	// Checkpoints holds the audit key and the signed checkpoints audit
	// verify checks the trail against; nil checks the hash chain alone
	// and answers 404 on the audit key route.
	Checkpoints *audit.Checkpointer
	// JIT files and decides just-in-time requests; nil answers 503 on
	// the /jit routes.
	JIT *jit.Service
	// Reports generates signed report exports; nil answers 503 on the
	// report route.
	Reports *report.Generator
	// Reviews runs access review campaigns and session reviews; nil
	// answers 503 on the routes that change them.
	Reviews *report.Reviews
	// Schedules adds and removes report schedules; nil answers 503.
	Schedules *report.Scheduler
	// SSHAddr returns the SSH front's bound address (host:port), read
	// when /me is answered so that a listener bound after New counts;
	// nil means unknown.
	SSHAddr func() string
	// AgentAddr returns the agent front's bound address (host:port); nil
	// or "" means it is off, and the autodiscovery script answers 404.
	AgentAddr func() string
	// AgentBinary is the portcullis binary the autodiscovery script
	// downloads (the running one); HostKey is the gateway's SSH host key,
	// which the script pins for its agent.
	AgentBinary string
	HostKey     ssh.PublicKey
	// KubeCredentials signs users in for short-lived kubectl credentials
	// (POST /api/v1/kube/credentials); nil answers 503 there.
	KubeCredentials KubeCredentialFunc
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
	metrics    *metrics.Metrics
	mfa        *mfa.Service
	rotator    *rotate.Rotator
	checkpts   *audit.Checkpointer
	jit        *jit.Service
	reports    *report.Generator
	reviews    *report.Reviews
	schedules  *report.Scheduler
	discovery  discovery
	kubeCreds  KubeCredentialFunc
	now        func() time.Time

	// accessGen grows whenever access may have been taken away (a key
	// revoked, resources applied or deleted, a password or setting
	// changed): live views check their watcher again when it moved.
	accessGen atomic.Int64

	// pwGuesses and pwSlots bound checks of current passwords.
	pwGuesses *guessLimiter
	pwSlots   chan struct{}
	// keysMu serialises self-service SSH key changes (read, change,
	// apply), so that two at once never lose one another.
	keysMu sync.Mutex
	// sshAddr reports the SSH front's bound address, for the console's
	// connection lines; nil or "" leaves the port out of /me.
	sshAddr func() string
}

// access is who may call a route, checked before its handler runs.
// Handlers of accessUser routes narrow further by the caller (own
// sessions, reachable targets, ...).
type access int

const (
	// accessPublic needs no principal (the OpenAPI document).
	accessPublic access = iota
	// accessUser: any user principal; the handler scopes what it shows.
	accessUser
	// accessAuditor: auditors and admins.
	accessAuditor
	// accessAdmin: admins (and the local superuser).
	accessAdmin
	// accessRegister: registration keys and admins.
	accessRegister
)

func (x access) String() string {
	return [...]string{"public", "user", "auditor", "admin", "register"}[x]
}

// route is one entry of the route table.
type route struct {
	pattern string // "METHOD /path" for http.ServeMux
	access  access
	fn      func(http.ResponseWriter, *http.Request) error
}

// RouteInfo describes a route, for the OpenAPI and authorization tests.
type RouteInfo struct {
	Method string
	// Path is in http.ServeMux form: /api/v1/resources/{kind}/{name...}.
	Path string
	// Access is "public", "user", "auditor", "admin" or "register".
	Access string
}

// Routes lists every route the API serves.
func Routes() []RouteInfo {
	var out []RouteInfo
	for _, rt := range (&api{}).routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out = append(out, RouteInfo{Method: method, Path: path, Access: rt.access.String()})
	}
	return out
}

// publicPaths are the paths served without a principal.
var publicPaths = map[string]bool{"/api/v1/openapi.json": true, "/api/v1/kube/credentials": true}

// routes is the route table: every route and who may call it.
func (a *api) routes() []route {
	return []route{
		{"GET /api/v1/openapi.json", accessPublic, a.openAPI},
		{"POST /api/v1/kube/credentials", accessPublic, a.kubeCredential},
		{"GET /api/v1/me", accessUser, a.me},
		{"POST /api/v1/apply", accessAdmin, a.apply},
		{"GET /api/v1/resources", accessAdmin, a.listAll},
		{"GET /api/v1/resources/{kind}", accessUser, a.list},
		{"GET /api/v1/resources/{kind}/{name...}", accessUser, a.get},
		{"DELETE /api/v1/resources/{kind}/{name...}", accessAdmin, a.delete},
		{"POST /api/v1/accounts/{target}/{name}/rotate", accessAdmin, a.rotateAccount},
		{"GET /api/v1/ca", accessUser, a.caPublicKey},
		{"GET /api/v1/audit", accessUser, a.listAudit},
		{"POST /api/v1/policy/explain", accessUser, a.policyExplain},
		{"POST /api/v1/policy/test", accessAdmin, a.policyTest},
		{"GET /api/v1/audit/verify", accessAuditor, a.verifyAudit},
		{"POST /api/v1/audit/verify", accessAuditor, a.verifyAudit},
		{"GET /api/v1/audit/pubkey", accessAuditor, a.auditPublicKey},
		{"GET /api/v1/audit/export", accessAuditor, a.exportAudit},
		{"GET /api/v1/sessions", accessUser, a.listSessions},
		{"POST /api/v1/sessions/{id}/kill", accessUser, a.killSession},
		{"GET /api/v1/sessions/{id}/watch", accessUser, a.watchSession},
		{"GET /api/v1/recordings", accessUser, a.listRecordings},
		// The literal "search" is more specific than {id}, so the mux
		// sends it here whatever the order; recording ids are session
		// ids, never "search".
		{"GET /api/v1/recordings/search", accessAuditor, a.searchRecordings},
		{"GET /api/v1/recordings/check", accessAuditor, a.checkRecordings},
		{"GET /api/v1/recordings/{id}", accessUser, a.getRecording},
		{"GET /api/v1/recordings/{id}/cast", accessUser, a.castRecording},
		{"DELETE /api/v1/recordings/{id}", accessAdmin, a.deleteRecording},
		{"GET /api/v1/commands", accessUser, a.listCommands},
		{"POST /api/v1/apikeys", accessUser, a.createAPIKey},
		{"GET /api/v1/apikeys", accessUser, a.listAPIKeys},
		{"POST /api/v1/apikeys/{id}/revoke", accessUser, a.revokeAPIKey},
		{"GET /api/v1/settings", accessAdmin, a.getSettings},
		{"PUT /api/v1/settings/{name}", accessAdmin, a.putSetting},
		{"POST /api/v1/users/{name}/password", accessUser, a.setPassword},
		{"GET /api/v1/users/{name}/mfa", accessUser, a.getMFA},
		{"POST /api/v1/users/{name}/mfa", accessUser, a.enrollMFA},
		{"POST /api/v1/users/{name}/mfa/confirm", accessUser, a.confirmMFA},
		{"DELETE /api/v1/users/{name}/mfa", accessAdmin, a.resetMFA},
		{"GET /api/v1/users/{name}/ssh-keys", accessUser, a.listSSHKeys},
		{"POST /api/v1/users/{name}/ssh-keys", accessUser, a.addSSHKey},
		// Fingerprints hold "/": the wildcard takes the rest of the path.
		{"DELETE /api/v1/users/{name}/ssh-keys/{fingerprint...}", accessUser, a.removeSSHKey},
		{"POST /api/v1/targets/register", accessRegister, a.registerTarget},
		{"GET /api/v1/autodiscovery-script", accessRegister, a.autodiscoveryScript},
		{"GET /api/v1/agent-binary", accessRegister, a.agentBinary},
		{"POST /api/v1/targets/{name}/pin", accessAdmin, a.pinTarget},
		{"POST /api/v1/jit/requests", accessUser, a.createJITRequest},
		{"GET /api/v1/jit/requests", accessUser, a.listJITRequests},
		{"GET /api/v1/jit/requests/{id}", accessUser, a.getJITRequest},
		{"POST /api/v1/jit/requests/{id}/approve", accessUser, a.approveJITRequest},
		{"POST /api/v1/jit/requests/{id}/deny", accessUser, a.denyJITRequest},
		{"POST /api/v1/jit/requests/{id}/revoke", accessAdmin, a.revokeJITRequest},
		{"GET /api/v1/reports", accessAuditor, a.listReportKinds},
		{"POST /api/v1/reports/{kind}", accessAuditor, a.generateReport},
		// Schedules write files on the gateway's machine or post
		// evidence elsewhere: admins only.
		{"GET /api/v1/reports/schedules", accessAdmin, a.listSchedules},
		{"POST /api/v1/reports/schedules", accessAdmin, a.createSchedule},
		{"DELETE /api/v1/reports/schedules/{id}", accessAdmin, a.deleteSchedule},
		{"GET /api/v1/recordings/{id}/reviews", accessAuditor, a.listRecordingReviews},
		{"POST /api/v1/recordings/{id}/reviews", accessAuditor, a.reviewRecording},
		// Reviewers are auditors (and admins): deciding "revoke" is the
		// one change an auditor can make, and it only takes access away.
		{"GET /api/v1/reviews", accessAuditor, a.listCampaigns},
		{"POST /api/v1/reviews", accessAuditor, a.startCampaign},
		{"GET /api/v1/reviews/{id}", accessAuditor, a.getCampaign},
		{"POST /api/v1/reviews/{id}/items/{item}", accessAuditor, a.decideItem},
		{"POST /api/v1/reviews/{id}/close", accessAuditor, a.closeCampaign},
		{"POST /api/v1/jit/links/{token}", accessUser, a.useJITLink},
	}
}

// New returns the API handler. The caller wraps it with the front's
// authentication (WithLocalAdmin for the unix socket, HTTPS for the TLS
// listener).
func New(cfg Config) http.Handler {
	a := &api{inv: cfg.Inventory, store: cfg.Store, ca: cfg.CA, audit: cfg.Audit, log: cfg.Log,
		sessions: cfg.Sessions, recordings: cfg.Recordings, metrics: cfg.Metrics, mfa: cfg.MFA, rotator: cfg.Rotator, checkpts: cfg.Checkpoints, jit: cfg.JIT, sshAddr: cfg.SSHAddr, now: time.Now,
		reports: cfg.Reports, reviews: cfg.Reviews, schedules: cfg.Schedules,
		discovery: discovery{agentAddr: cfg.AgentAddr, binary: cfg.AgentBinary, hostKey: cfg.HostKey}, kubeCreds: cfg.KubeCredentials,
		pwGuesses: newGuessLimiter(10*time.Second, 5, 10000), pwSlots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.inv != nil {
		// Changes made by another gateway arrive as new snapshots.
		a.inv.Subscribe(func(*inventory.Snapshot) { a.accessGen.Add(1) })
	}
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.HandleFunc(rt.pattern, a.authorize(rt.access, a.handle(rt.fn)))
	}

	var h http.Handler = jsonMuxErrors(mux)
	h = a.auditKeyUse(h)
	h = a.resolve(h)
	h = a.requirePrincipal(h)
	h = a.recoverPanics(h)
	h = withRequestID(h)
	return h
}
