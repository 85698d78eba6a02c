package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// SettingGlobalRegistrationKeys is the setting that decides which
// registration keys work: when true (the default), admin-created global
// keys that act as nobody; when false, each admin's own keys, which stop
// working when their owner stops being an admin.
const SettingGlobalRegistrationKeys = "global_registration_keys"

// resolve completes the principal a front set: the roles of its user,
// read now from the current resources, and the rules for registration
// keys. It fails closed: a user that no longer exists, or a store that
// cannot be read, ends the request.
func (a *api) resolve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok || p.superuser() {
			next.ServeHTTP(w, r)
			return
		}
		if a.inv == nil {
			writeError(w, http.StatusServiceUnavailable, "this gateway has no inventory to check callers against")
			return
		}
		snap := a.inv.Snapshot()
		if p.registration() {
			if err := a.checkRegistrationKey(r.Context(), p); err != nil {
				a.deny(r, p, err.Error())
				writeErr(w, err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		roles, ok := snap.UserRoles(p.Name)
		if !ok {
			msg := fmt.Sprintf("user %q no longer exists", p.Name)
			a.deny(r, p, msg)
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		p.Roles = roles
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// writeErr answers an *httpError as it says, anything else as 503.
func writeErr(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeError(w, he.status, he.msg)
		return
	}
	writeError(w, http.StatusServiceUnavailable, err.Error())
}

// checkRegistrationKey applies the global registration key setting to a
// registration key.
func (a *api) checkRegistrationKey(ctx context.Context, p Principal) error {
	global, err := a.globalRegistrationKeys(ctx)
	if err != nil {
		return errors.New("cannot read the registration key setting: the gateway's store is unavailable")
	}
	switch {
	case global && p.Name != "":
		return clientError(http.StatusForbidden,
			"registration key %s belongs to %s, but global registration keys are on: only global keys register targets", p.KeyID, p.Name)
	case !global && p.Name == "":
		return clientError(http.StatusForbidden,
			"registration key %s is a global key, but global registration keys are off: use an admin's own key", p.KeyID)
	case !global:
		roles, ok := a.inv.Snapshot().UserRoles(p.Name)
		if !ok || !contains(roles, resource.RoleAdmin) {
			return clientError(http.StatusForbidden,
				"registration key %s belongs to %s, who is no longer an admin", p.KeyID, p.Name)
		}
	}
	return nil
}

// globalRegistrationKeys reads the setting; it is on unless set off.
func (a *api) globalRegistrationKeys(ctx context.Context) (bool, error) {
	if a.store == nil {
		return true, nil
	}
	v, err := a.store.GetSetting(ctx, SettingGlobalRegistrationKeys)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		// A value this code did not write: fail closed to the default,
		// which is what an admin who never touched it expects.
		return true, nil
	}
	return b, nil
}

// authorize wraps a route's handler with its access check: the policy
// check every request goes through, whatever its credentials.
func (a *api) authorize(acc access, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if acc == accessPublic {
			next(w, r)
			return
		}
		p := caller(r)
		var msg string
		switch {
		case p.registration() && acc != accessRegister:
			msg = "registration keys may only register targets (POST /api/v1/targets/register)"
		case acc == accessRegister && !p.registration() && !p.admin():
			msg = fmt.Sprintf("%s may not register targets: it takes a registration key or the admin role", p.actor())
		case acc == accessAdmin && !p.admin():
			msg = fmt.Sprintf("%s needs the admin role for %s %s", p.actor(), r.Method, r.URL.Path)
		case acc == accessAuditor && !p.auditor():
			msg = fmt.Sprintf("%s needs the auditor or admin role for %s %s", p.actor(), r.Method, r.URL.Path)
		}
		if msg != "" {
			a.deny(r, p, msg)
			writeError(w, http.StatusForbidden, msg)
			return
		}
		next(w, r)
	}
}

// deny audits a request refused by the access rules.
func (a *api) deny(r *http.Request, p Principal, msg string) {
	a.metrics.Denied(metrics.DenyAPI)
	if a.audit == nil {
		return
	}
	detail := map[string]any{"method": r.Method, "path": r.URL.Path, "via": p.Via}
	if p.KeyID != "" {
		detail["key_id"] = p.KeyID
	}
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIDeny, Outcome: audit.Deny,
		User: p.actor(), Source: source(r), Message: msg, Detail: detail})
}

