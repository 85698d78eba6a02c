package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/duration"
	"github.com/portcullis/portcullis/internal/jit"
	"github.com/portcullis/portcullis/internal/store"
)

// JITRequestBody is the body of POST /api/v1/jit/requests.
type JITRequestBody struct {
	Target  string `json:"target"`
	Account string `json:"account,omitempty"`
	// Duration is "30m", "2h"...; empty asks for the jit policy's default.
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Policy picks the jit policy when several cover the target.
	Policy string `json:"policy,omitempty"`
	// Channel says where the request was made (cli, console); default api.
	Channel string `json:"channel,omitempty"`
}

// JITDecisionBody is the body of the approve and deny routes.
type JITDecisionBody struct {
	Reason  string `json:"reason,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// JITRequestInfo is a request as the API shows it.
type JITRequestInfo struct {
	ID        string     `json:"id"`
	Requester string     `json:"requester"`
	Policy    string     `json:"policy"`
	Target    string     `json:"target"`
	Account   string     `json:"account,omitempty"`
	Duration  string     `json:"duration"`
	Reason    string     `json:"reason"`
	State     string     `json:"state"`
	Approval  string     `json:"approval,omitempty"`
	Grant     string     `json:"grant,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// MayDecide is set when the caller may approve or deny it now.
	MayDecide bool           `json:"may_decide"`
	History   []JITEventInfo `json:"history,omitempty"`
}

