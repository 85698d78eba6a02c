package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const apikeyUsage = `Usage: portcullis apikey create --name NAME --kind access|registration [FLAGS]
       portcullis apikey ls [--json]
       portcullis apikey revoke ID

API keys let programs call the gateway's API over HTTPS: a key goes in the
X-API-KEY header of every request. They are not resources: 'apply' and 'get'
do not see them.

create makes a key and prints its id and the key itself. The key is shown
this once: the gateway keeps only a hash of it. Kinds:
  access        acts as its owner: every request is checked against the
                owner's roles and policies, as if the owner made it
  registration  may only register targets (POST /api/v1/targets/register);
                every other request is refused
A key has no more rights than its owner, and nobody can make a key with more
rights than they hold. Every use of a key is audited with its id.

ls lists the keys, never their secrets. STATE is active, revoked or expired;
SOURCES are the addresses a key may be used from ("any" when unrestricted).
Times are printed in UTC.

revoke stops a key at once; it stays listed as revoked.

Flags:
  --name NAME             (create) what the key is for, e.g. ci (required)
  --kind KIND             (create) access or registration (required)
  --owner USER            (create) the user the key acts as; the gateway's
                          default when omitted
  --expires DURATION      (create) the key stops working this long from now:
                          720h, 90d, 1d12h; default never
  --source-cidrs CIDRS    (create) comma-separated CIDRs the key may be used
                          from (10.0.0.0/8,2001:db8::/32); may be repeated;
                          default any address
  --environment ENV       (create, registration) the one environment the key
                          registers targets in (they get the label
                          environment=ENV)
  --max-uses N            (create, registration) how many registrations the
                          key makes; default no limit
  --name-pattern GLOB     (create, registration) registered target names must
                          match GLOB, e.g. web-*
  --json                  (create) print the answer as a JSON object, key
                          included; (ls) a JSON array of keys, each with its id
` + "\n" + globalFlagsUsage

// API key kinds, as the gateway names them.
const (
	keyKindAccess       = "access"
	keyKindRegistration = "registration"
)

// cidrList is a flag of comma-separated CIDRs that may be repeated.
type cidrList []string

func (l *cidrList) String() string { return strings.Join(*l, ",") }

func (l *cidrList) Set(s string) error {
	for c := range strings.SplitSeq(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			*l = append(*l, c)
		}
	}
	return nil
}

// apiKeyFlags are the flags of apikey create.
type apiKeyFlags struct {
	name, kind, owner, expires string
	cidrs                      cidrList
	asJSON                     bool
	environment, namePattern   string
	maxUses                    int64
}

// request checks the flags and turns them into the API's request, so that
// a mistake is reported naming its flag before anything is sent.
func (f *apiKeyFlags) request() (api.CreateAPIKeyRequest, error) {
	req := api.CreateAPIKeyRequest{Name: f.name, Kind: f.kind, Owner: f.owner,
		Environment: f.environment, MaxUses: f.maxUses, NamePattern: f.namePattern}
	switch {
	case f.name == "":
		return req, usageErr("--name is required")
	case strings.TrimSpace(f.name) != f.name || strings.ContainsFunc(f.name, isControl):
		return req, usageErr("--name %q: no leading or trailing spaces or control characters", f.name)
	case f.kind == "":
		return req, usageErr("--kind is required: access or registration")
	case f.kind != keyKindAccess && f.kind != keyKindRegistration:
		return req, usageErr("--kind %q: want access or registration", f.kind)
	case f.kind != keyKindRegistration && (f.environment != "" || f.maxUses != 0 || f.namePattern != ""):
		return req, usageErr("--environment, --max-uses and --name-pattern are for --kind registration")
	case f.maxUses < 0:
		return req, usageErr("--max-uses %d: want 1 or more (leave it out for no limit)", f.maxUses)
	}
	if f.expires != "" {
		d, err := parseAgo(f.expires)
		if err != nil || d <= 0 {
			return req, usageErr("--expires %q: want a positive duration such as 720h, 90d or 1d12h", f.expires)
		}
		// The gateway reads Go durations, which have no days.
		req.ExpiresIn = d.String()
	}
	for _, c := range f.cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return req, usageErr("--source-cidrs: %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", c)
		}
		if p.Masked() != p {
			// 10.1.2.3/8 is most likely a typo for a host or a network;
			// guessing which would widen or narrow access silently.
			return req, usageErr("--source-cidrs: %q has host bits set: write %s for the network, or %s for the host",
				c, p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		req.SourceCIDRs = append(req.SourceCIDRs, p.String())
	}
	return req, nil
}

