package sshgate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
)

// DirectoryLogin lets directory users sign in with their directory
// password (password or keyboard-interactive) or with a key from their
// directory entry, and brings their directory groups into every decision
// on their connections.
type DirectoryLogin struct {
	Directory *directory.Directory
	// IsLocal reports whether name is a local user or a service account:
	// one the directory never speaks for. A local admin keeps signing in
	// with their key when the directory is down.
	IsLocal func(ctx context.Context, name string) (bool, error)
	// Ensure creates the gateway's User (source ldap) on a directory
	// user's first sign-in and returns once the current snapshot has it
	// (inventory.Inventory.EnsureDirectoryUser).
	Ensure func(ctx context.Context, name, email string) error
}

// Extension keys of a directory login. extDirectory holds how the user
// signed in ("directory password", "directory key SHA256:..."); its
// presence marks the connection's identity as a directory user's, whose
// groups come from the directory.
const extDirectory = "portcullis-directory"

// msgDirectoryDown is shown when the directory cannot check a password.
const msgDirectoryDown = "portcullis: cannot sign you in: the directory service is unavailable; try again later\r\n"

// directoryAuth is what a directory sign-in needs from the connection's
// handshake.
type directoryAuth struct {
	srv    *Server
	ctx    context.Context
	connID string
	src    netip.Addr
	srcStr string
	// parse returns the connection's login string, parsed once; a
	// malformed one comes back as a banner error.
	parse func(meta ssh.ConnMetadata) (user, target, account string, err error)
}

// password checks a directory password and returns the permissions of the
// connection, or a partial success when a second factor is required.
func (a *directoryAuth) password(meta ssh.ConnMetadata, pw []byte, method string) (*ssh.Permissions, error) {
	user, target, account, err := a.parse(meta)
	if err != nil {
		return nil, err
	}
	dl := a.srv.cfg.Directory
	// An empty password never reaches a bind (directory.Authenticate
	// refuses it too): to a server allowing anonymous binds it would
	// succeed.
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	if err := a.notLocal(user); err != nil {
		return nil, err
	}
	u, err := dl.Directory.Authenticate(a.ctx, user, string(pw))
	if err != nil {
		return nil, a.directoryError(err)
	}
	return a.signedIn(u, "directory "+method, target, account, nil)
}

// publicKey accepts a key listed on the user's directory entry.
func (a *directoryAuth) publicKey(user, target, account string, key ssh.PublicKey) (*ssh.Permissions, error) {
	dl := a.srv.cfg.Directory
	if err := a.notLocal(user); err != nil {
		return nil, err
	}
	u, err := dl.Directory.Lookup(a.ctx, user)
	if err != nil {
		return nil, a.directoryError(err)
	}
	if !hasKey(u.SSHKeys, key) {
		return nil, fmt.Errorf("key %s is not registered for %q", ssh.FingerprintSHA256(key), user)
	}
	return a.signedIn(u, "directory key "+ssh.FingerprintSHA256(key), target, account, key)
}

// notLocal refuses names the directory must not speak for.
func (a *directoryAuth) notLocal(user string) error {
	local, err := a.srv.cfg.Directory.IsLocal(a.ctx, user)
	if err != nil {
		return fmt.Errorf("check local user %q: %w", user, err)
	}
	if local {
		return fmt.Errorf("%q is a local identity: it signs in with its own key, not the directory", user)
	}
	return nil
}

// directoryError turns a directory failure into what the client sees: an
// unreachable directory gets a banner, anything else the ordinary failure.
func (a *directoryAuth) directoryError(err error) error {
	if errors.Is(err, directory.ErrUnavailable) {
		a.srv.cfg.Log.Warn("directory sign-in failed", "source", a.srcStr, "err", err)
		return &ssh.BannerError{Err: err, Message: msgDirectoryDown}
	}
	return err
}

// signedIn creates the user on first sign-in and returns the connection's
// permissions; key is the verified key for a directory key, nil for a
// password.
func (a *directoryAuth) signedIn(u *directory.User, how, target, account string, key ssh.PublicKey) (*ssh.Permissions, error) {
	if err := a.srv.cfg.Directory.Ensure(a.ctx, u.Login, u.Email); err != nil {
		if errors.Is(err, inventory.ErrLocalUser) {
			return nil, err
		}
		return nil, &ssh.BannerError{Err: err, Message: "portcullis: cannot sign you in now; try again later\r\n"}
	}
	snap := a.srv.cfg.Snapshot()
	id, ok := snap.Identity(u.Login)
	if !ok || id.Kind != policy.SubjectUser {
		return nil, fmt.Errorf("directory user %q has no identity after sign-in", u.Login)
	}
	ext := map[string]string{extIdentity: id.Name, extDirectory: how}
	if key != nil {
		ext[extKeyFP] = ssh.FingerprintSHA256(key)
		ext[extKey] = string(key.Marshal())
	}
	sf := snap.Engine.SecondFactor(policy.Request{Kind: id.Kind, Subject: id.Name, Target: target,
		TargetUser: account, Source: a.src, Groups: u.Groups})
	if !sf.Required {
		return &ssh.Permissions{Extensions: ext}, nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: a.srv.askCode(a.ctx, secondFactorAsk{ident: id, ext: ext, reason: sf.Reason,
			src: a.src, srcStr: a.srcStr, sessionID: a.connID}),
	}}
}

// keyboardInteractive asks the directory password by keyboard-interactive,
// for clients (and PAM-minded users) that do not offer password.
func (a *directoryAuth) keyboardInteractive(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	if _, _, _, err := a.parse(meta); err != nil {
		return nil, err
	}
	answers, err := client("", "", []string{"Password: "}, []bool{false})
	if err != nil {
		return nil, fmt.Errorf("keyboard-interactive: %w", err)
	}
	if len(answers) != 1 {
		return nil, errors.New("keyboard-interactive: want one answer")
	}
	return a.password(meta, []byte(answers[0]), "password (keyboard-interactive)")
}

func hasKey(lines []string, key ssh.PublicKey) bool {
	wire := string(key.Marshal())
	for _, l := range lines {
		k, err := resource.ParseAuthorizedKey(l)
		if err == nil && string(k.Marshal()) == wire {
			return true
		}
	}
	return false
}

// directoryGroups returns the connection's directory groups for a
// decision: cached by the directory for its cache_ttl, so that a removal
// in the directory denies the next request once that time has passed. A
// local identity has none. An error means the groups cannot be known:
// the caller denies.
func (c *conn) directoryGroups() ([]string, error) {
	if !c.viaDirectory {
		return nil, nil
	}
	u, err := c.srv.cfg.Directory.Directory.Lookup(c.ctx, c.ident.Name)
	if err != nil {
		return nil, err
	}
	return u.Groups, nil
}

// directoryDenial is the reason shown when the groups cannot be read.
func directoryDenial(err error) string {
	if errors.Is(err, directory.ErrNotFound) {
		return "access denied: your directory account no longer exists"
	}
	return "access denied: the directory service is unavailable to check your groups; try again later"
}
