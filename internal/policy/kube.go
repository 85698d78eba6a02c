package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// KubeRequest is one request to a kubernetes target
// (resource.Target.IsKubernetes), as the Kubernetes front parsed it.
type KubeRequest struct {
	Kind    SubjectKind
	Subject string
	// Groups are the subject's directory groups (see Request.Groups).
	Groups []string
	Target string
	Source netip.Addr
	// Now is the time of the request; zero means time.Now().
	Now time.Time

	// Discovery marks a request any subject with some access to the
	// target may make (/api, /apis, /openapi/*, /version): no rule needs
	// to grant it, and the fields below are ignored except AsUser and
	// AsGroups.
	Discovery bool
	// Verb, APIGroup ("" the core group), Resource, Subresource,
	// Namespace ("" cluster-scoped or all namespaces) and Name ("" a
	// list or a create) are what a resource request does.
	Verb, APIGroup, Resource, Subresource, Namespace, Name string

	// AsUser and AsGroups are the cluster identity the client asked for
	// (kubectl --as, --as-group); empty: the policies' default.
	AsUser   string
	AsGroups []string
}

// KubeDecision is the engine's answer to a KubeRequest.
type KubeDecision struct {
	Allow bool
	// Policy names the first (by name) policy that grants the request.
	Policy string
	// Reason says why a request was denied, safe to show the client.
	Reason string
	// User and Groups are the cluster identity the front impersonates.
	User   string
	Groups []string
	// NotAfter is when the granting policies' validity ends (zero: no
	// end): a watch or exec stream must end then.
	NotAfter time.Time
	// Record and RecordFailOpen are the session-recording obligations
	// for a stream (exec, attach): a session-recording policy covers the
	// subject and target, and whether every one says on_failure: continue.
	Record, RecordFailOpen bool
	// RecordInput: a covering session-recording policy asks for what the
	// user types too (record_input). RecordingPolicy names the first one.
	RecordInput     bool
	RecordingPolicy string
	// SubjectFallback: a discovery request asked for an identity the
	// subject may not take (or left several to choose from), and goes as
	// the subject's own name, which no policy may list: fit only for an
	// answer that is the same for every identity.
	SubjectFallback bool
}

// kubeGrant is what a kubernetes policy grants.
type kubeGrant struct {
	users, groups []string
	rules         []resource.KubeRule
}

func compileKubeGrant(p *resource.Policy) *kubeGrant {
	if p.Type != resource.PolicyKubernetes {
		return nil
	}
	return &kubeGrant{users: p.ClusterUsers, groups: p.ClusterGroups, rules: p.KubeRules}
}

// grants reports whether a rule of g covers r; no rules: every request.
func (g *kubeGrant) grants(r *KubeRequest) bool {
	if r.Discovery || len(g.rules) == 0 {
		return true
	}
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	for i := range g.rules {
		rule := &g.rules[i]
		if anyGlob(rule.Verbs, r.Verb) && anyGlob(rule.Resources, res) &&
			(rule.APIGroups == nil || anyGlob(rule.APIGroups, r.APIGroup)) &&
			(rule.Namespaces == nil || r.Namespace != "" && anyGlob(rule.Namespaces, r.Namespace)) &&
			(rule.Names == nil || r.Name != "" && anyGlob(rule.Names, r.Name)) {
			return true
		}
	}
	return false
}

