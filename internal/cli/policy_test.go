package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// policyResources is a self-contained set: apply takes it, and offline
// policy tests need nothing else. The account's key file does not exist:
// policy tests must not read it.
const policyResources = `kind: User
name: alice
email: alice@example.com
groups: [ops]
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
kind: Operation
name: iscsi.configure
patterns: ["^esxcli iscsi"]
---
kind: Policy
name: ops-web
type: target-access
subjects: {users: [alice], groups: [ops]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [shell, exec]
source_cidrs: [10.0.0.0/8]
commands: {allow: ["@iscsi.configure", "^uptime$", "^reboot"]}
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

// overlayResources allows what policyResources denies (a tunnel), and
// carries an account whose key file does not exist.
const overlayResources = `kind: Account
target: web1
name: deploy
private_key_file: keys/nowhere
---
kind: Policy
name: alice-tunnel
type: target-access
subjects: {users: [alice, carol]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [tunnel]
`

const passingCases = `- name: uptime
  user: alice
  target: web1
  account: svc-stats
  action: exec
  command: uptime
  source: 10.1.2.3
  expect: allow
- user: alice
  target: web1
  account: svc-stats
  action: exec
  command: reboot
  source: 10.1.2.3
  expect: deny
- name: backup from its network
  user: backup
  target: web1
  action: exec
  command: tar c /srv
  source: 10.9.0.5
  time: 2026-01-02T15:04:05Z
  expect: allow
`

// failingCases fail against policyResources alone: the tunnel is only
// allowed by overlayResources.
const failingCases = `- name: uptime
  user: alice
  target: web1
  account: svc-stats
  action: exec
  command: uptime
  source: 10.1.2.3
  expect: allow
- name: tunnel
  user: alice
  target: web1
  account: svc-stats
  action: tunnel
  source: 10.1.2.3
  expect: allow
- name: reboot
  user: alice
  target: web1
  account: svc-stats
  action: exec
  command: reboot
  source: 10.1.2.3
  expect: allow
`

func TestCLIPolicy(t *testing.T) {
	g := startGateway(t)
	dir := t.TempDir()
	resources := filepath.Join(dir, "resources.yaml")
	writeFile(t, resources, []byte(policyResources))
	overlay := filepath.Join(dir, "overlay.yaml")
	writeFile(t, overlay, []byte(overlayResources))
	passing := filepath.Join(dir, "passing.yaml")
	writeFile(t, passing, []byte(passingCases))
	failing := filepath.Join(dir, "failing.yaml")
	writeFile(t, failing, []byte(failingCases))
	unknownField := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownField, []byte("- user: alice\n  target: web1\n  action: shell\n  source: 10.1.2.3\n  expect: deny\n- user: alice\n  target: web1\n  action: shell\n  source: 10.1.2.3\n  expected: deny\n"))
	badSource := filepath.Join(dir, "badsource.yaml")
	writeFile(t, badSource, []byte("- user: alice\n  target: web1\n  action: shell\n  source: here\n  expect: deny\n"))
	notList := filepath.Join(dir, "notlist.yaml")
	writeFile(t, notList, []byte("user: alice\n"))
	listField := filepath.Join(dir, "listfield.yaml")
	writeFile(t, listField, []byte("- user: [alice]\n"))
	dangling := filepath.Join(dir, "dangling.yaml")
	writeFile(t, dangling, []byte("kind: Policy\nname: p\ntype: target-access\nsubjects: {users: [alice]}\ntargets: {names: [db1]}\ntarget_users: [x]\nactions: [shell]\n"))
	// Offline runs never touch a socket: point at one that does not exist.
	noSocket := []string{"--socket", filepath.Join(dir, "no.sock")}

	g.run(t, "", "apply", "-f", resources).want(t, 0, []string{"Policy/ops-web created"}, nil)

	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  []string
		stderr  []string
		notOut  []string
		isJSON  bool
		jsonKey string // a key the JSON object must have
	}{
		{name: "explain allowed", code: 0,
			args: []string{"policy", "explain", "--user", "alice", "--target", "web1", "--account", "svc-stats", "--action", "exec", "--command", "esxcli iscsi adapter list", "--source", "10.1.2.3"},
			stdout: []string{
				"ALLOW exec on web1 as svc-stats by policy ops-web (operation iscsi.configure)\n",
				"  obligations: max_session 1h, idle_timeout 10m, record output and input, commands checked\n",
				"policies:\n",
				"  ops-web        grants   grants exec on web1; command matches operation iscsi.configure\n",
				"  record-all     records  records output and input\n",
				"  web-no-reboot  grants   grants exec on web1; command allowed by its rules\n"}},
		{name: "explain chooses the only account", code: 0,
			args:   []string{"policy", "explain", "--user", "backup", "--target", "web1", "--action", "exec", "--source", "10.9.0.5"},
			stdout: []string{"ALLOW exec on web1 as svc-stats by policy backup-web\n", "obligations: autologin\n"}},
		{name: "explain denied", code: 1,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--account", "svc-stats", "--action", "exec", "--command", "reboot", "--source", "10.1.2.3"},
			stdout: []string{"DENY exec on web1 as svc-stats: command denied by policy web-no-reboot\n", "  web-no-reboot  denies   command denied by policy web-no-reboot\n"},
			stderr: []string{"denied"}},
		{name: "explain denied lists allowed users", code: 1,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--account", "root", "--action", "shell", "--source", "10.1.2.3"},
			stdout: []string{"DENY shell on web1 as root: alice may not log in to web1 as root\n", "  target users allowed: svc-stats\n"}},
		{name: "explain unknown subject", code: 1,
			args:   []string{"policy", "explain", "--user", "mallory", "--target", "web1", "--action", "shell", "--source", "10.1.2.3"},
			stdout: []string{"DENY shell on web1: mallory may not reach web1\n", `  -  no match  no user or service account is called "mallory"`}},
		{name: "explain json", code: 0, isJSON: true, jsonKey: "obligations",
			args:   []string{"policy", "explain", "--json", "--user", "alice", "--target", "web1", "--account", "svc-stats", "--action", "exec", "--command", "uptime", "--source", "10.1.2.3"},
			stdout: []string{`"allow": true`, `"policy": "ops-web"`, `"max_session": "1h"`, `"steps": [`}},
		{name: "explain json denied", code: 1, isJSON: true, jsonKey: "reason",
			args:   []string{"policy", "explain", "--json", "--user", "alice", "--target", "web1", "--action", "tunnel", "--source", "10.1.2.3"},
			stdout: []string{`"allow": false`, `"obligations": null`}},
		// Without --source the answer is for any source, and says which
		// sources the granting policy limits to.
		{name: "explain without source", code: 0,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--action", "shell"},
			stdout: []string{"ALLOW shell on web1 as svc-stats from any source by policy ops-web\n", "only from source_cidrs [10.0.0.0/8]"}},
		{name: "explain with source any", code: 0,
			args:   []string{"policy", "explain", "--user", "backup", "--target", "web1", "--action", "exec", "--source", "any"},
			stdout: []string{"from any source", "only from source_cidrs [10.9.0.0/16]"}},
		{name: "explain with a source outside source_cidrs still denies", code: 1,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--action", "shell", "--source", "192.0.2.1"},
			stdout: []string{"DENY shell on web1", "does not allow source 192.0.2.1"}},
		{name: "explain bad source", code: 2,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--action", "shell", "--source", "10.1.2"},
			stderr: []string{`--source: "10.1.2" is not an IP address`}},
		{name: "explain bad action", code: 2,
			args:   []string{"policy", "explain", "--user", "alice", "--target", "web1", "--action", "login", "--source", "10.1.2.3"},
			stderr: []string{`--action: unknown action "login"`}},
		{name: "explain stray argument", code: 2,
			args:   []string{"policy", "explain", "alice", "--user", "alice", "--target", "web1", "--action", "shell", "--source", "10.1.2.3"},
			stderr: []string{`unexpected argument "alice"`}},

		{name: "test passing", code: 0, args: []string{"policy", "test", passing},
			stdout: []string{"3 passed, 0 failed\n"}, notOut: []string{"FAIL"}},
		{name: "test failing", code: 1, args: []string{"policy", "test", failing},
			stdout: []string{
				"FAIL case 2 (tunnel): expected allow, got deny: access denied: alice is not granted tunnel on web1\n",
				"FAIL case 3 (reboot): expected allow, got deny: access denied: command denied by policy web-no-reboot\n",
				"1 passed, 2 failed\n"},
			stderr: []string{"2 of 3 cases failed"}, notOut: []string{"case 1"}},
		{name: "test with a policies overlay", code: 1, args: []string{"policy", "test", failing, "--policies", overlay},
			stdout: []string{"FAIL case 3 (reboot)", "2 passed, 1 failed\n"}, notOut: []string{"case 2"},
			stderr: []string{"warning: " + overlay + `: document 2 (Policy alice-tunnel): field subjects.users[1]: user "carol" does not exist (yet)`}},
		{name: "test json", code: 1, isJSON: true, jsonKey: "results", args: []string{"policy", "test", "--json", failing},
			stdout: []string{`"passed": 1`, `"failed": 2`, `"name": "tunnel"`, `"got": "deny"`}},
		{name: "test unknown case field", code: 2, args: []string{"policy", "test", unknownField},
			stderr: []string{unknownField + ": case 2: field expected: unknown field (line 10"}},
		{name: "test bad source", code: 2, args: []string{"policy", "test", badSource},
			stderr: []string{badSource + `: case 1: field source: "here" is not an IP address`}},
		{name: "test not a list", code: 2, args: []string{"policy", "test", notList},
			stderr: []string{"want a YAML list of cases"}},
		{name: "test list where a value belongs", code: 2, args: []string{"policy", "test", listField},
			stderr: []string{"case 1: field user: want a single value, not a list"}},
		{name: "test missing file", code: 2, args: []string{"policy", "test", filepath.Join(dir, "none.yaml")},
			stderr: []string{"no such file"}},
		{name: "test no cases file", code: 2, args: []string{"policy", "test"}, stderr: []string{"CASES.yaml is required"}},
		{name: "test overlay reference missing", code: 2, args: []string{"policy", "test", passing, "--policies", dangling},
			stderr: []string{dangling + `: document 1 (Policy p): field targets.names[0]: target "db1" does not exist`}},
		{name: "offline needs policies", code: 2, args: append([]string{"policy", "test", "--offline", passing}, noSocket...),
			stderr: []string{"--offline needs --policies FILE"}},
		{name: "offline passing", code: 0, args: append([]string{"policy", "test", passing, "--offline", "--policies", resources}, noSocket...),
			stdout: []string{"3 passed, 0 failed\n"}},
		{name: "offline bad case", code: 2, args: append([]string{"policy", "test", badSource, "--offline", "--policies", resources}, noSocket...),
			stderr: []string{badSource + `: case 1: field source: "here" is not an IP address`}},
		{name: "offline file must be self-contained", code: 2, args: append([]string{"policy", "test", passing, "--offline", "--policies", overlay}, noSocket...),
			stderr: []string{overlay + `: document 1 (Account web1/deploy): field target: target "web1" does not exist`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := g.run(t, "", tc.args...)
			r.want(t, tc.code, tc.stdout, tc.stderr)
			for _, s := range tc.notOut {
				if strings.Contains(r.stdout, s) {
					t.Errorf("stdout holds %q:\n%s", s, r.stdout)
				}
			}
			if tc.isJSON {
				var obj map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
					t.Fatalf("not a JSON object: %v\n%s", err, r.stdout)
				}
				if _, ok := obj[tc.jsonKey]; !ok {
					t.Errorf("JSON lacks %q: %s", tc.jsonKey, r.stdout)
				}
			}
		})
	}

	// Offline and online agree, in the same words: the gateway holds
	// exactly the file's resources.
	for _, cases := range []string{passing, failing} {
		online := g.run(t, "", "policy", "test", cases)
		offline := g.run(t, "", append([]string{"policy", "test", cases, "--offline", "--policies", resources}, noSocket...)...)
		if online.code != offline.code || online.stdout != offline.stdout || online.stderr != offline.stderr {
			t.Errorf("%s: online and offline differ:\nonline (exit %d):\n%s%s\noffline (exit %d):\n%s%s",
				filepath.Base(cases), online.code, online.stdout, online.stderr, offline.code, offline.stdout, offline.stderr)
		}
	}

	// An overlay stores nothing.
	g.run(t, "", "get", "policy", "alice-tunnel").want(t, 1, nil, []string{"not found"})
}

func TestCLIPolicyHelp(t *testing.T) {
	g := &gateway{dataDir: "unused"}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"policy", "explain", "--help"}, 0, "Exit codes: 0 allowed; 1 denied"},
		{[]string{"policy", "test", "-h"}, 0, "--offline"},
		{[]string{"help", "policy", "test"}, 0, "private_key_file in FILE is ignored"},
		{[]string{"policy", "--help"}, 0, "policy test CASES.yaml"},
		{[]string{"help"}, 0, "policy explain --user NAME"},
	} {
		r := g.run(t, "", tc.args...)
		r.want(t, tc.code, []string{tc.out}, nil)
	}
	r := g.run(t, "", "policy")
	r.want(t, 2, nil, []string{"Usage: portcullis policy explain|test"})
}
