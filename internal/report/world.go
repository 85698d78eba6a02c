package report

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// world is the resources as of a report, compiled once for every kind that
// needs them.
type world struct {
	users    map[string]*resource.User
	services map[string]*resource.ServiceAccount
	targets  map[string]*resource.Target
	accounts map[string]*resource.Account // by TARGET/NAME
	policies map[string]*resource.Policy
	// names of users, services, policies, sorted: rows come out in a
	// stable order.
	userNames, serviceNames, policyNames []string
	// localGroups and dirGroups are each user's groups: from the
	// resources (its own list and the Groups naming it), and from the
	// directory.
	localGroups map[string][]string
	dirGroups   map[string][]string
	engine      *policy.Engine
}

// loadWorld reads the resources and, for each directory user, its groups.
func loadWorld(ctx context.Context, src *Source) (*world, error) {
	objs, err := src.Resources(ctx)
	if err != nil {
		return nil, fmt.Errorf("read resources: %w", err)
	}
	w := &world{users: map[string]*resource.User{}, services: map[string]*resource.ServiceAccount{},
		targets: map[string]*resource.Target{}, accounts: map[string]*resource.Account{},
		policies: map[string]*resource.Policy{}, localGroups: map[string][]string{}, dirGroups: map[string][]string{}}
	var in policy.Input
	for _, o := range objs {
		switch o := o.(type) {
		case *resource.User:
			w.users[o.Name] = o
			w.userNames = append(w.userNames, o.Name)
			in.Users = append(in.Users, o)
		case *resource.ServiceAccount:
			w.services[o.Name] = o
			w.serviceNames = append(w.serviceNames, o.Name)
			in.ServiceAccounts = append(in.ServiceAccounts, o)
		case *resource.Group:
			in.Groups = append(in.Groups, o)
		case *resource.Target:
			w.targets[o.Name] = o
			in.Targets = append(in.Targets, o)
		case *resource.Environment:
			in.Environments = append(in.Environments, o)
		case *resource.Account:
			w.accounts[o.GetName()] = o
			in.Accounts = append(in.Accounts, o)
		case *resource.Operation:
			in.Operations = append(in.Operations, o)
		case *resource.Policy:
			w.policies[o.Name] = o
			w.policyNames = append(w.policyNames, o.Name)
			in.Policies = append(in.Policies, o)
		}
	}
	sort.Strings(w.userNames)
	sort.Strings(w.serviceNames)
	sort.Strings(w.policyNames)
	w.engine, err = policy.Compile(in)
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	for _, u := range w.userNames {
		w.localGroups[u] = w.engine.Groups(u)
		if src.DirectoryGroups == nil || w.users[u].Source != "ldap" {
			continue
		}
		gs, err := src.DirectoryGroups(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("read the directory groups of %s: %w", u, err)
		}
		w.dirGroups[u] = gs
	}
	return w, nil
}

// grant is one way one identity reaches one target as one target user.
type grant struct {
	identity, identityKind string
	via                    string // "direct", "group:NAME", "directory-group:NAME"
	policy                 *resource.Policy
	jit                    string // the jit policy it is requested through, if any
	target, targetUser     string
}

// grants expands every target-access, proxy and kubernetes policy (and
// every jit policy's children) into one row per identity, target and
// target user (for kubernetes, each cluster user and group impersonated),
// with the targets the policy engine resolves.
func (w *world) grants() []grant {
	var out []grant
	for _, pn := range w.policyNames {
		p := w.policies[pn]
		switch p.Type {
		case resource.PolicyTargetAccess, resource.PolicyProxy, resource.PolicyKubernetes:
			out = append(out, w.expand(p, p, "")...)
		case resource.PolicyJIT:
			for _, cn := range p.ChildPolicies {
				if c, ok := w.policies[cn]; ok {
					out = append(out, w.expand(p, c, p.Name)...)
				}
			}
		}
	}
	// By identity, as an auditor reads it: everything one person can
	// reach together.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.identity != b.identity {
			return a.identity < b.identity
		}
		if a.target != b.target {
			return a.target < b.target
		}
		return a.targetUser < b.targetUser
	})
	return out
}

