// Package rotate takes over and rotates the credentials of target accounts
// (`portcullis account rotate TARGET/ACCOUNT`, and Accounts with
// rotate_every on a schedule).
//
// A rotation logs in with the account's current gateway key, makes the
// account's ~/.ssh/authorized_keys hold only a new gateway-generated key,
// proves with fresh logins that the new key works and the old one does not,
// and only then stores the new key, sealed, in place of the old one. Every
// other key in that file is gone afterwards: after a takeover only the
// gateway logs in as that account.
//
// The steps, in order, and what a failure at each leaves behind:
//
//  1. Log in with the old key (session A); read authorized_keys.
//  2. Write authorized_keys = new key + old key; other keys are removed.
//     A failure here, or at step 3, restores the file as read at step 1.
//  3. Log in with the new key (session B): the new key works.
//  4. Through B, write authorized_keys = new key only, and remove
//     authorized_keys2 (which OpenSSH reads by default too).
//  5. Log in with the new key again (verification) and check that the old
//     key is refused, which also catches a target whose sshd reads keys
//     from another file. Optionally disable the password.
//  6. Store the new key in one inventory transaction, if the stored key is
//     still the old one.
//
// A failure at steps 4 to 6 restores the file as read at step 1 through the
// new key's session, so the stored (old) key keeps working. A rotation is
// audited as account.rotate, success or failure, with the fingerprints of
// both keys, never the keys.
//
// The target's sshd must read ~/.ssh/authorized_keys (OpenSSH's default);
// the remote commands need a POSIX shell, mktemp, stat, chmod and mv.
package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Config is what a Rotator needs. Every field but Log, DialTimeout and Now
// is required.
type Config struct {
	Inventory *inventory.Inventory
	Vault     *vault.Vault
	HostKeys  upstream.HostKeyStore
	Audit     *audit.Log
	Log       *slog.Logger
	// DialTimeout bounds each login to the target. Zero means 10 seconds.
	DialTimeout time.Duration
	// Now is the clock the schedule reads; nil means time.Now.
	Now func() time.Time
}

// Rotator rotates account keys. It is safe for concurrent use; rotations
// run one at a time within a process.
type Rotator struct {
	cfg Config
	// mu serializes rotations: two rotating one account at once would each
	// rewrite authorized_keys, and the loser's file would win.
	mu sync.Mutex
	// failedAt remembers, by "target/name", when a scheduled rotation last
	// failed, so the schedule retries hourly instead of every tick.
	failedAt map[string]time.Time
}

