package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// httpGrant is what a proxy policy grants on http targets: operations
// ("*": any mapped one) on objects matching a pattern (none: any object).
type httpGrant struct {
	operations []string
	anyOp      bool
	objects    []string
}

func compileHTTPGrant(p *resource.Policy) httpGrant {
	if p.Type != resource.PolicyProxy {
		return httpGrant{}
	}
	return httpGrant{operations: p.Operations, anyOp: slices.Contains(p.Operations, "*"), objects: p.Objects}
}

// grantsOperation reports whether the grant covers op on obj.
func (g *httpGrant) grantsOperation(op, obj string) bool {
	if !g.anyOp && !slices.Contains(g.operations, op) {
		return false
	}
	if len(g.objects) == 0 {
		return true
	}
	for _, p := range g.objects {
		if globMatch(p, obj) {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern where '*' is any run of
// characters (including none) and everything else is literal: object ids
// hold '/', '.' and '-', which path.Match would treat specially.
func globMatch(pattern, s string) bool {
	star, next := -1, 0
	p := 0
	for i := 0; i < len(s); {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, next = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			next++
			i = next
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// DecideHTTP answers one request to an http target (resource.Target.IsHTTP)
// under the proxy policies: the target, validity window and source address
// must be granted, and r.Operation on r.Object (TYPE:ID, "" when the
// request has none) by the policy's operations and objects. With
// r.Operation empty it answers whether the subject may reach the target at
// all (a sign-in); then no operation needs to be granted.
//
// Of the policies that grant the request, Decision.Policy names the first
// by name; Obligations carry require_mfa, max_session and the latest
// valid_until, as for a database.
func (e *Engine) DecideHTTP(r Request) Decision {
	var buf [8][]*compiled
	_, cands, ok := e.candidates(e.proxy, &r, buf[:0])
	target := e.targets[r.Target]
	if !ok || target == nil || !target.IsHTTP() {
		return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	const stageOperation = stageGranted
	best := stageTarget
	var granted *compiled
	var ob Obligations
	unbounded := false
	cands = preferRegular(cands, func(c *compiled) bool { return e.httpStage(c, &r, now) == stageGranted+1 })
	for _, list := range cands {
		for _, c := range list {
			st := e.httpStage(c, &r, now)
			best = max(best, st)
			if st != stageGranted+1 {
				continue
			}
			if granted == nil || c.name < granted.name {
				granted = c
			}
			switch {
			case c.until.IsZero():
				unbounded, ob.NotAfter = true, time.Time{}
			case !unbounded && c.until.After(ob.NotAfter):
				ob.NotAfter = c.until
			}
			ob.MaxSession = minLimit(ob.MaxSession, c.maxSession)
			ob.IdleTimeout = minLimit(ob.IdleTimeout, c.idleTimeout)
			ob.RequireMFA = ob.RequireMFA || c.requireMFA
		}
	}
	if granted != nil {
		return Decision{Allow: true, Policy: granted.name, Operation: r.Operation, Obligations: ob, JIT: granted.jit}
	}
	if best >= stageOperation {
		obj := r.Object
		if obj == "" {
			obj = "no object"
		}
		return Decision{Reason: fmt.Sprintf("access denied: %s may not %s on %s (target %s)", r.Subject, r.Operation, obj, r.Target)}
	}
	return Decision{Reason: e.reason(best, &r, "")}
}

// httpStage is how far policy c goes towards granting r: stageGranted+1
// grants it; stageGranted (stageOperation) covers the target from here and
// now but not the operation on the object.
func (e *Engine) httpStage(c *compiled, r *Request, now time.Time) int {
	switch {
	case !c.targets[r.Target]:
		return stageTarget
	case !c.activeAt(now):
		return stageWindow
	case !r.AnySource && len(c.cidrs) > 0 && !inCIDRs(c.cidrs, r.Source):
		return stageSource
	case r.Operation != "" && !c.http.grantsOperation(r.Operation, r.Object):
		return stageGranted
	}
	return stageGranted + 1
}

// ExplainHTTP decides r with DecideHTTP and says what every proxy policy
// naming the subject contributed, for `policy explain --operation`.
func (e *Engine) ExplainHTTP(r Request) (Decision, []Step) {
	d := e.DecideHTTP(r)
	_, cands, ok := e.allCandidates(e.proxy, &r, nil)
	target := e.targets[r.Target]
	switch {
	case !ok:
		return d, []Step{{Outcome: "no match", Why: fmt.Sprintf("no user or service account is called %q", r.Subject)}}
	case target == nil:
		return d, []Step{{Outcome: "no match", Why: fmt.Sprintf("no target is called %q", r.Target)}}
	case !target.IsHTTP():
		return d, []Step{{Outcome: "no match", Why: fmt.Sprintf("target %s is not an http target", r.Target)}}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	var steps []Step
	seen := map[*compiled]bool{}
	for _, list := range cands {
		for _, c := range list {
			if seen[c] {
				continue
			}
			seen[c] = true
			st := Step{Policy: c.name, Type: resource.PolicyProxy, Outcome: "no match"}
			switch e.httpStage(c, &r, now) {
			case stageTarget:
				st.Why = fmt.Sprintf("does not cover target %s", r.Target)
			case stageWindow:
				st.Why = fmt.Sprintf("is valid %s", window(c))
			case stageSource:
				st.Why = fmt.Sprintf("does not allow source %s (source_cidrs %v)", r.Source, c.cidrs)
			case stageGranted:
				st.Why = fmt.Sprintf("does not grant %s on %q (operations [%s], objects [%s])", r.Operation, r.Object,
					strings.Join(c.http.operations, " "), strings.Join(c.http.objects, " "))
			default:
				st.Outcome = "grants"
				if r.Operation == "" {
					st.Why = fmt.Sprintf("lets the subject sign in to %s", r.Target)
				} else {
					st.Why = fmt.Sprintf("grants %s on %q", r.Operation, r.Object)
				}
			}
			steps = append(steps, st)
		}
	}
	steps = e.jitSteps(d, r, steps)
	slices.SortStableFunc(steps, func(a, b Step) int { return strings.Compare(a.Policy, b.Policy) })
	if len(steps) == 0 {
		steps = append(steps, Step{Outcome: "no match", Why: fmt.Sprintf("no proxy policy names %s or its groups", r.Subject)})
	}
	return d, steps
}

// Groups returns the groups the resources give a user (its own list and
// the Groups naming it), for audit trails; nil for an unknown user.
func (e *Engine) Groups(user string) []string {
	if u, ok := e.users[user]; ok {
		return slices.Clone(u.groups)
	}
	return nil
}