func runAPIKeyCreate(e *env, args []string) error {
	fs := e.flags()
	var f apiKeyFlags
	fs.StringVar(&f.name, "name", "", "")
	fs.StringVar(&f.kind, "kind", "", "")
	fs.StringVar(&f.owner, "owner", "", "")
	fs.StringVar(&f.expires, "expires", "", "")
	fs.Var(&f.cidrs, "source-cidrs", "")
	fs.BoolVar(&f.asJSON, "json", false, "")
	fs.StringVar(&f.environment, "environment", "", "")
	fs.Int64Var(&f.maxUses, "max-uses", 0, "")
	fs.StringVar(&f.namePattern, "name-pattern", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q (the name goes in --name)", pos[0])
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/apikeys", nil, "application/json", body, &raw); err != nil {
		return err
	}
	var k api.CreatedAPIKey
	if err := json.Unmarshal(raw, &k); err != nil || k.ID == "" || k.Key == "" {
		// The key may exist all the same: say where to look, and never
		// echo the answer, which may hold the secret.
		return &exitError{code: exitFailure, msg: "the gateway's answer holds no key id and key; the key may have been created: check 'portcullis apikey ls'"}
	}
	if f.asJSON {
		// The answer as the gateway sent it, so that a script sees every
		// field, including ones this CLI does not know yet.
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		b.WriteByte('\n')
		if _, err := e.stdout.Write(b.Bytes()); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	owner := "owner " + escapeControls(k.Owner)
	if k.Owner == "" {
		owner = "no owner" // a global registration key
	}
	fmt.Fprintf(e.stdout, "Created %s key %s (%s, expires %s).\n",
		k.Kind, escapeControls(k.Name), owner, expiry(k.ExpiresAt))
	fmt.Fprintf(e.stdout, "id:  %s\nkey: %s\n", escapeControls(k.ID), escapeControls(k.Key))
	fmt.Fprintln(e.stdout, "Save the key now: it will not be shown again. Send it in the X-API-KEY header over HTTPS.")
	return nil
}

func runAPIKeyLs(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	// APIKeyInfo has no field for the secret: whatever the gateway sends,
	// a listing decoded into it cannot print one.
	keys, err := fetchList[api.APIKeyInfo](e, "/api/v1/apikeys", nil)
	if err != nil {
		return err
	}
	return printList(e, keys, asJSON, "No API keys.",
		[]string{"ID", "NAME", "KIND", "OWNER", "STATE", "EXPIRES", "SOURCES", "CREATED"},
		func(k api.APIKeyInfo) []string {
			sources := "any"
			if len(k.SourceCIDRs) > 0 {
				sources = list(k.SourceCIDRs)
			}
			return []string{k.ID, k.Name, k.Kind, dash(k.Owner), k.State, expiry(k.ExpiresAt), sources,
				k.CreatedAt.UTC().Format(time.RFC3339)}
		})
}

func runAPIKeyRevoke(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "API key")
	if err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var k api.APIKeyInfo
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/apikeys/"+url.PathEscape(id)+"/revoke", nil, "", nil, &k); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "API key %s (%s) revoked\n", escapeControls(k.ID), escapeControls(k.Name))
	return nil
}

// expiry shows when a key expires, or that it does not.
func expiry(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
