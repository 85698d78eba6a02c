// Package resource defines the declarative resources an admin applies with
// `portcullis apply -f` (DESIGN section 2): their Go shapes, how a YAML stream
// of them is decoded strictly, and how each one is validated on its own.
//
// Checks that need more than one document (a Policy naming a Target that must
// exist in the store or the same stream) live in package inventory; this
// package knows nothing of storage.
package resource

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind names a resource type. Kinds are written in YAML with their canonical
// spelling ("User"); ParseKind accepts any case, singular or plural.
type Kind string

// The kinds of resource the gateway manages.
const (
	KindUser           Kind = "User"
	KindServiceAccount Kind = "ServiceAccount"
	KindGroup          Kind = "Group"
	KindTarget         Kind = "Target"
	KindEnvironment    Kind = "Environment"
	KindAccount        Kind = "Account"
	KindOperation      Kind = "Operation"
	KindPolicy         Kind = "Policy"
)

// Kinds lists every kind in the order apply stores and get prints them:
// things referred to come before things that refer to them.
var Kinds = []Kind{KindUser, KindServiceAccount, KindGroup, KindTarget, KindEnvironment, KindAccount, KindOperation, KindPolicy}

// ParseKind maps a user-typed kind ("users", "service-accounts", "Policy")
// to its canonical Kind.
func ParseKind(s string) (Kind, error) {
	k := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(s, "-", ""), "_", ""))
	for _, kind := range Kinds {
		l := strings.ToLower(string(kind))
		// "policies" is the plural of "policy": kubectl users type it.
		if k == l || k == l+"s" || strings.HasSuffix(l, "y") && k == l[:len(l)-1]+"ies" {
			return kind, nil
		}
	}
	names := make([]string, len(Kinds))
	for i, kind := range Kinds {
		names[i] = string(kind)
	}
	return "", fmt.Errorf("unknown kind %q (want one of %s)", s, strings.Join(names, ", "))
}

// Object is any resource: it knows its kind and name and checks its own fields.
type Object interface {
	// GetKind returns the resource's kind.
	GetKind() Kind
	// GetName returns the resource's name, unique within its kind. For an
	// Account it is "TARGET/NAME".
	GetName() string
	// Validate checks the fields that need no other document. The error
	// names the field.
	Validate() error
}

// Roles a user may hold.
const (
	RoleAdmin   = "admin"
	RoleAuditor = "auditor"
)

// User is a person who logs in to the gateway.
type User struct {
	Kind    Kind     `yaml:"kind" json:"kind"`
	Name    string   `yaml:"name" json:"name"`
	Email   string   `yaml:"email,omitempty" json:"email,omitempty"`
	Groups  []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	SSHKeys []string `yaml:"ssh_keys,omitempty" json:"ssh_keys,omitempty"`
	Roles   []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	// MFA is "required" or empty. A required user is asked a
	// verification code (TOTP) on every SSH connection and console
	// sign-in, and is refused until enrolled (portcullis mfa enroll).
	MFA string `yaml:"mfa,omitempty" json:"mfa,omitempty"`
	// Source says where the user came from: empty for a local user
	// (applied by an admin), SourceLDAP for one the gateway created on
	// the user's first directory sign-in. It is informational: a directory
	// user's password, groups and directory keys are always read from the
	// directory, while a local user never consults it (the break-glass way
	// in when the directory is down), whatever its name.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	// OIDCIssuer and OIDCSubject link the user to one account of an
	// OpenID Connect provider: single sign-on signs in as the User whose
	// pair matches the ID token's iss and sub, never by email or name.
	// The gateway sets them on the users it creates (source oidc); an
	// admin may set them on a local user to link it. Both or neither.
	OIDCIssuer  string `yaml:"oidc_issuer,omitempty" json:"oidc_issuer,omitempty"`
	OIDCSubject string `yaml:"oidc_subject,omitempty" json:"oidc_subject,omitempty"`
}

// Sources of users the gateway creates: SourceLDAP on a first directory
// sign-in, SourceOIDC on a first single sign-on.
const (
	SourceLDAP = "ldap"
	SourceOIDC = "oidc"
)

// LoginName is what `{username}` expands to in a policy's target users: the
// part of the email before '@', or the user's name when there is no email.
func (u *User) LoginName() string {
	if i := strings.IndexByte(u.Email, '@'); i > 0 {
		return u.Email[:i]
	}
	return u.Name
}

// ServiceAccount is a script's identity, owned by a user or a group.
type ServiceAccount struct {
	Kind    Kind     `yaml:"kind" json:"kind"`
	Name    string   `yaml:"name" json:"name"`
	Owner   string   `yaml:"owner,omitempty" json:"owner,omitempty"`
	SSHKeys []string `yaml:"ssh_keys,omitempty" json:"ssh_keys,omitempty"`
}

// Group is a named set of local users. A user's groups are the union of
// every Group listing it and the user's own Groups field.
type Group struct {
	Kind    Kind     `yaml:"kind" json:"kind"`
	Name    string   `yaml:"name" json:"name"`
	Members []string `yaml:"members,omitempty" json:"members,omitempty"`
}

