// Package rotate takes over and rotates the credentials of target accounts
// (`portcullis account rotate TARGET/ACCOUNT`, and Accounts with
// rotate_every on a schedule).
//
// A rotation logs in with the account's current gateway key, makes the
// account's ~/.ssh/authorized_keys hold only a new gateway-generated key,
// and proves with fresh logins that the new key works and the old one
// does not. Every other key in ~/.ssh/authorized_keys* is gone afterwards.
// Keys the account cannot see (an AuthorizedKeysCommand, a file outside
// ~/.ssh) are beyond its reach; the old-key check reports those it can.
//
// The steps, in order, and what a failure at each leaves behind:
//
//  1. Log in with the old key (session A); read authorized_keys.
//  2. Write authorized_keys = new key + old key; other keys are removed.
//     A failure here, or at step 3, restores the file as read at step 1.
//  3. Log in with the new key (session B): the new key works.
//  4. Store the new key, if the stored key is still the old one. The
//     target accepts both now, so a crash at any point leaves the gateway
//     a key the target takes. If another gateway stored its key first,
//     the file is made to hold exactly that key.
//  5. Through B, write authorized_keys = new key only, and remove every
//     other authorized_keys* file in ~/.ssh.
//  6. Log in with the new key again (verification) and check that the old
//     key is refused. Optionally disable the password.
//
// A failure at steps 5 and 6 leaves the new key stored and working and is
// reported as an incomplete takeover; the file is never put back then.
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

	// 2. Both gateway keys, nothing else: any other key (an intruder's)
	// stops working here.
	if _, err := upstream.Run(a, writeKeysScript, newLine+oldLine); err != nil {
		return res, restore(a, fmt.Errorf("write authorized_keys: %w", err))
	}
	// 3. The new key works.
	b, err := r.login(ctx, target, name, newSigner)
	if err != nil {
		return res, restore(a, fmt.Errorf("log in with the new key: %w", err))
	}
	defer b.Close()
	// 4. Store the new key now, while the target accepts both: a crash
	// from here on leaves the gateway with a key the target takes. The
	// store only takes it if the stored key is still the old one.
	if err := r.cfg.Inventory.ReplaceAccountKey(ctx, targetName, name, oldSealed, newSealed, newPub); err != nil {
		if errors.Is(err, inventory.ErrKeyChanged) {
			// Another gateway rotated this account meanwhile and stored
			// its key: the file must hold that key, not ours, nor the
			// file we read before it took over.
			return res, r.yieldTo(ctx, b, targetName, name, err)
		}
		return res, restore(b, err)
	}
	// From here the stored key is the new one: the file is never put
	// back to what it was (that would lock the gateway out); a failure
	// leaves both gateway keys in it and says the takeover is incomplete.
	incomplete := func(cause error) error {
		return fmt.Errorf("the new key is stored and works, but the takeover is incomplete: %w", cause)
	}
	// 5. Only the new key, and no other authorized_keys* file.
	if _, err := upstream.Run(b, finalKeysScript, newLine); err != nil {
		return res, incomplete(fmt.Errorf("write authorized_keys: %w", err))
	}
	// 6. Verify from scratch.
	c, err := r.login(ctx, target, name, newSigner)
	if err != nil {
		return res, incomplete(fmt.Errorf("verify the new key: %w", err))
	}
	defer c.Close()
	if old, err := r.login(ctx, target, name, oldSigner); err == nil {
		old.Close()
		return res, incomplete(errors.New("the target still accepts the old key after authorized_keys was rewritten: does its sshd read keys from elsewhere (AuthorizedKeysFile, AuthorizedKeysCommand)?"))
	} else if !isAuthFailure(err) {
		return res, incomplete(fmt.Errorf("check that the old key is refused: %w", err))
	}
	if acct.LockPassword {
		if _, err := upstream.Run(c, lockPasswordScript, ""); err != nil {
			return res, incomplete(fmt.Errorf("disable the password (needs root or sudo -n usermod): %w", err))
		}
		res.PasswordLocked = true
	}
	return res, nil
}

// yieldTo makes the account's authorized_keys hold exactly the key now
// stored for it (another gateway's rotation won), over the session c.
func (r *Rotator) yieldTo(ctx context.Context, c *ssh.Client, target, name string, cause error) error {
	o, err := r.cfg.Inventory.Get(ctx, resource.KindAccount, target+"/"+name)
	if err != nil {
		return fmt.Errorf("%w; reading the stored key to put it back also failed: %v", cause, err)
	}
	acct, ok := o.(*resource.Account)
	if !ok || acct.PublicKey == "" {
		return fmt.Errorf("%w; the stored account has no public key to put back", cause)
	}
	if _, err := upstream.Run(c, finalKeysScript, strings.TrimSpace(acct.PublicKey)+" portcullis-gateway\n"); err != nil {
		return fmt.Errorf("%w; putting the stored key back also failed: %v", cause, err)
	}
	return fmt.Errorf("%w: another rotation stored its key first; authorized_keys now holds that key", cause)
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
	// finalKeysScript also removes every other authorized_keys* file in
	// ~/.ssh (authorized_keys2, and the like a second AuthorizedKeysFile
	// may name): a key planted there would outlive the takeover. Keys
	// from elsewhere (an AuthorizedKeysCommand, files outside ~/.ssh)
	// cannot be seen from the account; the old-key check catches some.
	finalKeysScript = writeKeysScript + `for x in "$d"/authorized_keys?*; do if [ -f "$x" ]; then rm -f "$x"; fi; done
`
	// lockPasswordScript sets the password field to '*', which no password
	// matches. Not `passwd -l`: its '!' makes OpenSSH without PAM refuse
	// the account altogether, key logins included.
	lockPasswordScript = `set -eu
u=$(id -un)
if [ "$(id -u)" -eq 0 ]; then usermod -p '*' "$u"; else sudo -n usermod -p '*' "$u"; fi`
)