// anyGlob reports whether s matches one of patterns ('*' any run).
func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// DecideKube answers one request to a kubernetes target under the
// kubernetes policies: the target, validity window and source address
// must be covered and a rule must grant the request. The cluster identity
// is then chosen from the granting policies: the cluster user the client
// asked for (it must be listed by one of them), or the only one they list,
// or the subject's own name when they list groups only; several users and
// no choice is a denial that names them. The groups are the ones the
// client asked for (each listed) or all the granting policies list.
func (e *Engine) DecideKube(r KubeRequest) KubeDecision {
	var buf [8][]*compiled
	req := Request{Kind: r.Kind, Subject: r.Subject, Groups: r.Groups, Target: r.Target, Source: r.Source}
	_, cands, ok := e.candidates(e.kube, &req, buf[:0])
	target := e.targets[r.Target]
	if !ok || target == nil || !target.IsKubernetes() {
		return KubeDecision{Reason: denyNoAccess(r.Subject, r.Target)}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	best := stageTarget
	var granting []*compiled
	var users, groups []string
	unbounded := false
	var notAfter time.Time
	for _, list := range cands {
		for _, c := range list {
			st := kubeStage(c, &r, now)
			best = max(best, st)
			if st != stageGranted+1 || slices.Contains(granting, c) {
				continue
			}
			granting = append(granting, c)
			users = append(users, c.kube.users...)
			groups = append(groups, c.kube.groups...)
			switch {
			case c.until.IsZero():
				unbounded, notAfter = true, time.Time{}
			case !unbounded && c.until.After(notAfter):
				notAfter = c.until
			}
		}
	}
	if len(granting) == 0 {
		if best == stageGranted {
			return KubeDecision{Reason: fmt.Sprintf("access denied: %s may not %s (target %s)", r.Subject, describeKube(&r), r.Target)}
		}
		return KubeDecision{Reason: e.reason(best, &req, "")}
	}
	slices.Sort(users)
	users = slices.Compact(users)
	if len(users) == 0 {
		// Policies that list only groups impersonate the subject's own
		// name: the one user --as may then name.
		users = []string{r.Subject}
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	first := granting[0]
	for _, c := range granting[1:] {
		if c.name < first.name {
			first = c
		}
	}
	if r.Discovery && !identityOK(r.AsUser, r.AsGroups, users, groups) {
		// Discovery answers the same for every identity: an identity
		// the client may not take (or an ambiguous one) is no reason to
		// refuse it, and kubectl asks discovery before the request that
		// then gets the real refusal. It goes as the subject's own name
		// with no group.
		d := KubeDecision{Allow: true, Policy: first.name, NotAfter: notAfter, User: r.Subject, SubjectFallback: true}
		return d
	}
	d := KubeDecision{Allow: true, Policy: first.name, NotAfter: notAfter}
	var ob Obligations
	e.recordingFor(&ob, &req, r.Target, now)
	d.Record, d.RecordFailOpen = ob.Record, ob.RecordFailOpen
	d.RecordInput, d.RecordingPolicy = ob.RecordInput, ob.RecordingPolicy
	switch {
	case r.AsUser != "":
		if !slices.Contains(users, r.AsUser) {
			return KubeDecision{Reason: fmt.Sprintf("access denied: %s may not act as cluster user %q on %s (allowed: %s)",
				r.Subject, r.AsUser, r.Target, listOrNone(users))}
		}
		d.User = r.AsUser
	case len(users) == 1:
		d.User = users[0]
	default:
		return KubeDecision{Reason: fmt.Sprintf("access denied: %s may act as several cluster users on %s (%s): choose one with kubectl --as",
			r.Subject, r.Target, strings.Join(users, ", "))}
	}
	if len(r.AsGroups) > 0 {
		for _, g := range r.AsGroups {
			if !slices.Contains(groups, g) {
				return KubeDecision{Reason: fmt.Sprintf("access denied: %s may not act as cluster group %q on %s (allowed: %s)",
					r.Subject, g, r.Target, listOrNone(groups))}
			}
		}
		d.Groups = slices.Clone(r.AsGroups)
	} else {
		d.Groups = groups
	}
	return d
}

// identityOK reports whether DecideKube would choose an identity for
// asUser and asGroups from users and groups.
func identityOK(asUser string, asGroups, users, groups []string) bool {
	if asUser == "" && len(users) > 1 || asUser != "" && !slices.Contains(users, asUser) {
		return false
	}
	for _, g := range asGroups {
		if !slices.Contains(groups, g) {
			return false
		}
	}
	return true
}

// kubeStage is how far policy c goes towards granting r: stageGranted+1
// grants it; stageGranted covers the target from here and now but no rule
// grants the request.
func kubeStage(c *compiled, r *KubeRequest, now time.Time) int {
	switch {
	case !c.targets[r.Target]:
		return stageTarget
	case !c.activeAt(now):
		return stageWindow
	case len(c.cidrs) > 0 && !inCIDRs(c.cidrs, r.Source):
		return stageSource
	case c.kube == nil || !c.kube.grants(r):
		return stageGranted
	}
	return stageGranted + 1
}

// describeKube words a request for a denial: "list pods in namespace
// other", "get secrets db-pass in namespace dev", "delete nodes n1".
func describeKube(r *KubeRequest) string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.APIGroup != "" {
		res += "." + r.APIGroup
	}
	s := r.Verb + " " + res
	if r.Name != "" {
		s += " " + r.Name
	}
	if r.Namespace != "" {
		s += " in namespace " + r.Namespace
	}
	return s
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
