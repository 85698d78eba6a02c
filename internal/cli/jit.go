package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const jitUsage = `Usage: portcullis jit request --target TARGET [--account A] [--duration 2h] [--reason "..."] [--policy P] [--wait]
       portcullis jit ls [--state STATE] [--requester USER] [--json]
       portcullis jit show ID [--json]
       portcullis jit approve ID
       portcullis jit deny ID --reason "..."
       portcullis jit revoke ID

Just-in-time access: a jit policy lets its subjects request, for a while,
what its child policies grant. A request is approved by the policy
(auto_approve) or by one of its approvers (here, in the console or in
Slack); nobody approves their own. An approved request becomes policy
JIT-xxxxxxxx, granting exactly what was asked, which the gateway deletes when
the time is up, ending the sessions that relied on it.

request files a request as you. --duration is whole minutes (30m, 2h; the jit
policy's duration by default, at most its max_duration). With --wait it waits
for the decision: exit 0 when approved, 1 when denied or expired.

ls lists the requests you may see (yours, those you may approve; all for
admins and auditors), newest first, including ended ones. STATE is pending,
approved, denied, expired, revoked or cancelled. show prints one request with
its history.

revoke (admins) ends an approved request's access now.

A user who is not the gateway's local superuser runs these against the HTTPS
API with an API key: --gateway https://HOST:PORT --api-key-file FILE (or
$PORTCULLIS_GATEWAY and $PORTCULLIS_API_KEY).

Flags:
  --target NAME       (request) the target
  --account NAME      (request) the target user; default: those the child grants
  --duration D        (request) how long
  --reason TEXT       (request, deny) one line
  --policy NAME       (request) the jit policy, when several cover the target
  --wait              (request) wait for the decision
  --state STATE       (ls) only requests in this state
  --requester USER    (ls) only this user's requests
  --json              (ls, show) JSON
` + "\n" + globalFlagsUsage

func jitCommand() *command {
	return &command{name: "jit", usage: jitUsage, subs: []*command{
		{name: "jit request", usage: jitUsage, run: runJITRequest},
		{name: "jit ls", usage: jitUsage, run: runJITLs},
		{name: "jit show", usage: jitUsage, run: runJITShow},
		{name: "jit approve", usage: jitUsage, run: func(e *env, args []string) error { return runJITDecide(e, args, "approve") }},
		{name: "jit deny", usage: jitUsage, run: func(e *env, args []string) error { return runJITDecide(e, args, "deny") }},
		{name: "jit revoke", usage: jitUsage, run: func(e *env, args []string) error { return runJITDecide(e, args, "revoke") }},
	}}
}

// jitPollEvery is how often request --wait asks for the decision.
var jitPollEvery = 2 * time.Second

func runJITRequest(e *env, args []string) error {
	fs := e.flags()
	var body api.JITRequestBody
	var wait bool
	fs.StringVar(&body.Target, "target", "", "")
	fs.StringVar(&body.Account, "account", "", "")
	fs.StringVar(&body.Duration, "duration", "", "")
	fs.StringVar(&body.Reason, "reason", "", "")
	fs.StringVar(&body.Policy, "policy", "", "")
	fs.BoolVar(&wait, "wait", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if body.Target == "" {
		return usageErr("--target is required")
	}
	body.Channel = "cli"
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var req api.JITRequestInfo
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/jit/requests", nil, "application/json", b, &req); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "request %s: %s\n", req.ID, describeJIT(req))
	if !wait || req.State != "pending" {
		return jitOutcome(req)
	}
	fmt.Fprintf(e.stdout, "waiting for an approver (Ctrl-C stops waiting; the request stays filed)...\n")
	t := time.NewTicker(jitPollEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return &exitError{code: exitFailure, msg: "stopped waiting; request " + req.ID + " is still pending"}
		case <-t.C:
		}
		if err := c.do(e.ctx, http.MethodGet, "/api/v1/jit/requests/"+url.PathEscape(req.ID), nil, "", nil, &req); err != nil {
			return err
		}
		if req.State != "pending" {
			fmt.Fprintf(e.stdout, "request %s: %s\n", req.ID, describeJIT(req))
			return jitOutcome(req)
		}
	}
}

// jitOutcome is the exit status of a request's state: 0 pending or
// approved, 1 otherwise.
func jitOutcome(req api.JITRequestInfo) error {
	switch req.State {
	case "pending", "approved":
		return nil
	}
	return &exitError{code: exitNo, msg: fmt.Sprintf("request %s is %s", req.ID, req.State)}
}

func describeJIT(r api.JITRequestInfo) string {
	switch r.State {
	case "pending":
		return fmt.Sprintf("pending approval under jit policy %s (%s on %s for %s)", r.Policy, orDash(r.Account), r.Target, r.Duration)
	case "approved":
		return fmt.Sprintf("approved by %s: policy %s grants %s on %s until %s", r.DecidedBy, r.Grant, orDash(r.Account), r.Target, fmtTime(r.ExpiresAt))
	case "denied":
		return "denied by " + r.DecidedBy
	}
	return r.State
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runJITLs(e *env, args []string) error {
	fs := e.flags()
	var state, requester string
	var asJSON bool
	fs.StringVar(&state, "state", "", "")
	fs.StringVar(&requester, "requester", "", "")
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if requester != "" {
		q.Set("requester", requester)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var list []api.JITRequestInfo
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/jit/requests", q, "", nil, &list); err != nil {
		return err
	}
	return printList(e, list, asJSON, "No requests.",
		[]string{"ID", "REQUESTER", "TARGET", "ACCOUNT", "DURATION", "STATE", "DECIDED BY", "GRANT", "CREATED", "EXPIRES", "REASON"},
		func(r api.JITRequestInfo) []string {
			return []string{r.ID, r.Requester, r.Target, orDash(r.Account), r.Duration, r.State, orDash(r.DecidedBy), orDash(r.Grant),
				r.CreatedAt.UTC().Format(time.RFC3339), fmtTime(r.ExpiresAt), orDash(r.Reason)}
		})
}

func runJITShow(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "request")
	if err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var r api.JITRequestInfo
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/jit/requests/"+url.PathEscape(id), nil, "", nil, &r); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(e.stdout, "request %s: %s\nrequester %s, jit policy %s, reason: %s\n", r.ID, describeJIT(r), r.Requester, r.Policy, orDash(r.Reason))
	for _, ev := range r.History {
		fmt.Fprintf(e.stdout, "  %s  %-13s %-8s %s %s\n", ev.Time.UTC().Format(time.RFC3339), ev.Kind, orDash(ev.Channel), orDash(ev.Actor),
			strings.TrimSpace(ev.Detail))
	}
	return nil
}

func runJITDecide(e *env, args []string, verb string) error {
	fs := e.flags()
	var reason string
	fs.StringVar(&reason, "reason", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "request")
	if err != nil {
		return err
	}
	if verb == "deny" && strings.TrimSpace(reason) == "" {
		return usageErr("--reason is required: the requester is told why")
	}
	b, err := json.Marshal(api.JITDecisionBody{Reason: reason, Channel: "cli"})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var r api.JITRequestInfo
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/jit/requests/"+url.PathEscape(id)+"/"+verb, nil, "application/json", b, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "request %s: %s\n", r.ID, describeJIT(r))
	return nil
}