// JITEventInfo is one step of a request's history.
type JITEventInfo struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Actor   string    `json:"actor,omitempty"`
	Channel string    `json:"channel,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func (a *api) jitInfo(p Principal, r store.JITRequest) JITRequestInfo {
	info := JITRequestInfo{ID: r.ID, Requester: r.Requester, Policy: r.Policy, Target: r.Target, Account: r.Account,
		Duration: r.Duration.String(), Reason: r.Reason, State: r.State, Approval: r.Approval, Grant: r.Grant,
		DecidedBy: r.DecidedBy, CreatedAt: r.CreatedAt}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt
		info.DecidedAt = &t
	}
	if !r.ExpiresAt.IsZero() {
		t := r.ExpiresAt
		info.ExpiresAt = &t
	}
	info.MayDecide = r.State == store.JITPending && p.Name != r.Requester && a.mayDecide(p, r)
	return info
}

// mayDecide reports whether p approves requests of r's jit policy.
func (a *api) mayDecide(p Principal, r store.JITRequest) bool {
	return p.admin() || (a.jit != nil && a.jit.MayApprove(r.Policy, p.Name, nil))
}

// mayRead reports whether p may see r: its requester, its approvers, and
// admins and auditors.
func (a *api) mayRead(p Principal, r store.JITRequest) bool {
	return p.auditor() || p.Name == r.Requester || a.mayDecide(p, r)
}

func (a *api) jitService() (*jit.Service, error) {
	if a.jit == nil {
		return nil, clientError(http.StatusServiceUnavailable, "just-in-time access is not enabled on this gateway")
	}
	return a.jit, nil
}

// jitErr turns the jit package's refusals into statuses.
func jitErr(err error) error {
	var je *jit.Error
	if !errors.As(err, &je) {
		return err
	}
	switch {
	case errors.Is(err, jit.ErrInvalid):
		return clientError(http.StatusBadRequest, "%s", je.Msg)
	case errors.Is(err, jit.ErrForbidden):
		return clientError(http.StatusForbidden, "%s", je.Msg)
	case errors.Is(err, jit.ErrNotFound):
		return clientError(http.StatusNotFound, "%s", je.Msg)
	}
	return clientError(http.StatusConflict, "%s", je.Msg)
}

func jitChannel(asked string) string {
	switch asked {
	case jit.ChannelCLI, jit.ChannelConsole:
		return asked
	}
	return jit.ChannelAPI
}

// createJITRequest files a request as the caller.
func (a *api) createJITRequest(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.jitService()
	if err != nil {
		return err
	}
	var body JITRequestBody
	if err := decodeJSONRequest(w, r, 16<<10, &body); err != nil {
		return err
	}
	p := caller(r)
	var d time.Duration
	if body.Duration != "" {
		if d, err = duration.Parse(body.Duration); err != nil {
			return clientError(http.StatusBadRequest, "duration: %v", err)
		}
	}
	if body.Target == "" {
		return clientError(http.StatusBadRequest, "target: is required")
	}
	req, err := svc.Request(r.Context(), jit.Input{Requester: p.Name, Target: body.Target, Account: body.Account, Duration: d,
		Reason: body.Reason, Channel: jitChannel(body.Channel), Policy: body.Policy})
	if err != nil {
		return jitErr(err)
	}
	writeJSON(w, http.StatusCreated, a.jitInfo(p, req))
	return nil
}

// listJITRequests lists the requests the caller may see, newest first.
func (a *api) listJITRequests(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.jitService()
	if err != nil {
		return err
	}
	p := caller(r)
	q := r.URL.Query()
	switch st := q.Get("state"); st {
	case "", store.JITPending, store.JITApproved, store.JITDenied, store.JITExpired, store.JITRevoked, store.JITCancelled:
	default:
		return clientError(http.StatusBadRequest, "state: %q is not a request state (pending, approved, denied, expired, revoked, cancelled)", st)
	}
	list, err := svc.List(r.Context(), store.JITFilter{State: q.Get("state"), Requester: q.Get("requester")})
	if err != nil {
		return err
	}
	out := []JITRequestInfo{}
	for _, req := range list {
		if a.mayRead(p, req) {
			out = append(out, a.jitInfo(p, req))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// readJITRequest returns the request of the path if the caller may see
// it; one 404 for absent and hidden, so nothing reveals what exists.
func (a *api) readJITRequest(r *http.Request) (*jit.Service, store.JITRequest, error) {
	svc, err := a.jitService()
	if err != nil {
		return nil, store.JITRequest{}, err
	}
	req, err := svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, jit.ErrNotFound) {
			return nil, req, clientError(http.StatusNotFound, "no request %s", r.PathValue("id"))
		}
		return nil, req, err
	}
	if !a.mayRead(caller(r), req) {
		return nil, req, clientError(http.StatusNotFound, "no request %s", r.PathValue("id"))
	}
	return svc, req, nil
}

// getJITRequest answers one request with its history.
func (a *api) getJITRequest(w http.ResponseWriter, r *http.Request) error {
	svc, req, err := a.readJITRequest(r)
	if err != nil {
		return err
	}
	hist, err := svc.History(r.Context(), req.ID)
	if err != nil {
		return err
	}
	info := a.jitInfo(caller(r), req)
	for _, ev := range hist {
		info.History = append(info.History, JITEventInfo{Time: ev.Time, Kind: ev.Kind, Actor: ev.Actor, Channel: ev.Channel, Detail: ev.Detail})
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (a *api) decideJITRequest(w http.ResponseWriter, r *http.Request, approve bool) error {
	svc, req, err := a.readJITRequest(r)
	if err != nil {
		return err
	}
	var body JITDecisionBody
	if r.ContentLength != 0 {
		if err := decodeJSONRequest(w, r, 16<<10, &body); err != nil {
			return err
		}
	}
	p := caller(r)
	d := jit.Decision{ID: req.ID, Approver: p.Name, Channel: jitChannel(body.Channel), Reason: body.Reason, Admin: p.admin()}
	if approve {
		req, err = svc.Approve(r.Context(), d)
	} else {
		req, err = svc.Deny(r.Context(), d)
	}
	if err != nil {
		return jitErr(err)
	}
	writeJSON(w, http.StatusOK, a.jitInfo(p, req))
	return nil
}

func (a *api) approveJITRequest(w http.ResponseWriter, r *http.Request) error {
	return a.decideJITRequest(w, r, true)
}

func (a *api) denyJITRequest(w http.ResponseWriter, r *http.Request) error {
	return a.decideJITRequest(w, r, false)
}

// revokeJITRequest ends an approved request's access now (admins).
func (a *api) revokeJITRequest(w http.ResponseWriter, r *http.Request) error {
	svc, req, err := a.readJITRequest(r)
	if err != nil {
		return err
	}
	p := caller(r)
	if req, err = svc.Revoke(r.Context(), req.ID, p.actor(), jit.ChannelAPI); err != nil {
		return jitErr(err)
	}
	writeJSON(w, http.StatusOK, a.jitInfo(p, req))
	return nil
}

// useJITLink decides a request through a webhook's single-use link, as
// the signed-in caller, who must be allowed to decide it.
func (a *api) useJITLink(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.jitService()
	if err != nil {
		return err
	}
	p := caller(r)
	req, err := svc.UseLink(r.Context(), r.PathValue("token"), jit.Decision{Approver: p.Name, Admin: p.admin()})
	if err != nil {
		return jitErr(err)
	}
	writeJSON(w, http.StatusOK, a.jitInfo(p, req))
	return nil
}
