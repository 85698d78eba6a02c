package kubeproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path, wantErr string
	}{
		{"/api/v1/namespaces/dev/pods", ""},
		{"/apis/apps/v1/deployments/", ""},
		{"/", ""},
		{"", "must start with /"},
		{"api", "must start with /"},
		{"/api/v1/namespaces/dev%2Fpods", "percent-encoded"},
		{"/api/v1/%6eamespaces", "percent-encoded"},
		{`/api\v1`, "backslash"},
		{"/api//v1", "empty path segments"},
		{"/api/v1//", "empty path segments"},
		{"/api/./v1", "dot segments"},
		{"/api/v1/..", "dot segments"},
		{"/api/v1/na me", "control or space"},
		{"/api/v1/\x00", "control or space"},
		{"/" + strings.Repeat("a", 5000), "too long"},
	} {
		err := checkPath(tc.path)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("checkPath(%q): %v", tc.path, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("checkPath(%q) = %v, want %q", tc.path, err, tc.wantErr)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           kubeAttrs
		wantErr        string
	}{
		{method: "GET", target: "/api/v1/namespaces/dev/pods", want: kubeAttrs{verb: "list", resource: "pods", namespace: "dev"}},
		{method: "GET", target: "/api/v1/namespaces/dev/pods?watch=true", want: kubeAttrs{verb: "watch", resource: "pods", namespace: "dev"}},
		{method: "GET", target: "/api/v1/watch/namespaces/dev/pods/web", want: kubeAttrs{verb: "watch", resource: "pods", namespace: "dev", name: "web"}},
		{method: "GET", target: "/api/v1/pods", want: kubeAttrs{verb: "list", resource: "pods"}},
		{method: "DELETE", target: "/apis/apps/v1/namespaces/dev/deployments/web", want: kubeAttrs{verb: "delete", group: "apps", resource: "deployments", namespace: "dev", name: "web"}},
		{method: "DELETE", target: "/apis/apps/v1/namespaces/dev/deployments", want: kubeAttrs{verb: "deletecollection", group: "apps", resource: "deployments", namespace: "dev"}},
		{method: "PATCH", target: "/apis/stable.example.com/v1/namespaces/dev/crontabs/nightly", want: kubeAttrs{verb: "patch", group: "stable.example.com", resource: "crontabs", namespace: "dev", name: "nightly"}},
		// The WebSocket (GET) and SPDY (POST) forms of exec are one verb.
		{method: "GET", target: "/api/v1/namespaces/dev/pods/web/exec?command=sh", want: kubeAttrs{verb: "create", resource: "pods", subresource: "exec", namespace: "dev", name: "web"}},
		{method: "POST", target: "/api/v1/namespaces/dev/pods/web/exec?command=sh", want: kubeAttrs{verb: "create", resource: "pods", subresource: "exec", namespace: "dev", name: "web"}},
		{method: "GET", target: "/api/v1/namespaces/dev/pods/web/log", want: kubeAttrs{verb: "get", resource: "pods", subresource: "log", namespace: "dev", name: "web"}},
		{method: "GET", target: "/api/v1/namespaces/dev/pods/web/proxy/x/y", want: kubeAttrs{verb: "get", resource: "pods", subresource: "proxy", namespace: "dev", name: "web"}},
		{method: "GET", target: "/api/v1/proxy/namespaces/dev/pods/web", want: kubeAttrs{verb: "proxy", resource: "pods", namespace: "dev", name: "web"}},
		{method: "GET", target: "/api/v1/namespaces/dev", want: kubeAttrs{verb: "get", resource: "namespaces", namespace: "dev", name: "dev"}},
		{method: "GET", target: "/api", want: kubeAttrs{discovery: true}},
		{method: "GET", target: "/apis/apps/v1", want: kubeAttrs{discovery: true}},
		{method: "GET", target: "/openapi/v3/apis/apps/v1?hash=x", want: kubeAttrs{discovery: true}},
		{method: "GET", target: "/version", want: kubeAttrs{discovery: true}},
		{method: "POST", target: "/api", wantErr: "not a resource request"},
		{method: "GET", target: "/metrics", wantErr: "not a resource request"},
		{method: "GET", target: "/healthz/etcd", wantErr: "not a resource request"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		got, err := parseRequest(r)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %s: %v, want %q", tc.method, tc.target, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.target, err)
			continue
		}
		got.path = ""
		if got != tc.want {
			t.Errorf("%s %s: %+v, want %+v", tc.method, tc.target, got, tc.want)
		}
	}
}

