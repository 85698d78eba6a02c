// Package policy decides whether a subject may do an action on a target as
// a target user from an address, running a command. It is the only place
// where access is decided: the SSH front, the API and later proxies all call
// Engine.Decide.
//
// An Engine is compiled once from a consistent set of resources and is then
// read-only, so Decide takes no locks; a change of resources builds a new
// Engine and the caller swaps it in atomically. Policies are indexed by
// subject (user, group, service account) so a decision looks only at the
// policies that name the subject; target sets are resolved at compile time
// (names, environments and labels all become a set of target names).
//
// Engine choice (issue 3 will measure alternatives): compiled Go matching
// with a subject index, because it needs no new language for admins, adds
// nothing to the binary, and makes the common case a few map lookups.
package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/portcullis/portcullis/internal/resource"
)

// SubjectKind says what kind of identity is asking.
type SubjectKind int

// Subject kinds.
const (
	SubjectUser SubjectKind = iota
	SubjectServiceAccount
)

// Request is one question to the engine.
type Request struct {
	Kind    SubjectKind
	Subject string // user or service account name
	Action  string // resource.ActionShell, ...
	Target  string
	// TargetUser is the requested login on the target; empty asks the engine
	// which target users are allowed (Decision.TargetUsers).
	TargetUser string
	Source     netip.Addr
	// Command is the exact command of an exec request; empty otherwise.
	Command string
}

// Decision is the engine's answer.
type Decision struct {
	Allow bool
	// Policy is the name of the policy that allowed the request.
	Policy string
	// TargetUsers lists, sorted, the target users the subject may use on
	// the target for the action; filled when Request.TargetUser is empty.
	TargetUsers []string
	// Operation names the operation whose pattern matched the command, if any.
	Operation string
	// Reason says why a request was denied, in a form safe to show the
	// client: it never reveals whether a target the subject cannot reach
	// exists.
	Reason string
}

// Input is everything the engine is compiled from.
type Input struct {
	Users           []*resource.User
	ServiceAccounts []*resource.ServiceAccount
	Groups          []*resource.Group
	Targets         []*resource.Target
	Environments    []*resource.Environment
	Accounts        []*resource.Account
	Operations      []*resource.Operation
	Policies        []*resource.Policy
}

type actionSet uint8

func actionBit(a string) actionSet {
	switch a {
	case resource.ActionShell:
		return 1
	case resource.ActionExec:
		return 2
	case resource.ActionFileTransfer:
		return 4
	case resource.ActionTunnel:
		return 8
	}
	return 0
}

type pattern struct {
	re        *regexp.Regexp
	operation string // "" for an inline pattern
}

type compiled struct {
	name        string
	targets     map[string]bool
	actions     actionSet
	cidrs       []netip.Prefix
	targetUsers []string // may contain "{username}"
	allow       []pattern
	deny        []pattern
	hasAllow    bool
}

type user struct {
	loginName string
	groups    []string
}

// Engine answers access questions for one consistent set of resources.
type Engine struct {
	users    map[string]*user
	services map[string]bool
	targets  map[string]*resource.Target
	// accounts holds "target/name" for every Account.
	accounts map[string]bool
	// byUser, byGroup and byService index policies by the subjects they name.
	byUser    map[string][]*compiled
	byGroup   map[string][]*compiled
	byService map[string][]*compiled
	count     int
}

