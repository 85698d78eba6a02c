package httpproxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/tlspin"
)

// upstream is one http target as the gateway calls it: an HTTP client
// with the target's TLS check, and the service account's sessions, one
// per slot (a gateway session, or a user calling with an API key).
type upstream struct {
	spec   string // fingerprint of the target's fields; a change builds a new upstream
	base   *url.URL
	client *http.Client
	cred   *resource.HTTPCredential
	// secret returns the service account's password or token, opened
	// from the vault when a login needs it (never kept).
	secret  func() ([]byte, error)
	timeout time.Duration

	mu    sync.Mutex
	slots map[string]*slot
	// sessionManager is the vSphere SessionManager's id, read once
	// from the ServiceContent.
	sessionManager string
}

// slot is one service-account session. mu serializes its login, so that
// concurrent requests of one slot log in once.
type slot struct {
	mu    sync.Mutex
	value string // cookie or session id; "" when not logged in
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
	up, err := newUpstream(t, spec, s.cfg.UpstreamTimeout, s.secretFunc(t))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := s.upstreams[t.Name]
	s.upstreams[t.Name] = up
	s.mu.Unlock()
	if old != nil {
		old.client.CloseIdleConnections()
	}
	return up, nil
}

func (s *Server) secretFunc(t *resource.Target) func() ([]byte, error) {
	if t.Credential == nil {
		return nil
	}
	target, account := t.Name, t.Credential.Account
	return func() ([]byte, error) {
		sealed, aad, ok := s.cfg.Snapshot().AccountPassword(target, account)
		if !ok {
			return nil, fmt.Errorf("the service account %s/%s has no password (apply an Account with password_file)", target, account)
		}
		return s.cfg.Vault.Open(sealed, aad)
	}
}

func newUpstream(t *resource.Target, spec string, timeout time.Duration, secret func() ([]byte, error)) (*upstream, error) {
	base, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("target %s: url: %w", t.Name, err)
	}
	tc, err := tlspin.ClientConfig(base.Hostname(), t.TLSPinSHA256, t.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// No proxy from the environment: the gateway reaches targets
		// directly, as for SSH.
		Proxy: nil,
	}
	return &upstream{spec: spec, base: base, cred: t.Credential, secret: secret, timeout: timeout,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect goes back to the client as is: following it
			// would carry the service credential elsewhere.
			return http.ErrUseLastResponse
		}}, slots: map[string]*slot{}}, nil
}

// url returns the upstream URL of a clean path and canonical query.
func (u *upstream) url(path, rawQuery string) string {
	v := *u.base
	v.Path = strings.TrimSuffix(u.base.Path, "/") + path
	v.RawPath = ""
	v.RawQuery = rawQuery
	return v.String()
}

// do sends one request with the service credential of slot key, logging
// in first when the credential is a session, and once more when the
// upstream answers that the session is gone. The body is buffered, so a
// retry sends it again.
func (u *upstream) do(ctx context.Context, key, method, path, rawQuery string, hdr http.Header, body []byte, soap bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		sl := u.slot(key)
		cred, err := u.credential(ctx, sl)
		if err != nil {
			return nil, fmt.Errorf("service account login: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.url(path, rawQuery), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = hdr.Clone()
		u.apply(req, cred)
		resp, err := u.client.Do(req)
		if err != nil {
			return nil, err
		}
		if attempt == 0 && u.sessionGone(resp, soap) {
			resp.Body.Close()
			u.forget(sl, cred)
			continue
		}
		return resp, nil
	}
}

// sessionGone reports whether the upstream refused the service session;
// it reads and restores a SOAP fault's body to tell.
func (u *upstream) sessionGone(resp *http.Response, soap bool) bool {
	if u.cred == nil || u.cred.Type != resource.CredentialVSphereSOAP && u.cred.Type != resource.CredentialVSphereREST {
		return false
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return true
	}
	if !soap || resp.StatusCode != http.StatusInternalServerError {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return bytes.Contains(b, []byte("NotAuthenticated"))
}

func (u *upstream) slot(key string) *slot {
	u.mu.Lock()
	defer u.mu.Unlock()
	sl := u.slots[key]
	if sl == nil {
		sl = &slot{}
		u.slots[key] = sl
	}
	return sl
}

// forget drops a refused session value, unless another request already
// replaced it.
func (u *upstream) forget(sl *slot, value string) {
	sl.mu.Lock()
	if sl.value == value {
		sl.value = ""
	}
	sl.mu.Unlock()
}

// credential returns the slot's session value, logging in when there is
// none; for basic and bearer, the header value.
func (u *upstream) credential(ctx context.Context, sl *slot) (string, error) {
	if u.cred == nil {
		return "", nil
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.value != "" {
		return sl.value, nil
	}
	secret, err := u.secret()
	if err != nil {
		return "", err
	}
	switch u.cred.Type {
	case resource.CredentialBasic:
		sl.value = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.cred.Username+":"+string(secret)))
	case resource.CredentialBearer:
		sl.value = "Bearer " + string(secret)
	case resource.CredentialVSphereSOAP:
		sl.value, err = u.soapLogin(ctx, string(secret))
	case resource.CredentialVSphereREST:
		sl.value, err = u.restLogin(ctx, string(secret))
	}
	return sl.value, err
}

// apply adds the service credential to an upstream request.
func (u *upstream) apply(req *http.Request, value string) {
	if u.cred == nil || value == "" {
		return
	}
	switch u.cred.Type {
	case resource.CredentialBasic, resource.CredentialBearer:
		req.Header.Set("Authorization", value)
	case resource.CredentialVSphereSOAP:
		req.Header.Set("Cookie", soapCookie+"="+value)
	case resource.CredentialVSphereREST:
		req.Header.Set(restSessionHeader, value)
	}
}

// vSphere session names.
const (
	soapCookie        = "vmware_soap_session"
	restSessionHeader = "Vmware-Api-Session-Id"
	restSessionPath   = "/rest/com/vmware/cis/session"
	apiSessionPath    = "/api/session"
)

func (u *upstream) soapCall(ctx context.Context, cookie, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url("/sdk", ""), strings.NewReader(soapHead+body+soapTail))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "urn:vim25/8.0")
	if cookie != "" {
		req.Header.Set("Cookie", soapCookie+"="+cookie)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp, b, err
}

