package kubeproxy

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
)

// TestCommandLine: the history's line names the verb, the object, the
// namespace, selectors, the impersonated groups and an exec's command, and
// how a request that did not succeed ended; nothing from the request can
// pass for another word, a marker or a second line.
func TestCommandLine(t *testing.T) {
	allowed := policy.KubeDecision{Allow: true, User: "alice", Groups: []string{"dev-readers"}}
	for _, tc := range []struct {
		name    string
		q       request
		outcome string
		refused int
		want    string
	}{
		{"list", request{attrs: kubeAttrs{verb: "list", resource: "pods", namespace: "dev"}, d: allowed, status: 200},
			audit.Success, 0, "list pods -n dev --as-group dev-readers"},
		{"delete a deployment", request{attrs: kubeAttrs{verb: "delete", group: "apps", resource: "deployments", namespace: "dev", name: "web"},
			d: policy.KubeDecision{Allow: true, User: "alice"}, status: 200}, audit.Success, 0, "delete deployments.apps/web -n dev"},
		{"selectors", request{attrs: kubeAttrs{verb: "watch", resource: "pods"}, d: allowed,
			query: url.Values{"labelSelector": {"app in (a,b)"}, "fieldSelector": {"spec.nodeName=n1"}}},
			audit.Success, 0, "watch pods -l 'app in (a,b)' --field-selector spec.nodeName=n1 --as-group dev-readers"},
		{"exec", request{attrs: kubeAttrs{verb: "create", resource: "pods", subresource: "exec", namespace: "dev", name: "web-1"},
			d: allowed, query: url.Values{"command": {"sh", "-c", "read x; echo it's $x"}, "container": {"c1"}}},
			audit.Success, 0, `create pods/web-1/exec -n dev -c c1 --as-group dev-readers -- sh -c 'read x; echo it'\''s $x'`},
		{"denied with the asked identity", request{attrs: kubeAttrs{verb: "list", resource: "pods", namespace: "dev"},
			asUser: "system:admin", asGroups: []string{"system:masters"}}, audit.Deny, http.StatusForbidden,
			"list pods -n dev --as-group system:masters (denied)"},
		{"refused otherwise", request{attrs: kubeAttrs{verb: "get", resource: "pods", namespace: "dev", name: "a"}, d: allowed},
			audit.Deny, http.StatusServiceUnavailable, "get pods/a -n dev --as-group dev-readers (refused: status 503)"},
		{"unparsed", request{method: "POST", attrs: kubeAttrs{path: "/healthz/x"}}, audit.Deny, http.StatusForbidden, "post /healthz/x (denied)"},
		{"ended by the gateway", request{attrs: kubeAttrs{verb: "watch", resource: "pods", namespace: "dev"}, d: allowed},
			audit.Deny, 0, "watch pods -n dev --as-group dev-readers (ended by the gateway)"},
		{"upstream unreachable", request{attrs: kubeAttrs{verb: "list", resource: "pods"}, d: allowed, status: 502},
			audit.Failure, 0, "list pods --as-group dev-readers (failed)"},
		{"API server refused", request{attrs: kubeAttrs{verb: "get", resource: "pods", namespace: "dev", name: "gone"}, d: allowed, status: 404},
			audit.Success, 0, "get pods/gone -n dev --as-group dev-readers (status 404)"},
		{"a name that looks like a marker", request{attrs: kubeAttrs{verb: "get", resource: "pods", namespace: "dev", name: "x (denied)"}, d: allowed, status: 404},
			audit.Success, 0, "get 'pods/x (denied)' -n dev --as-group dev-readers (status 404)"},
		{"a command word with a newline", request{attrs: kubeAttrs{verb: "create", resource: "pods", subresource: "exec", namespace: "dev", name: "w"},
			d: allowed, query: url.Values{"command": {"echo", "a\nalice k1 rm -rf / 'x'"}}},
			audit.Success, 0, `create pods/w/exec -n dev --as-group dev-readers -- echo $'a\nalice k1 rm -rf / \'x\''`},
		{"an empty word", request{attrs: kubeAttrs{verb: "create", resource: "pods", subresource: "exec", namespace: "dev", name: "w"},
			d: allowed, query: url.Values{"command": {"echo", ""}}}, audit.Success, 0, `create pods/w/exec -n dev --as-group dev-readers -- echo ''`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := commandLine(&tc.q, tc.outcome, tc.refused); got != tc.want {
				t.Fatalf("commandLine:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
