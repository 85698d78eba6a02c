package resource

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis/portcullis/internal/duration"
	"github.com/portcullis/portcullis/internal/pathrule"
)

// Policy types. Each grants something different; the fields a type does not
// use are refused on apply so that a misplaced field never silently does
// nothing.
const (
	// PolicyTargetAccess grants shell, exec, file-transfer and tunnel on
	// Linux targets.
	PolicyTargetAccess = "target-access"
	// PolicyProxy grants connections to database and web targets.
	PolicyProxy = "proxy"
	// PolicyKubernetes grants kubectl access with impersonated users and
	// groups.
	PolicyKubernetes = "kubernetes"
	// PolicySessionRecording says what is recorded for its subjects.
	PolicySessionRecording = "session-recording"
	// PolicyJIT lets its subjects request the child policies for a while.
	PolicyJIT = "jit"
)

// Values of a session-recording policy's on_failure.
const (
	OnFailureTerminate = "terminate"
	OnFailureContinue  = "continue"
)

// PolicyTypes lists every policy type.
var PolicyTypes = []string{PolicyTargetAccess, PolicyProxy, PolicyKubernetes, PolicySessionRecording, PolicyJIT}

// Actions a target-access policy grants.
const (
	ActionShell        = "shell"
	ActionExec         = "exec"
	ActionFileTransfer = "file-transfer"
	ActionTunnel       = "tunnel"
)

// AllActions lists every action a target-access policy may grant.
var AllActions = []string{ActionShell, ActionExec, ActionFileTransfer, ActionTunnel}

// Subjects says whom a policy is for.
type Subjects struct {
	Users           []string `yaml:"users,omitempty" json:"users,omitempty"`
	Groups          []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	ServiceAccounts []string `yaml:"service_accounts,omitempty" json:"service_accounts,omitempty"`
}

