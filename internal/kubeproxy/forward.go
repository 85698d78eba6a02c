package kubeproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/tlspin"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// upstream is one API server as the gateway calls it.
type upstream struct {
	spec      string // fingerprint of the target's fields; a change builds a new upstream
	base      *url.URL
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	// tlsConfig and caPEM verify the API server on a stream's own leg
	// (stream.go); pinnedLeaf is the pinned certificate once seen.
	tlsConfig  *tls.Config
	caPEM      string
	pinMu      sync.Mutex
	pinnedLeaf *x509.Certificate
}

// upstreamFor returns the target's upstream, building it when the target
// is new or changed.
func (s *Server) upstreamFor(t *resource.Target) (*upstream, error) {
	spec := t.UpstreamSpec()
	s.mu.Lock()
	up := s.upstreams[t.Name]
	s.mu.Unlock()
	if up != nil && up.spec == spec {
		return up, nil
	}
	base, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("target %s: url: %w", t.Name, err)
	}
	tc, err := tlspin.ClientConfig(base.Hostname(), t.TLSPinSHA256, t.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: s.cfg.DialTimeout,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		// HTTP/1.1 only: exec, attach and port-forward upgrade the
		// connection (WebSocket, SPDY), which HTTP/2 cannot carry.
		ForceAttemptHTTP2: false,
		// No proxy from the environment: the gateway reaches the API
		// server directly.
		Proxy: nil,
	}
	up = &upstream{spec: spec, base: base, transport: tr, tlsConfig: tc, caPEM: t.TLSCA}
	up.proxy = &httputil.ReverseProxy{
		Transport: tr,
		// Rewrite sets only the destination: the headers were settled
		// by serve before (credentials stripped, the gateway's added),
		// and Rewrite drops hop-by-hop and X-Forwarded-* of the client.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.Host = base.Host
		},
		// Watches and logs stream: flush each write.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if q, ok := r.Context().Value(ctxRequest{}).(*request); ok {
				q.upstreamErr = err
			}
			if errors.Is(err, context.Canceled) {
				return
			}
			writeStatus(w, http.StatusBadGateway, "the gateway cannot reach the API server")
		},
		ModifyResponse: func(resp *http.Response) error {
			if q, ok := resp.Request.Context().Value(ctxRequest{}).(*request); ok {
				q.status = resp.StatusCode
			}
			return nil
		},
	}
	s.mu.Lock()
	old := s.upstreams[t.Name]
	s.upstreams[t.Name] = up
	s.mu.Unlock()
	if old != nil {
		old.transport.CloseIdleConnections()
	}
	return up, nil
}

// token opens the target's service-account token from the vault (never
// kept).
func (s *Server) token(snap *inventory.Snapshot, t *resource.Target) ([]byte, error) {
	if t.Credential == nil {
		return nil, fmt.Errorf("target %s has no credential", t.Name)
	}
	sealed, aad, ok := snap.AccountPassword(t.Name, t.Credential.Account)
	if !ok {
		return nil, fmt.Errorf("the service account %s/%s has no token (apply an Account with password_file)", t.Name, t.Credential.Account)
	}
	return s.cfg.Vault.Open(sealed, aad)
}

type ctxRequest struct{}

// request is one request being served, and what its audit event says.
type request struct {
	start  time.Time
	src    string
	target string
	user   string
	keyID  string
	attrs  kubeAttrs
	d      policy.KubeDecision
	method string
	// command is an exec request's command, for the session list and
	// the audit trail.
	command string
	// query is the request's query (an exec's command and streams).
	query url.Values
	// asUser and asGroups are the identity kubectl asked for (--as,
	// --as-group), for the history row of a refusal.
	asUser   string
	asGroups []string
	// exitStatus is an exec's exit status once it ended.
	exitStatus *int

	status      int
	upstreamErr error
	// plainErrors: the request is discovery, whose client reads an error
	// body only as text (client-go's Raw) and shows "unknown" for JSON.
	plainErrors bool
}

