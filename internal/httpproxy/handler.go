package httpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// route is where a request goes: a target, by host or by path prefix.
type route struct {
	target string
	// prefix is "/t/TARGET" for the path form, "" for the host form.
	prefix string
}

// PathPrefix is the path under which targets are served on the gateway's
// own host: /t/TARGET/...
const PathPrefix = "/t/"

// Wrap returns a handler that serves requests for http targets and passes
// every other request to next (the gateway's API and console). A request
// whose Host or SNI names a target host never reaches next, whatever its
// path: the upstream's origin cannot call the gateway's API.
func (s *Server) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		sni := ""
		if r.TLS != nil {
			sni = strings.ToLower(r.TLS.ServerName)
		}
		hostTarget, byHost := s.targetHost(host)
		sniTarget, bySNI := s.targetHost(sni)
		switch {
		case (byHost || bySNI) && sni != "" && sni != host:
			// A connection made for one name carrying a request for
			// another (connection coalescing, a forged Host): answer
			// neither.
			http.Error(w, "misdirected request: TLS server name and Host differ", http.StatusMisdirectedRequest)
			return
		case byHost:
			s.serve(w, r, route{target: hostTarget})
			return
		case bySNI:
			s.serve(w, r, route{target: sniTarget})
			return
		}
		raw := rawPath(r)
		if strings.HasPrefix(raw, PathPrefix) || strings.HasPrefix(r.URL.Path, PathPrefix) {
			rest := strings.TrimPrefix(raw, PathPrefix)
			name, _, _ := strings.Cut(rest, "/")
			if !resource.ValidName(name) || !strings.HasPrefix(raw, PathPrefix+name+"/") {
				http.Error(w, "bad target path: use /t/TARGET/...", http.StatusBadRequest)
				return
			}
			s.serve(w, r, route{target: name, prefix: PathPrefix + name})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// targetHost returns the target a host name names: TARGET.<Config.Host>.
func (s *Server) targetHost(host string) (string, bool) {
	if s.cfg.Host == "" || host == "" {
		return "", false
	}
	label, ok := strings.CutSuffix(host, "."+s.cfg.Host)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// rawPath is the path as the client sent it, before any decoding.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// request is one request being served, and what its audit event says.
type request struct {
	r      *http.Request
	rt     route
	target *resource.Target
	engine *policy.Engine
	start  time.Time
	src    string
	method string
	path   string // clean, decoded, without the route's prefix
	query  string // canonical
	body   []byte
	soap   *soapCall

	user    string
	kind    policy.SubjectKind
	groups  []string
	via     string
	session *webSession
	keyID   string
}

func (q *request) event(outcome, op, object, pol, msg string, status int) store.AuditEvent {
	d := map[string]any{"action": actionHTTP, "method": q.method, "path": q.path, "operation": op, "object": object,
		"decision": outcome, "via": q.via, "latency_ms": float64(time.Since(q.start).Microseconds()) / 1000}
	if status != 0 {
		d["upstream_status"] = status
	}
	if groups := q.allGroups(); len(groups) > 0 {
		d["groups"] = groups
	}
	if q.keyID != "" {
		d["key_id"] = q.keyID
	}
	if pol != "" {
		d["rule"] = pol
	}
	sid := ""
	if q.session != nil {
		sid = q.session.id
	}
	return store.AuditEvent{Type: EventRequest, Outcome: outcome, User: q.user, Source: q.src, Target: q.target.Name,
		SessionID: sid, Policy: pol, Message: msg, Detail: d}
}

// allGroups is the subject's groups for the audit trail: the gateway's
// and, for a session, the directory's found at sign-in.
func (q *request) allGroups() []string {
	out := q.engine.Groups(q.user)
	for _, g := range q.groups {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// serve runs one request for a target, in the order of the package doc.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if rt.prefix != "" {
		// The path form shares the gateway's origin: a page the
		// upstream serves runs sandboxed in an opaque origin, so its
		// scripts cannot read the gateway's answers or cookies, and its
		// requests are cross-site (SameSite cookies stay home).
		h.Set("Content-Security-Policy", "sandbox")
	}
	if s.cfg.Available != nil {
		if err := s.cfg.Available(); err != nil {
			h.Set("Retry-After", "5")
			http.Error(w, "the gateway cannot check access now", http.StatusServiceUnavailable)
			return
		}
	}
	snap := s.cfg.Snapshot()
	t := snap.Engine.Target(rt.target)
	if t == nil || !t.IsHTTP() {
		http.Error(w, "no such target", http.StatusNotFound)
		return
	}
	q := &request{r: r, rt: rt, target: t, engine: snap.Engine, start: time.Now(), src: r.RemoteAddr, method: r.Method}
	path, err := cleanPath(strings.TrimPrefix(rawPath(r), rt.prefix))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q.path = path
	if strings.ContainsAny(r.URL.RawQuery, "#") {
		http.Error(w, "query refused", http.StatusBadRequest)
		return
	}
	_, canon, err := cleanQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q.query = canon
	if r.ContentLength > s.cfg.MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	q.body = body
	vsphere := t.Catalog == resource.CatalogVSphere
	if vsphere && path != "/sdk" && strings.HasPrefix(strings.ToLower(path), "/sdk") {
		// SOAP is judged at /sdk only: another path the upstream might
		// also serve SOAP at (/sdk/, /SDK, /sdk/vimService) is no way
		// around the parser.
		http.Error(w, "the vSphere API is served at /sdk", http.StatusNotFound)
		return
	}
	if vsphere && path == "/sdk" && r.Method == http.MethodPost {
		call, err := parseSOAP(body)
		if err != nil {
			soapFault(w, "InvalidRequest", "portcullis: "+err.Error(), "", "")
			return
		}
		q.soap = &call
		if call.NS == nsVim25 {
			switch call.Method {
			case "Login":
				s.soapLogin(w, q)
				return
			case "Logout":
				s.logout(w, q)
				return
			case "RetrieveServiceContent":
				// Public in vSphere (a client asks it before logging
				// in): forwarded without any credential, not audited.
				s.forwardAnonymous(w, q)
				return
			}
		}
	}
	if vsphere && (path == restSessionPath || path == apiSessionPath) {
		switch r.Method {
		case http.MethodPost:
			s.restLogin(w, q)
			return
		case http.MethodDelete:
			s.logout(w, q)
			return
		}
	}
	if !s.authenticate(w, q) {
		return
	}
	var m mapping
	var mapped bool
	if q.soap != nil {
		m = mapping{op: vsphereOperation(*q.soap), object: q.soap.Object(), rule: "vsphere:" + q.soap.Method}
		mapped = m.op != ""
	} else {
		values, _, _ := cleanQuery(r.URL.RawQuery)
		m, mapped = matchRules(t.Rules, r.Method, path, values, body)
	}
	if !mapped {
		what := r.Method + " " + path
		if q.soap != nil {
			what = q.soap.Method + " on " + q.soap.Object()
		}
		msg := fmt.Sprintf("denied: %s maps to no operation of target %s", what, t.Name)
		s.audit(q.event(audit.Deny, "unmapped", m.object, "", msg, 0))
		s.refuse(w, q, "unmapped", m.object, msg)
		return
	}
	d := snap.Engine.DecideHTTP(policy.Request{Kind: q.kind, Subject: q.user, Target: t.Name, Source: addrOf(q.src),
		Groups: q.groups, Operation: m.op, Object: m.object})
	// A verification code is presented at sign-in only: an API key or a
	// session signed in without one cannot carry it.
	needCode := d.RequireMFA || q.via == "api key" && snap.Engine.UserRequiresMFA(q.user)
	if d.Allow && needCode && (q.session == nil || !q.session.mfa) {
		d = policy.Decision{Reason: fmt.Sprintf("access denied: %s on %s needs a verification code at sign-in (log in with password and code)", m.op, t.Name)}
	}
	if !d.Allow {
		s.audit(q.event(audit.Deny, m.op, m.object, "", d.Reason+" ["+m.rule+"]", 0))
		s.refuse(w, q, m.op, m.object, d.Reason)
		return
	}
	s.forward(w, q, m, d.Policy)
}

// authenticate finds the request's subject: a gateway session, then the
// gateway's own credentials. false: the answer is written.
func (s *Server) authenticate(w http.ResponseWriter, q *request) bool {
	r := q.r
	token := ""
	if c, err := r.Cookie(soapCookie); err == nil {
		token = strings.Trim(c.Value, `"`)
	}
	if v := r.Header.Get(restSessionHeader); v != "" {
		token = v
	}
	if token != "" {
		if ws := s.lookupSession(token, q.target.Name); ws != nil {
			q.user, q.kind, q.groups, q.via, q.session = ws.user, ws.kind, ws.groups, "session", ws
			return true
		}
	}
	if s.cfg.Caller != nil {
		// A bearer API key is the same key as X-API-KEY.
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && r.Header.Get("X-Api-Key") == "" {
			r = r.Clone(r.Context())
			r.Header.Set("X-Api-Key", strings.TrimSpace(v))
		}
		c, ok, err := s.cfg.Caller(r)
		if err != nil {
			s.refuseAuth(w, q, err.Error())
			return false
		}
		if ok {
			snap := s.cfg.Snapshot()
			id, exists := snap.Identity(c.User)
			if !exists {
				s.refuseAuth(w, q, "unknown caller")
				return false
			}
			q.user, q.kind, q.via, q.keyID = c.User, id.Kind, c.Via, c.Key
			return true
		}
	}
	s.refuseAuth(w, q, "sign in first: log in through the gateway, or send an API key")
	return false
}

func (s *Server) refuseAuth(w http.ResponseWriter, q *request, msg string) {
	if q.soap != nil {
		soapFault(w, "NotAuthenticated", "portcullis: "+msg, q.soap.Object(), "System.View")
		return
	}
	writeJSONError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// refuse answers a denied request: a SOAP fault naming the operation and
// the object for SOAP, 403 otherwise.
func (s *Server) refuse(w http.ResponseWriter, q *request, op, object, reason string) {
	msg := fmt.Sprintf("Permission to perform this operation was denied: portcullis: operation %s on %s: %s", op, objectOrNone(object), reason)
	if q.soap != nil {
		soapFault(w, "NoPermission", msg, object, op)
		return
	}
	writeJSONError(w, http.StatusForbidden, "forbidden", msg)
}

func objectOrNone(o string) string {
	if o == "" {
		return "no object"
	}
	return o
}

// slotKey names the upstream service session a request uses.
func (q *request) slotKey() string {
	if q.session != nil {
		return slotOf(q.session)
	}
	return "caller:" + q.via + ":" + q.user
}

// forward reissues the request with the service credential and relays
// the answer.
func (s *Server) forward(w http.ResponseWriter, q *request, m mapping, pol string) {
	up, err := s.upstreamFor(q.target)
	if err != nil {
		s.upstreamFailed(w, q, m, pol, err)
		return
	}
	resp, err := up.do(q.r.Context(), q.slotKey(), q.method, q.path, q.query, upstreamHeader(q.r.Header), q.body, q.soap != nil)
	if err != nil {
		s.upstreamFailed(w, q, m, pol, err)
		return
	}
	defer resp.Body.Close()
	n := s.relay(w, q, resp)
	outcome := audit.Success
	if resp.StatusCode >= 400 {
		outcome = audit.Failure
	}
	ev := q.event(outcome, m.op, m.object, pol, fmt.Sprintf("%s %s on %s", m.op, objectOrNone(m.object), q.target.Name), resp.StatusCode)
	ev.Detail["bytes_out"] = n
	ev.Detail["mapped_by"] = m.rule
	s.audit(ev)
}

func (s *Server) upstreamFailed(w http.ResponseWriter, q *request, m mapping, pol string, err error) {
	s.cfg.Log.Warn("upstream request failed", "target", q.target.Name, "user", q.user, "operation", m.op, "err", err)
	ev := q.event(audit.Failure, m.op, m.object, pol, "upstream failed: "+err.Error(), 0)
	s.audit(ev)
	if errors.Is(err, context.Canceled) {
		return
	}
	if q.soap != nil {
		soapFault(w, "HostCommunication", "portcullis: the target did not answer", "", "")
		return
	}
	writeJSONError(w, http.StatusBadGateway, "bad_gateway", "the target did not answer")
}

// relay copies the upstream's answer to the client, without its cookies,
// session headers and hop-by-hop headers. It returns the bytes copied.
func (s *Server) relay(w http.ResponseWriter, q *request, resp *http.Response) int64 {
	clientHeader(w.Header(), resp.Header)
	if q.rt.prefix != "" {
		// The upstream's own policy (copied above) replaced the
		// gateway's: a second header adds to it, and browsers enforce
		// both.
		w.Header().Add("Content-Security-Policy", "sandbox")
	}
	if loc := resp.Header.Get("Location"); loc != "" && q.rt.prefix != "" && strings.HasPrefix(loc, "/") {
		// A redirect to the upstream's own path stays under the prefix.
		w.Header().Set("Location", q.rt.prefix+loc)
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, resp.Body)
	return n
}

// forwardAnonymous relays a public request with no credential at all.
func (s *Server) forwardAnonymous(w http.ResponseWriter, q *request) {
	up, err := s.upstreamFor(q.target)
	if err != nil {
		soapFault(w, "HostCommunication", "portcullis: the target did not answer", "", "")
		return
	}
	req, err := http.NewRequestWithContext(q.r.Context(), q.method, up.url(q.path, q.query), bytes.NewReader(q.body))
	if err != nil {
		soapFault(w, "InvalidRequest", "portcullis: bad request", "", "")
		return
	}
	req.Header = upstreamHeader(q.r.Header)
	resp, err := up.client.Do(req)
	if err != nil {
		s.cfg.Log.Warn("upstream request failed", "target", q.target.Name, "err", err)
		soapFault(w, "HostCommunication", "portcullis: the target did not answer", "", "")
		return
	}
	defer resp.Body.Close()
	s.relay(w, q, resp)
}

// soapLogin answers an intercepted SessionManager.Login.
func (s *Server) soapLogin(w http.ResponseWriter, q *request) {
	ws, tell := s.signIn(q, q.soap.UserName, q.soap.Password)
	if ws == nil {
		soapFault(w, "InvalidLogin", "Cannot complete login due to an incorrect user name or password. "+tell, "", "")
		return
	}
	http.SetCookie(w, s.sessionCookie(q, ws.tokenValue))
	loginResponse(w, ws.webSession)
}

// restLogin answers an intercepted vSphere REST session create (basic
// authentication with the user's gateway credentials).
func (s *Server) restLogin(w http.ResponseWriter, q *request) {
	user, pw, ok := q.r.BasicAuth()
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "basic authentication with your gateway user name and password is required")
		return
	}
	ws, tell := s.signIn(q, user, pw)
	if ws == nil {
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", strings.TrimSpace("wrong user name or password. "+tell))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	var b []byte
	if q.path == apiSessionPath {
		b, _ = json.Marshal(ws.tokenValue)
	} else {
		b, _ = json.Marshal(map[string]string{"value": ws.tokenValue})
	}
	_, _ = w.Write(append(b, '\n'))
}

// newSession is a session just made, with the token the client gets.
type newSession struct {
	*webSession
	tokenValue string
}

// signIn checks an intercepted login and opens a gateway session; nil
// and a message for the client when refused. Both outcomes are audited.
func (s *Server) signIn(q *request, user, pw string) (*newSession, string) {
	src := addrOf(q.src)
	detail := map[string]any{"action": actionHTTP, "method": "password"}
	if !s.failures.allowed(src) {
		s.audit(store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, Source: q.src, Target: q.target.Name,
			Message: "too many failed sign-ins from this address", Detail: detail})
		return nil, "too many failed sign-ins; wait a minute"
	}
	res := s.checkLogin(q.r.Context(), q.target.Name, user, pw, src)
	detail["method"] = res.Method
	if !res.OK {
		s.failures.failed(src)
		s.audit(store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, User: res.Known, Source: q.src,
			Target: q.target.Name, Message: res.Why, Detail: detail})
		return nil, res.Tell
	}
	tok, h := newToken()
	ws := &webSession{id: newSessionID(), token: h, user: res.Ident.Name, kind: res.Ident.Kind, groups: res.Groups,
		target: q.target.Name, src: q.src, mfa: res.MFA, method: res.Method, start: time.Now()}
	ws.last.Store(ws.start.UnixNano())
	if !s.addSession(ws) {
		s.audit(store.AuditEvent{Type: audit.SessionLimit, Outcome: audit.Deny, User: ws.user, Source: q.src,
			Target: q.target.Name, Message: "too many web API sessions", Detail: detail})
		return nil, "the gateway has too many sessions"
	}
	detail["mfa"] = res.MFA
	s.audit(store.AuditEvent{Type: audit.LoginSuccess, Outcome: audit.Success, User: ws.user, Source: q.src,
		Target: q.target.Name, SessionID: ws.id, Message: "web API sign-in", Detail: detail})
	return &newSession{ws, tok}, ""
}

// sessionCookie is the gateway session's cookie under the name vSphere
// clients keep: Secure, HttpOnly, and scoped to the target's path on the
// path form.
func (s *Server) sessionCookie(q *request, token string) *http.Cookie {
	path := "/"
	if q.rt.prefix != "" {
		path = q.rt.prefix + "/"
	}
	return &http.Cookie{Name: soapCookie, Value: token, Path: path, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// logout ends the gateway session the request carries (SOAP Logout or
// REST session delete); a request without one is answered the same.
func (s *Server) logout(w http.ResponseWriter, q *request) {
	token := ""
	if c, err := q.r.Cookie(soapCookie); err == nil {
		token = strings.Trim(c.Value, `"`)
	}
	if v := q.r.Header.Get(restSessionHeader); v != "" {
		token = v
	}
	if ws := s.lookupSession(token, q.target.Name); ws != nil && s.removeSession(ws) {
		s.endSession(ws, audit.SessionEnd, "logged out")
	}
	if q.soap != nil {
		logoutResponse(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
