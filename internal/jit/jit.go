// Package jit is just-in-time access: users covered by a jit policy
// request, for a while, what its child policies grant; the request is
// approved by the policy (auto_approve) or by an approver (CLI, console,
// Slack, a webhook's link), never by the requester; an approved request
// becomes a policy named JIT- plus 8 random characters, of the child's
// type, narrowed to the requester, the target and the target user asked
// for and ending when the grant does, which the policy engine compiles
// like any other (so every front honours it, with the precedence of
// package policy) and which the Service deletes at expiry, ending the
// live sessions that relied on it.
//
// Requests and their whole history are records of the store (never
// deleted at expiry), besides audit events. Notifications (Slack, a
// generic webhook) are queued and retried in the background: a request
// never waits on them.
package jit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Channels a request or decision comes through, kept in its history.
const (
	ChannelCLI     = "cli"
	ChannelAPI     = "api"
	ChannelConsole = "console"
	ChannelSSH     = "ssh"
	ChannelSlack   = "slack"
	ChannelWebhook = "webhook"
	ChannelPolicy  = "policy"
	ChannelGateway = "gateway"
)

// Config holds what a Service needs. Store and Inventory are required.
type Config struct {
	Store     store.Store
	Inventory *inventory.Inventory
	// Audit receives jit.* events; nil: none (tests).
	Audit *audit.Log
	Log   *slog.Logger
	// Notifiers are told of requests and decisions, in the background.
	Notifiers []Notifier
	// Now is the clock; nil: time.Now. Tests inject one to expire grants
	// without sleeping.
	Now func() time.Time
	// PendingTTL is how long a request waits for a decision before it
	// expires; zero: 24 hours.
	PendingTTL time.Duration
	// RetryBase is the first wait before a failed notification is sent
	// again (doubling, six attempts in all); zero: 2 seconds.
	RetryBase time.Duration
	// Groups returns a user's directory groups, for requesters and
	// approvers whose caller did not give them (API, console); nil: none.
	// An error refuses the request or decision (fail closed).
	Groups func(ctx context.Context, user string) ([]string, error)
}

// Service owns requests, approvals, grants and their expiry.
type Service struct {
	cfg    Config
	log    *slog.Logger
	queue  chan delivery
	wakeup chan struct{}
}

// New returns a Service; Run must be running for expiry and
// notifications.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PendingTTL == 0 {
		cfg.PendingTTL = 24 * time.Hour
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 2 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log, queue: make(chan delivery, 1024), wakeup: make(chan struct{}, 1)}
}

