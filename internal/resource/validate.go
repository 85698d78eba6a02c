package resource

import (
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// FieldError is a validation failure in one field of one document.
type FieldError struct {
	Field string // dotted path, e.g. "subjects.users[2]"
	Msg   string
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// namePattern is deliberately narrow: names appear in login strings (where
// '~' separates parts), in URLs and in file names, so none may hold '~', '/'
// or white space.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// unixUserPattern follows what useradd accepts on Debian, minus the trailing
// '$' of machine accounts.
var unixUserPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)

// labelPattern keeps label keys and values simple enough to print and match.
var labelPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})?$`)

// ValidName reports whether s may name a resource.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ValidTargetUser reports whether s may name a login on a target.
func ValidTargetUser(s string) bool { return unixUserPattern.MatchString(s) }

func checkName(field, s string) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if !ValidName(s) {
		return fieldErr(field, "%q is not a valid name (letters, digits, '.', '_', '@', '-'; at most 128; no '~' or '/')", s)
	}
	return nil
}

func checkNames(field string, list []string) error {
	seen := map[string]bool{}
	for i, s := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkName(f, s); err != nil {
			return err
		}
		if seen[s] {
			return fieldErr(f, "%q is listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

func checkLabels(field string, labels map[string]string) error {
	for k, v := range labels {
		if !labelPattern.MatchString(k) {
			return fieldErr(field, "label key %q is not valid", k)
		}
		if !labelPattern.MatchString(v) {
			return fieldErr(field+"."+k, "label value %q is not valid", v)
		}
	}
	return nil
}

// ParseAuthorizedKey parses one public key in authorized_keys format,
// rejecting options and trailing garbage, so that a stored key is always one
// the gateway can use.
func ParseAuthorizedKey(s string) (ssh.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty key")
	}
	if strings.ContainsAny(s, "\n\r") {
		return nil, fmt.Errorf("more than one line")
	}
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not an SSH public key in authorized_keys format: %w", err)
	}
	if len(options) > 0 {
		return nil, fmt.Errorf("options (%s) are not allowed", strings.Join(options, ","))
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("trailing data after the key")
	}
	if !keyTypeAllowed(key.Type()) {
		return nil, fmt.Errorf("key type %s is not accepted (use ssh-ed25519, RSA of 2048 bits or more, or ECDSA)", key.Type())
	}
	if key.Type() == ssh.KeyAlgoRSA {
		if ck, ok := key.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(interface{ Size() int }); ok && rk.Size()*8 < 2048 {
				return nil, fmt.Errorf("RSA key of %d bits is too short (at least 2048)", rk.Size()*8)
			}
		}
	}
	return key, nil
}

func keyTypeAllowed(t string) bool {
	switch t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return true
	}
	return false
}

func checkKeys(field string, keys []string) error {
	seen := map[string]bool{}
	for i, k := range keys {
		f := fmt.Sprintf("%s[%d]", field, i)
		pk, err := ParseAuthorizedKey(k)
		if err != nil {
			return fieldErr(f, "%v", err)
		}
		fp := ssh.FingerprintSHA256(pk)
		if seen[fp] {
			return fieldErr(f, "key %s is listed twice", fp)
		}
		seen[fp] = true
	}
	return nil
}

// Validate implements Object.
func (u *User) Validate() error {
	if err := checkName("name", u.Name); err != nil {
		return err
	}
	if u.Email != "" {
		at := strings.IndexByte(u.Email, '@')
		if at <= 0 || at == len(u.Email)-1 || strings.ContainsAny(u.Email, " \t~/") {
			return fieldErr("email", "%q is not an email address", u.Email)
		}
	}
	if err := checkNames("groups", u.Groups); err != nil {
		return err
	}
	if err := checkKeys("ssh_keys", u.SSHKeys); err != nil {
		return err
	}
	for i, r := range u.Roles {
		if r != RoleAdmin && r != RoleAuditor {
			return fieldErr(fmt.Sprintf("roles[%d]", i), "unknown role %q (want admin or auditor)", r)
		}
	}
	if u.MFA != "" && u.MFA != "required" {
		return fieldErr("mfa", "%q is not valid (want \"required\" or nothing)", u.MFA)
	}
	if u.Source != "" && u.Source != SourceLDAP && u.Source != SourceOIDC {
		return fieldErr("source", "%q is not valid (want ldap or oidc, set by the gateway, or nothing)", u.Source)
	}
	if (u.OIDCIssuer == "") != (u.OIDCSubject == "") {
		return fieldErr("oidc_subject", "oidc_issuer and oidc_subject go together")
	}
	if u.Source == SourceOIDC && u.OIDCSubject == "" {
		return fieldErr("oidc_subject", "is required on a user with source oidc")
	}
	if len(u.OIDCIssuer) > 1024 || len(u.OIDCSubject) > 255 {
		return fieldErr("oidc_subject", "issuer or subject too long")
	}
	return nil
}

// Validate implements Object.
func (s *ServiceAccount) Validate() error {
	if err := checkName("name", s.Name); err != nil {
		return err
	}
	if s.Owner != "" {
		if err := checkName("owner", strings.TrimPrefix(s.Owner, "group:")); err != nil {
			return err
		}
	}
	return checkKeys("ssh_keys", s.SSHKeys)
}

// Validate implements Object.
func (g *Group) Validate() error {
	if err := checkName("name", g.Name); err != nil {
		return err
	}
	return checkNames("members", g.Members)
}

// Validate implements Object.
func (t *Target) Validate() error {
	if err := checkName("name", t.Name); err != nil {
		return err
	}
	switch t.Protocol {
	case ProtocolHTTP:
		return t.validateHTTP()
	case ProtocolKubernetes:
		return t.validateKubernetes()
	}
	if !t.HTTP.isZero() {
		return fieldErr("url", "url, tls_pin_sha256, credential, catalog and rules are for protocol: http and kubernetes targets only")
	}
	switch t.Via {
	case "":
		if err := checkAddress("address", t.Address); err != nil {
			return err
		}
	case ViaAgent:
		// The agent dials out: an address, if given, only says where it
		// forwards to.
		if t.Protocol != "" && t.Protocol != ProtocolSSH {
			return fieldErr("via", "agent is for ssh targets")
		}
		if t.Address != "" {
			if err := checkAddress("address", t.Address); err != nil {
				return err
			}
		}
	default:
		return fieldErr("via", "%q is not valid (want agent, or nothing for a target the gateway dials)", t.Via)
	}
	if t.HostKey != "" {
		if _, err := ParseAuthorizedKey(t.HostKey); err != nil {
			return fieldErr("host_key", "%v", err)
		}
	}
	if err := checkLabels("labels", t.Labels); err != nil {
		return err
	}
	switch t.Auth {
	case "", AuthKey, AuthCertificate:
	default:
		return fieldErr("auth", "%q is not valid (want key or certificate)", t.Auth)
	}
	if t.ProvisionAccount != "" && !ValidTargetUser(t.ProvisionAccount) {
		return fieldErr("provision_account", "%q is not a valid login name on a target", t.ProvisionAccount)
	}
	switch t.Protocol {
	case "", ProtocolSSH:
		if t.TLSMode != "" || t.TLSCA != "" {
			return fieldErr("tls_mode", "is for protocol: postgres targets only")
		}
		return nil
	case ProtocolPostgres:
	default:
		return fieldErr("protocol", "%q is not valid (want ssh, postgres, http or kubernetes)", t.Protocol)
	}
	// A misplaced SSH field would silently do nothing on a database.
	switch {
	case t.HostKey != "":
		return fieldErr("host_key", "is for ssh targets; a postgres target is checked by tls_mode and tls_ca")
	case t.Auth != "":
		return fieldErr("auth", "is for ssh targets; a postgres target's accounts hold a password")
	case t.ProvisionAccount != "":
		return fieldErr("provision_account", "is for ssh targets")
	}
	switch t.TLSMode {
	case "", TLSVerifyFull, TLSVerifyCA, TLSRequire, TLSDisable:
	default:
		return fieldErr("tls_mode", "%q is not valid (want verify-full, verify-ca, require or disable)", t.TLSMode)
	}
	if t.TLSCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.TLSCA)) {
			return fieldErr("tls_ca", "holds no PEM certificate")
		}
		if t.TLSMode == TLSRequire || t.TLSMode == TLSDisable {
			return fieldErr("tls_ca", "is not used with tls_mode %s (use verify-full or verify-ca)", t.TLSMode)
		}
	}
	return nil
}

func checkAddress(field, addr string) error {
	if addr == "" {
		return fieldErr(field, "is required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fieldErr(field, "%q is not host:port: %v", addr, err)
	}
	if host == "" || strings.ContainsAny(host, " \t/~") {
		return fieldErr(field, "%q has no valid host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fieldErr(field, "%q has no valid port (1-65535)", addr)
	}
	return nil
}

// Validate implements Object.
func (e *Environment) Validate() error {
	if err := checkName("name", e.Name); err != nil {
		return err
	}
	if len(e.Targets) == 0 && len(e.Selector) == 0 {
		return fieldErr("targets", "an environment needs targets, a selector, or both")
	}
	if err := checkNames("targets", e.Targets); err != nil {
		return err
	}
	return checkLabels("selector", e.Selector)
}

// MinRotateEvery is the shortest rotate_every an Account may ask for.
const MinRotateEvery = time.Hour

// Validate implements Object.
func (a *Account) Validate() error {
	if a.Name == "" {
		return fieldErr("name", "is required")
	}
	if !ValidTargetUser(a.Name) {
		return fieldErr("name", "%q is not a valid login name on a target", a.Name)
	}
	if err := checkName("target", a.Target); err != nil {
		return err
	}
	if a.Password != "" || a.PasswordFile != "" {
		if a.PrivateKey != "" || a.PrivateKeyFile != "" {
			return fieldErr("password_file", "an account holds a key or a password, not both")
		}
		if a.RotateEvery != 0 || a.LockPassword {
			return fieldErr("password_file", "a database password is not rotated by the gateway (rotate_every and lock_password are for SSH keys)")
		}
	}
	if len(a.Password) > 1024 || strings.ContainsAny(a.Password, "\x00\r\n") {
		return fieldErr("password_file", "the password must be one line of at most 1024 bytes")
	}
	if a.PrivateKey != "" {
		if _, err := ssh.ParseRawPrivateKey([]byte(a.PrivateKey)); err != nil {
			return fieldErr("private_key_file", "not an unencrypted SSH private key: %v", err)
		}
	}
	// Shorter periods would have every gateway rewriting the target's
	// authorized_keys all the time for no gain.
	if a.RotateEvery != 0 && a.RotateEvery.Std() < MinRotateEvery {
		return fieldErr("rotate_every", "%s is too short (at least %s)", a.RotateEvery, MinRotateEvery)
	}
	return nil
}

// Validate implements Object.
func (o *Operation) Validate() error {
	if err := checkName("name", o.Name); err != nil {
		return err
	}
	if len(o.Patterns) == 0 {
		return fieldErr("patterns", "at least one pattern is required")
	}
	for i, p := range o.Patterns {
		if _, err := regexp.Compile(p); err != nil {
			return fieldErr(fmt.Sprintf("patterns[%d]", i), "bad regular expression: %v", err)
		}
	}
	return nil
}
