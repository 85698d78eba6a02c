package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Directory is the `directory:` section: where people's passwords, groups
// and (optionally) SSH keys are read. Users appear in the gateway on their
// first sign-in (a User with source ldap); the directory is never copied.
//
// A local User resource (no source) with the same name as a directory user
// stays a local user and signs in with its own keys: the break-glass way in
// when the directory is down.
type Directory struct {
	// URL lists the servers, tried in order: ldaps://HOST:PORT, or
	// ldap://HOST:PORT with StartTLS. One string or a list.
	URL StringList `yaml:"url"`
	// StartTLS upgrades ldap:// connections before any bind.
	StartTLS bool `yaml:"start_tls"`
	// CAFile holds the PEM certificates that verify the servers; empty
	// uses the system's.
	CAFile string `yaml:"ca_file"`
	// BindDN is the service account that searches; BindPasswordFile holds
	// its password (trailing newline ignored). Empty BindDN searches
	// anonymously.
	BindDN           string `yaml:"bind_dn"`
	BindPasswordFile string `yaml:"bind_password_file"`
	// UserBase is searched (subtree) with UserFilter, in which {login} is
	// replaced by the escaped login name:
	// (&(objectClass=person)(uid={login})).
	UserBase   string `yaml:"user_base"`
	UserFilter string `yaml:"user_filter"`
	// GroupBase is where groups are searched; empty: no directory groups.
	// GroupFilter finds the groups listing {dn} as a member; default
	// (|(member={dn})(uniqueMember={dn})). Nesting is followed (Active
	// Directory's in-chain rule, or a bounded walk elsewhere).
	GroupBase   string `yaml:"group_base"`
	GroupFilter string `yaml:"group_filter"`
	// LoginAttribute (default uid; sAMAccountName on Active Directory),
	// EmailAttribute (default mail), SSHKeyAttribute (e.g. sshPublicKey;
	// empty: keys are not read) and GroupNameAttribute (default cn).
	LoginAttribute     string `yaml:"login_attribute"`
	EmailAttribute     string `yaml:"email_attribute"`
	SSHKeyAttribute    string `yaml:"ssh_key_attribute"`
	GroupNameAttribute string `yaml:"group_name_attribute"`
	// FollowReferrals follows referrals to other servers of the forest,
	// binding there as the service account.
	FollowReferrals bool `yaml:"follow_referrals"`
	// Timeout bounds connecting and each request; default 5s. A directory
	// slower than this fails the sign-in (closed).
	Timeout Duration `yaml:"timeout"`
	// CacheTTL is how long a user's groups and keys are reused, default
	// 60s; 0 asks the directory on every request. Removing someone from a
	// group in the directory takes effect within this time, on live
	// sessions too.
	CacheTTL Duration `yaml:"cache_ttl"`
	// PoolSize bounds the connections used at once; default 4.
	PoolSize int `yaml:"pool_size"`
}

// StringList is a YAML list of strings that also takes a single string.
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*l = list
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler: it fills the defaults before
// the file's values, so that an explicit cache_ttl: 0 stays 0, and refuses
// unknown keys (Node.Decode does not inherit the strict decoder's check).
func (d *Directory) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: directory: want a mapping", n.Line)
	}
	known := map[string]bool{}
	rt := reflect.TypeFor[Directory]()
	for i := range rt.NumField() {
		known[rt.Field(i).Tag.Get("yaml")] = true
	}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i]; !known[k.Value] {
			return fmt.Errorf("line %d: directory: unknown key %q", k.Line, k.Value)
		}
	}
	type plain Directory // without this method, so Decode does not recurse
	p := plain{
		EmailAttribute: "mail",
		Timeout:        Duration(5 * time.Second),
		CacheTTL:       Duration(60 * time.Second),
		PoolSize:       4,
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*d = Directory(p)
	return nil
}

// validate checks the section; each error names the key.
func (d *Directory) validate() error {
	if len(d.URL) == 0 {
		return fmt.Errorf("directory.url: at least one ldaps:// or ldap:// URL is required")
	}
	for _, raw := range d.URL {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
			return fmt.Errorf("directory.url: %q is not ldaps://HOST:PORT or ldap://HOST:PORT", raw)
		}
		if d.StartTLS && u.Scheme == "ldaps" {
			return fmt.Errorf("directory.start_tls: %q is already TLS (ldaps); use ldap:// with start_tls", raw)
		}
	}
	switch {
	case d.UserBase == "":
		return fmt.Errorf("directory.user_base: is required (e.g. ou=people,dc=example,dc=com)")
	case !strings.Contains(d.UserFilter, "{login}") || !strings.HasPrefix(d.UserFilter, "("):
		return fmt.Errorf("directory.user_filter: %q must be a filter with {login}, e.g. (&(objectClass=person)(uid={login}))", d.UserFilter)
	case d.GroupFilter != "" && !strings.Contains(d.GroupFilter, "{dn}"):
		return fmt.Errorf("directory.group_filter: %q must be a filter with {dn}, e.g. (member={dn})", d.GroupFilter)
	case d.BindDN != "" && d.BindPasswordFile == "":
		return fmt.Errorf("directory.bind_password_file: is required with bind_dn")
	case d.Timeout <= 0:
		return fmt.Errorf("directory.timeout: must be positive, got %s", d.Timeout.String())
	case d.CacheTTL < 0:
		return fmt.Errorf("directory.cache_ttl: must not be negative, got %s", d.CacheTTL.String())
	case d.PoolSize < 1:
		return fmt.Errorf("directory.pool_size: must be at least 1, got %d", d.PoolSize)
	}
	return nil
}
