// Package directory checks passwords and reads users, groups and SSH keys
// from an LDAP directory (OpenLDAP, Active Directory).
//
// The gateway never copies the directory: it asks it when someone signs in
// and when a decision needs the user's groups, and keeps answers for
// Config.CacheTTL so that a busy session does not query the directory on
// every request, while a change made in the directory takes effect within
// that time.
//
// Every failure to reach the directory is an error wrapping ErrUnavailable,
// returned within Config.Timeout per server: callers fail closed.
package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Errors callers tell apart. Each returned error wraps one of them.
var (
	// ErrInvalidCredentials is a wrong password, an empty one, or an
	// unknown user: callers show the ordinary authentication failure.
	ErrInvalidCredentials = errors.New("invalid directory credentials")
	// ErrNotFound means no directory entry matches the login.
	ErrNotFound = errors.New("no such directory user")
	// ErrUnavailable means the directory could not be asked: down, slow,
	// refusing the service account, or misconfigured.
	ErrUnavailable = errors.New("directory unavailable")
)

// Defaults for zero Config fields.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultPoolSize       = 4
	DefaultLoginAttribute = "uid"
	DefaultGroupFilter    = "(|(member={dn})(uniqueMember={dn}))"
	DefaultGroupName      = "cn"
	// DefaultMaxNesting bounds the group walk: a user in a group nested
	// deeper than this is not in the outer groups. Cycles end the walk
	// early in any case.
	DefaultMaxNesting = 10
)

// Bounds that keep one misbehaving directory from costing without limit.
const (
	maxGroups        = 1000 // groups per user
	maxReferralHops  = 3    // a referral may lead to a referral, this many times
	maxCacheEntries  = 10000
	groupsPerQuery   = 50 // DNs ORed into one filter per walk step
	matchingRuleADIn = "1.2.840.113556.1.4.1941"
	capActiveDir     = "1.2.840.113556.1.4.800"
)

// Config says which directory to ask and how. Zero values take the
// defaults documented on each field.
type Config struct {
	// URLs are tried in order until one answers: ldaps://HOST:PORT, or
	// ldap://HOST:PORT (with StartTLS to encrypt).
	URLs []string
	// StartTLS upgrades ldap:// connections before any bind.
	StartTLS bool
	// RootCAs verifies the servers' certificates; nil uses the system's.
	RootCAs *x509.CertPool
	// BindDN and BindPassword are the service account that searches; an
	// empty BindDN searches anonymously.
	BindDN, BindPassword string
	// UserBase is where users are searched (subtree); UserFilter finds one
	// user, with {login} replaced by the escaped login name.
	UserBase, UserFilter string
	// GroupBase is where groups are searched (subtree); empty turns groups
	// off. GroupFilter finds the groups that list {dn} as a member.
	// Default DefaultGroupFilter.
	GroupBase, GroupFilter string
	// LoginAttribute is the login name (default uid; sAMAccountName on
	// Active Directory), EmailAttribute the email (optional),
	// SSHKeyAttribute the authorized keys (optional; sshPublicKey), and
	// GroupNameAttribute a group's name in policies (default cn).
	LoginAttribute, EmailAttribute, SSHKeyAttribute, GroupNameAttribute string
	// FollowReferrals follows referrals to other servers (the domain
	// controllers of an Active Directory forest), binding there as the
	// service account, at most maxReferralHops deep. Off, referred parts
	// of the tree are not searched.
	FollowReferrals bool
	// Timeout bounds connecting to one server and each request to it.
	// Default DefaultTimeout.
	Timeout time.Duration
	// CacheTTL is how long a user's entry and groups are reused; zero
	// asks the directory on every call.
	CacheTTL time.Duration
	// PoolSize bounds the service-account connections kept and used at
	// once. Default DefaultPoolSize.
	PoolSize int
	// MaxNesting bounds the nested group walk. Default DefaultMaxNesting.
	MaxNesting int
	// Now is the clock, for tests; nil uses time.Now.
	Now func() time.Time
}

// User is what the directory says about a user.
type User struct {
	// Login is the value of the login attribute, which names the user in
	// the gateway.
	Login string
	// DN is the user's entry.
	DN string
	// Email is the email attribute, if configured and set.
	Email string
	// Groups are the names of the groups the user is in, directly or
	// through nesting, sorted.
	Groups []string
	// SSHKeys are the values of the SSH key attribute, in authorized_keys
	// format.
	SSHKeys []string

	// server is the URL of the server that holds the entry when it was
	// found through a referral; empty for the configured servers.
	server string
}

// Directory asks one directory. It is safe for concurrent use.
type Directory struct {
	cfg  Config
	tls  *tls.Config
	pool *pool

	// mu guards cache and isAD.
	mu    sync.Mutex
	cache map[string]cached
	isAD  int // 0 not known yet, 1 Active Directory, 2 other
}

