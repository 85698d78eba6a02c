package kubeproxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
)

// requestInfo is the API server's own request parser, configured as
// kube-apiserver configures it: using it rather than a parser of our own
// means the gateway judges the verb, resource and namespace the API server
// will act on, not a guess at them.
var requestInfo = &genericrequest.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// checkPath refuses a path the gateway and the API server might read
// differently: percent-encoding (an encoded slash moves segment
// boundaries), empty segments and dot segments (a server that cleans them
// acts on another path than the one judged), and control characters.
func checkPath(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return errors.New("the path must start with /")
	case len(p) > 4096:
		return errors.New("the path is too long")
	case strings.ContainsAny(p, "%\\"):
		return errors.New("percent-encoded or backslash characters in the path are refused")
	}
	if p == "/" {
		return nil
	}
	for i, seg := range strings.Split(p[1:], "/") {
		if seg == "" && i > 0 && strings.HasSuffix(p, "/") && i == strings.Count(p, "/")-1 {
			continue // one trailing slash
		}
		switch seg {
		case "":
			return errors.New("empty path segments are refused")
		case ".", "..":
			return errors.New("dot segments in the path are refused")
		}
		for _, c := range seg {
			if c < 0x21 || c == 0x7f {
				return fmt.Errorf("control or space characters in the path are refused")
			}
		}
	}
	return nil
}

// kubeAttrs is what one request does, as the policy judges it.
type kubeAttrs struct {
	discovery                                           bool
	verb, group, resource, subresource, namespace, name string
	path                                                string
}

// discoveryPaths are the non-resource paths any subject with some access
// to the target may read: what kubectl asks before any command.
func isDiscovery(method, path string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	switch {
	case path == "/api" || path == "/apis" || path == "/version",
		strings.HasPrefix(path, "/api/"), strings.HasPrefix(path, "/apis/"),
		path == "/openapi/v2", strings.HasPrefix(path, "/openapi/v3"):
		return true
	}
	return false
}

// parseRequest turns the request (its URL already the upstream path) into
// attributes. An error is a refusal.
func parseRequest(r *http.Request) (kubeAttrs, error) {
	info, err := requestInfo.NewRequestInfo(r)
	if err != nil {
		return kubeAttrs{}, fmt.Errorf("cannot parse the request: %v", err)
	}
	a := kubeAttrs{path: r.URL.Path}
	if !info.IsResourceRequest {
		if !isDiscovery(r.Method, r.URL.Path) {
			return a, fmt.Errorf("%s %s is not a resource request the gateway can authorize", r.Method, r.URL.Path)
		}
		a.discovery = true
		return a, nil
	}
	a.verb, a.group, a.resource, a.subresource, a.namespace, a.name = info.Verb, info.APIGroup, info.Resource, info.Subresource, info.Namespace, info.Name
	switch a.subresource {
	case "exec", "attach", "portforward":
		if a.resource == "pods" && a.verb == "get" {
			// The WebSocket form of exec, attach and port-forward is a
			// GET, the SPDY form a POST: both open the same stream, and
			// the API server asks RBAC for create on either. One verb
			// for both, so a rule cannot grant one and miss the other.
			a.verb = "create"
		}
	}
	return a, nil
}

// streamSubresources open a stream to a container or port.
func (a *kubeAttrs) stream() bool {
	return a.resource == "pods" && (a.subresource == "exec" || a.subresource == "attach" || a.subresource == "portforward")
}

// session reports whether the request is an exec or attach: a terminal
// session the gateway terminates and records (port-forward is not).
func (a *kubeAttrs) session() bool {
	return a.resource == "pods" && (a.subresource == "exec" || a.subresource == "attach")
}

// impersonation reads the identity a client asks for: Impersonate-User and
// Impersonate-Group (kubectl --as, --as-group). Impersonate-Uid and
// Impersonate-Extra-* are refused: the gateway cannot grant them.
func impersonation(h http.Header) (user string, groups []string, err error) {
	for k, v := range h {
		switch {
		case k == "Impersonate-User":
			if len(v) != 1 || v[0] == "" {
				return "", nil, errors.New("one Impersonate-User header at most")
			}
			user = v[0]
		case k == "Impersonate-Group":
			groups = append(groups, v...)
		case strings.HasPrefix(k, "Impersonate-"):
			return "", nil, fmt.Errorf("%s is not supported through the gateway", k)
		}
	}
	if len(groups) > 0 && user == "" {
		return "", nil, errors.New("Impersonate-Group needs Impersonate-User (kubectl --as with --as-group)")
	}
	return user, groups, nil
}

// stripCredentials removes every header a client could use to speak for
// someone else upstream: its own credentials, impersonation, and the
// front-proxy identity headers an API server may trust (X-Remote-*). It
// also drops what the Connection header names, keeping only its upgrade,
// keep-alive and close tokens: the reverse proxy deletes every header
// Connection names from the outgoing request, after the gateway has set
// its own, so "Connection: Impersonate-User" would otherwise strip the
// impersonation and send the request as the gateway's own identity.
func stripCredentials(h http.Header) {
	var keep []string
	for _, v := range h.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			switch strings.ToLower(tok) {
			case "":
			case "upgrade", "keep-alive", "close":
				keep = append(keep, tok)
			default:
				h.Del(tok)
			}
		}
	}
	h.Del("Connection")
	if len(keep) > 0 {
		h.Set("Connection", strings.Join(keep, ", "))
	}
	for k := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Authorization" || ck == "Proxy-Authorization" || ck == "Cookie" || ck == "X-Api-Key" ||
			strings.HasPrefix(ck, "Impersonate-") || strings.HasPrefix(ck, "X-Remote-") {
			delete(h, k)
		}
	}
}
