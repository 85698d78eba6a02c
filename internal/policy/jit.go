package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// Just-in-time access. A jit policy grants nothing itself: it says who may
// request what its child policies grant. An approved request becomes a
// policy of the child's type named JIT-xxxxxxxx (package jit creates and
// deletes it), compiled here like any other, so that every front that
// decides through this engine honours it. Such grants carry a
// resource.JITGrant, by which the seed's precedence applies:
//
//   - a JIT grant never overrides access the subject already has: when a
//     policy that is not a JIT grant covers the request as far as the
//     target user (Decide) or the database or operation (DecideProxy,
//     DecideHTTP), JIT grants are not consulted, so its command rules,
//     limits and window stay what they were;
//   - otherwise one JIT grant decides, among those that cover the
//     request: manual approval before automatic, then the shortest
//     duration (manual 5 min, manual 10 min, auto 5 min, auto 10 min),
//     then the name.

// compileJIT indexes a jit policy under the targets its compiled children
// cover, for JITOptions.
func compileJIT(p *resource.Policy, byName map[string]*compiled) *compiled {
	c := &compiled{name: p.Name, targets: map[string]bool{}}
	for _, child := range p.ChildPolicies {
		if cc, ok := byName[child]; ok {
			for t := range cc.targets {
				c.targets[t] = true
			}
		}
	}
	return c
}

// jitBefore orders JIT grants by precedence.
func jitBefore(a, b *compiled) bool {
	am, bm := a.jit.Approval == resource.ApprovalManual, b.jit.Approval == resource.ApprovalManual
	switch {
	case am != bm:
		return am
	case a.jit.Duration != b.jit.Duration:
		return a.jit.Duration < b.jit.Duration
	}
	return a.name < b.name
}

// preferRegular applies the precedence to candidate lists: grants reports
// whether a policy covers the request. It returns cands itself when no
// JIT grant is among them (no allocation on the common path); otherwise
// the lists without JIT grants, plus the one JIT grant that wins when no
// other policy covers the request.
func preferRegular(cands [][]*compiled, grants func(*compiled) bool) [][]*compiled {
	hasJIT := false
	for _, list := range cands {
		for _, c := range list {
			if c.jit != nil {
				hasJIT = true
				break
			}
		}
	}
	if !hasJIT {
		return cands
	}
	var best *compiled
	regular := false
	out := make([][]*compiled, 0, len(cands)+1)
	for _, list := range cands {
		kept := make([]*compiled, 0, len(list))
		for _, c := range list {
			if c.jit == nil {
				kept = append(kept, c)
				regular = regular || grants(c)
				continue
			}
			if grants(c) && (best == nil || jitBefore(c, best)) {
				best = c
			}
		}
		out = append(out, kept)
	}
	switch {
	case regular:
		return out
	case best != nil:
		return append(out, []*compiled{best})
	}
	// Nothing covers the request: every candidate stays, so that the
	// denial names how far the furthest one got (a grant for another
	// database says so rather than "may not reach").
	return cands
}

// JITOption is a jit policy under which a subject may request access to a
// target.
type JITOption struct {
	Policy        string
	Children      []string
	Duration      time.Duration // default
	MaxDuration   time.Duration
	AutoApprove   bool
	RequireReason bool
}

// JITOptions lists, by name, the jit policies naming the subject of r
// (as a user, by group, or as a service account) whose children cover
// r.Target. It does not say whether the children would grant a given
// target user or action: package jit checks that on the grant it builds.
func (e *Engine) JITOptions(r Request) []JITOption {
	var buf [8][]*compiled
	_, cands, ok := e.candidates(e.jit, &r, buf[:0])
	if !ok {
		return nil
	}
	var out []JITOption
	for _, list := range cands {
		for _, c := range list {
			if !c.targets[r.Target] || slices.ContainsFunc(out, func(o JITOption) bool { return o.Policy == c.name }) {
				continue
			}
			p := e.jitPolicies[c.name]
			out = append(out, JITOption{Policy: p.Name, Children: slices.Clone(p.ChildPolicies), Duration: p.Duration.Std(),
				MaxDuration: p.MaxGrant(), AutoApprove: p.AutoApprove, RequireReason: p.RequireReason})
		}
	}
	slices.SortFunc(out, func(a, b JITOption) int { return strings.Compare(a.Policy, b.Policy) })
	return out
}

// JITPolicy returns a jit policy by name, or nil.
func (e *Engine) JITPolicy(name string) *resource.Policy { return e.jitPolicies[name] }

// MayApprove reports whether user may approve requests under jit policy
// name: it is listed in approvers, directly or through a group (those the
// resources give it, and extra, from the directory).
func (e *Engine) MayApprove(name, user string, extra []string) bool {
	p := e.jitPolicies[name]
	if p == nil || p.Approvers == nil {
		return false
	}
	if slices.Contains(p.Approvers.Users, user) {
		return true
	}
	var groups []string
	if u, ok := e.users[user]; ok {
		groups = u.groups
	}
	for _, g := range p.Approvers.Groups {
		if slices.Contains(groups, g) || slices.Contains(extra, g) {
			return true
		}
	}
	return false
}

// Covers reports whether the target-access, proxy or kubernetes policy
// name covers target (names, environments and labels resolved).
func (e *Engine) Covers(name, target string) bool {
	c := e.byName[name]
	return c != nil && c.targets[target]
}

// LoginName returns the login name ({username}) of a user, "" if unknown.
func (e *Engine) LoginName(user string) string {
	if u, ok := e.users[user]; ok {
		return u.loginName
	}
	return ""
}