// Error is a refusal to show the caller as is (a 4xx for the API).
type Error struct {
	// Kind is ErrInvalid, ErrForbidden, ErrNotFound or ErrConflict.
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match Kind.
func (e *Error) Unwrap() error { return e.Kind }

// Kinds of Error.
var (
	ErrInvalid   = errors.New("invalid request")
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
)

func refuse(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Input is a new request.
type Input struct {
	Requester string
	// Groups are the requester's groups from the directory, if any.
	Groups  []string
	Target  string
	Account string // target user; "" for what the child grants
	// Duration zero asks for the jit policy's default.
	Duration time.Duration
	Reason   string
	Channel  string
	// Policy picks the jit policy when several cover the target; "" for
	// the first by name.
	Policy string
}

// RequestCommand is the command a user runs to request access to target,
// as the SSH front and the API tell them.
func RequestCommand(target, account string) string {
	cmd := "portcullis jit request --target " + target
	if account != "" {
		cmd += " --account " + account
	}
	return cmd + ` --reason "..."`
}

// Request files a request, approving it at once when its jit policy says
// auto_approve.
func (s *Service) Request(ctx context.Context, in Input) (store.JITRequest, error) {
	snap := s.cfg.Inventory.Snapshot()
	eng := snap.Engine
	if in.Reason = strings.TrimSpace(in.Reason); len(in.Reason) > 1000 {
		return store.JITRequest{}, refuse(ErrInvalid, "reason: at most 1000 characters")
	}
	if strings.ContainsAny(in.Reason, "\x00\r\n") {
		return store.JITRequest{}, refuse(ErrInvalid, "reason: one line, no control characters")
	}
	if in.Account != "" && !resource.ValidTargetUser(in.Account) {
		return store.JITRequest{}, refuse(ErrInvalid, "account: %q is not a valid target user", in.Account)
	}
	if in.Groups == nil {
		var err error
		if in.Groups, err = s.groups(ctx, in.Requester); err != nil {
			return store.JITRequest{}, err
		}
	}
	opts := eng.JITOptions(policy.Request{Subject: in.Requester, Groups: in.Groups, Target: in.Target})
	if in.Policy != "" {
		opts = slices.DeleteFunc(opts, func(o policy.JITOption) bool { return o.Policy != in.Policy })
	}
	if len(opts) == 0 {
		// The same words for a target that does not exist: nothing
		// reveals what exists.
		return store.JITRequest{}, refuse(ErrForbidden, "no jit policy lets %s request access to %s", in.Requester, in.Target)
	}
	var (
		opt   policy.JITOption
		child *resource.Policy
		err   error
	)
	for _, o := range opts {
		if child, err = s.pickChild(ctx, eng, o, in.Requester, in.Target, in.Account); err == nil {
			opt = o
			break
		}
	}
	if child == nil {
		return store.JITRequest{}, err
	}
	d := in.Duration
	switch {
	case d == 0:
		d = opt.Duration
	case d < time.Minute || d%time.Minute != 0:
		return store.JITRequest{}, refuse(ErrInvalid, "duration: %s is not a whole number of minutes", d)
	case d > opt.MaxDuration:
		return store.JITRequest{}, refuse(ErrInvalid, "duration: %s is longer than jit policy %s allows (%s)", d, opt.Policy, opt.MaxDuration)
	}
	if opt.RequireReason && in.Reason == "" {
		return store.JITRequest{}, refuse(ErrInvalid, "reason: jit policy %s requires a reason (--reason)", opt.Policy)
	}
	now := s.cfg.Now().UTC()
	req := store.JITRequest{ID: "req-" + randomString(10), Requester: in.Requester, Policy: opt.Policy, Target: in.Target,
		Account: in.Account, Duration: d, Reason: in.Reason, State: store.JITPending, CreatedAt: now}
	if err := s.cfg.Store.CreateJITRequest(ctx, req, store.JITEvent{Time: now, Kind: "requested", Actor: in.Requester,
		Channel: in.Channel, Detail: fmt.Sprintf("%s on %s as %s for %s: %s", opt.Policy, in.Target, orAny(in.Account), d, in.Reason)}); err != nil {
		return store.JITRequest{}, fmt.Errorf("store request: %w", err)
	}
	s.audit(ctx, req, audit.JITRequest, audit.Info, in.Requester, in.Channel, fmt.Sprintf("%s requests %s on %s for %s", in.Requester, orAny(in.Account), in.Target, d))
	if opt.AutoApprove {
		return s.approve(ctx, req, in.Groups, "", resource.ApprovalAuto, ChannelPolicy)
	}
	s.notify(Notification{Event: EventRequested, Request: req})
	return req, nil
}

func orAny(account string) string {
	if account == "" {
		return "any granted target user"
	}
	return account
}

// pickChild returns the first child (by name) of a jit option that covers
// target and, when one is asked for, account.
func (s *Service) pickChild(ctx context.Context, eng *policy.Engine, o policy.JITOption, requester, target, account string) (*resource.Policy, error) {
	children := slices.Clone(o.Children)
	slices.Sort(children)
	for _, name := range children {
		if !eng.Covers(name, target) {
			continue
		}
		obj, err := s.cfg.Inventory.Get(ctx, resource.KindPolicy, name)
		if err != nil {
			return nil, fmt.Errorf("read child policy %s: %w", name, err)
		}
		p, ok := obj.(*resource.Policy)
		if !ok {
			continue
		}
		if account == "" || grantsAccount(p, account, eng.LoginName(requester)) {
			return p, nil
		}
	}
	return nil, refuse(ErrForbidden, "jit policy %s does not let %s request %s on %s", o.Policy, requester, orAny(account), target)
}

func grantsAccount(p *resource.Policy, account, loginName string) bool {
	return slices.Contains(p.TargetUsers, account) || (account == loginName && slices.Contains(p.TargetUsers, "{username}"))
}

// buildGrant narrows child to what was requested: the requester only,
// the target only, the account asked for (or the child's target users),
// ending at until or the child's own end, whichever comes first. It never
// grants more than child.
func buildGrant(child *resource.Policy, req store.JITRequest, name, approval string, until time.Time) *resource.Policy {
	g := *child
	g.Name = name
	g.Subjects = resource.Subjects{Users: []string{req.Requester}}
	g.Targets = resource.TargetSelector{Names: []string{req.Target}}
	if req.Account != "" {
		if slices.Contains(child.TargetUsers, req.Account) {
			g.TargetUsers = []string{req.Account}
		} else {
			g.TargetUsers = []string{"{username}"}
		}
	}
	end := until.UTC()
	if child.ValidUntil != nil && child.ValidUntil.Before(end) {
		end = *child.ValidUntil
	}
	g.ValidUntil = &end
	g.JITGrant = &resource.JITGrant{Request: req.ID, JITPolicy: req.Policy, Approval: approval, Duration: resource.Duration(req.Duration)}
	return &g
}

// Decision is an approver's answer.
type Decision struct {
	ID       string
	Approver string
	// Groups are the approver's groups from the directory, if any.
	Groups  []string
	Channel string
	Reason  string // for a denial
	// Admin lets a gateway administrator decide requests of any jit
	// policy (still never their own).
	Admin bool
}

// Approve approves a pending request as d.Approver, who must be an
// approver of its jit policy and not its requester.
func (s *Service) Approve(ctx context.Context, d Decision) (store.JITRequest, error) {
	req, err := s.pendingFor(ctx, d)
	if err != nil {
		return req, err
	}
	return s.approve(ctx, req, nil, d.Approver, resource.ApprovalManual, d.Channel)
}

// Deny denies a pending request as d.Approver (same rules as Approve).
func (s *Service) Deny(ctx context.Context, d Decision) (store.JITRequest, error) {
	req, err := s.pendingFor(ctx, d)
	if err != nil {
		return req, err
	}
	now := s.cfg.Now().UTC()
	denied := req
	denied.State, denied.Approval, denied.DecidedBy, denied.DecidedAt = store.JITDenied, resource.ApprovalManual, d.Approver, now
	if err := s.cfg.Store.TransitionJITRequest(ctx, denied, store.JITPending, store.JITEvent{Time: now, Kind: "denied",
		Actor: d.Approver, Channel: d.Channel, Detail: d.Reason}); err != nil {
		return req, transitionErr(err)
	}
	s.audit(ctx, denied, audit.JITDeny, audit.Deny, d.Approver, d.Channel, fmt.Sprintf("%s denies %s's request %s: %s", d.Approver, req.Requester, req.ID, d.Reason))
	s.notify(Notification{Event: EventDenied, Request: denied, Actor: d.Approver, Reason: d.Reason})
	return denied, nil
}

// pendingFor reads a request and checks that d.Approver may decide it.
func (s *Service) pendingFor(ctx context.Context, d Decision) (store.JITRequest, error) {
	req, err := s.Get(ctx, d.ID)
	if err != nil {
		return req, err
	}
	if d.Groups == nil && !d.Admin {
		if d.Groups, err = s.groups(ctx, d.Approver); err != nil {
			return req, err
		}
	}
	switch {
	case req.State != store.JITPending:
		return req, refuse(ErrConflict, "request %s is %s, not pending", req.ID, req.State)
	case d.Approver == req.Requester:
		return req, refuse(ErrForbidden, "%s may not approve or deny their own request", d.Approver)
	case !d.Admin && !s.cfg.Inventory.Snapshot().Engine.MayApprove(req.Policy, d.Approver, d.Groups):
		return req, refuse(ErrForbidden, "%s is not an approver of jit policy %s", d.Approver, req.Policy)
	}
	return req, nil
}

func transitionErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return refuse(ErrConflict, "%s", err.Error())
	}
	return fmt.Errorf("store decision: %w", err)
}

