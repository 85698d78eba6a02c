package resource

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// HTTP is what a protocol: http Target adds: where the web API is, how its
// TLS certificate is checked, the service-account credential the gateway
// calls it with, and how requests map to operations (package httpproxy).
type HTTP struct {
	// URL is the upstream's base URL (https://vc1.example:443). Requests
	// reach it with their path appended to the URL's path.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// TLSPinSHA256 is the hex SHA-256 of the upstream's leaf certificate
	// (DER): when set, the certificate must be exactly that one and no
	// chain or name is checked (a self-signed ESXi host). Otherwise it
	// must chain to TLSCA (or the system roots) and name the URL's host.
	TLSPinSHA256 string `yaml:"tls_pin_sha256,omitempty" json:"tls_pin_sha256,omitempty"`
	// Credential is the service account the gateway calls the upstream
	// with; users never see it.
	Credential *HTTPCredential `yaml:"credential,omitempty" json:"credential,omitempty"`
	// Catalog names a shipped operation catalogue: "vsphere" maps the
	// vSphere SOAP API at /sdk (and the REST session call) to operations
	// such as vm.power_on. Empty: only Rules map requests.
	Catalog string `yaml:"catalog,omitempty" json:"catalog,omitempty"`
	// Rules map REST requests to an operation and an object; the first
	// rule that matches wins. A request no rule (or catalogue entry) maps
	// is denied.
	Rules []HTTPRule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

func (h *HTTP) isZero() bool {
	return h.URL == "" && h.TLSPinSHA256 == "" && h.Credential == nil && h.Catalog == "" && len(h.Rules) == 0
}

// IsHTTP reports whether the target is a web API reached through the
// HTTP front.
func (t *Target) IsHTTP() bool { return t.Protocol == ProtocolHTTP }

// HTTPCredential is a service-account credential for an http target. Its
// secret (password or token) is the password of an Account on the target,
// sealed by the gateway like a database password and never shown.
type HTTPCredential struct {
	// Type is basic, bearer, vsphere-soap (SessionManager.Login, then the
	// vmware_soap_session cookie) or vsphere-rest (POST
	// /rest/com/vmware/cis/session, then vmware-api-session-id).
	Type string `yaml:"type" json:"type"`
	// Account names the Account on this target whose password holds the
	// secret.
	Account string `yaml:"account" json:"account"`
	// Username is the user name sent with the secret (not for bearer).
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
}

// Credential types of an http target.
const (
	CredentialBasic       = "basic"
	CredentialBearer      = "bearer"
	CredentialVSphereSOAP = "vsphere-soap"
	CredentialVSphereREST = "vsphere-rest"
)

// CatalogVSphere is the shipped vSphere operation catalogue.
const CatalogVSphere = "vsphere"

// HTTPRule maps requests to an operation on an object, e.g.
// {method: POST, path: "/api/vcenter/vm/{vm}/power", query: {action:
// start}, operation: vm.power_on, object: {type: VirtualMachine, from:
// path, name: vm}}.
type HTTPRule struct {
	// Method is the HTTP method; empty: any.
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	// Path is matched segment by segment against the normalised request
	// path; a segment {name} matches any one segment and names it, a
	// last segment {name...} matches the rest.
	Path string `yaml:"path" json:"path"`
	// Query lists query parameters that must have exactly these values.
	Query map[string]string `yaml:"query,omitempty" json:"query,omitempty"`
	// Operation is the operation name the request is, e.g. vm.power_on.
	Operation string `yaml:"operation" json:"operation"`
	// Object says where the object the request acts on comes from; nil:
	// the request has no object ("" in policies' object patterns).
	Object *HTTPObject `yaml:"object,omitempty" json:"object,omitempty"`
}

// HTTPObject locates a request's object.
type HTTPObject struct {
	// Type is the object's type, e.g. VirtualMachine: objects are
	// written TYPE:ID in policies.
	Type string `yaml:"type" json:"type"`
	// From is path (a path variable), query (a query parameter) or json
	// (a JSON pointer into the request body).
	From string `yaml:"from" json:"from"`
	// Name is the variable, parameter or JSON pointer (/spec/vm).
	Name string `yaml:"name" json:"name"`
}

// HTTPGrant is what a proxy policy grants on http targets.
type HTTPGrant struct {
	// Operations are the operation names granted ("*": any mapped
	// operation). A proxy policy without operations grants no request on
	// an http target.
	Operations []string `yaml:"operations,omitempty" json:"operations,omitempty"`
	// Objects are patterns of TYPE:ID ("VirtualMachine:vm-4*"; '*'
	// matches any run of characters) the operations are granted on.
	// Empty: any object.
	Objects []string `yaml:"objects,omitempty" json:"objects,omitempty"`
}

// operationPattern is an operation name: dotted words, or "*".
var operationPattern = regexp.MustCompile(`^([a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*|\*)$`)

// ValidOperationName reports whether s is an HTTP operation name.
func ValidOperationName(s string) bool {
	return len(s) <= 128 && operationPattern.MatchString(s) && s != "*"
}

func (p *Policy) validateHTTPGrant() error {
	for i, op := range p.Operations {
		if !operationPattern.MatchString(op) || len(op) > 128 {
			return fieldErr(fmt.Sprintf("operations[%d]", i), "%q is not an operation name (dotted lower-case words, or *)", op)
		}
	}
	for i, o := range p.Objects {
		typ, id, ok := strings.Cut(o, ":")
		if o != "*" && (!ok || typ == "" || id == "" || len(o) > 512 || strings.ContainsAny(o, " \t\r\n")) {
			return fieldErr(fmt.Sprintf("objects[%d]", i), "%q is not an object pattern (TYPE:ID, '*' as a wildcard)", o)
		}
	}
	if len(p.Objects) > 0 && len(p.Operations) == 0 {
		return fieldErr("objects", "objects narrow operations: list the operations too")
	}
	return nil
}

func (t *Target) validateHTTP() error {
	switch {
	case t.HostKey != "":
		return fieldErr("host_key", "is for ssh targets; an http target is checked by tls_ca or tls_pin_sha256")
	case t.Auth != "":
		return fieldErr("auth", "is for ssh targets; an http target uses credential")
	case t.ProvisionAccount != "":
		return fieldErr("provision_account", "is for ssh targets")
	case t.TLSMode != "":
		return fieldErr("tls_mode", "is for postgres targets; an http target always checks TLS (tls_ca or tls_pin_sha256)")
	}
	if err := checkLabels("labels", t.Labels); err != nil {
		return err
	}
	u, err := url.Parse(t.URL)
	switch {
	case t.URL == "":
		return fieldErr("url", "is required for an http target (https://HOST[:PORT][/PATH])")
	case err != nil:
		return fieldErr("url", "%q is not a URL: %v", t.URL, err)
	case u.Scheme != "https":
		return fieldErr("url", "%q: only https upstreams are supported", t.URL)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fieldErr("url", "%q must be https://HOST[:PORT][/PATH], with no user, query or fragment", t.URL)
	}
	if t.Address != "" {
		if err := checkAddress("address", t.Address); err != nil {
			return err
		}
	}
	if err := t.validateTLS(); err != nil {
		return err
	}
	if c := t.Credential; c != nil {
		switch c.Type {
		case CredentialBasic, CredentialVSphereSOAP, CredentialVSphereREST:
			if c.Username == "" || strings.ContainsAny(c.Username, "\x00\r\n:") && c.Type == CredentialBasic {
				return fieldErr("credential.username", "is required (no ':' or line breaks for basic)")
			}
		case CredentialBearer:
			if c.Username != "" {
				return fieldErr("credential.username", "is not used with a bearer token")
			}
		default:
			return fieldErr("credential.type", "%q is not valid (want basic, bearer, vsphere-soap or vsphere-rest)", c.Type)
		}
		if !ValidTargetUser(c.Account) {
			return fieldErr("credential.account", "%q is not an account name on this target", c.Account)
		}
	}
	switch t.Catalog {
	case "", CatalogVSphere:
	default:
		return fieldErr("catalog", "%q is not a known catalogue (want vsphere)", t.Catalog)
	}
	for i, r := range t.Rules {
		if err := r.validate(); err != nil {
			return fieldErr(fmt.Sprintf("rules[%d]", i), "%v", err)
		}
	}
	return nil
}

// validateTLS checks how an upstream's certificate is checked: tls_ca
// and tls_pin_sha256 (package tlspin).
func (t *Target) validateTLS() error {
	if t.TLSCA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(t.TLSCA)) {
		return fieldErr("tls_ca", "holds no PEM certificate")
	}
	if t.TLSPinSHA256 != "" {
		if b, err := hex.DecodeString(t.TLSPinSHA256); err != nil || len(b) != 32 {
			return fieldErr("tls_pin_sha256", "must be 64 hex digits (the SHA-256 of the certificate's DER)")
		}
	}
	return nil
}

