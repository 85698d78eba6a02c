package inventory

import (
	"fmt"
	"sort"
	"strings"

	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// world is every resource by "Kind/name": the store's contents with a
// pending stream laid over them. Reference checks and compilation run on it
// so that a stream may refer to what it creates itself.
type world struct {
	byKey map[string]resource.Object
}

func decodeRecords(recs []store.Record) (*world, error) {
	w := &world{byKey: make(map[string]resource.Object, len(recs))}
	for _, r := range recs {
		o, err := decodeRecord(r)
		if err != nil {
			return nil, err
		}
		w.put(o)
	}
	return w, nil
}

func (w *world) put(o resource.Object) { w.byKey[objKey(o)] = o }

func (w *world) has(kind resource.Kind, name string) bool {
	_, ok := w.byKey[string(kind)+"/"+name]
	return ok
}

// checkRefs returns an error for a reference that must exist and warnings
// for subjects that may appear later (DESIGN section 2: group names are
// free, a missing subject is a warning).
func (w *world) checkRefs(o resource.Object) (warnings []string, err error) {
	switch o := o.(type) {
	case *resource.User:
		if w.has(resource.KindServiceAccount, o.Name) {
			return nil, fmt.Errorf("field name: a ServiceAccount is already called %q; login strings must name one identity", o.Name)
		}
	case *resource.ServiceAccount:
		if w.has(resource.KindUser, o.Name) {
			return nil, fmt.Errorf("field name: a User is already called %q; login strings must name one identity", o.Name)
		}
		if o.Owner != "" && !strings.HasPrefix(o.Owner, "group:") && !w.has(resource.KindUser, o.Owner) {
			warnings = append(warnings, fmt.Sprintf("field owner: user %q does not exist (yet)", o.Owner))
		}
	case *resource.Group:
		for i, m := range o.Members {
			if !w.has(resource.KindUser, m) {
				warnings = append(warnings, fmt.Sprintf("field members[%d]: user %q does not exist (yet)", i, m))
			}
		}
	case *resource.Environment:
		for i, t := range o.Targets {
			if !w.has(resource.KindTarget, t) {
				return nil, fmt.Errorf("field targets[%d]: target %q does not exist", i, t)
			}
		}
	case *resource.Account:
		if !w.has(resource.KindTarget, o.Target) {
			return nil, fmt.Errorf("field target: target %q does not exist", o.Target)
		}
	case *resource.Target:
		if o.ProvisionAccount != "" && !w.has(resource.KindAccount, o.Name+"/"+o.ProvisionAccount) {
			return nil, fmt.Errorf("field provision_account: account %s/%s does not exist", o.Name, o.ProvisionAccount)
		}
	case *resource.Policy:
		for i, t := range o.Targets.Names {
			if !w.has(resource.KindTarget, t) {
				return nil, fmt.Errorf("field targets.names[%d]: target %q does not exist", i, t)
			}
		}
		for i, e := range o.Targets.Environments {
			if !w.has(resource.KindEnvironment, e) {
				return nil, fmt.Errorf("field targets.environments[%d]: environment %q does not exist", i, e)
			}
		}
		if o.Commands != nil {
			// A slice, not a map: with both lists wrong, the same one is
			// reported every time.
			for _, rules := range []struct {
				field string
				list  []string
			}{{"commands.allow", o.Commands.Allow}, {"commands.deny", o.Commands.Deny}} {
				for i, entry := range rules.list {
					if op, ok := strings.CutPrefix(entry, "@"); ok && !w.has(resource.KindOperation, op) {
						return nil, fmt.Errorf("field %s[%d]: operation %q does not exist", rules.field, i, op)
					}
				}
			}
		}
		for i, c := range o.ChildPolicies {
			child, ok := w.byKey[string(resource.KindPolicy)+"/"+c].(*resource.Policy)
			if !ok {
				return nil, fmt.Errorf("field child_policies[%d]: policy %q does not exist", i, c)
			}
			switch child.Type {
			case resource.PolicyJIT:
				return nil, fmt.Errorf("field child_policies[%d]: policy %q is itself a jit policy", i, c)
			case resource.PolicyTargetAccess, resource.PolicyProxy, resource.PolicyKubernetes:
			default:
				return nil, fmt.Errorf("field child_policies[%d]: policy %q is a %s policy; a jit policy grants target-access, proxy or kubernetes policies", i, c, child.Type)
			}
			if child.JITGrant != nil {
				return nil, fmt.Errorf("field child_policies[%d]: policy %q is a JIT grant", i, c)
			}
		}
		for i, u := range o.Subjects.Users {
			if !w.has(resource.KindUser, u) {
				warnings = append(warnings, fmt.Sprintf("field subjects.users[%d]: user %q does not exist (yet)", i, u))
			}
		}
		for i, s := range o.Subjects.ServiceAccounts {
			if !w.has(resource.KindServiceAccount, s) {
				warnings = append(warnings, fmt.Sprintf("field subjects.service_accounts[%d]: service account %q does not exist (yet)", i, s))
			}
		}
	}
	return warnings, nil
}

// referrers lists, as "Kind/name", the resources that would dangle if
// kind/name were deleted.
func (w *world) referrers(kind resource.Kind, name string) []string {
	var by []string
	for key, o := range w.byKey {
		switch o := o.(type) {
		case *resource.Account:
			if kind == resource.KindTarget && o.Target == name {
				by = append(by, key)
			}
		case *resource.Target:
			if kind == resource.KindAccount && o.ProvisionAccount != "" && o.Name+"/"+o.ProvisionAccount == name {
				by = append(by, key)
			}
		case *resource.Environment:
			if kind == resource.KindTarget && contains(o.Targets, name) {
				by = append(by, key)
			}
		case *resource.Policy:
			switch kind {
			case resource.KindTarget:
				if contains(o.Targets.Names, name) {
					by = append(by, key)
				}
			case resource.KindEnvironment:
				if contains(o.Targets.Environments, name) {
					by = append(by, key)
				}
			case resource.KindPolicy:
				if contains(o.ChildPolicies, name) {
					by = append(by, key)
				}
			case resource.KindOperation:
				if o.Commands != nil && (contains(o.Commands.Allow, "@"+name) || contains(o.Commands.Deny, "@"+name)) {
					by = append(by, key)
				}
			}
		}
	}
	sort.Strings(by)
	return by
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// input groups the world's objects by kind for policy.Compile.
func (w *world) input() policy.Input {
	var in policy.Input
	for _, o := range w.byKey {
		switch o := o.(type) {
		case *resource.User:
			in.Users = append(in.Users, o)
		case *resource.ServiceAccount:
			in.ServiceAccounts = append(in.ServiceAccounts, o)
		case *resource.Group:
			in.Groups = append(in.Groups, o)
		case *resource.Target:
			in.Targets = append(in.Targets, o)
		case *resource.Environment:
			in.Environments = append(in.Environments, o)
		case *resource.Account:
			in.Accounts = append(in.Accounts, o)
		case *resource.Operation:
			in.Operations = append(in.Operations, o)
		case *resource.Policy:
			in.Policies = append(in.Policies, o)
		}
	}
	return in
}

func (w *world) compile() (*policy.Engine, error) {
	e, err := policy.Compile(w.input())
	if err != nil {
		return nil, fmt.Errorf("build policy engine: %w", err)
	}
	return e, nil
}

// Preview compiles the policy engine that base would give with overlay
// applied on top (same kind and name replaces), without storing anything.
// References are checked as Apply checks them; the warnings are Apply's.
// `policy test --policies` and offline policy tests use it.
func Preview(base, overlay []resource.Object) (*policy.Engine, []string, error) {
	w := &world{byKey: make(map[string]resource.Object, len(base)+len(overlay))}
	for _, o := range base {
		w.put(o)
	}
	for i, o := range overlay {
		if err := o.Validate(); err != nil {
			return nil, nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		w.put(o)
	}
	var warnings []string
	for i, o := range overlay {
		warns, err := w.checkRefs(o)
		if err != nil {
			return nil, nil, &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		for _, msg := range warns {
			warnings = append(warnings, fmt.Sprintf("document %d (%s %s): %s", i+1, o.GetKind(), o.GetName(), msg))
		}
	}
	e, err := w.compile()
	return e, warnings, err
}
