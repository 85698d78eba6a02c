package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/portcullis/portcullis/internal/pathrule"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/shellcmd"
)

// Stages a policy passes on the way to granting a request, in order. The
// furthest stage any candidate reached picks the denial reason.
const (
	stageTarget  = iota // the policy does not cover the target
	stageWindow         // covers the target, but not now
	stageSource         // ... now, but not from this address
	stageAction         // ... from here, but not this action
	stageUser           // ... this action, but not as this target user
	stageGranted        // grants the request (commands aside)
)

// denyNoAccess is the one message for both an unknown target and a target
// the subject may not reach, so that nothing reveals what exists.
func denyNoAccess(subject, target string) string {
	return fmt.Sprintf("access denied: %s may not reach %s", subject, target)
}

// candidates appends to buf the policy lists of ix that name the subject
// and cover the target, and returns the subject's {username}. ok is false
// for an unknown subject.
func (e *Engine) candidates(ix index, r *Request, buf [][]*compiled) (string, [][]*compiled, bool) {
	switch r.Kind {
	case SubjectUser:
		u, ok := e.users[r.Subject]
		if !ok {
			return "", buf, false
		}
		buf = append(buf, ix.userTarget[pair{r.Subject, r.Target}])
		for _, g := range u.groups {
			buf = append(buf, ix.groupTarget[pair{g, r.Target}])
		}
		for _, g := range r.Groups {
			// A group both compiled and from the directory is looked
			// up once, so that no policy is counted twice.
			if l := ix.groupTarget[pair{g, r.Target}]; len(l) > 0 && !slices.Contains(u.groups, g) {
				buf = append(buf, l)
			}
		}
		return u.loginName, buf, true
	case SubjectServiceAccount:
		if !e.services[r.Subject] {
			return "", buf, false
		}
		return r.Subject, append(buf, ix.serviceTarget[pair{r.Subject, r.Target}]), true
	}
	return "", buf, false
}

// allCandidates is candidates without the target filter, for Explain.
func (e *Engine) allCandidates(ix index, r *Request, buf [][]*compiled) (string, [][]*compiled, bool) {
	switch r.Kind {
	case SubjectUser:
		u, ok := e.users[r.Subject]
		if !ok {
			return "", buf, false
		}
		buf = append(buf, ix.byUser[r.Subject])
		for _, g := range u.groups {
			buf = append(buf, ix.byGroup[g])
		}
		for _, g := range r.Groups {
			if !slices.Contains(u.groups, g) {
				buf = append(buf, ix.byGroup[g])
			}
		}
		return u.loginName, buf, true
	case SubjectServiceAccount:
		if !e.services[r.Subject] {
			return "", buf, false
		}
		return r.Subject, append(buf, ix.byService[r.Subject]), true
	}
	return "", buf, false
}

// stage returns how far policy c gets towards granting r.
func (e *Engine) stage(c *compiled, r *Request, loginName string, certAuth bool, now time.Time) int {
	switch {
	case !c.targets[r.Target]:
		return stageTarget
	case !c.activeAt(now):
		return stageWindow
	case len(c.cidrs) > 0 && !r.AnySource && !inCIDRs(c.cidrs, r.Source):
		return stageSource
	case c.actions&actionBit(r.Action) == 0:
		return stageAction
	case r.TargetUser != "" && !e.grantsUser(c, r.TargetUser, loginName, r.Target, certAuth):
		return stageUser
	}
	return stageGranted
}