type cached struct {
	user    User
	fetched time.Time
}

// New checks cfg and returns a Directory. It does not connect: a directory
// that is down at start is reported by the first request, so the gateway
// starts (and local users sign in) without it.
func New(cfg Config) (*Directory, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("directory: no url")
	}
	for _, u := range cfg.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ldap" && p.Scheme != "ldaps") || p.Host == "" {
			return nil, fmt.Errorf("directory: url %q: want ldap://HOST:PORT or ldaps://HOST:PORT", u)
		}
	}
	if cfg.UserBase == "" {
		return nil, errors.New("directory: user_base is required")
	}
	if err := CheckFilter(cfg.UserFilter, "login"); err != nil || !strings.Contains(cfg.UserFilter, "{login}") {
		return nil, fmt.Errorf("directory: user_filter must be a filter with {login}: %v", err)
	}
	if cfg.GroupFilter == "" {
		cfg.GroupFilter = DefaultGroupFilter
	}
	if err := CheckFilter(cfg.GroupFilter, "dn"); err != nil || !strings.Contains(cfg.GroupFilter, "{dn}") {
		return nil, fmt.Errorf("directory: group_filter must be a filter with {dn}: %v", err)
	}
	if cfg.LoginAttribute == "" {
		cfg.LoginAttribute = DefaultLoginAttribute
	}
	if cfg.GroupNameAttribute == "" {
		cfg.GroupNameAttribute = DefaultGroupName
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.MaxNesting <= 0 {
		cfg.MaxNesting = DefaultMaxNesting
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Directory{cfg: cfg, cache: map[string]cached{},
		tls: &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}}
	d.pool = newPool(cfg.PoolSize, cfg.Timeout, d.dialService)
	return d, nil
}

// Close closes the idle connections.
func (d *Directory) Close() { d.pool.close() }

// CacheTTL returns how long answers are reused.
func (d *Directory) CacheTTL() time.Duration { return d.cfg.CacheTTL }

// Authenticate checks login's password with a bind as the user's entry
// and returns the user. An empty password is refused before anything is
// sent: to a directory that allows anonymous binds, a simple bind with a
// DN and no password succeeds without checking anything.
func (d *Directory) Authenticate(ctx context.Context, login, password string) (*User, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrInvalidCredentials)
	}
	u, err := d.Lookup(ctx, login)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	if err != nil {
		return nil, err
	}
	if u.DN == "" {
		return nil, fmt.Errorf("%w: entry of %q has no DN", ErrInvalidCredentials, login)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// The user's own bind gets a connection of its own, never a pooled
	// one: a pooled connection must stay bound as the service account.
	c, err := d.dialAny(d.serversFor(u))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Bind(u.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("%w: bind as %s refused", ErrInvalidCredentials, u.DN)
		}
		return nil, unavailable("bind as user", err)
	}
	return u, nil
}

// Lookup returns login's entry, groups and keys, from the cache when they
// were read less than CacheTTL ago. The result is a copy.
func (d *Directory) Lookup(ctx context.Context, login string) (*User, error) {
	if login == "" {
		return nil, fmt.Errorf("%w: empty login", ErrNotFound)
	}
	now := d.cfg.Now()
	if d.cfg.CacheTTL > 0 {
		d.mu.Lock()
		e, ok := d.cache[login]
		d.mu.Unlock()
		if ok && now.Sub(e.fetched) < d.cfg.CacheTTL {
			return e.user.clone(), nil
		}
	}
	u, err := d.fetch(ctx, login)
	if err != nil {
		return nil, err
	}
	if d.cfg.CacheTTL > 0 {
		d.mu.Lock()
		if len(d.cache) >= maxCacheEntries {
			for k, e := range d.cache {
				if now.Sub(e.fetched) >= d.cfg.CacheTTL {
					delete(d.cache, k)
				}
			}
			if len(d.cache) >= maxCacheEntries {
				clear(d.cache)
			}
		}
		d.cache[login] = cached{user: *u.clone(), fetched: now}
		d.mu.Unlock()
	}
	return u, nil
}

// Forget drops login from the cache, so that the next Lookup asks the
// directory.
func (d *Directory) Forget(login string) {
	d.mu.Lock()
	delete(d.cache, login)
	d.mu.Unlock()
}

func (u *User) clone() *User {
	c := *u
	c.Groups = slices.Clone(u.Groups)
	c.SSHKeys = slices.Clone(u.SSHKeys)
	return &c
}

