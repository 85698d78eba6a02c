package api

import (
	"encoding/json"

	"github.com/portcullis/portcullis/internal/policy"
)

// The JSON shapes of POST /api/v1/policy/explain and /api/v1/policy/test.
// The CLI runs policy tests offline with the same types and RunPolicyTests,
// so that a test means the same thing with and without a gateway.

// ExplainRequest is one access question: may User do Action on Target as
// Account from Source at Time (running Command)? It is the body of POST
// /api/v1/policy/explain and the common part of every PolicyCase.
type ExplainRequest struct {
	// User names a user or a service account. One that does not exist is
	// not an error: the answer is a denial that says so.
	User   string `json:"user"`
	Target string `json:"target"`
	// Account is the login on the target (svc-stats; web1/svc-stats is
	// taken too). Empty asks as the gateway does for a login without one:
	// the only allowed target user is used; several are a denial that
	// lists them.
	Account string `json:"account,omitempty"`
	// Action is shell, exec, file-transfer or tunnel.
	Action string `json:"action"`
	// Command is an exec command, a line entered in a shell, or a file
	// transfer's command (scp ..., sftp); tunnels carry none.
	Command string `json:"command,omitempty"`
	// Source is the client's IP address, for policies with source_cidrs.
	// Empty (or "any") asks about any source: source_cidrs are not
	// checked, and each step that grants says which sources it limits to.
	Source string `json:"source,omitempty"`
	// Time is an RFC 3339 time to decide at (validity windows); empty
	// means now.
	Time string `json:"time,omitempty"`
	// Operation and Object ask about one request to an http target
	// (vm.power_on on VirtualMachine:vm-449) instead of an action; see
	// policy_http.go.
	Operation string `json:"operation,omitempty"`
	Object    string `json:"object,omitempty"`
}

// ExplainResponse is the answer of POST /api/v1/policy/explain. Every field
// is always present, so that scripts need not guess.
type ExplainResponse struct {
	Allow bool `json:"allow"`
	// Reason says why a request is denied; empty when allowed.
	Reason string `json:"reason"`
	// Policy is the target-access policy that allowed the request.
	Policy string `json:"policy"`
	// Operation names the operation whose pattern matched the command.
	Operation string `json:"operation"`
	// Account is the target user decided for: the one asked for, or the
	// only one allowed when none was asked for.
	Account string `json:"account"`
	// TargetUsers lists the target users the subject may use on the target
	// for the action, whichever one was asked for.
	TargetUsers []string `json:"target_users"`
	// Obligations come with an allow; null when denied.
	Obligations *Obligations `json:"obligations"`
	// Steps says what each policy naming the subject contributed.
	Steps []policy.Step `json:"steps"`
	// AnySource is true when no source was given: the answer holds for
	// some source, source_cidrs were not checked.
	AnySource bool `json:"any_source,omitempty"`
}

// Obligations is policy.Obligations in the API's snake_case. Durations are
// Go durations ("1h", "10m30s"); "" means no limit.
type Obligations struct {
	MaxSession      string `json:"max_session"`
	IdleTimeout     string `json:"idle_timeout"`
	CheckCommands   bool   `json:"check_commands"`
	Autologin       bool   `json:"autologin"`
	Record          bool   `json:"record"`
	RecordInput     bool   `json:"record_input"`
	RecordingPolicy string `json:"recording_policy"`
}

// PolicyCase is one case of a policy test: a question and the answer
// expected.
type PolicyCase struct {
	// Name is optional; results and messages use it with the case's index.
	Name string `json:"name,omitempty"`
	ExplainRequest
	// Expect is "allow" or "deny".
	Expect string `json:"expect"`
}

// PolicyTestRequest is the body of POST /api/v1/policy/test.
type PolicyTestRequest struct {
	Cases []PolicyCase `json:"cases"`
	// Policies, when present, are resources (as in an apply's JSON array)
	// laid over the stored ones for this test only: nothing is stored.
	// Absent, the cases run against the current policy set.
	Policies []json.RawMessage `json:"policies,omitempty"`
}

// PolicyTestResponse is the answer of POST /api/v1/policy/test.
type PolicyTestResponse struct {
	Passed  int                `json:"passed"`
	Failed  int                `json:"failed"`
	Results []PolicyTestResult `json:"results"`
	// Warnings are what an apply of Policies would warn about (a subject
	// that does not exist, say).
	Warnings []string `json:"warnings"`
}

// PolicyTestResult is the outcome of one case.
type PolicyTestResult struct {
	// Index counts the cases from 1, as error messages do.
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Expect string `json:"expect"`
	Got    string `json:"got"`
	// Reason is the denial's reason; Policy the policy that allowed.
	Reason string `json:"reason"`
	Policy string `json:"policy"`
	OK     bool   `json:"ok"`
}