func (q *request) event(outcome, msg string) store.AuditEvent {
	d := map[string]any{"action": "kubernetes", "method": q.method, "path": q.attrs.path,
		"decision": outcome, "latency_ms": float64(time.Since(q.start).Microseconds()) / 1000}
	if !q.attrs.discovery {
		d["verb"], d["resource"] = q.attrs.verb, q.attrs.resource
		if q.attrs.group != "" {
			d["api_group"] = q.attrs.group
		}
		if q.attrs.subresource != "" {
			d["subresource"] = q.attrs.subresource
		}
		if q.attrs.namespace != "" {
			d["namespace"] = q.attrs.namespace
		}
		if q.attrs.name != "" {
			d["name"] = q.attrs.name
		}
	} else if q.attrs.path != "" {
		d["verb"] = "discovery"
	}
	if q.d.User != "" {
		d["cluster_user"] = q.d.User
	}
	if len(q.d.Groups) > 0 {
		d["cluster_groups"] = q.d.Groups
	}
	if q.status != 0 {
		d["status"] = q.status
	}
	if q.keyID != "" {
		d["key_id"] = q.keyID
	}
	if q.command != "" {
		d["command"] = q.command
	}
	return store.AuditEvent{Type: EventRequest, Outcome: outcome, User: q.user, Source: q.src, Target: q.target,
		Account: q.d.User, Policy: q.d.Policy, Message: msg, Detail: d}
}