// Target authentication modes.
const (
	AuthKey         = "key"
	AuthCertificate = "certificate"
)

// Target is a server the gateway connects to.
type Target struct {
	Kind    Kind   `yaml:"kind" json:"kind"`
	Name    string `yaml:"name" json:"name"`
	Address string `yaml:"address" json:"address"`
	// HostKey is the pinned host key in authorized_keys format. Empty means
	// trust on first use: the first key seen is recorded and audited.
	HostKey string            `yaml:"host_key,omitempty" json:"host_key,omitempty"`
	Labels  map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Auth is "key" (default: a gateway-held key per Account) or
	// "certificate" (the target trusts the gateway's user CA).
	Auth string `yaml:"auth,omitempty" json:"auth,omitempty"`
	// ProvisionAccount names an Account on this target (root, or a user
	// allowed `sudo -n`) through which the gateway creates the login of a
	// subject that connects for the first time, when a target-access
	// policy says provision: true. Empty: the gateway never creates logins.
	ProvisionAccount string `yaml:"provision_account,omitempty" json:"provision_account,omitempty"`
	// LearnedHostKey is status, not spec: the key the gateway recorded on
	// first use while HostKey is empty, filled in by the API when a Target
	// is read so that `get` and the console show it, and what `portcullis
	// target pin` copies into HostKey. Apply ignores it and it is never
	// stored with the Target.
	LearnedHostKey string `yaml:"learned_host_key,omitempty" json:"learned_host_key,omitempty"`
	// Protocol is what the gateway speaks to the target: "ssh" (the
	// default) or "postgres" (a database reached through the PostgreSQL
	// front, package pgproxy). host_key, auth and provision_account are
	// for ssh targets only; tls_mode and tls_ca for postgres ones.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// TLSMode says how the gateway checks a postgres target's TLS:
	// "verify-full" (default: the certificate chains to TLSCA, or to the
	// system roots without it, and names the address's host),
	// "verify-ca" (chains, any name), "require" (encrypted, the
	// certificate not checked) or "disable" (no TLS: only for a database
	// on the gateway's own host or a trusted network).
	TLSMode string `yaml:"tls_mode,omitempty" json:"tls_mode,omitempty"`
	// TLSCA is the PEM of the certificate authority the database's server
	// certificate must chain to; empty: the system roots.
	TLSCA string `yaml:"tls_ca,omitempty" json:"tls_ca,omitempty"`
	// HTTP holds the fields of a protocol: http target (a web API reached
	// through package httpproxy); see HTTPTarget.
	HTTP `yaml:",inline"`
	// Via is how the gateway reaches an ssh target: "" (the default) dials
	// Address; "agent" uses the connection the target's agent holds to the
	// gateway (`portcullis agent`), and Address is then informational.
	Via string `yaml:"via,omitempty" json:"via,omitempty"`
	// Agent is status, not spec, like LearnedHostKey: the connection of a
	// via: agent target's agent, filled in by the API when a Target is
	// read. Apply ignores it and it is never stored with the Target.
	Agent *AgentStatus `yaml:"agent,omitempty" json:"agent,omitempty"`
}