var pathVar = regexp.MustCompile(`^\{[A-Za-z_][A-Za-z0-9_]*(\.\.\.)?\}$`)

func (r *HTTPRule) validate() error {
	if r.Method != "" && !regexp.MustCompile(`^[A-Z]+$`).MatchString(r.Method) {
		return fmt.Errorf("method %q is not an upper-case HTTP method", r.Method)
	}
	if !strings.HasPrefix(r.Path, "/") {
		return fmt.Errorf("path %q must start with /", r.Path)
	}
	vars := map[string]bool{}
	segs := strings.Split(r.Path[1:], "/")
	for i, seg := range segs {
		if strings.ContainsAny(seg, "{}") {
			if !pathVar.MatchString(seg) {
				return fmt.Errorf("path segment %q: a variable is a whole segment {name}", seg)
			}
			if strings.HasSuffix(seg, "...}") && i != len(segs)-1 {
				return fmt.Errorf("path segment %q: {name...} must be last", seg)
			}
			vars[strings.TrimSuffix(strings.Trim(seg, "{}"), "...")] = true
		}
		if seg == "." || seg == ".." || strings.ContainsAny(seg, ";%") {
			return fmt.Errorf("path segment %q is not a plain segment", seg)
		}
	}
	if !ValidOperationName(r.Operation) {
		return fmt.Errorf("operation %q is not an operation name (dotted lower-case words)", r.Operation)
	}
	if o := r.Object; o != nil {
		if !ValidName(o.Type) || strings.Contains(o.Type, ":") {
			return fmt.Errorf("object.type %q is not a type name", o.Type)
		}
		switch o.From {
		case "path":
			if !vars[o.Name] {
				return fmt.Errorf("object.name %q is no variable of path %q", o.Name, r.Path)
			}
		case "query":
			if o.Name == "" {
				return fmt.Errorf("object.name is required (the query parameter)")
			}
		case "json":
			if !strings.HasPrefix(o.Name, "/") {
				return fmt.Errorf("object.name %q is not a JSON pointer (/field/sub)", o.Name)
			}
		default:
			return fmt.Errorf("object.from %q is not valid (want path, query or json)", o.From)
		}
	}
	return nil
}

// UpstreamSpec fingerprints what of an http or kubernetes target a front
// builds its upstream client from (URL, TLS pin or CA, credential
// reference, rules): a front keeps its client while the fingerprint stays
// and builds a new one when a change of the target moves it.
func (t *Target) UpstreamSpec() string {
	b, _ := json.Marshal(struct {
		H  HTTP
		CA string
	}{t.HTTP, t.TLSCA})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