// serve runs one request for a target, in the order of the package doc.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, targetName, path string) {
	q := &request{start: time.Now(), src: r.RemoteAddr, target: targetName, method: r.Method, plainErrors: discoveryShape(path)}
	if s.cfg.Available != nil {
		if err := s.cfg.Available(); err != nil {
			w.Header().Set("Retry-After", "5")
			writeStatus(w, http.StatusServiceUnavailable, "the gateway cannot check access now")
			return
		}
	}
	if r.TLS == nil {
		// kubectl sends the key as a bearer token: never over plain
		// HTTP.
		writeStatus(w, http.StatusForbidden, "the Kubernetes front is served over HTTPS only")
		return
	}
	// 1. Authenticate.
	areq := r.Clone(r.Context())
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		areq.Header.Set("X-Api-Key", strings.TrimSpace(v))
	} else {
		areq.Header.Del("X-Api-Key")
	}
	areq.Header.Del("Cookie")
	c, ok, err := s.cfg.Caller(areq)
	if err != nil || !ok {
		msg := "an access API key of the gateway is required (portcullis kubeconfig)"
		if err != nil {
			msg = "authentication refused: " + err.Error()
		}
		s.audit(q.event(audit.Deny, msg))
		q.write(w, http.StatusUnauthorized, msg)
		return
	}
	snap := s.cfg.Snapshot()
	id, exists := snap.Identity(c.User)
	if !exists {
		s.audit(q.event(audit.Deny, "unknown caller"))
		q.write(w, http.StatusUnauthorized, "authentication refused")
		return
	}
	q.user, q.keyID = c.User, c.Key
	t := snap.Engine.Target(targetName)
	if t == nil || !t.IsKubernetes() {
		// The same answer as a target the user may not reach.
		msg := fmt.Sprintf("access denied: %s may not reach %s", c.User, targetName)
		s.audit(q.event(audit.Deny, msg))
		q.write(w, http.StatusForbidden, msg)
		return
	}
	// 2. Parse.
	if err := checkPath(path); err != nil {
		s.refuse(w, q, http.StatusBadRequest, "bad request path: "+err.Error())
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = path, ""
	out.RequestURI = ""
	attrs, err := parseRequest(out)
	q.attrs = attrs
	q.attrs.path = path
	q.plainErrors = attrs.discovery || err != nil && q.plainErrors
	if err != nil {
		s.refuse(w, q, http.StatusForbidden, "access denied: "+err.Error())
		return
	}
	q.query = r.URL.Query()
	if attrs.subresource == "exec" {
		q.command = commandOf(q.query)
	}
	asUser, asGroups, err := impersonation(r.Header)
	q.asUser, q.asGroups = asUser, asGroups
	if err != nil {
		s.refuse(w, q, http.StatusBadRequest, "bad impersonation: "+err.Error())
		return
	}
	var groups []string
	if s.cfg.Groups != nil && id.Kind == policy.SubjectUser {
		if groups, err = s.cfg.Groups(r.Context(), c.User); err != nil {
			s.cfg.Log.Warn("directory groups", "user", c.User, "err", err)
			s.refuse(w, q, http.StatusServiceUnavailable, "the gateway cannot read the directory now")
			return
		}
	}
	kr := policy.KubeRequest{Kind: id.Kind, Subject: c.User, Groups: groups, Target: t.Name, Source: addrOf(r.RemoteAddr),
		Discovery: attrs.discovery, Verb: attrs.verb, APIGroup: attrs.group, Resource: attrs.resource,
		Subresource: attrs.subresource, Namespace: attrs.namespace, Name: attrs.name, AsUser: asUser, AsGroups: asGroups}
	// 3. Authorize.
	ssar := attrs.resource == "selfsubjectaccessreviews" && attrs.group == "authorization.k8s.io" && attrs.verb == "create"
	if ssar || selfQuestion(attrs) {
		// Any subject with access may ask who it is and what it may do
		// (kubectl auth whoami, auth can-i): the answer is about the
		// impersonated identity, and can-i is answered by the policy
		// first (selfReview).
		kr.Discovery = true
	}
	q.d = snap.Engine.DecideKube(kr)
	if !q.d.Allow {
		s.refuse(w, q, http.StatusForbidden, q.d.Reason)
		return
	}
	if q.d.SubjectFallback && selfQuestion(attrs) {
		// whoami and can-i --list answer for the identity impersonated:
		// never for one the policy does not let this subject take.
		s.refuse(w, q, http.StatusForbidden, fmt.Sprintf("access denied: %s may not act as the cluster identity asked for on %s (kubectl --as, --as-group), or must choose one with --as",
			c.User, t.Name))
		return
	}
	if q.d.Record && kubeletProxy(attrs) {
		// The kubelet's /exec, /attach and /run are reachable through
		// the node proxy: a command the gateway cannot record as a
		// session. Under a session-recording policy it is refused, as
		// an exec whose recording cannot start is.
		s.refuse(w, q, http.StatusForbidden, fmt.Sprintf("access denied: nodes/proxy reaches the kubelet's exec, attach and run, which the gateway cannot record, and the session-recording policy %s covers %s on %s",
			q.d.RecordingPolicy, c.User, t.Name))
		return
	}
	if ssar {
		if answered := s.selfReview(w, out, q, kr, snap.Engine); answered {
			return
		}
	}
	// 4. Forward.
	up, err := s.upstreamFor(t)
	if err != nil {
		s.cfg.Log.Error("kubernetes upstream", "target", t.Name, "err", err)
		s.refuse(w, q, http.StatusBadGateway, "the gateway cannot reach the API server")
		return
	}
	tok, err := s.token(snap, t)
	if err != nil {
		s.cfg.Log.Error("kubernetes credential", "target", t.Name, "err", err)
		s.refuse(w, q, http.StatusBadGateway, "the gateway has no credential for the API server")
		return
	}
	stripCredentials(out.Header)
	out.Header.Set("Authorization", "Bearer "+string(tok))
	out.Header.Set("Impersonate-User", q.d.User)
	for _, g := range q.d.Groups {
		out.Header.Add("Impersonate-Group", g)
	}
	// A watch or a stream may run for hours and its kube.request event
	// is written when it ends: its start is written first, and
	// synchronously, so the trail shows it while it runs and keeps it if
	// the gateway dies during it. Fail closed, as an SSH session does
	// when its start cannot be stored.
	if attrs.stream() || kr.Verb == "watch" {
		ev := q.event(audit.Info, fmt.Sprintf("started: %s %s", strings.ToLower(r.Method), path))
		ev.Type = EventStart
		if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "user", ev.User, "err", err)
			s.refuse(w, q, http.StatusServiceUnavailable, "the gateway cannot record the start of this request; try again later")
			return
		}
	}
	ctx, lr := s.track(r.Context(), q, kr)
	defer s.untrack(lr)
	out = out.WithContext(context.WithValue(ctx, ctxRequest{}, q))
	// The reverse proxy aborts a response cut off mid-body (a watch
	// ended by revocation, a client gone) by panicking with
	// http.ErrAbortHandler: the audit event is written on the way out
	// all the same, and the panic goes on to the server, which expects
	// it.
	defer func() {
		p := recover()
		outcome, msg := audit.Success, fmt.Sprintf("%s %s", strings.ToLower(r.Method), path)
		s.mu.Lock()
		revoked := lr.revoked
		s.mu.Unlock()
		switch {
		case revoked != "":
			outcome, msg = audit.Deny, "ended: "+revoked
		case q.upstreamErr != nil && !errors.Is(q.upstreamErr, context.Canceled):
			outcome, msg = audit.Failure, "API server unreachable: "+q.upstreamErr.Error()
		case p != nil:
			msg += " (cut off)"
		}
		s.audit(q.event(outcome, msg))
		s.history(q, outcome, 0, lr)
		if p != nil {
			panic(p)
		}
	}()
	if attrs.session() {
		// Exec and attach are terminated here and recorded (stream.go,
		// record.go).
		s.serveSession(w, out, q, up, tok, lr)
		return
	}
	if attrs.stream() && attrs.subresource == "portforward" {
		// Port-forward is terminated too, each connection through it
		// audited (portforward.go).
		s.servePortForward(out.Context(), w, out, q, up, tok, lr)
		return
	}
	up.proxy.ServeHTTP(w, out)
}