// fetch reads login's entry and groups from the directory.
func (d *Directory) fetch(ctx context.Context, login string) (*User, error) {
	filter, err := ExpandFilter(d.cfg.UserFilter, map[string]string{"login": login})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	attrs := []string{d.cfg.LoginAttribute}
	for _, a := range []string{d.cfg.EmailAttribute, d.cfg.SSHKeyAttribute} {
		if a != "" {
			attrs = append(attrs, a)
		}
	}
	c, err := d.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() { d.pool.put(c, ok) }()

	// A size limit of 2 is enough to tell one match from an ambiguous
	// filter without reading a whole tree.
	found, err := d.search(c, ldap.NewSearchRequest(d.cfg.UserBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, filter, attrs, nil), 0)
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		ok = true
		return nil, fmt.Errorf("%w: %q", ErrNotFound, login)
	case 1:
	default:
		ok = true
		// Fail closed: which entry's password would be checked is
		// arbitrary.
		return nil, fmt.Errorf("%w: %q matches several entries under %s", ErrNotFound, login, d.cfg.UserBase)
	}
	e := found[0]
	u := &User{DN: e.entry.DN, server: e.server, Login: e.entry.GetAttributeValue(d.cfg.LoginAttribute)}
	if u.Login != login {
		// A filter that matches on another attribute (mail) must not let
		// one login name stand for another user's.
		ok = true
		return nil, fmt.Errorf("%w: %q has login %q", ErrNotFound, login, u.Login)
	}
	if d.cfg.EmailAttribute != "" {
		u.Email = e.entry.GetAttributeValue(d.cfg.EmailAttribute)
	}
	if d.cfg.SSHKeyAttribute != "" {
		for _, k := range e.entry.GetAttributeValues(d.cfg.SSHKeyAttribute) {
			if k = strings.TrimSpace(k); k != "" {
				u.SSHKeys = append(u.SSHKeys, k)
			}
		}
	}
	if d.cfg.GroupBase != "" {
		if u.Groups, err = d.groups(c, u.DN); err != nil {
			return nil, err
		}
	}
	ok = true
	return u, nil
}

// found is an entry and the server it came from ("" for the configured
// ones).
type found struct {
	entry  *ldap.Entry
	server string
}