// approve moves a pending request to approved, then creates its grant.
// The state moves first: of two approvers (or gateways) racing, one wins
// and only it creates the grant. groups are the requester's directory
// groups; nil: read them through Config.Groups.
func (s *Service) approve(ctx context.Context, req store.JITRequest, groups []string, approver, approval, channel string) (store.JITRequest, error) {
	eng := s.cfg.Inventory.Snapshot().Engine
	if eng.JITPolicy(req.Policy) == nil {
		return req, refuse(ErrConflict, "jit policy %s no longer exists", req.Policy)
	}
	// The policy or the requester's groups may have changed since the
	// request (offboarding): grant only what the requester could request
	// now, and deny otherwise so that the request does not linger.
	if groups == nil {
		var err error
		if groups, err = s.groups(ctx, req.Requester); err != nil {
			return req, err
		}
	}
	opts := eng.JITOptions(policy.Request{Subject: req.Requester, Groups: groups, Target: req.Target})
	i := slices.IndexFunc(opts, func(o policy.JITOption) bool { return o.Policy == req.Policy })
	switch {
	case i < 0:
		return s.denyStale(ctx, req, fmt.Sprintf("%s is no longer covered by jit policy %s for %s", req.Requester, req.Policy, req.Target))
	case req.Duration > opts[i].MaxDuration:
		return s.denyStale(ctx, req, fmt.Sprintf("duration %s is longer than jit policy %s now allows (%s)", req.Duration, req.Policy, opts[i].MaxDuration))
	}
	child, err := s.pickChild(ctx, eng, opts[i], req.Requester, req.Target, req.Account)
	if err != nil {
		return req, err
	}
	now := s.cfg.Now().UTC()
	approved := req
	approved.State, approved.Approval, approved.DecidedBy, approved.DecidedAt = store.JITApproved, approval, approver, now
	approved.ExpiresAt = now.Add(req.Duration)
	approved.Grant = resource.JITGrantPrefix + randomString(8)
	if approver == "" {
		approved.DecidedBy = "policy " + req.Policy
	}
	if err := s.cfg.Store.TransitionJITRequest(ctx, approved, store.JITPending, store.JITEvent{Time: now, Kind: "approved",
		Actor: approved.DecidedBy, Channel: channel, Detail: approval}); err != nil {
		return req, transitionErr(err)
	}
	grant := buildGrant(child, approved, approved.Grant, approval, approved.ExpiresAt)
	if err := s.cfg.Inventory.PutGrant(ctx, grant); err != nil {
		// Approved but not granted: say so in the history and end the
		// request, rather than leave an approval that grants nothing.
		failed := approved
		failed.State = store.JITRevoked
		_ = s.cfg.Store.TransitionJITRequest(ctx, failed, store.JITApproved, store.JITEvent{Time: now, Kind: "revoked",
			Actor: "gateway", Channel: ChannelGateway, Detail: "grant could not be created: " + err.Error()})
		return req, fmt.Errorf("create grant %s: %w", approved.Grant, err)
	}
	_ = s.event(ctx, approved.ID, "granted", "gateway", ChannelGateway, fmt.Sprintf("policy %s (from %s) until %s",
		approved.Grant, child.Name, grant.ValidUntil.Format(time.RFC3339)))
	s.audit(ctx, approved, audit.JITApprove, audit.Success, approved.DecidedBy, channel, fmt.Sprintf("%s approves %s's request %s (%s): policy %s until %s",
		approved.DecidedBy, req.Requester, req.ID, approval, approved.Grant, approved.ExpiresAt.Format(time.RFC3339)))
	s.notify(Notification{Event: EventApproved, Request: approved, Actor: approved.DecidedBy})
	return approved, nil
}