// kubeletProxy reports whether the request goes through the API server to
// a kubelet (nodes/proxy, or the old proxy verb on nodes).
func kubeletProxy(a kubeAttrs) bool {
	return a.group == "" && a.resource == "nodes" && (a.subresource == "proxy" || a.verb == "proxy")
}

// selfQuestion reports whether the request asks the API server about the
// caller itself: SelfSubjectReview (whoami) and SelfSubjectRulesReview
// (can-i --list, which lists RBAC's answer only: best-effort, the policy
// may narrow it further).
func selfQuestion(a kubeAttrs) bool {
	return a.verb == "create" && a.subresource == "" && a.name == "" &&
		(a.group == "authentication.k8s.io" && a.resource == "selfsubjectreviews" ||
			a.group == "authorization.k8s.io" && a.resource == "selfsubjectrulesreviews")
}

// refuse audits a denial and answers it as a Kubernetes Status, which
// kubectl prints as "Error from server (Forbidden): MESSAGE".
func (s *Server) refuse(w http.ResponseWriter, q *request, code int, msg string) {
	q.status = code
	s.audit(q.event(audit.Deny, msg))
	s.history(q, audit.Deny, code, nil)
	q.write(w, code, msg)
}

// discoveryShape reports whether path is one kubectl's discovery asks for
// (/api, /api/v1, /apis, /apis/GROUP[/VERSION], /version, /openapi/...),
// before the request is parsed.
func discoveryShape(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch segs[0] {
	case "api":
		return len(segs) <= 2
	case "apis":
		return len(segs) <= 3
	case "version", "openapi":
		return true
	}
	return false
}