// search runs req on c and, when referrals are followed, on the servers
// its referrals name.
func (d *Directory) search(c *ldap.Conn, req *ldap.SearchRequest, hops int) ([]found, error) {
	res, err := c.Search(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, unavailable("search "+req.BaseDN, err)
	}
	if res == nil {
		return nil, unavailable("search "+req.BaseDN, errors.New("no result"))
	}
	out := make([]found, 0, len(res.Entries))
	for _, e := range res.Entries {
		out = append(out, found{entry: e})
	}
	if !d.cfg.FollowReferrals || hops >= maxReferralHops {
		return out, nil
	}
	for _, ref := range res.Referrals {
		server, base, err := parseReferral(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: referral %q: %v", ErrUnavailable, ref, err)
		}
		// The service account binds on the referred server, and a user's
		// password may follow: never over a weaker channel than the one
		// configured.
		if d.secure() && strings.HasPrefix(server, "ldap://") && !d.cfg.StartTLS {
			return nil, fmt.Errorf("%w: referral to %s refused: it would send credentials without TLS (use ldaps:// referrals or start_tls)", ErrUnavailable, server)
		}
		rc, err := d.dialBound([]string{server})
		if err != nil {
			return nil, err
		}
		sub := *req
		if base != "" {
			sub.BaseDN = base
		}
		more, err := d.search(rc, &sub, hops+1)
		rc.Close()
		if err != nil {
			return nil, err
		}
		for _, f := range more {
			if f.server == "" {
				f.server = server
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// secure reports whether the configured servers are reached over TLS.
func (d *Directory) secure() bool {
	if d.cfg.StartTLS {
		return true
	}
	for _, u := range d.cfg.URLs {
		if strings.HasPrefix(u, "ldaps://") {
			return true
		}
	}
	return false
}

// parseReferral splits an LDAP URL (RFC 4516) into the server and the
// base DN.
func parseReferral(ref string) (server, base string, err error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", "", err
	}
	if (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return "", "", errors.New("not an ldap:// or ldaps:// URL with a host")
	}
	base, err = url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	if err != nil {
		return "", "", err
	}
	return u.Scheme + "://" + u.Host, base, nil
}

// groups returns the names of the groups dn is in, directly or nested:
// one query on Active Directory (LDAP_MATCHING_RULE_IN_CHAIN), otherwise a
// breadth-first walk up the member links, at most MaxNesting levels, which
// stops at cycles.
func (d *Directory) groups(c *ldap.Conn, dn string) ([]string, error) {
	attrs := []string{d.cfg.GroupNameAttribute}
	if d.activeDirectory(c) {
		filter := "(member:" + matchingRuleADIn + ":=" + ldap.EscapeFilter(dn) + ")"
		found, err := d.search(c, ldap.NewSearchRequest(d.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			maxGroups, 0, false, filter, attrs, nil), 0)
		if err != nil {
			return nil, err
		}
		return d.groupNames(found), nil
	}
	seen := map[string]bool{dn: true}
	var all []found
	frontier := []string{dn}
	for level := 0; level < d.cfg.MaxNesting && len(frontier) > 0 && len(all) < maxGroups; level++ {
		var next []string
		for chunk := range slices.Chunk(frontier, groupsPerQuery) {
			filter, err := d.memberFilter(chunk)
			if err != nil {
				return nil, err
			}
			found, err := d.search(c, ldap.NewSearchRequest(d.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
				maxGroups, 0, false, filter, attrs, nil), 0)
			if err != nil {
				return nil, err
			}
			for _, f := range found {
				key := strings.ToLower(f.entry.DN)
				if seen[key] {
					continue
				}
				seen[key] = true
				all = append(all, f)
				next = append(next, f.entry.DN)
			}
		}
		frontier = next
	}
	return d.groupNames(all), nil
}

// memberFilter ORs GroupFilter over dns.
func (d *Directory) memberFilter(dns []string) (string, error) {
	var b strings.Builder
	b.WriteString("(|")
	for _, dn := range dns {
		f, err := ExpandFilter(d.cfg.GroupFilter, map[string]string{"dn": dn})
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		b.WriteString(f)
	}
	b.WriteString(")")
	return b.String(), nil
}

func (d *Directory) groupNames(found []found) []string {
	names := make([]string, 0, len(found))
	for _, f := range found {
		if n := f.entry.GetAttributeValue(d.cfg.GroupNameAttribute); n != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// activeDirectory reports whether the server says it is Active Directory,
// whose in-chain matching rule resolves nesting in one query. OpenLDAP
// does not implement it. The answer is asked once; a failure to ask means
// "no", and is asked again next time.
func (d *Directory) activeDirectory(c *ldap.Conn) bool {
	d.mu.Lock()
	known := d.isAD
	d.mu.Unlock()
	if known != 0 {
		return known == 1
	}
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"supportedCapabilities"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return false
	}
	ad := slices.Contains(res.Entries[0].GetAttributeValues("supportedCapabilities"), capActiveDir)
	d.mu.Lock()
	d.isAD = 2
	if ad {
		d.isAD = 1
	}
	d.mu.Unlock()
	return ad
}

// serversFor returns the servers holding u's entry.
func (d *Directory) serversFor(u *User) []string {
	if u.server != "" {
		return []string{u.server}
	}
	return d.cfg.URLs
}

// dialService connects to the first configured server that answers and
// binds as the service account.
func (d *Directory) dialService() (*ldap.Conn, error) { return d.dialBound(d.cfg.URLs) }

// dialBound is dialAny followed by the service account's bind.
func (d *Directory) dialBound(urls []string) (*ldap.Conn, error) {
	c, err := d.dialAny(urls)
	if err != nil {
		return nil, err
	}
	if d.cfg.BindDN != "" {
		if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			c.Close()
			return nil, unavailable("bind as service account "+d.cfg.BindDN, err)
		}
	}
	return c, nil
}

// dialAny connects to the first of urls that answers within the timeout,
// with StartTLS when configured.
func (d *Directory) dialAny(urls []string) (*ldap.Conn, error) {
	var errs []error
	for _, u := range urls {
		c, err := ldap.DialURL(u, ldap.DialWithDialer(&net.Dialer{Timeout: d.cfg.Timeout}), ldap.DialWithTLSConfig(d.tls))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		c.SetTimeout(d.cfg.Timeout)
		if d.cfg.StartTLS && strings.HasPrefix(u, "ldap://") {
			host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "ldap://"))
			tc := d.tls.Clone()
			tc.ServerName = host
			if err := d.startTLS(c, tc); err != nil {
				c.Close()
				errs = append(errs, fmt.Errorf("%s: starttls: %w", u, err))
				continue
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// startTLS runs StartTLS bounded by the timeout: go-ldap's handshake has
// no deadline of its own, and a server that accepts StartTLS and then
// stalls would hold a sign-in (and its pre-authentication slot) for ever.
func (d *Directory) startTLS(c *ldap.Conn, tc *tls.Config) error {
	done := make(chan error, 1)
	go func() { done <- c.StartTLS(tc) }()
	t := time.NewTimer(d.cfg.Timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		c.Close() // ends the handshake; the goroutine returns with an error
		return fmt.Errorf("TLS handshake took longer than %s", d.cfg.Timeout)
	}
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}
