package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/api"
)

// policyStream is a stored set with every kind of answer in it: command
// rules with an operation, a deny rule in a second granting policy, a
// source restriction, a validity window, session recording and a service
// account with autologin.
const policyStream = `kind: User
name: alice
email: alice@example.com
---
kind: ServiceAccount
name: backup
owner: alice
---
kind: Target
name: web1
address: 127.0.0.1:22
---
kind: Account
target: web1
name: svc-stats
---
kind: Account
target: web1
name: deploy
---
kind: Policy
name: backup-files
type: target-access
subjects: {service_accounts: [backup]}
targets: {names: [web1]}
target_users: [deploy, svc-stats]
actions: [file-transfer]
---
kind: Operation
name: iscsi.configure
patterns: ["^esxcli iscsi"]
---
kind: Policy
name: ops-web
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [shell, exec]
source_cidrs: [10.0.0.0/8]
commands: {allow: ["@iscsi.configure", "^uptime$", "^reboot"]}
valid_from: 2020-01-01T00:00:00Z
max_session: 1h
idle_timeout: 10m
---
kind: Policy
name: web-no-reboot
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [exec]
source_cidrs: [10.0.0.0/8]
commands: {deny: ["^reboot"]}
---
kind: Policy
name: backup-web
type: target-access
subjects: {service_accounts: [backup]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [exec]
source_cidrs: [10.9.0.0/16]
autologin: true
---
kind: Policy
name: record-all
type: session-recording
subjects: {users: [alice]}
targets: {names: [web1]}
record_input: true
`

func newPolicyEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	if status, body := e.do(t, "POST", "/api/v1/apply", "application/yaml", policyStream); status != http.StatusOK {
		t.Fatalf("apply: %d %s", status, body)
	}
	return e
}

