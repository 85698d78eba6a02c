package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// DecideProxy answers a request to open a database on a database target
// (resource.Target.IsDatabase) through a proxy front, under the proxy
// policies: the target, validity window, source address, target user (an
// Account must exist for it: the gateway logs in with its password) and
// r.Database must all be granted by one policy. r.Action and r.Command are
// ignored. With r.TargetUser empty, an allowed decision lists the target
// users in TargetUsers, as Decide does.
//
// An allowed decision carries the SQL statement rules of every granting
// policy in Statements; the front checks each statement with them.
func (e *Engine) DecideProxy(r Request) Decision {
	var buf [8][]*compiled
	loginName, cands, ok := e.candidates(e.proxy, &r, buf[:0])
	target := e.targets[r.Target]
	if !ok || target == nil || !target.IsDatabase() {
		return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	// A proxy policy passes the target, window, source and user stages
	// of Decide, then the database; it has no actions.
	const (
		stageDatabase = stageGranted
		stageProxy    = stageGranted + 1
	)
	best := stageTarget
	var (
		granted *compiled
		ob      Obligations
		rules   StatementRules
		users   []string
	)
	unbounded := false
	stage := func(c *compiled) int {
		switch {
		case !c.targets[r.Target]:
			return stageTarget
		case !c.activeAt(now):
			return stageWindow
		case len(c.cidrs) > 0 && !inCIDRs(c.cidrs, r.Source):
			return stageSource
		case r.TargetUser != "" && !e.grantsUser(c, r.TargetUser, loginName, r.Target, false):
			return stageUser
		case c.databases != nil && !slices.Contains(c.databases, r.Database):
			return stageDatabase
		}
		return stageProxy
	}
	cands = preferRegular(cands, func(c *compiled) bool { return stage(c) == stageProxy })
	for _, list := range cands {
		for _, c := range list {
			st := stage(c)
			best = max(best, st)
			if st != stageProxy {
				continue
			}
			if r.TargetUser == "" {
				users = e.appendUsers(users, c, loginName, r.Target, false)
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
			rules.add(c)
		}
	}
	if r.TargetUser == "" {
		if len(users) > 0 {
			sort.Strings(users)
			return Decision{Allow: true, TargetUsers: users}
		}
		best = min(best, stageUser)
	}
	if granted != nil {
		d := Decision{Allow: true, Policy: granted.name, Obligations: ob, JIT: granted.jit}
		if rules.restricts() {
			d.Statements = &rules
		}
		e.recordingFor(&d.Obligations, &r, target.Name, now)
		return d
	}
	if best >= stageDatabase {
		return Decision{Reason: fmt.Sprintf("access denied: %s may not open database %q on %s", r.Subject, r.Database, r.Target)}
	}
	return Decision{Reason: e.reason(best, &r, "")}
}

// StatementRules are the SQL statement rules of the policies that grant a
// proxy session. A statement is refused when a deny pattern of any of them
// matches it (deny wins, as for shell commands), or when every one of them
// has an allow list and none matches it.
type StatementRules struct {
	deny []namedPattern
	// allow holds one list per granting policy with an allow list;
	// unrestricted is set when some granting policy has none.
	allow        [][]namedPattern
	unrestricted bool
}

type namedPattern struct {
	pattern
	policy string
}

func (s *StatementRules) add(c *compiled) {
	for _, p := range c.deny {
		s.deny = append(s.deny, namedPattern{p, c.name})
	}
	if !c.hasAllow {
		s.unrestricted = true
		return
	}
	list := make([]namedPattern, len(c.allow))
	for i, p := range c.allow {
		list[i] = namedPattern{p, c.name}
	}
	s.allow = append(s.allow, list)
}

// restricts reports whether the rules may refuse anything.
func (s *StatementRules) restricts() bool {
	return len(s.deny) > 0 || !s.unrestricted && len(s.allow) > 0
}

// Check judges one SQL statement, in the normal form the front gives it
// (comments removed, white space collapsed, the first keyword in upper
// case: see package pgproxy). It returns a reason, safe to show the client,
// when the statement is refused. A nil *StatementRules allows everything.
func (s *StatementRules) Check(stmt string) (refused bool, reason string) {
	if s == nil {
		return false, ""
	}
	for _, p := range s.deny {
		if p.re.MatchString(stmt) {
			if p.operation != "" {
				return true, fmt.Sprintf("statement denied by operation %s (policy %s)", p.operation, p.policy)
			}
			return true, fmt.Sprintf("statement denied by policy %s", p.policy)
		}
	}
	if s.unrestricted || len(s.allow) == 0 {
		return false, ""
	}
	names := make([]string, 0, len(s.allow))
	for _, list := range s.allow {
		for _, p := range list {
			if p.re.MatchString(stmt) {
				return false, ""
			}
		}
		names = append(names, list[0].policy)
	}
	return true, "statement not in the allowed list of policy " + strings.Join(names, ", ")
}