// soapLogin logs the service account in with SessionManager.Login and
// returns its vmware_soap_session cookie.
func (u *upstream) soapLogin(ctx context.Context, secret string) (string, error) {
	sm, err := u.sessionManagerID(ctx)
	if err != nil {
		return "", err
	}
	resp, body, err := u.soapCall(ctx, "", `<Login xmlns="urn:vim25"><_this type="SessionManager">`+xmlText(sm)+
		`</_this><userName>`+xmlText(u.cred.Username)+`</userName><password>`+xmlText(secret)+`</password></Login>`)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("vSphere Login answered %s: %s", resp.Status, faultString(body))
	}
	for _, c := range resp.Cookies() {
		if c.Name == soapCookie && c.Value != "" {
			return c.Value, nil
		}
	}
	return "", errors.New("vSphere Login set no " + soapCookie + " cookie")
}

func (u *upstream) sessionManagerID(ctx context.Context) (string, error) {
	u.mu.Lock()
	sm := u.sessionManager
	u.mu.Unlock()
	if sm != "" {
		return sm, nil
	}
	resp, body, err := u.soapCall(ctx, "", `<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>`)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("RetrieveServiceContent answered %s", resp.Status)
	}
	var env struct {
		Body struct {
			Resp struct {
				Returnval struct {
					SessionManager string `xml:"sessionManager"`
				} `xml:"returnval"`
			} `xml:"RetrieveServiceContentResponse"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("RetrieveServiceContent: %w", err)
	}
	sm = env.Body.Resp.Returnval.SessionManager
	if !validMoRef(sm) {
		return "", errors.New("RetrieveServiceContent: no sessionManager")
	}
	u.mu.Lock()
	u.sessionManager = sm
	u.mu.Unlock()
	return sm, nil
}

func faultString(body []byte) string {
	var env struct {
		Body struct {
			Fault struct {
				String string `xml:"faultstring"`
			} `xml:"Fault"`
		} `xml:"Body"`
	}
	if xml.Unmarshal(body, &env) == nil && env.Body.Fault.String != "" {
		return env.Body.Fault.String
	}
	return "no fault string"
}

// restLogin creates a vSphere REST session for the service account.
func (u *upstream) restLogin(ctx context.Context, secret string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url(restSessionPath, ""), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(u.cred.Username, secret)
	resp, err := u.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("session create answered %s", resp.Status)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Value == "" {
		return "", fmt.Errorf("session create: no session id in the answer")
	}
	return v.Value, nil
}

// logout ends a slot's service session on the upstream (best effort, with
// a bound) and forgets the slot.
func (u *upstream) logout(key string) {
	u.mu.Lock()
	sl := u.slots[key]
	delete(u.slots, key)
	sm := u.sessionManager
	u.mu.Unlock()
	if sl == nil || u.cred == nil {
		return
	}
	sl.mu.Lock()
	value := sl.value
	sl.value = ""
	sl.mu.Unlock()
	if value == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch u.cred.Type {
	case resource.CredentialVSphereSOAP:
		if sm != "" {
			_, _, _ = u.soapCall(ctx, value, `<Logout xmlns="urn:vim25"><_this type="SessionManager">`+xmlText(sm)+`</_this></Logout>`)
		}
	case resource.CredentialVSphereREST:
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.url(restSessionPath, ""), nil)
		if err == nil {
			req.Header.Set(restSessionHeader, value)
			if resp, err := u.client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
}