// Compile builds an engine. It fails only on input that validation should
// have caught (a bad pattern, an unknown operation), naming the policy.
func Compile(in Input) (*Engine, error) {
	e := &Engine{
		users:     map[string]*user{},
		services:  map[string]bool{},
		targets:   map[string]*resource.Target{},
		accounts:  map[string]bool{},
		byUser:    map[string][]*compiled{},
		byGroup:   map[string][]*compiled{},
		byService: map[string][]*compiled{},
		count:     len(in.Policies),
	}
	for _, u := range in.Users {
		e.users[u.Name] = &user{loginName: u.LoginName(), groups: slices.Clone(u.Groups)}
	}
	for _, g := range in.Groups {
		for _, m := range g.Members {
			if u, ok := e.users[m]; ok && !slices.Contains(u.groups, g.Name) {
				u.groups = append(u.groups, g.Name)
			}
		}
	}
	for _, s := range in.ServiceAccounts {
		e.services[s.Name] = true
	}
	for _, t := range in.Targets {
		e.targets[t.Name] = t
	}
	for _, a := range in.Accounts {
		e.accounts[a.GetName()] = true
	}
	envs := map[string]*resource.Environment{}
	for _, env := range in.Environments {
		envs[env.Name] = env
	}
	ops := map[string]*resource.Operation{}
	for _, op := range in.Operations {
		ops[op.Name] = op
	}
	for _, p := range in.Policies {
		if p.Type != resource.PolicyTargetAccess {
			continue
		}
		c, err := e.compilePolicy(p, envs, ops)
		if err != nil {
			return nil, fmt.Errorf("compile policy %q: %w", p.Name, err)
		}
		for _, u := range p.Subjects.Users {
			e.byUser[u] = append(e.byUser[u], c)
		}
		for _, g := range p.Subjects.Groups {
			e.byGroup[g] = append(e.byGroup[g], c)
		}
		for _, s := range p.Subjects.ServiceAccounts {
			e.byService[s] = append(e.byService[s], c)
		}
	}
	return e, nil
}

func (e *Engine) compilePolicy(p *resource.Policy, envs map[string]*resource.Environment, ops map[string]*resource.Operation) (*compiled, error) {
	c := &compiled{name: p.Name, targets: map[string]bool{}, targetUsers: p.TargetUsers}
	for _, n := range p.Targets.Names {
		c.targets[n] = true
	}
	for _, en := range p.Targets.Environments {
		env, ok := envs[en]
		if !ok {
			return nil, fmt.Errorf("environment %q does not exist", en)
		}
		for _, n := range env.Targets {
			c.targets[n] = true
		}
		if len(env.Selector) > 0 {
			for name, t := range e.targets {
				if labelsMatch(t.Labels, env.Selector) {
					c.targets[name] = true
				}
			}
		}
	}
	if len(p.Targets.Labels) > 0 {
		for name, t := range e.targets {
			if labelsMatch(t.Labels, p.Targets.Labels) {
				c.targets[name] = true
			}
		}
	}
	for _, a := range p.Actions {
		c.actions |= actionBit(a)
	}
	for _, s := range p.SourceCIDRs {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("source_cidrs: %w", err)
		}
		// Decide unmaps the source address, so a prefix written in
		// IPv4-mapped form (::ffff:10.0.0.0/104) is unmapped too, or it
		// would never match.
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		c.cidrs = append(c.cidrs, pfx.Masked())
	}
	if p.Commands != nil {
		var err error
		if c.allow, err = compilePatterns(p.Commands.Allow, ops); err != nil {
			return nil, fmt.Errorf("commands.allow: %w", err)
		}
		if c.deny, err = compilePatterns(p.Commands.Deny, ops); err != nil {
			return nil, fmt.Errorf("commands.deny: %w", err)
		}
		c.hasAllow = len(p.Commands.Allow) > 0
	}
	return c, nil
}