// denyStale denies, as the gateway, a pending request that its jit policy
// no longer allows, and refuses the approval with why.
func (s *Service) denyStale(ctx context.Context, req store.JITRequest, why string) (store.JITRequest, error) {
	now := s.cfg.Now().UTC()
	denied := req
	denied.State, denied.DecidedBy, denied.DecidedAt = store.JITDenied, "gateway", now
	if err := s.cfg.Store.TransitionJITRequest(ctx, denied, store.JITPending, store.JITEvent{Time: now, Kind: "denied",
		Actor: "gateway", Channel: ChannelGateway, Detail: why}); err != nil {
		return req, transitionErr(err)
	}
	s.audit(ctx, denied, audit.JITDeny, audit.Deny, "gateway", ChannelGateway, fmt.Sprintf("gateway denies %s's request %s: %s", req.Requester, req.ID, why))
	s.notify(Notification{Event: EventDenied, Request: denied, Actor: "gateway", Reason: why})
	return denied, refuse(ErrForbidden, "request %s denied: %s", req.ID, why)
}

// Revoke ends an approved request's grant now, as actor (an admin).
func (s *Service) Revoke(ctx context.Context, id, actor, channel string) (store.JITRequest, error) {
	req, err := s.Get(ctx, id)
	if err != nil {
		return req, err
	}
	if req.State != store.JITApproved {
		return req, refuse(ErrConflict, "request %s is %s, not approved", req.ID, req.State)
	}
	return s.end(ctx, req, store.JITRevoked, actor, channel)
}