// write answers an error: a Status object, or plain text for discovery.
func (q *request) write(w http.ResponseWriter, code int, msg string) {
	if !q.plainErrors {
		writeStatus(w, code, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, "portcullis: "+msg)
}

// writeStatus answers with a metav1.Status object.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	reason := map[int]string{http.StatusForbidden: "Forbidden", http.StatusUnauthorized: "Unauthorized",
		http.StatusBadRequest: "BadRequest", http.StatusServiceUnavailable: "ServiceUnavailable"}[code]
	body, _ := json.Marshal(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": "portcullis: " + msg, "reason": reason, "code": code})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// writeAPIStatus answers with the API server's own Status (RBAC's 403, no
// such pod), as is: its reason and message are what the user must see. It
// returns the HTTP code written.
func writeAPIStatus(w http.ResponseWriter, st metav1.Status) int {
	code := int(st.Code)
	if code < 400 || code > 599 {
		code = http.StatusBadGateway
	}
	st.Kind, st.APIVersion = "Status", "v1"
	body, err := json.Marshal(st)
	if err != nil {
		writeStatus(w, http.StatusBadGateway, "the gateway cannot relay the API server's answer")
		return http.StatusBadGateway
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
	return code
}

// maxReviewBody bounds a SelfSubjectAccessReview body.
const maxReviewBody = 64 << 10

// selfReview answers a SelfSubjectAccessReview (kubectl auth can-i) that
// the policy denies, with the policy's reason; one it allows is left to
// the API server (false), whose RBAC answers for the impersonated
// identity. The body is read and put back.
func (s *Server) selfReview(w http.ResponseWriter, out *http.Request, q *request, kr policy.KubeRequest, engine *policy.Engine) bool {
	body, err := io.ReadAll(io.LimitReader(out.Body, maxReviewBody+1))
	if err != nil || len(body) > maxReviewBody {
		s.refuse(w, q, http.StatusBadRequest, "cannot read the SelfSubjectAccessReview")
		return true
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	review, err := decodeReview(out.Header.Get("Content-Type"), body)
	if err != nil {
		s.refuse(w, q, http.StatusBadRequest, "cannot read the SelfSubjectAccessReview: "+err.Error())
		return true
	}
	ask := kr
	ask.Discovery = false
	switch ra, nra := review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes; {
	case ra != nil:
		ask.Verb, ask.APIGroup, ask.Resource, ask.Subresource, ask.Namespace, ask.Name = ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Namespace, ra.Name
	case nra != nil:
		ask.Discovery = isDiscovery(strings.ToUpper(nra.Verb), nra.Path)
		if !ask.Discovery {
			ask.Verb, ask.Resource = nra.Verb, nra.Path
		}
	default:
		return false
	}
	d := engine.DecideKube(ask)
	if d.Allow && d.SubjectFallback {
		// A discovery question asked as an identity the subject may not
		// take: the API server would answer for another one.
		d.Allow, d.Reason = false, fmt.Sprintf("access denied: %s may not act as the cluster identity asked for on %s", kr.Subject, kr.Target)
	}
	if d.Allow {
		return false
	}
	q.status = http.StatusCreated
	s.audit(q.event(audit.Success, "can-i answered by policy: "+d.Reason))
	review.APIVersion, review.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
	review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: false, Denied: true, Reason: "portcullis: " + d.Reason}
	b, err := json.Marshal(review)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "cannot encode the answer")
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
	return true
}

// protobufMagic starts a Kubernetes protobuf body (runtime.Unknown).
var protobufMagic = []byte("k8s\x00")

// decodeReview reads a SelfSubjectAccessReview in JSON or in Kubernetes
// protobuf (what client-go sends by default for built-in types).
func decodeReview(contentType string, body []byte) (*authorizationv1.SelfSubjectAccessReview, error) {
	var review authorizationv1.SelfSubjectAccessReview
	mt, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(mt) {
	case "application/vnd.kubernetes.protobuf":
		raw, ok := bytes.CutPrefix(body, protobufMagic)
		if !ok {
			return nil, errors.New("protobuf body without the k8s envelope")
		}
		var u runtime.Unknown
		if err := u.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("protobuf envelope: %w", err)
		}
		if err := review.Unmarshal(u.Raw); err != nil {
			return nil, fmt.Errorf("protobuf: %w", err)
		}
	case "application/json", "":
		if err := json.Unmarshal(body, &review); err != nil {
			return nil, fmt.Errorf("JSON: %w", err)
		}
	default:
		return nil, fmt.Errorf("content type %q is not supported here (JSON or protobuf)", contentType)
	}
	return &review, nil
}

func addrOf(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		a, _ := netip.ParseAddr(hostport)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}