// Decide answers one request. An allowed request with a target user
// allocates nothing; denials allocate their reason.
func (e *Engine) Decide(r Request) Decision {
	// Most subjects are in few groups: the candidate lists stay on the
	// stack.
	var buf [8][]*compiled
	loginName, cands, ok := e.candidates(e.access, &r, buf[:0])
	if !ok {
		return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	target := e.targets[r.Target]
	if target == nil || target.IsDatabase() || target.IsHTTP() || target.IsKubernetes() {
		// A database or web API is reached through its own front
		// (DecideProxy, DecideHTTP): SSH to it is no grant of any policy.
		return Decision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	certAuth := target.AuthMode() == resource.AuthCertificate
	var dest *resource.Endpoint
	if r.Action == resource.ActionTunnel && r.Destination != "" {
		d, err := parseDestination(r.Destination)
		if err != nil {
			return Decision{Reason: fmt.Sprintf("access denied: tunnel destination %q: %v", r.Destination, err)}
		}
		dest = &d
	}

	best := stageTarget
	// The command is parsed at most once, and only when a granting policy
	// has command rules.
	cmd := lazyCommand{cache: e.parsed}
	fullscreen := false
	var (
		granted     *compiled // the granting policy named first, for a stable answer
		grantedOp   string
		ob          Obligations
		cmdReason   string
		users       []string
		usersWanted = r.TargetUser == ""
	)
	// grant records that c grants the request. The strictest session
	// limits of all granting policies apply.
	unbounded := false  // some granting policy has no valid_until
	provisionedBy := "" // the policy ob.Sudoers comes from
	// uncertainRefused: some granting policy with command rules refuses
	// lines the gateway could not reconstruct (commands.uncertain).
	rulesGranted, uncertainRefused := false, false
	grant := func(c *compiled, op string) {
		if c.hasRules() {
			rulesGranted = true
			uncertainRefused = uncertainRefused || !c.allowUncertain
		}
		switch {
		case c.until.IsZero():
			unbounded, ob.NotAfter = true, time.Time{}
		case !unbounded && c.until.After(ob.NotAfter):
			ob.NotAfter = c.until
		}
		if granted == nil || c.name < granted.name {
			granted = c
		}
		if grantedOp == "" {
			grantedOp = op
		}
		if len(c.fullscreen) > 0 && r.Command != "" && !fullscreen {
			fullscreen = launchesFullscreen(cmd.parse(r.Command), c.fullscreen)
		}
		ob.MaxSession = minLimit(ob.MaxSession, c.maxSession)
		ob.IdleTimeout = minLimit(ob.IdleTimeout, c.idleTimeout)
		ob.Autologin = ob.Autologin || c.autologin
		ob.RequireMFA = ob.RequireMFA || c.requireMFA
		if r.Action == resource.ActionFileTransfer {
			ob.Paths = pathrule.Union(ob.Paths, c.paths)
		}
		if c.provision && r.TargetUser == loginName && slices.Contains(c.targetUsers, "{username}") {
			// Candidates are not in name order across lists: the policy
			// named first decides the sudoers rule, for a stable answer.
			if !ob.Provision || c.name < provisionedBy {
				ob.Sudoers, provisionedBy = c.sudoers, c.name
			}
			ob.Provision = true
		}
	}
	cands = preferRegular(cands, func(c *compiled) bool { return e.stage(c, &r, loginName, certAuth, now) == stageGranted })
	for _, list := range cands {
		for _, c := range list {
			st := e.stage(c, &r, loginName, certAuth, now)
			best = max(best, st)
			if st != stageGranted {
				continue
			}
			if usersWanted {
				users = e.appendUsers(users, c, loginName, r.Target, certAuth)
				continue
			}
			if dest != nil && !tunnelAllows(c, target, *dest) {
				cmdReason = tunnelDenial(c, target, r.Destination)
				continue
			}
			if !c.hasRules() {
				grant(c, "")
				continue
			}
			ob.CheckCommands = true
			if r.Command == "" && r.Action == resource.ActionShell {
				// Starting a shell: its lines are checked one by one.
				grant(c, "")
				continue
			}
			op, denied, allowed, why := c.checkCommand(cmd.parse(r.Command))
			if denied {
				// A deny pattern in any granting policy wins.
				return Decision{Reason: "access denied: " + why, Operation: op}
			}
			if !allowed {
				cmdReason = why
				continue
			}
			grant(c, op)
		}
	}
	if usersWanted {
		if len(users) > 0 {
			sort.Strings(users)
			return Decision{Allow: true, TargetUsers: users}
		}
		if best == stageGranted {
			best = stageUser
		}
	}
	if granted != nil {
		ob.AllowUncertain = rulesGranted && !uncertainRefused
		d := Decision{Allow: true, Policy: granted.name, Operation: grantedOp, Fullscreen: fullscreen, Obligations: ob, JIT: granted.jit}
		e.recordingFor(&d.Obligations, &r, target.Name, now)
		return d
	}
	return Decision{Reason: e.reason(best, &r, cmdReason)}
}

// minLimit returns the stricter of two limits, where zero means none.
func minLimit(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// reason words a denial by the furthest stage any policy reached.
func (e *Engine) reason(best int, r *Request, cmdReason string) string {
	switch best {
	case stageWindow:
		return fmt.Sprintf("access denied: %s's access to %s is outside its validity window", r.Subject, r.Target)
	case stageSource:
		return fmt.Sprintf("access denied: %s may not reach %s from %s", r.Subject, r.Target, r.Source)
	case stageAction:
		return fmt.Sprintf("access denied: %s is not granted %s on %s", r.Subject, r.Action, r.Target)
	case stageUser:
		if r.TargetUser == "" {
			return fmt.Sprintf("access denied: no target user on %s that %s may use", r.Target, r.Subject)
		}
		return fmt.Sprintf("access denied: %s may not log in to %s as %s", r.Subject, r.Target, r.TargetUser)
	case stageGranted:
		return "access denied: " + cmdReason
	}
	return denyNoAccess(r.Subject, r.Target)
}

// recordingFor fills the recording obligations from the session-recording
// policies that cover the subject and target now.
func (e *Engine) recordingFor(o *Obligations, r *Request, target string, now time.Time) {
	var buf [8][]*compiled
	_, cands, _ := e.candidates(e.recording, r, buf[:0])
	for _, list := range cands {
		for _, c := range list {
			if !c.targets[target] || !c.activeAt(now) {
				continue
			}
			if !o.Record {
				o.Record, o.RecordingPolicy, o.RecordFailOpen = true, c.name, c.failOpen
			}
			o.RecordInput = o.RecordInput || c.recordInput
			o.RecordFailOpen = o.RecordFailOpen && c.failOpen
		}
	}
}

func (e *Engine) appendUsers(users []string, c *compiled, loginName, target string, certAuth bool) []string {
	for _, tu := range c.targetUsers {
		if tu == "{username}" {
			tu = loginName
		}
		if e.usable(c, tu, loginName, target, certAuth) && !slices.Contains(users, tu) {
			users = append(users, tu)
		}
	}
	return users
}

func (e *Engine) grantsUser(c *compiled, want, loginName, target string, certAuth bool) bool {
	for _, tu := range c.targetUsers {
		if tu == want || (tu == "{username}" && loginName == want) {
			return e.usable(c, want, loginName, target, certAuth)
		}
	}
	return false
}

// usable reports whether the gateway can log in to target as tu under
// policy c: it holds an account for it, the target trusts the gateway's
// CA, or c may provision the subject's own login there.
func (e *Engine) usable(c *compiled, tu, loginName, target string, certAuth bool) bool {
	if certAuth || e.accounts[target+"/"+tu] {
		return true
	}
	t := e.targets[target]
	return c.provision && tu == loginName && t != nil && t.ProvisionAccount != "" &&
		slices.Contains(c.targetUsers, "{username}") && resource.ValidTargetUser(tu)
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

// SessionAction returns the action a session request needs. An exec
// command that starts a shell or interpreter reading the session (bash,
// bash -i, python, sudo -i...) is a shell session by another name: it needs
// the shell action, and its lines are checked like a shell's. Fronts call
// it before Decide, and so do explanations, so both say the same.
func SessionAction(action, command string) string {
	if action == resource.ActionExec && command != "" && shellcmd.Parse(command).Interactive {
		return resource.ActionShell
	}
	return action
}

// lazyCommand parses a request's command on first use, through the
// engine's cache.
type lazyCommand struct {
	cache *parseCache
	res   *shellcmd.Result
}

func (l *lazyCommand) parse(command string) *shellcmd.Result {
	if l.res == nil {
		l.res = l.cache.parse(command)
	}
	return l.res
}

// launchesFullscreen reports whether the command is one program named in
// list: a line that runs anything else besides it gets no pause.
func launchesFullscreen(res *shellcmd.Result, list []string) bool {
	return res.Unjudgeable == "" && !res.Interactive && len(res.Commands) == 1 && slices.Contains(list, res.Commands[0].Name)
}

// allowsAny reports whether an allow pattern matches one of forms.
func (c *compiled) allowsAny(forms []string) bool {
	for _, f := range forms {
		for _, p := range c.allow {
			if p.re.MatchString(f) {
				return true
			}
		}
	}
	return false
}

// checkCommand applies one policy's command rules to every simple command
// the shell would run. denied: a deny pattern matched one of them, or the
// command cannot be judged (it wins over every other policy). allowed: no
// allow list, or each command matched a pattern of it. operation names the
// operation that matched.
func (c *compiled) checkCommand(res *shellcmd.Result) (operation string, denied, allowed bool, reason string) {
	if res.Unjudgeable != "" {
		return "", true, false, fmt.Sprintf("command denied by policy %s: %s cannot be judged by the gateway", c.name, res.Unjudgeable)
	}
	for i := range res.Commands {
		// Deny patterns see every form: the command as written, with a
		// path cut to its base name, and each wrapper layer.
		for _, f := range res.Commands[i].Forms {
			for _, p := range c.deny {
				if p.re.MatchString(f) {
					if p.operation != "" {
						return p.operation, true, false, fmt.Sprintf("command denied by operation %s (policy %s)", p.operation, c.name)
					}
					return "", true, false, fmt.Sprintf("command denied by policy %s", c.name)
				}
			}
		}
	}
	if !c.hasAllow {
		return "", false, true, ""
	}
	if len(res.Commands) == 0 {
		return "", false, false, fmt.Sprintf("command not in the allowed list of policy %s", c.name)
	}
	op := ""
	for i := range res.Commands {
		// Allow patterns see the program finally run: wrappers (sudo,
		// env, nice) are transparent to them.
		matched := false
		for _, f := range res.Commands[i].Runs {
			for _, p := range c.allow {
				if p.re.MatchString(f) {
					matched = true
					if op == "" {
						op = p.operation
					}
					break
				}
			}
			if matched {
				break
			}
		}
		// A wrapper that changes who runs the command must be allowed
		// in its own right: "ls" allowed is not "sudo ls" allowed.
		for _, layer := range res.Commands[i].Elevations {
			if matched && !c.allowsAny(layer) {
				matched = false
			}
		}
		if !matched {
			return "", false, false, fmt.Sprintf("command not in the allowed list of policy %s", c.name)
		}
	}
	return op, false, true, ""
}