func compilePatterns(list []string, ops map[string]*resource.Operation) ([]pattern, error) {
	var out []pattern
	for _, entry := range list {
		if name, ok := strings.CutPrefix(entry, "@"); ok {
			op, ok := ops[name]
			if !ok {
				return nil, fmt.Errorf("operation %q does not exist", name)
			}
			for _, src := range op.Patterns {
				re, err := regexp.Compile(src)
				if err != nil {
					return nil, fmt.Errorf("operation %q: %w", name, err)
				}
				out = append(out, pattern{re: re, operation: name})
			}
			continue
		}
		re, err := regexp.Compile(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, pattern{re: re})
	}
	return out, nil
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// PolicyCount returns how many policies the engine was compiled from.
func (e *Engine) PolicyCount() int { return e.count }

// Target returns a target by name, or nil.
func (e *Engine) Target(name string) *resource.Target { return e.targets[name] }

// denyNoAccess is the one message for both an unknown target and a target
// the subject may not reach, so that nothing reveals what exists.
func denyNoAccess(subject, target string) string {
	return fmt.Sprintf("access denied: %s may not reach %s", subject, target)
}

// Decide answers one request. It allocates only when building a denial
// reason or the list of target users.
func (e *Engine) Decide(r Request) Decision {
	// Most subjects are in few groups: the candidate lists stay on the
	// stack, so an allowed request allocates nothing.
	var buf [8][]*compiled
	candidates := buf[:0]
	var loginName string
	switch r.Kind {
	case SubjectUser:
		u, ok := e.users[r.Subject]
		if !ok {
			return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
		}
		loginName = u.loginName
		candidates = append(candidates, e.byUser[r.Subject])
		for _, g := range u.groups {
			candidates = append(candidates, e.byGroup[g])
		}
	case SubjectServiceAccount:
		if !e.services[r.Subject] {
			return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
		}
		loginName = r.Subject
		candidates = append(candidates, e.byService[r.Subject])
	}
	target := e.targets[r.Target]
	if target == nil {
		return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	bit := actionBit(r.Action)
	certAuth := target.AuthMode() == resource.AuthCertificate

	// Track how far the best candidate got, to give the most useful reason.
	const (
		stageTarget = iota
		stageSource
		stageAction
		stageUser
		stageCommand
	)
	best := stageTarget
	var cmdReason string
	var users []string
	for _, list := range candidates {
		for _, c := range list {
			if !c.targets[r.Target] {
				continue
			}
			best = max(best, stageSource)
			if len(c.cidrs) > 0 && !inCIDRs(c.cidrs, r.Source) {
				continue
			}
			best = max(best, stageAction)
			if c.actions&bit == 0 {
				continue
			}
			best = max(best, stageUser)
			if r.TargetUser == "" {
				for _, tu := range c.targetUsers {
					if tu == "{username}" {
						tu = loginName
					}
					if (certAuth || e.accounts[r.Target+"/"+tu]) && !slices.Contains(users, tu) {
						users = append(users, tu)
					}
				}
				continue
			}
			if !e.grantsUser(c, r.TargetUser, loginName, r.Target, certAuth) {
				continue
			}
			best = max(best, stageCommand)
			if r.Action == resource.ActionExec && (c.hasAllow || len(c.deny) > 0) {
				op, ok, why := c.checkCommand(r.Command)
				if !ok {
					cmdReason = why
					continue
				}
				return Decision{Allow: true, Policy: c.name, Operation: op}
			}
			return Decision{Allow: true, Policy: c.name}
		}
	}
	if r.TargetUser == "" && len(users) > 0 {
		sort.Strings(users)
		return Decision{Allow: true, TargetUsers: users}
	}
	d := Decision{}
	switch best {
	case stageTarget:
		d.Reason = denyNoAccess(r.Subject, r.Target)
	case stageSource:
		d.Reason = fmt.Sprintf("access denied: %s may not reach %s from %s", r.Subject, r.Target, r.Source)
	case stageAction:
		d.Reason = fmt.Sprintf("access denied: %s is not granted %s on %s", r.Subject, r.Action, r.Target)
	case stageUser:
		if r.TargetUser == "" {
			d.Reason = fmt.Sprintf("access denied: no target user on %s that %s may use", r.Target, r.Subject)
		} else {
			d.Reason = fmt.Sprintf("access denied: %s may not log in to %s as %s", r.Subject, r.Target, r.TargetUser)
		}
	case stageCommand:
		d.Reason = "access denied: " + cmdReason
	}
	return d
}

func (e *Engine) grantsUser(c *compiled, want, loginName, target string, certAuth bool) bool {
	for _, tu := range c.targetUsers {
		if tu == want || (tu == "{username}" && loginName == want) {
			return certAuth || e.accounts[target+"/"+want]
		}
	}
	return false
}

func inCIDRs(cidrs []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range cidrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkCommand applies a policy's command rules: deny wins, and when allow
// rules exist a command must match one.
func (c *compiled) checkCommand(cmd string) (operation string, ok bool, reason string) {
	for _, p := range c.deny {
		if p.re.MatchString(cmd) {
			if p.operation != "" {
				return p.operation, false, fmt.Sprintf("command denied by operation %s (policy %s)", p.operation, c.name)
			}
			return "", false, fmt.Sprintf("command denied by policy %s", c.name)
		}
	}
	if !c.hasAllow {
		return "", true, ""
	}
	for _, p := range c.allow {
		if p.re.MatchString(cmd) {
			return p.operation, true, ""
		}
	}
	return "", false, fmt.Sprintf("command not in the allowed list of policy %s", c.name)
}