// expand lists the grants of policy granting (whose targets and target
// users apply) to the subjects of policy naming (the same policy, or the
// jit policy that hands it out).
func (w *world) expand(naming, granting *resource.Policy, jit string) []grant {
	type who struct{ name, kind, via string }
	var subjects []who
	for _, u := range naming.Subjects.Users {
		subjects = append(subjects, who{u, "user", "direct"})
	}
	for _, u := range w.userNames {
		for _, g := range naming.Subjects.Groups {
			switch {
			case slices.Contains(w.localGroups[u], g):
				subjects = append(subjects, who{u, "user", "group:" + g})
			case slices.Contains(w.dirGroups[u], g):
				subjects = append(subjects, who{u, "user", "directory-group:" + g})
			}
		}
	}
	for _, s := range naming.Subjects.ServiceAccounts {
		subjects = append(subjects, who{s, "service_account", "direct"})
	}
	targets := w.engine.PolicyTargets(granting.Name)
	var out []grant
	for _, s := range subjects {
		tus := granting.TargetUsers
		if granting.Type == resource.PolicyKubernetes {
			tus = clusterIdentities(granting, s.name)
		}
		for _, t := range targets {
			for _, tu := range tus {
				out = append(out, grant{identity: s.name, identityKind: s.kind, via: s.via, policy: granting,
					jit: jit, target: t, targetUser: w.targetUser(s.name, tu)})
			}
		}
	}
	return out
}

// clusterIdentities are what a kubernetes policy makes the gateway
// impersonate for identity, as "user:NAME" and "group:NAME": the power
// on the cluster lies in them, not in a target user. With groups only,
// the front impersonates the identity's own name.
func clusterIdentities(p *resource.Policy, identity string) []string {
	var out []string
	for _, u := range p.ClusterUsers {
		out = append(out, "user:"+u)
	}
	if len(p.ClusterUsers) == 0 {
		out = append(out, "user:"+identity)
	}
	for _, g := range p.ClusterGroups {
		out = append(out, "group:"+g)
	}
	return out
}

// targetUser expands {username} as the SSH front does.
func (w *world) targetUser(identity, tu string) string {
	if tu != "{username}" {
		return tu
	}
	if u, ok := w.users[identity]; ok {
		return u.LoginName()
	}
	return identity
}

// superAccounts are target users that hold every power on their system.
var superAccounts = []string{"root", "administrator", "admin", "postgres", "sa", "system"}

// superClusterIdentities are cluster users and groups that Kubernetes (or
// its usual default RBAC) gives every power on the cluster.
var superClusterIdentities = []string{"group:system:masters", "group:cluster-admin", "group:cluster-admins",
	"user:cluster-admin", "user:kubernetes-admin", "user:system:admin"}

// privileged says why a grant is privileged access (ISO 27001 A.8.2),
// from the policy itself rather than a list kept by hand: a superuser
// account, sudo to everything, a policy that covers every target (a
// selector that matches all of them), or an identity that administers the
// gateway (and can grant itself anything). Empty when it is not.
func (w *world) privileged(g grant) string {
	var why []string
	if slices.Contains(superAccounts, strings.ToLower(g.targetUser)) {
		why = append(why, "superuser account "+g.targetUser)
	}
	if g.policy.Type == resource.PolicyKubernetes && slices.Contains(superClusterIdentities, strings.ToLower(g.targetUser)) {
		why = append(why, "cluster admin "+g.targetUser)
	}
	if strings.Contains(strings.ToUpper(g.policy.Sudoers), "ALL") {
		why = append(why, "sudo "+g.policy.Sudoers)
	}
	if n := len(w.targets); n > 1 && len(w.engine.PolicyTargets(g.policy.Name)) == n && g.policy.Targets.Names == nil {
		why = append(why, "every target")
	}
	if u, ok := w.users[g.identity]; ok && g.identityKind == "user" && slices.Contains(u.Roles, "admin") {
		why = append(why, "gateway admin")
	}
	return strings.Join(why, "; ")
}

// policyPrivileged says whether any grant of a policy is privileged, for
// sessions whose policy the audit trail names.
func (w *world) sessionPrivileged(user, target, account, policyName string) string {
	g := grant{identity: user, identityKind: "user", target: target, targetUser: account, policy: &resource.Policy{}}
	if p, ok := w.policies[policyName]; ok {
		g.policy = p
	}
	if _, ok := w.services[user]; ok {
		g.identityKind = "service_account"
	}
	return w.privileged(g)
}

// readAudit returns the events of the given types in [since, until),
// oldest first. Each type is read with the store's type filter, a page at
// a time, so that a report reads its events and not the whole trail
// (session data, API key uses and the like are most of it).
func readAudit(ctx context.Context, st store.Store, since, until time.Time, types ...string) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, typ := range types {
		var after int64
		for {
			page, err := st.ListAudit(ctx, store.AuditFilter{Since: since, Until: until, Type: typ, AfterID: after, Limit: 1000})
			if err != nil {
				return nil, fmt.Errorf("read %s audit events after %d: %w", typ, after, err)
			}
			out = append(out, page...)
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// host drops the port of a source address, so that one machine's
// connections count together.
func host(source string) string {
	if h, _, err := net.SplitHostPort(source); err == nil {
		return h
	}
	return source
}