// AgentStatus is how the gateways see an agent target's agent.
type AgentStatus struct {
	// Connected: some gateway holds its connection now.
	Connected bool `yaml:"connected" json:"connected"`
	// Gateway is the id of the gateway holding it.
	Gateway string `yaml:"gateway,omitempty" json:"gateway,omitempty"`
	// LastSeen is its last heartbeat, connection or disconnection (to the
	// minute while connected).
	LastSeen *time.Time `yaml:"last_seen,omitempty" json:"last_seen,omitempty"`
	Version  string     `yaml:"version,omitempty" json:"version,omitempty"`
	// Mode is "forward" (to the host's sshd) or "builtin".
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// ViaAgent is Target.Via for a target whose agent dials out to the
// gateway.
const ViaAgent = "agent"

// ThroughAgent reports whether the target is reached through its agent.
func (t *Target) ThroughAgent() bool { return t.Via == ViaAgent }

// Target protocols.
const (
	ProtocolSSH      = "ssh"
	ProtocolPostgres = "postgres"
	ProtocolHTTP     = "http"
)

// TLS modes of a postgres target (Target.TLSMode), named as libpq's
// sslmode values that mean the same.
const (
	TLSVerifyFull = "verify-full"
	TLSVerifyCA   = "verify-ca"
	TLSRequire    = "require"
	TLSDisable    = "disable"
)

// IsDatabase reports whether the target is reached through a database
// front rather than SSH.
func (t *Target) IsDatabase() bool { return t.Protocol == ProtocolPostgres }

// TLSModeOrDefault returns TLSMode with its default applied.
func (t *Target) TLSModeOrDefault() string {
	if t.TLSMode == "" {
		return TLSVerifyFull
	}
	return t.TLSMode
}

// AuthMode returns Auth with its default applied.
func (t *Target) AuthMode() string {
	if t.Auth == "" {
		return AuthKey
	}
	return t.Auth
}

// Environment is a named group of targets: by name, by label selector, or both.
type Environment struct {
	Kind     Kind              `yaml:"kind" json:"kind"`
	Name     string            `yaml:"name" json:"name"`
	Targets  []string          `yaml:"targets,omitempty" json:"targets,omitempty"`
	Selector map[string]string `yaml:"selector,omitempty" json:"selector,omitempty"`
}

// Account is a login on a target whose credential the gateway holds. Its
// resource name is "TARGET/NAME".
type Account struct {
	Kind   Kind   `yaml:"kind" json:"kind"`
	Name   string `yaml:"name" json:"name"`
	Target string `yaml:"target" json:"target"`
	// PrivateKeyFile imports an existing key instead of generating one. It
	// is read by the CLI at apply time and never stored or printed.
	PrivateKeyFile string `yaml:"private_key_file,omitempty" json:"private_key_file,omitempty"`
	// PrivateKey carries the imported key's PEM from the CLI to the server;
	// it is never returned.
	PrivateKey string `yaml:"-" json:"private_key,omitempty"`
	// PublicKey is filled in by the server on output (authorized_keys
	// format); it is ignored on input.
	PublicKey string `yaml:"public_key,omitempty" json:"public_key,omitempty"`
	// KeyCreated is when the gateway generated, imported or last rotated
	// the key; filled in by the server, ignored on input. Scheduled
	// rotation counts RotateEvery from it.
	KeyCreated *time.Time `yaml:"public_key_created,omitempty" json:"public_key_created,omitempty"`
	// RotateEvery, if set, has the gateway rotate the key on this schedule
	// (see package rotate): at least an hour.
	RotateEvery Duration `yaml:"rotate_every,omitempty" json:"rotate_every,omitzero"`
	// LockPassword makes every rotation also disable the account's
	// password, so that only the gateway's key logs in. It needs root or
	// `sudo -n usermod` on the target.
	LockPassword bool `yaml:"lock_password,omitempty" json:"lock_password,omitempty"`
	// PasswordFile, for an account on a postgres target, names a file
	// holding the database role's password (one line), read by the CLI at
	// apply time and never stored or printed. The gateway seals it like
	// an account key and logs in with it by SCRAM-SHA-256.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// Password carries PasswordFile's content from the CLI to the server;
	// it is never returned.
	Password string `yaml:"-" json:"password,omitempty"`
}

// Operation is a named class of commands, referred to as "@NAME" in a
// policy's command rules.
type Operation struct {
	Kind     Kind     `yaml:"kind" json:"kind"`
	Name     string   `yaml:"name" json:"name"`
	Patterns []string `yaml:"patterns" json:"patterns"`
}

// GetKind implements Object.
func (u *User) GetKind() Kind { return KindUser }

// GetName implements Object.
func (u *User) GetName() string { return u.Name }

// GetKind implements Object.
func (s *ServiceAccount) GetKind() Kind { return KindServiceAccount }

// GetName implements Object.
func (s *ServiceAccount) GetName() string { return s.Name }

// GetKind implements Object.
func (g *Group) GetKind() Kind { return KindGroup }

// GetName implements Object.
func (g *Group) GetName() string { return g.Name }

// GetKind implements Object.
func (t *Target) GetKind() Kind { return KindTarget }

// GetName implements Object.
func (t *Target) GetName() string { return t.Name }

// GetKind implements Object.
func (e *Environment) GetKind() Kind { return KindEnvironment }

// GetName implements Object.
func (e *Environment) GetName() string { return e.Name }

// GetKind implements Object.
func (a *Account) GetKind() Kind { return KindAccount }

// GetName implements Object: accounts are addressed as TARGET/NAME.
func (a *Account) GetName() string { return a.Target + "/" + a.Name }

// GetKind implements Object.
func (o *Operation) GetKind() Kind { return KindOperation }

// GetName implements Object.
func (o *Operation) GetName() string { return o.Name }

// New returns an empty object of the given kind with its Kind field set.
func New(kind Kind) (Object, error) {
	switch kind {
	case KindUser:
		return &User{Kind: kind}, nil
	case KindServiceAccount:
		return &ServiceAccount{Kind: kind}, nil
	case KindGroup:
		return &Group{Kind: kind}, nil
	case KindTarget:
		return &Target{Kind: kind}, nil
	case KindEnvironment:
		return &Environment{Kind: kind}, nil
	case KindAccount:
		return &Account{Kind: kind}, nil
	case KindOperation:
		return &Operation{Kind: kind}, nil
	case KindPolicy:
		return &Policy{Kind: kind}, nil
	}
	_, err := ParseKind(string(kind))
	if err == nil {
		err = fmt.Errorf("kind %q has no constructor", kind)
	}
	return nil, err
}

// SortObjects orders objects by kind (in Kinds order) then name, the order in
// which listings and YAML exports are printed.
func SortObjects(objs []Object) {
	rank := map[Kind]int{}
	for i, k := range Kinds {
		rank[k] = i
	}
	sort.SliceStable(objs, func(i, j int) bool {
		ki, kj := rank[objs[i].GetKind()], rank[objs[j].GetKind()]
		if ki != kj {
			return ki < kj
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}