// TargetSelector says which targets a policy covers: a target matches when
// it is named, is in a named environment, or carries all the labels.
type TargetSelector struct {
	Names        []string          `yaml:"names,omitempty" json:"names,omitempty"`
	Environments []string          `yaml:"environments,omitempty" json:"environments,omitempty"`
	Labels       map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// IsZero reports whether the selector names nothing.
func (t TargetSelector) IsZero() bool {
	return len(t.Names)+len(t.Environments)+len(t.Labels) == 0
}

// CommandRules restricts the commands a policy allows. Each entry is an RE2
// pattern or "@operation", matched against every simple command the shell
// would run (argv after quote removal, joined by single spaces).
type CommandRules struct {
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	// Fullscreen names programs (vim, less, top) during which line
	// checking of an interactive session may pause: only while a line
	// that runs one of them is running, and the program has switched the
	// terminal to its alternate screen. Default none: checking never
	// pauses.
	Fullscreen []string `yaml:"fullscreen,omitempty" json:"fullscreen,omitempty"`
	// Uncertain says what becomes of a line typed in an interactive
	// session that the gateway could not reconstruct exactly from the
	// keystrokes (history recall, tab completion, editing keys it does
	// not follow): "deny" (default) refuses it with a message asking to
	// type it out; "allow" judges the reconstruction, which may differ
	// from what the shell runs (best-effort).
	Uncertain string `yaml:"uncertain,omitempty" json:"uncertain,omitempty"`
}

// Values of CommandRules.Uncertain.
const (
	UncertainDeny  = "deny"
	UncertainAllow = "allow"
)

// PathRules limits the files a file-transfer grant may touch on the target:
// globs of internal/pathrule (absolute or under "~/", "**" for any depth).
// A list left out allows nothing of that kind; a policy without paths
// allows every path. Either way writes to protected files (shell start-up
// files, ~/.ssh, authorized_keys*) need an exact entry in Write.
type PathRules struct {
	Read  []string `yaml:"read,omitempty" json:"read,omitempty"`
	Write []string `yaml:"write,omitempty" json:"write,omitempty"`
}

// Duration is a time.Duration written as "30m" or "8h" in YAML and JSON.
type Duration time.Duration

// String formats the duration as Go does ("8h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// IsZero lets omitempty drop an unset duration.
func (d Duration) IsZero() bool { return d == 0 }

func parseDuration(s string) (Duration, error) {
	v, err := duration.Parse(s)
	if err != nil {
		return 0, err
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	if err != nil {
		// A TypeError with the node's line lets the decoder name the field.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText implements encoding.TextUnmarshaler (JSON strings).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Policy grants subjects access to targets. Which fields apply depends on
// Type; see policyFields.
type Policy struct {
	Kind     Kind           `yaml:"kind" json:"kind"`
	Name     string         `yaml:"name" json:"name"`
	Type     string         `yaml:"type" json:"type"`
	Subjects Subjects       `yaml:"subjects" json:"subjects"`
	Targets  TargetSelector `yaml:"targets,omitempty" json:"targets,omitzero"`

	// target-access and proxy
	TargetUsers []string `yaml:"target_users,omitempty" json:"target_users,omitempty"`
	SourceCIDRs []string `yaml:"source_cidrs,omitempty" json:"source_cidrs,omitempty"`

	// target-access
	Actions []string `yaml:"actions,omitempty" json:"actions,omitempty"`
	// Autologin marks script access: no interactive second factor, and
	// only from SourceCIDRs.
	Autologin bool          `yaml:"autologin,omitempty" json:"autologin,omitempty"`
	Commands  *CommandRules `yaml:"commands,omitempty" json:"commands,omitempty"`
	// Paths limits what file-transfer may read and write; nil: all.
	Paths *PathRules `yaml:"paths,omitempty" json:"paths,omitempty"`
	// Tunnels limits where the tunnel action reaches; without it, only
	// the target host itself (TunnelRules).
	Tunnels *TunnelRules `yaml:"tunnels,omitempty" json:"tunnels,omitempty"`
	// RequireMFA asks the subjects a verification code (TOTP) when they
	// connect to a covered target, unless an autologin policy lets them
	// in from where they are (script access has no one to type a code).
	RequireMFA bool `yaml:"require_mfa,omitempty" json:"require_mfa,omitempty"`
	// ValidFrom and ValidUntil bound when the policy applies.
	ValidFrom  *time.Time `yaml:"valid_from,omitempty" json:"valid_from,omitempty"`
	ValidUntil *time.Time `yaml:"valid_until,omitempty" json:"valid_until,omitempty"`
	// MaxSession ends sessions this long after they start; IdleTimeout
	// ends them after this long without data either way.
	MaxSession  Duration `yaml:"max_session,omitempty" json:"max_session,omitzero"`
	IdleTimeout Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitzero"`
	// Provision lets the gateway create the subject's own login
	// ({username}, which target_users must list) on a target with a
	// provision_account, the first time the subject connects and the
	// login does not exist there.
	Provision bool `yaml:"provision,omitempty" json:"provision,omitempty"`
	// Sudoers, with provision, is the rest of a sudoers line for a
	// provisioned login ("ALL=(ALL) NOPASSWD: ALL"); the gateway writes
	// "NAME SUDOERS" to /etc/sudoers.d/portcullis-NAME after visudo -c
	// accepts it.
	Sudoers string `yaml:"sudoers,omitempty" json:"sudoers,omitempty"`

	// proxy: the databases of a postgres target the subjects may open
	// ("*": any). Left out: any database, as PostgreSQL's own CONNECT
	// privilege of the target user allows (policies written before this
	// field keep meaning what they meant). commands.deny and commands.allow apply to each SQL
	// statement (best-effort: see package pgproxy).
	Databases []string `yaml:"databases,omitempty" json:"databases,omitempty"`
	// proxy, for http targets: the operations and objects granted (see
	// HTTPGrant).
	HTTPGrant `yaml:",inline"`

	// kubernetes
	ClusterUsers  []string `yaml:"cluster_users,omitempty" json:"cluster_users,omitempty"`
	ClusterGroups []string `yaml:"cluster_groups,omitempty" json:"cluster_groups,omitempty"`
	// KubeRules narrow the requests a kubernetes policy grants (see
	// KubeRule); none: every request.
	KubeRules []KubeRule `yaml:"rules,omitempty" json:"rules,omitempty"`

	// session-recording: stdout is always recorded; input only when set.
	RecordInput bool `yaml:"record_input,omitempty" json:"record_input,omitempty"`
	// OnFailure says what happens to a session whose recording cannot be
	// written: "terminate" (the default) ends it, "continue" lets it run
	// unrecorded. The failure is audited either way.
	OnFailure string `yaml:"on_failure,omitempty" json:"on_failure,omitempty"`

	// jit: the subjects may request, for a while, what the child
	// policies (target-access, proxy, kubernetes) grant. Duration is the
	// default length of a grant and MaxDuration the longest a request may
	// ask (default: Duration); both in whole minutes, at most 14 days.
	// Approvers may approve requests (never their own); with AutoApprove
	// the gateway approves them at once. RequireReason refuses a request
	// without a reason.
	ChildPolicies []string   `yaml:"child_policies,omitempty" json:"child_policies,omitempty"`
	Duration      Duration   `yaml:"duration,omitempty" json:"duration,omitzero"`
	MaxDuration   Duration   `yaml:"max_duration,omitempty" json:"max_duration,omitzero"`
	AutoApprove   bool       `yaml:"auto_approve,omitempty" json:"auto_approve,omitempty"`
	Approvers     *Approvers `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	RequireReason bool       `yaml:"require_reason,omitempty" json:"require_reason,omitempty"`

	// JITGrant marks a policy the gateway created for an approved
	// just-in-time request; only such policies are named JIT-xxxxxxxx.
	JITGrant *JITGrant `yaml:"jit_grant,omitempty" json:"jit_grant,omitempty"`
}

// Approvers names who may approve a jit policy's requests.
type Approvers struct {
	Users  []string `yaml:"users,omitempty" json:"users,omitempty"`
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"`
}

// JITGrant says which request a JIT-xxxxxxxx policy grants, and how it was
// approved: the policy engine orders JIT grants by it (manual before
// automatic, then the shortest duration).
type JITGrant struct {
	Request   string   `yaml:"request" json:"request"`
	JITPolicy string   `yaml:"jit_policy" json:"jit_policy"`
	Approval  string   `yaml:"approval" json:"approval"` // manual or auto
	Duration  Duration `yaml:"duration" json:"duration"`
}

// Values of JITGrant.Approval.
const (
	ApprovalManual = "manual"
	ApprovalAuto   = "auto"
)

// MaxJITDuration is the longest a jit grant may last.
const MaxJITDuration = 14 * 24 * time.Hour

// JITGrantPrefix starts the name of every policy the gateway creates for
// an approved request, and of no other.
const JITGrantPrefix = "JIT-"

// IsJITGrantName reports whether name is reserved for a JIT grant.
func IsJITGrantName(name string) bool {
	return strings.HasPrefix(strings.ToUpper(name), JITGrantPrefix)
}

// GetKind implements Object.
func (p *Policy) GetKind() Kind { return KindPolicy }

// GetName implements Object.
func (p *Policy) GetName() string { return p.Name }

// policyFields lists, per type, the optional fields it uses; every other
// optional field set on a policy of that type is an error.
var policyFields = map[string][]string{
	PolicyTargetAccess:     {"targets", "target_users", "actions", "source_cidrs", "autologin", "commands", "paths", "require_mfa", "valid_from", "valid_until", "max_session", "idle_timeout", "provision", "sudoers", "tunnels", "jit_grant"},
	PolicyProxy:            {"targets", "target_users", "source_cidrs", "databases", "commands", "require_mfa", "valid_from", "valid_until", "max_session", "idle_timeout", "operations", "objects", "jit_grant"},
	PolicyKubernetes:       {"targets", "cluster_users", "cluster_groups", "rules", "source_cidrs", "valid_from", "valid_until", "jit_grant"},
	PolicySessionRecording: {"targets", "record_input", "on_failure"},
	PolicyJIT:              {"child_policies", "duration", "max_duration", "auto_approve", "approvers", "require_reason"},
}

// setFields lists the optional fields p sets, in a fixed order.
func (p *Policy) setFields() []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("targets", !p.Targets.IsZero())
	add("target_users", len(p.TargetUsers) > 0)
	add("actions", len(p.Actions) > 0)
	add("source_cidrs", len(p.SourceCIDRs) > 0)
	add("autologin", p.Autologin)
	add("commands", p.Commands != nil)
	add("paths", p.Paths != nil)
	add("tunnels", p.Tunnels != nil)
	add("require_mfa", p.RequireMFA)
	add("valid_from", p.ValidFrom != nil)
	add("valid_until", p.ValidUntil != nil)
	add("max_session", p.MaxSession != 0)
	add("idle_timeout", p.IdleTimeout != 0)
	add("provision", p.Provision)
	add("sudoers", p.Sudoers != "")
	add("databases", len(p.Databases) > 0)
	add("operations", len(p.Operations) > 0)
	add("objects", len(p.Objects) > 0)
	add("cluster_users", len(p.ClusterUsers) > 0)
	add("cluster_groups", len(p.ClusterGroups) > 0)
	add("rules", len(p.KubeRules) > 0)
	add("record_input", p.RecordInput)
	add("on_failure", p.OnFailure != "")
	add("child_policies", len(p.ChildPolicies) > 0)
	add("duration", p.Duration != 0)
	add("max_duration", p.MaxDuration != 0)
	add("auto_approve", p.AutoApprove)
	add("approvers", p.Approvers != nil)
	add("require_reason", p.RequireReason)
	add("jit_grant", p.JITGrant != nil)
	return out
}

// Validate implements Object.
func (p *Policy) Validate() error {
	if err := checkName("name", p.Name); err != nil {
		return err
	}
	allowed, ok := policyFields[p.Type]
	switch {
	case p.Type == "":
		return fieldErr("type", "is required (%s)", strings.Join(PolicyTypes, ", "))
	case !ok:
		return fieldErr("type", "unknown policy type %q (want %s)", p.Type, strings.Join(PolicyTypes, ", "))
	}
	for _, f := range p.setFields() {
		if !slices.Contains(allowed, f) {
			return fieldErr(f, "is not used by policy type %s (it uses %s)", p.Type, strings.Join(allowed, ", "))
		}
	}
	if err := p.validateSubjects(); err != nil {
		return err
	}
	if err := p.validateJITGrant(); err != nil {
		return err
	}
	if p.Type != PolicyJIT {
		if p.Targets.IsZero() {
			return fieldErr("targets", "names no targets, environments or labels")
		}
		if err := checkNames("targets.names", p.Targets.Names); err != nil {
			return err
		}
		if err := checkNames("targets.environments", p.Targets.Environments); err != nil {
			return err
		}
		if err := checkLabels("targets.labels", p.Targets.Labels); err != nil {
			return err
		}
	}
	switch p.Type {
	case PolicyTargetAccess:
		return p.validateTargetAccess()
	case PolicyProxy:
		return p.validateProxy()
	case PolicyKubernetes:
		return p.validateKubernetes()
	case PolicySessionRecording:
		switch p.OnFailure {
		case "", OnFailureTerminate, OnFailureContinue:
		default:
			return fieldErr("on_failure", "%q is not valid (want terminate or continue)", p.OnFailure)
		}
	case PolicyJIT:
		if len(p.ChildPolicies) == 0 {
			return fieldErr("child_policies", "a jit policy needs at least one child policy")
		}
		if err := checkNames("child_policies", p.ChildPolicies); err != nil {
			return err
		}
		if slices.Contains(p.ChildPolicies, p.Name) {
			return fieldErr("child_policies", "a jit policy cannot grant itself")
		}
		if p.Duration == 0 {
			return fieldErr("duration", "is required (how long granted access lasts, e.g. 1h)")
		}
		if err := checkJITDuration("duration", p.Duration); err != nil {
			return err
		}
		if p.MaxDuration != 0 {
			if err := checkJITDuration("max_duration", p.MaxDuration); err != nil {
				return err
			}
			if p.MaxDuration < p.Duration {
				return fieldErr("max_duration", "%s is shorter than duration %s", p.MaxDuration.Std(), p.Duration.Std())
			}
		}
		if p.Approvers != nil {
			if err := checkNames("approvers.users", p.Approvers.Users); err != nil {
				return err
			}
			if err := checkNames("approvers.groups", p.Approvers.Groups); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkJITDuration keeps a jit duration in whole minutes (the seed sets it
// "in increments of hours or minutes") and at most MaxJITDuration.
func checkJITDuration(field string, d Duration) error {
	switch {
	case d.Std()%time.Minute != 0:
		return fieldErr(field, "%s is not a whole number of minutes", d.Std())
	case d.Std() > MaxJITDuration:
		return fieldErr(field, "%s is longer than 14 days", d.Std())
	}
	return nil
}

// MaxGrant returns the longest grant a jit policy allows.
func (p *Policy) MaxGrant() time.Duration {
	if p.MaxDuration != 0 {
		return p.MaxDuration.Std()
	}
	return p.Duration.Std()
}

// validateJITGrant keeps the JIT- names for the gateway's grants: a grant
// names its request and how it was approved, and ends (valid_until).
func (p *Policy) validateJITGrant() error {
	reserved := IsJITGrantName(p.Name)
	switch {
	case p.JITGrant == nil && reserved:
		return fieldErr("name", "names starting with %s are reserved for the policies the gateway creates for approved just-in-time requests", JITGrantPrefix)
	case p.JITGrant == nil:
		return nil
	case !reserved:
		return fieldErr("jit_grant", "is set only on the gateway's %sxxxxxxxx policies", JITGrantPrefix)
	case p.ValidUntil == nil:
		return fieldErr("valid_until", "a JIT grant must end")
	case p.JITGrant.Approval != ApprovalManual && p.JITGrant.Approval != ApprovalAuto:
		return fieldErr("jit_grant.approval", "%q is not valid (want manual or auto)", p.JITGrant.Approval)
	case p.JITGrant.Request == "":
		return fieldErr("jit_grant.request", "is required")
	}
	return nil
}

func (p *Policy) validateSubjects() error {
	if err := checkNames("subjects.users", p.Subjects.Users); err != nil {
		return err
	}
	if err := checkNames("subjects.groups", p.Subjects.Groups); err != nil {
		return err
	}
	if err := checkNames("subjects.service_accounts", p.Subjects.ServiceAccounts); err != nil {
		return err
	}
	if len(p.Subjects.Users)+len(p.Subjects.Groups)+len(p.Subjects.ServiceAccounts) == 0 {
		return fieldErr("subjects", "names no users, groups or service accounts")
	}
	return nil
}

func (p *Policy) validateTargetUsers() error {
	if len(p.TargetUsers) == 0 {
		return fieldErr("target_users", "at least one target user is required")
	}
	for i, u := range p.TargetUsers {
		if u != "{username}" && !ValidTargetUser(u) {
			return fieldErr(fmt.Sprintf("target_users[%d]", i), "%q is not a login name or {username}", u)
		}
	}
	return nil
}

func (p *Policy) validateCIDRs() error {
	for i, c := range p.SourceCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fieldErr(fmt.Sprintf("source_cidrs[%d]", i), "%q is not a CIDR: %v", c, err)
		}
	}
	return nil
}

// databasePattern is what PostgreSQL takes as a database name without
// quoting, plus "*" for any.
var databasePattern = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$-]{0,62}|\*)$`)

func (p *Policy) validateProxy() error {
	if err := p.validateHTTPGrant(); err != nil {
		return err
	}
	// A policy granting http operations needs no target users: the
	// gateway calls a web API as the target's service account.
	if len(p.Operations) == 0 || len(p.TargetUsers) > 0 {
		if err := p.validateTargetUsers(); err != nil {
			return err
		}
	}
	if err := p.validateCIDRs(); err != nil {
		return err
	}
	for i, d := range p.Databases {
		if !databasePattern.MatchString(d) {
			return fieldErr(fmt.Sprintf("databases[%d]", i), "%q is not a database name or *", d)
		}
	}
	if p.ValidFrom != nil && p.ValidUntil != nil && !p.ValidUntil.After(*p.ValidFrom) {
		return fieldErr("valid_until", "%s is not after valid_from %s", p.ValidUntil.Format(time.RFC3339), p.ValidFrom.Format(time.RFC3339))
	}
	if p.Commands == nil {
		return nil
	}
	if len(p.Commands.Fullscreen) > 0 || p.Commands.Uncertain != "" {
		return fieldErr("commands", "fullscreen and uncertain are for shell sessions; a proxy policy has allow and deny")
	}
	if len(p.Commands.Allow)+len(p.Commands.Deny) == 0 {
		return fieldErr("commands", "has neither allow nor deny")
	}
	return p.validatePatterns()
}

// validatePatterns checks commands.allow and commands.deny: RE2 patterns or
// "@operation".
func (p *Policy) validatePatterns() error {
	for _, rules := range []struct {
		field string
		list  []string
	}{{"commands.allow", p.Commands.Allow}, {"commands.deny", p.Commands.Deny}} {
		for i, pat := range rules.list {
			f := fmt.Sprintf("%s[%d]", rules.field, i)
			if op, ok := strings.CutPrefix(pat, "@"); ok {
				if err := checkName(f, op); err != nil {
					return err
				}
				continue
			}
			if _, err := regexp.Compile(pat); err != nil {
				return fieldErr(f, "bad regular expression: %v", err)
			}
		}
	}
	return nil
}

func (p *Policy) validateTargetAccess() error {
	if err := p.validateTargetUsers(); err != nil {
		return err
	}
	if len(p.Actions) == 0 {
		return fieldErr("actions", "at least one action is required (%s)", strings.Join(AllActions, ", "))
	}
	for i, a := range p.Actions {
		if !slices.Contains(AllActions, a) {
			return fieldErr(fmt.Sprintf("actions[%d]", i), "unknown action %q (want %s)", a, strings.Join(AllActions, ", "))
		}
	}
	if err := p.validateCIDRs(); err != nil {
		return err
	}
	if p.Autologin && len(p.SourceCIDRs) == 0 {
		return fieldErr("autologin", "autologin needs source_cidrs")
	}
	if p.Autologin && p.RequireMFA {
		// Autologin means nobody types a code: one policy cannot say both.
		return fieldErr("require_mfa", "cannot be set with autologin (script access answers no verification code); write two policies")
	}
	if p.Provision && !slices.Contains(p.TargetUsers, "{username}") {
		return fieldErr("provision", "only the subject's own login is provisioned: target_users must list {username}")
	}
	if p.Sudoers != "" {
		if !p.Provision {
			return fieldErr("sudoers", "is used only with provision: true")
		}
		if !ValidSudoers(p.Sudoers) {
			return fieldErr("sudoers", "%q is not a sudoers rule like \"ALL=(ALL) NOPASSWD: ALL\" (one line of letters, digits, spaces and = ( ) , : ! / * . _ - + @)", p.Sudoers)
		}
	}
	if p.ValidFrom != nil && p.ValidUntil != nil && !p.ValidUntil.After(*p.ValidFrom) {
		return fieldErr("valid_until", "%s is not after valid_from %s", p.ValidUntil.Format(time.RFC3339), p.ValidFrom.Format(time.RFC3339))
	}
	if err := p.validatePaths(); err != nil {
		return err
	}
	if err := p.validateTunnels(); err != nil {
		return err
	}
	if p.Commands != nil {
		if len(p.Commands.Allow)+len(p.Commands.Deny) == 0 {
			return fieldErr("commands", "has neither allow nor deny")
		}
		switch p.Commands.Uncertain {
		case "", UncertainDeny, UncertainAllow:
		default:
			return fieldErr("commands.uncertain", "must be deny or allow")
		}
		for i, name := range p.Commands.Fullscreen {
			// A program name, matched against the base name of what a line
			// runs: a path or a pattern would be a different promise.
			if name == "" || strings.ContainsAny(name, "/ \t\n*?[") {
				return fieldErr(fmt.Sprintf("commands.fullscreen[%d]", i), "must be a program name such as vim (no path, space or pattern)")
			}
		}
		return p.validatePatterns()
	}
	return nil
}

// validatePaths checks paths: it needs file-transfer among the actions and
// at least one glob, each valid.
func (p *Policy) validatePaths() error {
	if p.Paths == nil {
		return nil
	}
	if !slices.Contains(p.Actions, ActionFileTransfer) {
		return fieldErr("paths", "limits file transfers, but actions do not grant %s", ActionFileTransfer)
	}
	if len(p.Paths.Read)+len(p.Paths.Write) == 0 {
		return fieldErr("paths", "has neither read nor write (leave paths out to allow every path)")
	}
	for _, list := range []struct {
		field string
		globs []string
	}{{"paths.read", p.Paths.Read}, {"paths.write", p.Paths.Write}} {
		for i, src := range list.globs {
			if _, err := pathrule.Compile(src); err != nil {
				return fieldErr(fmt.Sprintf("%s[%d]", list.field, i), "glob %v", err)
			}
		}
	}
	return nil
}

// sudoersPattern keeps a sudoers rule to one line of the characters rules
// use: no quotes, '#', '\\' or '$' that a shell or sudoers could read
// differently, and an '=' as every rule has.
var sudoersPattern = regexp.MustCompile(`^[A-Za-z0-9 =(),:!/*._+@-]{1,256}$`)

// ValidSudoers reports whether s may be written after a user name as a
// sudoers rule. visudo -c on the target still checks its grammar.
func ValidSudoers(s string) bool {
	return sudoersPattern.MatchString(s) && strings.Contains(s, "=") && strings.TrimSpace(s) == s
}
