// Package provision creates a subject's own login on a target the first
// time the subject connects to it, when a target-access policy says
// provision: true (see policy.Obligations.Provision).
//
// The gateway logs in as the target's provision_account (an Account that is
// root, or may run `sudo -n`), asks `id -u NAME` whether the login exists,
// and if not creates it with `useradd -m -s /bin/bash`. On a target with
// auth: key it also creates the Account TARGET/NAME (a gateway-generated
// key) and installs that key as the new login's only authorized key; on a
// target with auth: certificate the target's sshd already trusts the
// gateway's CA. A policy's sudoers rule goes to
// /etc/sudoers.d/portcullis-NAME (mode 0440) once `visudo -cf` accepts it.
// Every attempt is audited as account.provision.
//
// Names are checked as unix user names before any command is built, and
// quoted even so; key and sudoers lines travel on stdin, never on a
// command line.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
	"github.com/portcullis/portcullis/internal/vault"
)

// provisionable is the names the gateway creates logins for: stricter
// than the names it logs in as (resource.ValidTargetUser). No upper case,
// so that sudoers keywords (ALL, Defaults) never reach a sudoers line; no
// '.', so that every name has a sudoers drop-in of its own.
var provisionable = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// Config is what a Provisioner needs; all but Log and DialTimeout are
// required.
type Config struct {
	Inventory *inventory.Inventory
	Vault     *vault.Vault
	HostKeys  upstream.HostKeyStore
	Audit     *audit.Log
	Log       *slog.Logger
	// DialTimeout bounds each login to the target. Zero means 10 seconds.
	DialTimeout time.Duration
}

// Provisioner creates logins on targets. It is safe for concurrent use;
// provisioning runs one at a time per process, so that two first
// connections of one subject create the login once.
type Provisioner struct {
	cfg Config
	mu  sync.Mutex
	// known holds "target/name" of logins seen to exist: a certificate
	// target is asked once per process, not on every connection.
	known map[string]bool
}

// New returns a Provisioner.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Inventory == nil || cfg.Vault == nil || cfg.HostKeys == nil || cfg.Audit == nil {
		return nil, errors.New("provision: Inventory, Vault, HostKeys and Audit are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Provisioner{cfg: cfg, known: map[string]bool{}}, nil
}

// Request asks for the login Name on Target.
type Request struct {
	Target string
	// Name is the login to create: the subject's login name.
	Name string
	// Sudoers is the rest of a sudoers rule for the login; empty: none.
	Sudoers string
	// Subject, Source and SessionID say who asked, for the audit trail.
	Subject, Source, SessionID string
}

// Ensure makes sure login req.Name exists on req.Target and that the
// gateway can log in as it. It reports whether it created the login. A
// login that already exists is left alone (no key installed, no sudoers
// rule): provisioning never takes over an account someone else made.
func (p *Provisioner) Ensure(ctx context.Context, req Request) (created bool, err error) {
	if !provisionable.MatchString(req.Name) {
		return false, fmt.Errorf("provision: %q is not a valid unix user name to create (lower case letters, digits, '_' and '-', starting with a letter or '_', at most 32)", req.Name)
	}
	if req.Sudoers != "" && !resource.ValidSudoers(req.Sudoers) {
		return false, fmt.Errorf("provision: sudoers rule %q is not valid", req.Sudoers)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := req.Target + "/" + req.Name
	if p.known[key] {
		return false, nil
	}
	created, err = p.ensure(ctx, req)
	if err == nil {
		p.known[key] = true
	}
	if err == nil && !created {
		return false, nil
	}
	ev := store.AuditEvent{Type: audit.AccountProvision, User: req.Subject, Source: req.Source, SessionID: req.SessionID,
		Target: req.Target, Account: req.Name, Detail: map[string]any{"sudoers": req.Sudoers != ""}}
	if err != nil {
		ev.Outcome, ev.Message = audit.Failure, fmt.Sprintf("provisioning %s on %s failed: %v", req.Name, req.Target, err)
		_ = p.cfg.Audit.Write(ctx, ev)
		return false, fmt.Errorf("provision %s on %s: %w", req.Name, req.Target, err)
	}
	ev.Outcome, ev.Message = audit.Success, fmt.Sprintf("login %s created on %s", req.Name, req.Target)
	if req.Sudoers != "" {
		ev.Message += " with a sudoers rule"
	}
	if werr := p.cfg.Audit.Write(ctx, ev); werr != nil {
		p.cfg.Log.Error("audit provisioning", "target", req.Target, "account", req.Name, "err", werr)
	}
	return true, nil
}

func (p *Provisioner) ensure(ctx context.Context, req Request) (bool, error) {
	snap := p.cfg.Inventory.Snapshot()
	target := snap.Engine.Target(req.Target)
	if target == nil {
		return false, errors.New("target no longer exists")
	}
	if target.ProvisionAccount == "" {
		return false, errors.New("the target has no provision_account")
	}
	sealed, aad, ok := snap.AccountKey(target.Name, target.ProvisionAccount)
	if !ok {
		return false, fmt.Errorf("provision account %s/%s has no key", target.Name, target.ProvisionAccount)
	}
	signer, err := p.cfg.Vault.Signer(sealed, aad)
	if err != nil {
		return false, fmt.Errorf("open provision account key: %w", err)
	}
	admin, err := p.login(ctx, target, target.ProvisionAccount, signer)
	if err != nil {
		return false, fmt.Errorf("log in as provision account %s: %w", target.ProvisionAccount, err)
	}
	defer admin.Close()
	q := shellQuote(req.Name)
	exists, err := upstream.Run(admin, "id -u "+q+" >/dev/null 2>&1 && echo yes || echo no", "")
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", req.Name, err)
	}
	if strings.TrimSpace(exists) == "yes" {
		return false, nil
	}

	// The key (auth: key) and the sudoers rule go on stdin, one per line.
	var stdin strings.Builder
	keyAuth := target.AuthMode() == resource.AuthKey
	var acct *resource.Account
	if keyAuth {
		acct, err = p.account(ctx, target.Name, req.Name)
		if err != nil {
			return false, err
		}
		stdin.WriteString(acct.PublicKey + " portcullis-gateway")
	}
	stdin.WriteString("\n" + req.Sudoers + "\n")
	if _, err := upstream.Run(admin, createScript(q, keyAuth, req.Sudoers != ""), stdin.String()); err != nil {
		return false, fmt.Errorf("create login %s: %w", req.Name, err)
	}
	if keyAuth {
		// Prove the new login and its key work before saying so.
		sealed, aad, ok := p.cfg.Inventory.Snapshot().AccountKey(target.Name, req.Name)
		if !ok {
			return false, fmt.Errorf("account %s/%s has no key", target.Name, req.Name)
		}
		s, err := p.cfg.Vault.Signer(sealed, aad)
		if err != nil {
			return false, fmt.Errorf("open account key: %w", err)
		}
		c, err := p.login(ctx, target, req.Name, s)
		if err != nil {
			return false, fmt.Errorf("verify the new login: %w", err)
		}
		c.Close()
	}
	return true, nil
}

