package resource

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ProtocolKubernetes is a Kubernetes API server reached through the
// Kubernetes front (package kubeproxy). It uses the http target's url,
// tls_ca or tls_pin_sha256 and a bearer credential: the token of a
// service account that may impersonate the cluster users and groups the
// kubernetes policies name.
const ProtocolKubernetes = "kubernetes"

// IsKubernetes reports whether the target is a Kubernetes API server.
func (t *Target) IsKubernetes() bool { return t.Protocol == ProtocolKubernetes }

func (t *Target) validateKubernetes() error {
	switch {
	case t.HostKey != "":
		return fieldErr("host_key", "is for ssh targets; a kubernetes target is checked by tls_ca or tls_pin_sha256")
	case t.Auth != "":
		return fieldErr("auth", "is for ssh targets; a kubernetes target uses credential")
	case t.ProvisionAccount != "":
		return fieldErr("provision_account", "is for ssh targets")
	case t.TLSMode != "":
		return fieldErr("tls_mode", "is for postgres targets; a kubernetes target always checks TLS (tls_ca or tls_pin_sha256)")
	case t.Catalog != "" || len(t.Rules) > 0:
		return fieldErr("catalog", "catalog and rules are for http targets; kubernetes requests are governed by kubernetes policies")
	}
	if err := checkLabels("labels", t.Labels); err != nil {
		return err
	}
	u, err := url.Parse(t.URL)
	switch {
	case t.URL == "":
		return fieldErr("url", "is required for a kubernetes target (https://HOST[:PORT], the API server)")
	case err != nil:
		return fieldErr("url", "%q is not a URL: %v", t.URL, err)
	case u.Scheme != "https":
		return fieldErr("url", "%q: only https API servers are supported (the gateway sends a token)", t.URL)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return fieldErr("url", "%q must be https://HOST[:PORT], with no user, path, query or fragment", t.URL)
	}
	if t.Address != "" {
		if err := checkAddress("address", t.Address); err != nil {
			return err
		}
	}
	if err := t.validateTLS(); err != nil {
		return err
	}
	c := t.Credential
	switch {
	case c == nil:
		return fieldErr("credential", "is required: {type: bearer, account: NAME}, the token of a service account that may impersonate")
	case c.Type != CredentialBearer:
		return fieldErr("credential.type", "%q is not valid for a kubernetes target (want bearer)", c.Type)
	case c.Username != "":
		return fieldErr("credential.username", "is not used with a bearer token")
	case !ValidTargetUser(c.Account):
		return fieldErr("credential.account", "%q is not an account name on this target", c.Account)
	}
	return nil
}

// KubeRule grants Kubernetes requests in a kubernetes policy: a request
// matches when each list that is set has its value ('*' in an entry
// matches any run of characters). A policy without rules grants every
// request, and the cluster's RBAC for the impersonated identity is then
// the only limit.
type KubeRule struct {
	// Verbs are Kubernetes verbs: get, list, watch, create, update,
	// patch, delete, deletecollection (and impersonate, escalate, bind
	// for RBAC objects); "*" any.
	Verbs []string `yaml:"verbs" json:"verbs"`
	// APIGroups are API groups ("" the core group, "apps", a CRD's
	// group); left out: any group.
	APIGroups []string `yaml:"api_groups,omitempty" json:"api_groups,omitempty"`
	// Resources are plural resource names, with a subresource after a
	// slash: pods, pods/log, pods/exec, deployments, a CRD's plural.
	// "pods" does not cover "pods/exec": a subresource must be named (or
	// pods/* given).
	Resources []string `yaml:"resources" json:"resources"`
	// Namespaces are namespace patterns (dev-*); left out: any namespace
	// and cluster-scoped objects; set: only namespaced requests in them.
	Namespaces []string `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
	// Names are object name patterns; left out: any name (and lists).
	Names []string `yaml:"names,omitempty" json:"names,omitempty"`
}

var (
	kubeVerbPattern  = regexp.MustCompile(`^([a-z]+|\*)$`)
	kubeResPattern   = regexp.MustCompile(`^([a-z0-9*][a-z0-9.*-]*)(/[a-z0-9*][a-z0-9*-]*)?$`)
	kubeGroupPattern = regexp.MustCompile(`^([a-z0-9*][a-z0-9.*-]*)?$`)
	kubeNamePattern  = regexp.MustCompile(`^[a-z0-9*][a-z0-9.*:-]*$`)
)

func (r *KubeRule) validate() error {
	if len(r.Verbs) == 0 {
		return fmt.Errorf("verbs is required (get, list, watch, create, update, patch, delete, deletecollection, or *)")
	}
	for _, v := range r.Verbs {
		if !kubeVerbPattern.MatchString(v) {
			return fmt.Errorf("verb %q is not a Kubernetes verb (lower-case letters, or *)", v)
		}
	}
	if len(r.Resources) == 0 {
		return fmt.Errorf("resources is required (pods, pods/log, deployments, *)")
	}
	for _, v := range r.Resources {
		if !kubeResPattern.MatchString(v) || len(v) > 253 {
			return fmt.Errorf("resource %q is not a resource (plural, optionally /subresource)", v)
		}
	}
	for _, v := range r.APIGroups {
		if !kubeGroupPattern.MatchString(v) || len(v) > 253 {
			return fmt.Errorf("api group %q is not an API group (\"\" for the core group)", v)
		}
	}
	for _, v := range r.Namespaces {
		if !kubeNamePattern.MatchString(v) || len(v) > 253 || strings.Contains(v, ":") {
			return fmt.Errorf("namespace %q is not a namespace pattern", v)
		}
	}
	for _, v := range r.Names {
		if !kubeNamePattern.MatchString(v) || len(v) > 253 {
			return fmt.Errorf("name %q is not an object name pattern", v)
		}
	}
	return nil
}

// kubeIdentityPattern is what a cluster user or group may be: printable
// ASCII without spaces. An admin may name system: identities on purpose;
// users can reach only what a policy lists.
var kubeIdentityPattern = regexp.MustCompile(`^[\x21-\x7e]{1,253}$`)

func (p *Policy) validateKubernetes() error {
	if len(p.ClusterUsers)+len(p.ClusterGroups) == 0 {
		return fieldErr("cluster_users", "a kubernetes policy needs cluster_users or cluster_groups to impersonate")
	}
	for i, u := range p.ClusterUsers {
		if !kubeIdentityPattern.MatchString(u) || strings.Contains(u, "*") {
			return fieldErr(fmt.Sprintf("cluster_users[%d]", i), "%q is not a valid Kubernetes user name", u)
		}
	}
	for i, g := range p.ClusterGroups {
		if !kubeIdentityPattern.MatchString(g) || strings.Contains(g, "*") {
			return fieldErr(fmt.Sprintf("cluster_groups[%d]", i), "%q is not a valid Kubernetes group name", g)
		}
	}
	if err := p.validateCIDRs(); err != nil {
		return err
	}
	for i := range p.KubeRules {
		if err := p.KubeRules[i].validate(); err != nil {
			return fieldErr(fmt.Sprintf("rules[%d]", i), "%v", err)
		}
	}
	return nil
}