// end moves an approved request to expired or revoked and deletes its
// grant; the inventory's subscribers then end the sessions that relied on
// it.
func (s *Service) end(ctx context.Context, req store.JITRequest, state, actor, channel string) (store.JITRequest, error) {
	now := s.cfg.Now().UTC()
	ended := req
	ended.State = state
	if err := s.cfg.Store.TransitionJITRequest(ctx, ended, store.JITApproved, store.JITEvent{Time: now, Kind: state, Actor: actor,
		Channel: channel, Detail: "policy " + req.Grant + " deleted"}); err != nil {
		return req, transitionErr(err)
	}
	if err := s.deleteGrant(ctx, req.Grant); err != nil {
		return ended, err
	}
	kind := audit.JITExpire
	if state == store.JITRevoked {
		kind = audit.JITRevoke
	}
	s.audit(ctx, ended, kind, audit.Info, actor, channel, fmt.Sprintf("%s's access to %s ends (%s): policy %s deleted", req.Requester, req.Target, state, req.Grant))
	s.notify(Notification{Event: state, Request: ended, Actor: actor})
	return ended, nil
}

func (s *Service) deleteGrant(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	err := s.cfg.Inventory.Delete(ctx, resource.KindPolicy, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete grant %s: %w", name, err)
	}
	return nil
}

// groups returns user's directory groups through Config.Groups.
func (s *Service) groups(ctx context.Context, user string) ([]string, error) {
	if s.cfg.Groups == nil {
		return nil, nil
	}
	g, err := s.cfg.Groups(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("read the directory groups of %s: %w", user, err)
	}
	return g, nil
}

// Get returns one request.
func (s *Service) Get(ctx context.Context, id string) (store.JITRequest, error) {
	req, err := s.cfg.Store.GetJITRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return req, refuse(ErrNotFound, "no request %s", id)
	}
	return req, err
}

// List returns requests, newest first.
func (s *Service) List(ctx context.Context, f store.JITFilter) ([]store.JITRequest, error) {
	return s.cfg.Store.ListJITRequests(ctx, f)
}

// History returns a request's history, oldest first.
func (s *Service) History(ctx context.Context, id string) ([]store.JITEvent, error) {
	return s.cfg.Store.ListJITEvents(ctx, id)
}

// MayApprove reports whether user may decide requests under jit policy
// name (the console shows them the pending requests they may decide).
func (s *Service) MayApprove(name, user string, groups []string) bool {
	return s.cfg.Inventory.Snapshot().Engine.MayApprove(name, user, groups)
}

// Used records that a session relied on a request's grant (the first
// time per session is enough: fronts call it when a session starts).
func (s *Service) Used(ctx context.Context, request, session, front string) {
	if err := s.event(ctx, request, "used", "", front, "session "+session); err != nil {
		s.log.Warn("record use of JIT grant", "request", request, "session", session, "err", err)
	}
}

func (s *Service) event(ctx context.Context, id, kind, actor, channel, detail string) error {
	return s.cfg.Store.AppendJITEvent(ctx, store.JITEvent{Request: id, Time: s.cfg.Now().UTC(), Kind: kind, Actor: actor, Channel: channel, Detail: detail})
}

func (s *Service) audit(ctx context.Context, req store.JITRequest, typ, outcome, actor, channel, msg string) {
	if s.cfg.Audit == nil {
		return
	}
	ev := store.AuditEvent{Time: s.cfg.Now().UTC(), Type: typ, Outcome: outcome, User: req.Requester, Target: req.Target,
		Account: req.Account, Policy: req.Policy, Message: msg,
		Detail: map[string]any{"request": req.ID, "state": req.State, "actor": actor, "channel": channel, "grant": req.Grant}}
	if err := s.cfg.Audit.Write(ctx, ev); err != nil {
		// Write spools what the store refuses; an error here means even
		// that failed, and the request's own history still holds it.
		s.log.Error("audit JIT event", "type", typ, "request", req.ID, "err", err)
	}
}

// randomString returns n characters from a 32-letter alphabet (no 0, 1,
// l, o to misread) drawn from crypto/rand: 8 characters are 40 bits, the
// seed's "random 8 character string"; 32 divides 256, so no bias.
func randomString(n int) string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	out := make([]byte, n)
	_, _ = rand.Read(out) // never fails (crypto/rand documents it)
	for i, b := range out {
		out[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(out)
}