// account returns the Account target/name, creating it (with a generated
// key) when the gateway has none: a login that failed to be created once
// reuses the account made the first time.
func (p *Provisioner) account(ctx context.Context, target, name string) (*resource.Account, error) {
	o, err := p.cfg.Inventory.Create(ctx, &resource.Account{Kind: resource.KindAccount, Target: target, Name: name})
	if err != nil && !errors.Is(err, inventory.ErrExists) {
		return nil, fmt.Errorf("create account %s/%s: %w", target, name, err)
	}
	if o == nil {
		return nil, fmt.Errorf("create account %s/%s: nothing stored", target, name)
	}
	// Create returns what it was given for a new account; the stored one
	// carries the generated public key.
	stored := p.cfg.Inventory.Snapshot().Account(target, name)
	if stored == nil || stored.PublicKey == "" {
		return nil, fmt.Errorf("account %s/%s has no public key", target, name)
	}
	return stored, nil
}

func (p *Provisioner) login(ctx context.Context, target *resource.Target, user string, signer ssh.Signer) (*ssh.Client, error) {
	return upstream.Client(ctx, upstream.Config{
		Target: target, User: user, Signer: signer, HostKeys: p.cfg.HostKeys, Timeout: p.cfg.DialTimeout,
		Audit: func(ev store.AuditEvent) {
			ev.User, ev.Target, ev.Account = "provisioning", target.Name, user
			_ = p.cfg.Audit.Write(ctx, ev)
		},
	})
}

// createScript builds the script that creates login q (already quoted)
// as root, or through sudo -n when the provision account is not root.
// stdin holds the authorized_keys line (empty without key), then the
// sudoers rule. The rule is checked before the login is made, so that a
// rule visudo refuses leaves nothing behind.
func createScript(q string, withKey, withSudoers bool) string {
	var b strings.Builder
	b.WriteString(`set -eu
S=""
if [ "$(id -u)" -ne 0 ]; then S="sudo -n"; fi
IFS= read -r key || true
IFS= read -r rule || true
u=` + q + `
`)
	if withSudoers {
		// sudo skips files in sudoers.d whose names hold a '.', so the
		// temporary file is ignored until renamed, and the final name
		// swaps a login's '.' (first.last) for '_'.
		b.WriteString(`f="/etc/sudoers.d/portcullis-$(printf '%s' "$u" | tr . _)"
t=$($S mktemp /etc/sudoers.d/.portcullis.XXXXXX)
trap '$S rm -f "$t"' EXIT
printf '%s %s\n' "$u" "$rule" | $S tee "$t" >/dev/null
if ! $S visudo -cf "$t" >/dev/null 2>&1; then echo "visudo refused the sudoers rule" >&2; exit 1; fi
`)
	}
	// '*' rather than useradd's default '!': OpenSSH without PAM treats
	// '!' as a locked account and refuses key logins too. No password
	// matches '*'.
	b.WriteString(`$S useradd -m -s /bin/bash -p '*' "$u"
`)
	if withKey {
		b.WriteString(`h=$(getent passwd "$u" | cut -d: -f6)
g=$(id -g "$u")
$S install -d -m 700 -o "$u" -g "$g" "$h/.ssh"
printf '%s\n' "$key" | $S tee "$h/.ssh/authorized_keys" >/dev/null
$S chown "$u:$g" "$h/.ssh/authorized_keys"
$S chmod 600 "$h/.ssh/authorized_keys"
`)
	}
	if withSudoers {
		b.WriteString(`$S chmod 0440 "$t"
$S mv -f "$t" "$f"
trap - EXIT
`)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell. Callers pass only validated
// names; quoting anyway costs nothing.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
