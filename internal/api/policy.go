package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
)

// maxExplainBytes bounds an explain request: a handful of short fields.
const maxExplainBytes = 64 << 10

// maxPolicyTestBytes bounds a policy test request. Its policies may be a
// whole apply stream, whose JSON is larger than the YAML the CLI read
// (resource.MaxStreamBytes), and the cases come on top.
const maxPolicyTestBytes = 3 * resource.MaxStreamBytes

// Expected and actual outcomes of a policy test case.
const (
	outcomeAllow = "allow"
	outcomeDeny  = "deny"
)

// policyExplain answers POST /api/v1/policy/explain: the decision the
// gateway would make and what every policy naming the subject contributed.
// It reads the current snapshot only; nothing is audited, since nothing
// changes. (Roles come later: on the admin socket the caller is the local
// superuser, who may ask anything.)
func (a *api) policyExplain(w http.ResponseWriter, r *http.Request) error {
	var req ExplainRequest
	if err := decodeJSONRequest(w, r, maxExplainBytes, &req); err != nil {
		return err
	}
	if p := caller(r); !p.admin() && req.User != p.Name {
		return clientError(http.StatusForbidden, "%s may only ask about its own access, not %s's", p.actor(), req.User)
	}
	// One snapshot for identities and engine, so that a concurrent apply
	// cannot pair a subject of one state with the policies of another.
	snap := a.inv.Snapshot()
	q, err := req.request(snapshotKinds(snap), time.Time{})
	if err != nil {
		return clientError(http.StatusBadRequest, "%v", err)
	}
	if p := caller(r); !p.admin() {
		// Whether a target the caller cannot reach exists is not the
		// caller's to learn (the SSH front and GET /resources say the
		// same): the answer is one denial for both, without steps.
		tgt := []resource.Object{&resource.Target{Kind: resource.KindTarget, Name: q.Target}}
		if len(a.reachable(r, p, tgt)) == 0 {
			writeJSON(w, http.StatusOK, ExplainResponse{
				Reason:      fmt.Sprintf("access denied: %s may not reach target %s", p.Name, q.Target),
				TargetUsers: []string{}, Steps: []policy.Step{},
			})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, explain(snap.Engine, q))
	return nil
}

// policyTestBody is PolicyTestRequest as read: each case is decoded on its
// own so that an error names the case.
type policyTestBody struct {
	Cases    []json.RawMessage `json:"cases"`
	Policies []json.RawMessage `json:"policies"`
}

// policyTest answers POST /api/v1/policy/test: every case decided against
// the current policy set or, with policies, against the stored resources
// with those laid on top (nothing is stored).
func (a *api) policyTest(w http.ResponseWriter, r *http.Request) error {
	var body policyTestBody
	if err := decodeJSONRequest(w, r, maxPolicyTestBytes, &body); err != nil {
		return err
	}
	if len(body.Cases) == 0 {
		return clientError(http.StatusBadRequest, "field cases: no cases to run")
	}
	cases := make([]PolicyCase, len(body.Cases))
	for i, raw := range body.Cases {
		if err := decodeStrict(raw, &cases[i]); err != nil {
			return clientError(http.StatusBadRequest, "case %d: %v", i+1, err)
		}
	}

	var (
		eng    *policy.Engine
		kindOf func(string) (policy.SubjectKind, bool)
		warns  []string
	)
	if body.Policies == nil {
		snap := a.inv.Snapshot()
		eng, kindOf = snap.Engine, snapshotKinds(snap)
	} else {
		overlay, err := decodePolicies(body.Policies)
		if err != nil {
			return err
		}
		// Inventory.Preview, in two steps: an error reading the store is
		// the gateway's (500), one compiling the overlay is the caller's
		// (400), and the subjects must be looked up in the same listing.
		base, err := a.inv.List(r.Context(), "")
		if err != nil {
			return fmt.Errorf("policy test: %w", err)
		}
		eng, warns, err = inventory.Preview(base, overlay)
		if err != nil {
			return clientError(http.StatusBadRequest, "policies: %v", err)
		}
		kindOf = SubjectKinds(base, overlay)
	}
	res, err := RunPolicyTests(eng, kindOf, cases)
	if err != nil {
		return clientError(http.StatusBadRequest, "%v", err)
	}
	if warns != nil {
		res.Warnings = warns
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// decodePolicies decodes the overlay of a policy test with apply's rules
// and error shapes. A private key, which only matters when stored, is
// dropped at once: the overlay never is.
func decodePolicies(raws []json.RawMessage) ([]resource.Object, error) {
	data, err := json.Marshal(raws)
	if err != nil {
		return nil, fmt.Errorf("re-encode policies: %w", err)
	}
	objs, err := decodeJSONBody(data)
	if err != nil {
		return nil, clientError(http.StatusBadRequest, "policies: %v", err)
	}
	for _, o := range objs {
		if acc, ok := o.(*resource.Account); ok {
			acc.PrivateKey = ""
		}
	}
	return objs, nil
}

// decodeJSONRequest reads a JSON object body strictly into v: a misspelt
// field silently ignored would answer a question nobody asked.
func decodeJSONRequest(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return clientError(http.StatusUnsupportedMediaType, "Content-Type %q is not accepted: send application/json", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return clientError(http.StatusBadRequest, "read request body: %v", err)
	}
	if err := decodeStrict(body, v); err != nil {
		return clientError(http.StatusBadRequest, "request body: %v", err)
	}
	return nil
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data, with errors in the "field X: ..." shape.
func decodeStrict(data []byte, v any) error {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return errors.New("want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			// encoding/json names a promoted field by its Go path
			// (ExplainRequest.source); the client wrote only "source".
			ute.Field = strings.TrimPrefix(ute.Field, "ExplainRequest.")
		}
		return cleanJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// snapshotKinds looks subjects up in a snapshot.
func snapshotKinds(snap *inventory.Snapshot) func(string) (policy.SubjectKind, bool) {
	return func(name string) (policy.SubjectKind, bool) {
		id, ok := snap.Identity(name)
		return id.Kind, ok
	}
}

// SubjectKinds looks subjects up among the users and service accounts of
// the given lists, a later list's object replacing an earlier one's of the
// same name. It is how a policy test finds its subjects in resources that
// were never loaded: an overlay, or an offline test's file.
func SubjectKinds(lists ...[]resource.Object) func(string) (policy.SubjectKind, bool) {
	kinds := map[string]policy.SubjectKind{}
	for _, list := range lists {
		for _, o := range list {
			switch o.(type) {
			case *resource.User:
				kinds[o.GetName()] = policy.SubjectUser
			case *resource.ServiceAccount:
				kinds[o.GetName()] = policy.SubjectServiceAccount
			}
		}
	}
	return func(name string) (policy.SubjectKind, bool) {
		k, ok := kinds[name]
		return k, ok
	}
}

// request validates q and turns it into an engine request. Errors name the
// field. now is used when q has no time (zero: the engine's now).
func (q *ExplainRequest) request(kindOf func(string) (policy.SubjectKind, bool), now time.Time) (policy.Request, error) {
	var r policy.Request
	if q.Operation != "" || q.Object != "" {
		return q.httpRequest(kindOf, now)
	}
	if q.User == "" {
		return r, errors.New("field user: is required (a user or service account name)")
	}
	if q.Target == "" {
		return r, errors.New("field target: is required")
	}
	account := q.Account
	if t, name, ok := strings.Cut(account, "/"); ok {
		// TARGET/NAME is how accounts are named everywhere else.
		if t != q.Target {
			return r, fmt.Errorf("field account: %q is an account on %s, not on target %s", q.Account, t, q.Target)
		}
		account = name
	}
	if account != "" && !resource.ValidTargetUser(account) {
		return r, fmt.Errorf("field account: %q is not a valid login name on a target", q.Account)
	}
	switch {
	case q.Action == "":
		return r, fmt.Errorf("field action: is required (%s)", strings.Join(resource.AllActions, ", "))
	case !slices.Contains(resource.AllActions, q.Action):
		return r, fmt.Errorf("field action: unknown action %q (want %s)", q.Action, strings.Join(resource.AllActions, ", "))
	case q.Action == resource.ActionTunnel && q.Command != "":
		// The gateway checks no command for a tunnel: explaining one would
		// answer a question it never asks.
		return r, errors.New("field command: a tunnel carries no command")
	}
	var (
		src       netip.Addr
		anySource bool
	)
	if q.Source == "" || q.Source == "any" {
		anySource = true
	} else {
		var err error
		if src, err = netip.ParseAddr(q.Source); err != nil {
			return r, fmt.Errorf("field source: %q is not an IP address (or any)", q.Source)
		}
	}
	if q.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, q.Time)
		if err != nil {
			return r, fmt.Errorf("field time: %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", q.Time)
		}
		now = t
	}
	kind, ok := kindOf(q.User)
	if !ok {
		// Unknown subjects are the engine's to explain: it denies them
		// with the same words as a subject without access.
		kind = policy.SubjectUser
	}
	// As the SSH front does: an exec that starts an interactive shell is
	// decided as a shell.
	return policy.Request{Kind: kind, Subject: q.User, Action: policy.SessionAction(q.Action, q.Command), Target: q.Target,
		TargetUser: account, Source: src, AnySource: anySource, Command: q.Command, Now: now}, nil
}

// decide answers r as the SSH gateway does for a login: without a target
// user, the only one allowed is used and several are a refusal that lists
// them. It returns the decision, the request decided (with its target user
// filled in when one was chosen) and the target users the subject may use.
func decide(eng *policy.Engine, r policy.Request) (policy.Decision, policy.Request, []string) {
	probe := r
	probe.TargetUser = ""
	pd := eng.Decide(probe)
	users := pd.TargetUsers
	if r.TargetUser != "" {
		return eng.Decide(r), r, users
	}
	if !pd.Allow {
		return pd, r, nil
	}
	if len(users) > 1 {
		return policy.Decision{Reason: fmt.Sprintf("access denied: several target users are allowed on %s (%s): name one as the account",
			r.Target, strings.Join(users, ", "))}, r, users
	}
	r.TargetUser = users[0]
	return eng.Decide(r), r, users
}

// explain decides r and describes the decision.
func explain(eng *policy.Engine, r policy.Request) ExplainResponse {
	if r.Operation != "" {
		return explainHTTP(eng, r)
	}
	d, decided, users := decide(eng, r)
	_, steps := eng.Explain(decided)
	res := ExplainResponse{
		Allow: d.Allow, Reason: d.Reason, Policy: d.Policy, Operation: d.Operation,
		Account: decided.TargetUser, TargetUsers: users, Steps: steps, AnySource: r.AnySource,
	}
	if res.TargetUsers == nil {
		res.TargetUsers = []string{}
	}
	if res.Steps == nil {
		res.Steps = []policy.Step{}
	}
	if d.Allow {
		o := d.Obligations
		res.Obligations = &Obligations{
			MaxSession: shortDuration(o.MaxSession), IdleTimeout: shortDuration(o.IdleTimeout),
			CheckCommands: o.CheckCommands, Autologin: o.Autologin,
			Record: o.Record, RecordInput: o.RecordInput, RecordingPolicy: o.RecordingPolicy,
		}
	}
	return res
}

// shortDuration writes d as people do ("1h", not "1h0m0s"); "" for zero.
// time.ParseDuration reads the result back.
func shortDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// RunPolicyTests decides every case with eng, looking subjects up with
// kindOf. Every case is checked before any runs; an error names the case
// (counted from 1) and the field. Cases without a time are decided at one
// shared now, so that a run is consistent across a validity boundary.
// The gateway's test endpoint and the CLI's offline tests both use it.
func RunPolicyTests(eng *policy.Engine, kindOf func(string) (policy.SubjectKind, bool), cases []PolicyCase) (*PolicyTestResponse, error) {
	now := time.Now()
	reqs := make([]policy.Request, len(cases))
	for i := range cases {
		c := &cases[i]
		r, err := c.request(kindOf, now)
		if err != nil {
			return nil, fmt.Errorf("case %d: %w", i+1, err)
		}
		switch c.Expect {
		case outcomeAllow, outcomeDeny:
		case "":
			return nil, fmt.Errorf("case %d: field expect: is required (allow or deny)", i+1)
		default:
			return nil, fmt.Errorf("case %d: field expect: %q is neither allow nor deny", i+1, c.Expect)
		}
		reqs[i] = r
	}
	res := &PolicyTestResponse{Results: make([]PolicyTestResult, len(cases)), Warnings: []string{}}
	for i, r := range reqs {
		d, _, _ := decide(eng, r)
		got := outcomeDeny
		if d.Allow {
			got = outcomeAllow
		}
		ok := got == cases[i].Expect
		res.Results[i] = PolicyTestResult{Index: i + 1, Name: cases[i].Name, Expect: cases[i].Expect,
			Got: got, Reason: d.Reason, Policy: d.Policy, OK: ok}
		if ok {
			res.Passed++
		} else {
			res.Failed++
		}
	}
	return res, nil
}
