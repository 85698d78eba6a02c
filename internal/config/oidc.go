package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// OIDC is the `oidc:` section: single sign-on with an OpenID Connect
// provider, for the web console (authorization code flow with PKCE) and,
// when the provider is reachable from people's browsers, for SSH logins
// of users without a registered key.
//
// A provider account signs in as the User resource linked to its (issuer,
// subject) pair, never by email or name alone: the gateway sets the
// User's oidc_issuer and oidc_subject when it creates the user, and an
// admin may set them on a local User to link an existing account. With
// CreateUsers, an account with no linked User gets a new User (source
// oidc) on its first sign-in, named after UsernameClaim; if that name is
// taken by any other user the sign-in is refused, so that a second
// provider account with the same name or email never becomes the first.
// Without CreateUsers, only linked users sign in.
type OIDC struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document and ID tokens state it (https://, or http:// for a
	// loopback test provider).
	Issuer string `yaml:"issuer"`
	// ClientID is the gateway's client at the provider, and the audience
	// every ID token must name.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret (trailing newline
	// ignored); empty for a public client, which PKCE alone protects.
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is the console's callback as registered at the
	// provider: https://HOST:8443/ui/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked; default openid, email, profile. openid is added when
	// missing.
	Scopes StringList `yaml:"scopes"`
	// GroupsClaim names the ID token claim listing the user's groups;
	// default "groups". The groups are used by SSH policies (SSO logins);
	// the console goes by roles alone.
	GroupsClaim string `yaml:"groups_claim"`
	// UsernameClaim names the claim a created user is named after;
	// default "preferred_username".
	UsernameClaim string `yaml:"username_claim"`
	// CreateUsers creates a User (source oidc) for an account with no
	// linked User on its first sign-in; default false.
	CreateUsers bool `yaml:"create_users"`
	// Timeout bounds each request to the provider (discovery, keys, code
	// exchange); default 10s. A provider slower than this fails the
	// sign-in with a clear message.
	Timeout Duration `yaml:"timeout"`
	// SSOCache is how long a finished SSH single sign-on lets the same
	// user connect again without a browser; default 0 (every connection
	// asks).
	SSOCache Duration `yaml:"sso_cache"`
}

// UnmarshalYAML implements yaml.Unmarshaler: defaults first, then the
// file's values, and unknown keys refused (Node.Decode does not inherit
// the strict decoder's check).
func (o *OIDC) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: oidc: want a mapping", n.Line)
	}
	known := map[string]bool{}
	rt := reflect.TypeFor[OIDC]()
	for i := range rt.NumField() {
		known[rt.Field(i).Tag.Get("yaml")] = true
	}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i]; !known[k.Value] {
			return fmt.Errorf("line %d: oidc: unknown key %q", k.Line, k.Value)
		}
	}
	type plain OIDC // without this method, so Decode does not recurse
	p := plain{
		Scopes:        StringList{"openid", "email", "profile"},
		GroupsClaim:   "groups",
		UsernameClaim: "preferred_username",
		Timeout:       Duration(10 * time.Second),
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	if !slices.Contains(p.Scopes, "openid") {
		p.Scopes = append(StringList{"openid"}, p.Scopes...)
	}
	*o = OIDC(p)
	return nil
}

// validate checks the section; each error names the key.
func (o *OIDC) validate() error {
	iss, err := url.Parse(o.Issuer)
	if o.Issuer == "" || err != nil || iss.Host == "" || (iss.Scheme != "https" && !(iss.Scheme == "http" && loopbackHost(iss.Hostname()))) {
		return fmt.Errorf("oidc.issuer: %q is not an https:// URL (http:// only on loopback)", o.Issuer)
	}
	red, err := url.Parse(o.RedirectURL)
	switch {
	case o.ClientID == "":
		return fmt.Errorf("oidc.client_id: is required")
	case o.RedirectURL == "" || err != nil || red.Scheme != "https" || red.Host == "" || red.Path != "/ui/oidc/callback":
		return fmt.Errorf("oidc.redirect_url: %q must be https://HOST:PORT/ui/oidc/callback", o.RedirectURL)
	case o.GroupsClaim == "":
		return fmt.Errorf("oidc.groups_claim: must not be empty")
	case o.UsernameClaim == "":
		return fmt.Errorf("oidc.username_claim: must not be empty")
	case o.Timeout <= 0:
		return fmt.Errorf("oidc.timeout: must be positive, got %s", o.Timeout.String())
	case o.SSOCache < 0:
		return fmt.Errorf("oidc.sso_cache: must not be negative, got %s", o.SSOCache.String())
	}
	return nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