// auditKeyUse writes one audit event for every request made with an API
// key, with its outcome: keys are for scripts, and what a script did with
// a key is what an auditor asks first. It also counts every request.
func (a *api) auditKeyUse(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		a.metrics.APIRequest(status)
		if p.Via != ViaAPIKey || a.audit == nil {
			return
		}
		outcome := audit.Success
		if status >= 400 {
			outcome = audit.Failure
		}
		_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIKeyUse, Outcome: outcome,
			User: p.actor(), Source: source(r), Message: r.Method + " " + r.URL.Path,
			Detail: map[string]any{"key_id": p.KeyID, "kind": p.KeyKind, "method": r.Method,
				"path": r.URL.Path, "status": status}})
	})
}

// scopeUser returns the user whose records the caller may list: the one
// asked for when the caller reads everyone's (auditors, admins), else the
// caller itself; asking for someone else is refused.
func scopeUser(p Principal, asked string) (string, error) {
	if p.auditor() {
		return asked, nil
	}
	if asked != "" && asked != p.Name {
		return "", clientError(http.StatusForbidden, "%s may only read its own records, not %s's", p.actor(), asked)
	}
	return p.Name, nil
}

// mayRead reports whether the caller may read a record of user owner.
func mayRead(p Principal, owner string) bool {
	return p.auditor() || (p.Name != "" && p.Name == owner)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mayListKind refuses resource kinds a non-admin may not read: only
// targets (those it may reach) are theirs to see.
func (a *api) mayListKind(r *http.Request, kind resource.Kind) error {
	p := caller(r)
	if p.admin() || kind == resource.KindTarget {
		return nil
	}
	if kind == "" {
		return clientError(http.StatusForbidden, "%s needs the admin role to list every resource", p.actor())
	}
	return clientError(http.StatusForbidden, "%s needs the admin role to read %s resources (it may read the targets it can reach)", p.actor(), kind)
}

// reachable keeps the targets among objs that some policy lets p reach,
// from the address it calls from, with some action.
func (a *api) reachable(r *http.Request, p Principal, objs []resource.Object) []resource.Object {
	snap := a.inv.Snapshot()
	id, ok := snap.Identity(p.Name)
	if !ok {
		return nil
	}
	src := remoteAddr(r)
	var out []resource.Object
	for _, o := range objs {
		if o.GetKind() != resource.KindTarget {
			continue
		}
		for _, action := range resource.AllActions {
			d := snap.Engine.Decide(policy.Request{Kind: id.Kind, Subject: p.Name, Action: action,
				Target: o.GetName(), Source: src})
			if d.Allow || len(d.TargetUsers) > 0 {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// ownsSession reports whether p may end or watch the running session id:
// admins any, others their own.
func (a *api) ownsSession(p Principal, id string) bool {
	if p.admin() {
		return true
	}
	for _, s := range a.sessions.List() {
		if s.ID == id {
			return p.Name != "" && s.User == p.Name
		}
	}
	return false
}

// stillAllowed re-authenticates the caller of a long-lived answer (a live
// view) and checks that it may still read owner's records: a key revoked,
// a console session ended or a role taken away while it watches ends the
// stream. The admin socket needs no re-check.
func (a *api) stillAllowed(r *http.Request, owner string) error {
	if caller(r).superuser() {
		return nil
	}
	recheck, ok := r.Context().Value(recheckKey{}).(func() (Principal, error))
	if !ok {
		return errors.New("the caller cannot be checked again") // fail closed
	}
	p, err := recheck()
	if err != nil {
		return err
	}
	if p.registration() {
		return errors.New("registration keys may only register targets")
	}
	roles, ok := a.inv.Snapshot().UserRoles(p.Name)
	if !ok {
		return fmt.Errorf("user %q no longer exists", p.Name)
	}
	p.Roles = roles
	if !mayRead(p, owner) {
		return fmt.Errorf("%s may no longer read %s's sessions", p.actor(), owner)
	}
	return nil
}