func TestImpersonationAndStrip(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer x")
	h.Set("Impersonate-User", "admin")
	h.Add("Impersonate-Group", "a")
	h.Add("Impersonate-Group", "b")
	h.Set("X-Remote-User", "admin")
	h.Set("X-Remote-Extra-Scopes", "x")
	h.Set("Proxy-Authorization", "x")
	h.Set("Cookie", "c=1")
	h.Set("Accept", "application/json")
	h.Set("X-Trace", "1")
	h.Set("Connection", "Upgrade, X-Trace, Impersonate-User")
	user, groups, err := impersonation(h)
	if err != nil || user != "admin" || strings.Join(groups, ",") != "a,b" {
		t.Fatalf("impersonation = %q %v %v", user, groups, err)
	}
	stripCredentials(h)
	if len(h) != 2 || h.Get("Accept") == "" || h.Get("Connection") != "Upgrade" {
		t.Fatalf("left %v", h)
	}
	// Lower-case keys set directly in the map (as a server never does,
	// but a caller might) are stripped too.
	raw := http.Header{"impersonate-user": {"admin"}, "x-remote-group": {"system:masters"}}
	stripCredentials(raw)
	if len(raw) != 0 {
		t.Fatalf("left %v", raw)
	}
}

// FuzzParse feeds arbitrary paths and impersonation headers to the
// parsers: no panic, and a path checkPath accepts parses the same way
// twice.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/api/v1/namespaces/dev/pods", "/api/v1/proxy/namespaces/a/pods/b/c", "/apis/x/v1/namespaces/a/b/c/d/e",
		"/api/v1/watch/pods", "/openapi/v3", "/%2e%2e/", "//", "/api/v1/namespaces/a/pods/b/exec"} {
		f.Add("GET", s, "alice", "g")
	}
	f.Fuzz(func(t *testing.T, method, path, user, group string) {
		h := http.Header{"Impersonate-User": {user}, "Impersonate-Group": {group}}
		_, _, _ = impersonation(h)
		if checkPath(path) != nil || !validMethod(method) {
			return
		}
		r, err := http.NewRequest(method, "https://gw.test"+path, nil)
		if err != nil {
			return
		}
		a1, err1 := parseRequest(r)
		a2, err2 := parseRequest(r)
		if a1 != a2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("parse not stable: %+v %+v", a1, a2)
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD":
		return true
	}
	return false
}

// FuzzDecodeReview feeds arbitrary SelfSubjectAccessReview bodies, JSON
// and protobuf, to the decoder: an error or a review, never a panic.
func FuzzDecodeReview(f *testing.F) {
	f.Add("application/json", []byte(`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":"dev","verb":"list","resource":"pods"}}}`))
	f.Add("application/json", []byte(`{"spec":{"nonResourceAttributes":{"path":"/api","verb":"get"}}}`))
	f.Add("application/vnd.kubernetes.protobuf", append([]byte("k8s\x00"), 0x0a, 0x00, 0x12, 0x02, 0x0a, 0x00))
	f.Add("application/vnd.kubernetes.protobuf", []byte("k8s\x00\xff\xff"))
	f.Add("text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r, err := decodeReview(contentType, body)
		if err == nil && r == nil {
			t.Fatal("no review and no error")
		}
	})
}

func TestDecodeReview(t *testing.T) {
	r, err := decodeReview("application/json; charset=utf-8", []byte(`{"spec":{"resourceAttributes":{"namespace":"dev","verb":"get","group":"apps","resource":"deployments","name":"web"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ra := r.Spec.ResourceAttributes
	if ra == nil || ra.Namespace != "dev" || ra.Verb != "get" || ra.Group != "apps" || ra.Resource != "deployments" || ra.Name != "web" {
		t.Fatalf("decoded %+v", r.Spec)
	}
	for _, tc := range []struct{ ct, body, want string }{
		{"application/json", "{", "JSON"},
		{"application/vnd.kubernetes.protobuf", "nope", "without the k8s envelope"},
		{"application/cbor", "x", "not supported"},
	} {
		if _, err := decodeReview(tc.ct, []byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.ct, tc.body, err, tc.want)
		}
	}
}