// New returns a Rotator.
func New(cfg Config) (*Rotator, error) {
	if cfg.Inventory == nil || cfg.Vault == nil || cfg.HostKeys == nil || cfg.Audit == nil {
		return nil, errors.New("rotate: Inventory, Vault, HostKeys and Audit are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Rotator{cfg: cfg, failedAt: map[string]time.Time{}}, nil
}

// Result describes a rotation that succeeded.
type Result struct {
	Account        string `json:"account"` // TARGET/NAME
	OldFingerprint string `json:"old_fingerprint"`
	NewFingerprint string `json:"new_fingerprint"`
	PublicKey      string `json:"public_key"` // the new key, authorized_keys format
	PasswordLocked bool   `json:"password_locked,omitempty"`
}

// ErrNotFound is wrapped when the account does not exist.
var ErrNotFound = errors.New("no such account")

// Rotate rotates the key of account target/name. by names who asked (an
// admin's name, or "schedule") for the audit trail.
func (r *Rotator) Rotate(ctx context.Context, target, name, by string) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := target + "/" + name
	res, err := r.rotate(ctx, target, name)
	ev := store.AuditEvent{Type: audit.AccountRotate, User: by, Target: target, Account: name}
	if res != nil {
		ev.Detail = map[string]any{"old_fingerprint": res.OldFingerprint, "new_fingerprint": res.NewFingerprint}
	}
	if err != nil {
		ev.Outcome, ev.Message = audit.Failure, fmt.Sprintf("rotation of %s failed; the old key stays: %v", key, err)
		_ = r.cfg.Audit.Write(ctx, ev)
		return nil, fmt.Errorf("rotate %s: %w", key, err)
	}
	ev.Outcome, ev.Message = audit.Success, fmt.Sprintf("key of %s rotated; authorized_keys holds only the new gateway key", key)
	if res.PasswordLocked {
		ev.Message += "; password disabled"
	}
	if werr := r.cfg.Audit.Write(ctx, ev); werr != nil {
		r.cfg.Log.Error("audit rotation", "account", key, "err", werr)
	}
	return res, nil
}

// rotate does the work; on error the returned Result (possibly nil) holds
// what is known for the audit event.
func (r *Rotator) rotate(ctx context.Context, targetName, name string) (*Result, error) {
	snap := r.cfg.Inventory.Snapshot()
	target := snap.Engine.Target(targetName)
	acct := snap.Account(targetName, name)
	if target == nil || acct == nil {
		return nil, fmt.Errorf("account %s/%s: %w", targetName, name, ErrNotFound)
	}
	oldSealed, aad, ok := snap.AccountKey(targetName, name)
	if !ok {
		return nil, fmt.Errorf("account %s/%s has no key", targetName, name)
	}
	oldSigner, err := r.cfg.Vault.Signer(oldSealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open current key: %w", err)
	}
	newSealed, newPub, err := r.cfg.Vault.GenerateAccountKey(aad)
	if err != nil {
		return nil, err
	}
	newSigner, err := r.cfg.Vault.Signer(newSealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open new key: %w", err)
	}
	res := &Result{Account: acct.GetName(), OldFingerprint: ssh.FingerprintSHA256(oldSigner.PublicKey()),
		NewFingerprint: ssh.FingerprintSHA256(newPub), PublicKey: upstream.AuthorizedKeyLine(newPub)}
	oldLine := upstream.AuthorizedKeyLine(oldSigner.PublicKey()) + " portcullis-gateway\n"
	newLine := res.PublicKey + " portcullis-gateway\n"

	// 1. Log in with the old key and keep what the file holds now.
	a, err := r.login(ctx, target, name, oldSigner)
	if err != nil {
		return res, fmt.Errorf("log in with the current key: %w", err)
	}
	defer a.Close()
	orig, err := upstream.Run(a, readKeysScript, "")
	if err != nil {
		return res, fmt.Errorf("read authorized_keys: %w", err)
	}
	restore := func(c *ssh.Client, cause error) error {
		if _, rerr := upstream.Run(c, writeKeysScript, orig); rerr != nil {
			return fmt.Errorf("%w; restoring authorized_keys also failed: %v", cause, rerr)
		}
		return cause
	}

	// 2. Both gateway keys, nothing else.
	if _, err := upstream.Run(a, writeKeysScript, newLine+oldLine); err != nil {
		return res, restore(a, fmt.Errorf("write authorized_keys: %w", err))
	}
	// 3. The new key works.
	b, err := r.login(ctx, target, name, newSigner)
	if err != nil {
		return res, restore(a, fmt.Errorf("log in with the new key: %w", err))
	}
	defer b.Close()
	// 4. Only the new key.
	if _, err := upstream.Run(b, finalKeysScript, newLine); err != nil {
		return res, restore(b, fmt.Errorf("write authorized_keys: %w", err))
	}
	// 5. Verify from scratch.
	c, err := r.login(ctx, target, name, newSigner)
	if err != nil {
		return res, restore(b, fmt.Errorf("verify the new key: %w", err))
	}
	defer c.Close()
	if old, err := r.login(ctx, target, name, oldSigner); err == nil {
		old.Close()
		return res, restore(c, errors.New("the target still accepts the old key after authorized_keys was rewritten: does its sshd read keys from a file other than ~/.ssh/authorized_keys?"))
	} else if !isAuthFailure(err) {
		return res, restore(c, fmt.Errorf("check that the old key is refused: %w", err))
	}
	if acct.LockPassword {
		if _, err := upstream.Run(c, lockPasswordScript, ""); err != nil {
			return res, restore(c, fmt.Errorf("disable the password (needs root or sudo -n usermod): %w", err))
		}
		res.PasswordLocked = true
	}
	// 6. Store.
	if err := r.cfg.Inventory.ReplaceAccountKey(ctx, targetName, name, oldSealed, newSealed, newPub); err != nil {
		return res, restore(c, err)
	}
	return res, nil
}

func (r *Rotator) login(ctx context.Context, target *resource.Target, user string, signer ssh.Signer) (*ssh.Client, error) {
	return upstream.Client(ctx, upstream.Config{
		Target: target, User: user, Signer: signer, HostKeys: r.cfg.HostKeys, Timeout: r.cfg.DialTimeout,
		Audit: func(ev store.AuditEvent) {
			ev.User, ev.Target, ev.Account = "rotation", target.Name, user
			_ = r.cfg.Audit.Write(ctx, ev)
		},
	})
}

// isAuthFailure reports whether a login failed at authentication, as
// opposed to the network or the host key. x/crypto has no error value for
// it, only this message.
func isAuthFailure(err error) bool {
	return err != nil && !errors.Is(err, upstream.ErrUnreachable) && !errors.Is(err, upstream.ErrHostKeyMismatch) &&
		strings.Contains(err.Error(), "unable to authenticate")
}

// The remote scripts are constants: nothing from the caller is ever
// interpolated into a command line. Key material travels on stdin.
const (
	readKeysScript = `f="$HOME/.ssh/authorized_keys"; if [ -e "$f" ]; then cat "$f"; fi`

	// writeKeysScript replaces authorized_keys with stdin atomically: a
	// temporary file in the same directory, renamed over the old one, so
	// sshd never reads a half-written file. The old mode is kept, minus
	// group and other write (sshd's StrictModes refuses those).
	writeKeysScript = `set -eu
umask 077
d="$HOME/.ssh"
f="$d/authorized_keys"
mkdir -p "$d"
chmod go-w "$d"
t=$(mktemp "$d/.authorized_keys.XXXXXX")
trap 'rm -f "$t"' EXIT
cat >"$t"
m=600
if [ -f "$f" ]; then m=$(stat -c %a "$f" 2>/dev/null || echo 600); fi
chmod "$m" "$t"
chmod go-w "$t"
mv -f "$t" "$f"
trap - EXIT
`
	finalKeysScript = writeKeysScript + `rm -f "$d/authorized_keys2"
`
	// lockPasswordScript sets the password field to '*', which no password
	// matches. Not `passwd -l`: its '!' makes OpenSSH without PAM refuse
	// the account altogether, key logins included.
	lockPasswordScript = `set -eu
u=$(id -un)
if [ "$(id -u)" -eq 0 ]; then usermod -p '*' "$u"; else sudo -n usermod -p '*' "$u"; fi`
)