func TestPolicyExplain(t *testing.T) {
	e := newPolicyEnv(t)
	tests := []struct {
		name       string
		body       string
		wantStatus int
		check      func(t *testing.T, res api.ExplainResponse)
		wantErr    string // substring of the error message
	}{
		{name: "allowed with obligations",
			body:       `{"user":"alice","target":"web1","account":"svc-stats","action":"exec","command":"uptime","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				want := api.Obligations{MaxSession: "1h", IdleTimeout: "10m", CheckCommands: true, Record: true, RecordInput: true, RecordingPolicy: "record-all"}
				if !res.Allow || res.Policy != "ops-web" || res.Reason != "" || res.Account != "svc-stats" {
					t.Errorf("decision %+v", res)
				}
				if res.Obligations == nil || *res.Obligations != want {
					t.Errorf("obligations %+v, want %+v", res.Obligations, want)
				}
				wantSteps(t, res, "ops-web grants", "record-all records", "web-no-reboot grants")
			}},
		{name: "operation named",
			body:       `{"user":"alice","target":"web1","account":"web1/svc-stats","action":"exec","command":"esxcli iscsi adapter list","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if !res.Allow || res.Operation != "iscsi.configure" {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "command denied by a second policy",
			body:       `{"user":"alice","target":"web1","account":"svc-stats","action":"exec","command":"reboot now","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || !strings.Contains(res.Reason, "command denied by policy web-no-reboot") || res.Obligations != nil {
					t.Errorf("decision %+v", res)
				}
				wantSteps(t, res, "ops-web grants", "record-all records", "web-no-reboot denies")
			}},
		{name: "denied by source",
			body:       `{"user":"alice","target":"web1","account":"svc-stats","action":"shell","source":"192.168.1.1"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || !strings.Contains(res.Reason, "from 192.168.1.1") {
					t.Errorf("decision %+v", res)
				}
				wantSteps(t, res, "ops-web no match", "record-all records", "web-no-reboot no match")
			}},
		{name: "outside the validity window",
			body:       `{"user":"alice","target":"web1","account":"svc-stats","action":"shell","source":"10.1.2.3","time":"2019-06-01T00:00:00Z"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || len(res.Steps) == 0 || res.Steps[0].Policy != "ops-web" || !strings.Contains(res.Steps[0].Why, "is valid from 2020-01-01T00:00:00Z") {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "service account with autologin, account chosen",
			body:       `{"user":"backup","target":"web1","action":"exec","command":"tar c /srv","source":"10.9.0.5"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if !res.Allow || res.Account != "svc-stats" || res.Obligations == nil || !res.Obligations.Autologin ||
					len(res.TargetUsers) != 1 || res.TargetUsers[0] != "svc-stats" {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "exec of an interactive shell is decided as shell, as the gateway does",
			body:       `{"user":"backup","target":"web1","account":"svc-stats","action":"exec","command":"bash -i","source":"10.9.0.5"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || !strings.Contains(res.Reason, "is not granted shell") {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "several target users without an account",
			body:       `{"user":"backup","target":"web1","action":"file-transfer","command":"sftp","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || res.Account != "" || !strings.Contains(res.Reason, "several target users are allowed on web1 (deploy, svc-stats)") ||
					strings.Join(res.TargetUsers, ",") != "deploy,svc-stats" {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "one of several target users named",
			body:       `{"user":"backup","target":"web1","account":"deploy","action":"file-transfer","command":"sftp","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if !res.Allow || res.Policy != "backup-files" || res.Account != "deploy" {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "unknown subject",
			body:       `{"user":"mallory","target":"web1","action":"shell","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || !strings.Contains(res.Reason, "mallory may not reach web1") {
					t.Errorf("decision %+v", res)
				}
				if len(res.Steps) != 1 || !strings.Contains(res.Steps[0].Why, `no user or service account is called "mallory"`) {
					t.Errorf("steps %+v", res.Steps)
				}
			}},
		{name: "unknown target",
			body:       `{"user":"alice","target":"nowhere","action":"shell","source":"10.1.2.3"}`,
			wantStatus: 200,
			check: func(t *testing.T, res api.ExplainResponse) {
				if res.Allow || !strings.Contains(res.Reason, "alice may not reach nowhere") {
					t.Errorf("decision %+v", res)
				}
			}},
		{name: "bad source", body: `{"user":"alice","target":"web1","action":"shell","source":"10.1.2"}`,
			wantStatus: 400, wantErr: `field source: "10.1.2" is not an IP address`},
		{name: "bad source word", body: `{"user":"alice","target":"web1","action":"shell","source":"anywhere"}`,
			wantStatus: 400, wantErr: `field source: "anywhere" is not an IP address (or any)`},
		{name: "unknown action", body: `{"user":"alice","target":"web1","action":"login","source":"10.1.2.3"}`,
			wantStatus: 400, wantErr: `field action: unknown action "login"`},
		{name: "tunnel with a command", body: `{"user":"alice","target":"web1","action":"tunnel","command":"ls","source":"10.1.2.3"}`,
			wantStatus: 400, wantErr: "field command"},
		{name: "bad time", body: `{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","time":"tomorrow"}`,
			wantStatus: 400, wantErr: "field time"},
		{name: "account on another target", body: `{"user":"alice","target":"web1","account":"db1/svc","action":"shell","source":"10.1.2.3"}`,
			wantStatus: 400, wantErr: "field account"},
		{name: "unknown field", body: `{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","colour":"red"}`,
			wantStatus: 400, wantErr: "field colour: unknown field"},
		{name: "wrong type", body: `{"user":"alice","target":"web1","action":"shell","source":10}`,
			wantStatus: 400, wantErr: "field source"},
		{name: "not an object", body: `[]`, wantStatus: 400, wantErr: "JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, "POST", "/api/v1/policy/explain", "application/json", tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", status, tc.wantStatus, body)
			}
			if tc.wantErr != "" {
				var er api.ErrorResponse
				if err := json.Unmarshal([]byte(body), &er); err != nil || !strings.Contains(er.Error.Message, tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", body, tc.wantErr)
				}
				return
			}
			var res api.ExplainResponse
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			// Every field is present, for scripts.
			for _, f := range []string{`"allow":`, `"reason":`, `"policy":`, `"operation":`, `"target_users":[`, `"obligations":`, `"steps":[`} {
				if !strings.Contains(body, f) {
					t.Errorf("body lacks %s: %s", f, body)
				}
			}
			tc.check(t, res)
		})
	}
}

// wantSteps checks the policies and outcomes of an explanation, in order.
func wantSteps(t *testing.T, res api.ExplainResponse, want ...string) {
	t.Helper()
	var got []string
	for _, s := range res.Steps {
		got = append(got, s.Policy+" "+s.Outcome)
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("steps %q, want %q (%+v)", got, want, res.Steps)
	}
}

func TestPolicyTest(t *testing.T) {
	e := newPolicyEnv(t)
	const cases = `[
		{"name":"uptime","user":"alice","target":"web1","account":"svc-stats","action":"exec","command":"uptime","source":"10.1.2.3","expect":"allow"},
		{"user":"alice","target":"web1","account":"svc-stats","action":"exec","command":"reboot","source":"10.1.2.3","expect":"deny"},
		{"name":"tunnel","user":"alice","target":"web1","account":"svc-stats","action":"tunnel","source":"10.1.2.3","expect":"allow"},
		{"name":"bob","user":"bob","target":"web1","account":"svc-stats","action":"shell","source":"10.1.2.3","expect":"allow"}
	]`
	// The overlay allows what the stored set denies: a tunnel for alice,
	// and a shell for bob, a user only the overlay knows.
	const overlay = `[
		{"kind":"User","name":"bob"},
		{"kind":"Policy","name":"alice-tunnel","type":"target-access","subjects":{"users":["alice","carol"]},
		 "targets":{"names":["web1"]},"target_users":["svc-stats"],"actions":["tunnel"]},
		{"kind":"Policy","name":"bob-shell","type":"target-access","subjects":{"users":["bob"]},
		 "targets":{"names":["web1"]},"target_users":["svc-stats"],"actions":["shell"]}
	]`

	tests := []struct {
		name       string
		body       string
		wantStatus int
		passed     int
		failed     int
		results    []string // "index name expect got ok" per result
		warnings   []string // substrings
		wantErr    string
	}{
		{name: "current policy set", body: `{"cases":` + cases + `}`, wantStatus: 200, passed: 2, failed: 2,
			results: []string{"1 uptime allow allow true", "2  deny deny true", "3 tunnel allow deny false", "4 bob allow deny false"}},
		{name: "with a policies overlay", body: `{"cases":` + cases + `,"policies":` + overlay + `}`, wantStatus: 200, passed: 4, failed: 0,
			results:  []string{"1 uptime allow allow true", "2  deny deny true", "3 tunnel allow allow true", "4 bob allow allow true"},
			warnings: []string{`document 2 (Policy alice-tunnel): field subjects.users[1]: user "carol" does not exist (yet)`}},
		{name: "bad source names the case", wantStatus: 400, wantErr: "case 2: field source",
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","expect":"deny"},
				{"user":"alice","target":"web1","action":"shell","source":"here","expect":"deny"}]}`},
		{name: "unknown case field", wantStatus: 400, wantErr: "case 1: field expected: unknown field",
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","expected":"deny"}]}`},
		{name: "wrong type in a case", wantStatus: 400, wantErr: "case 1: field source: cannot use a JSON number as string",
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":10,"expect":"deny"}]}`},
		{name: "missing expect", wantStatus: 400, wantErr: "case 1: field expect: is required",
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3"}]}`},
		{name: "bad expect", wantStatus: 400, wantErr: `case 1: field expect: "yes" is neither allow nor deny`,
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","expect":"yes"}]}`},
		{name: "no cases", body: `{"cases":[]}`, wantStatus: 400, wantErr: "field cases: no cases"},
		{name: "bad policy document", wantStatus: 400, wantErr: "policies: document 1 (Policy p): field actions",
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","expect":"deny"}],
				"policies":[{"kind":"Policy","name":"p","type":"target-access","subjects":{"users":["alice"]},"targets":{"names":["web1"]},"target_users":["x"]}]}`},
		{name: "overlay reference missing", wantStatus: 400, wantErr: `policies: document 1 (Policy p): field targets.names[0]: target "db1" does not exist`,
			body: `{"cases":[{"user":"alice","target":"web1","action":"shell","source":"10.1.2.3","expect":"deny"}],
				"policies":[{"kind":"Policy","name":"p","type":"target-access","subjects":{"users":["alice"]},"targets":{"names":["db1"]},"target_users":["x"],"actions":["shell"]}]}`},
		{name: "unknown top-level field", body: `{"case":[]}`, wantStatus: 400, wantErr: "field case: unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, "POST", "/api/v1/policy/test", "application/json", tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", status, tc.wantStatus, body)
			}
			if tc.wantErr != "" {
				var er api.ErrorResponse
				if err := json.Unmarshal([]byte(body), &er); err != nil || !strings.Contains(er.Error.Message, tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", body, tc.wantErr)
				}
				return
			}
			var res api.PolicyTestResponse
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if res.Passed != tc.passed || res.Failed != tc.failed {
				t.Errorf("passed %d failed %d, want %d and %d: %s", res.Passed, res.Failed, tc.passed, tc.failed, body)
			}
			var got []string
			for _, r := range res.Results {
				got = append(got, fmt.Sprintf("%d %s %s %s %t", r.Index, r.Name, r.Expect, r.Got, r.OK))
				if !r.OK && r.Got == "deny" && r.Reason == "" {
					t.Errorf("denied case %d has no reason", r.Index)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.results, "\n") {
				t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.results, "\n"))
			}
			if res.Warnings == nil {
				t.Errorf("warnings is null, want an array: %s", body)
			}
			for _, w := range tc.warnings {
				if !strings.Contains(strings.Join(res.Warnings, "\n"), w) {
					t.Errorf("warnings %q lack %q", res.Warnings, w)
				}
			}
		})
	}

	// A test stores nothing.
	if status, body := e.do(t, "GET", "/api/v1/resources/policy/alice-tunnel", "", ""); status != http.StatusNotFound {
		t.Errorf("overlay policy stored: %d %s", status, body)
	}
	if status, body := e.do(t, "GET", "/api/v1/resources/user/bob", "", ""); status != http.StatusNotFound {
		t.Errorf("overlay user stored: %d %s", status, body)
	}
}
