// Package signin checks a user name and password given to a front that
// asks for them in one piece (a vSphere Login, a database password
// message): the user's gateway password or, for a user without one, the
// directory's; then, when one is required, a verification code (TOTP)
// written as the password's last six digits, since such clients have no
// other field for it. Whether the subject may then reach what it asked
// for is the front's decision, not this package's.
package signin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store"
)

// Credentials is what the checker reads from the store.
type Credentials interface {
	PasswordHash(ctx context.Context, user string) (string, error)
}

// Checker checks sign-ins. Credentials and Snapshot are required.
type Checker struct {
	Credentials Credentials
	// Snapshot returns the current resources.
	Snapshot func() *inventory.Snapshot
	// DirectoryPassword, when set, checks the password of a user who is
	// not local against the directory (creating the User on first
	// sign-in); nil: gateway passwords only.
	DirectoryPassword func(ctx context.Context, user, password string) (bool, error)
	// Groups, when set, returns the directory groups of a user.
	Groups func(ctx context.Context, user string) ([]string, error)
	// MFA verifies codes; nil refuses subjects that must present one.
	MFA *mfa.Service
}

// Attempt is one sign-in.
type Attempt struct {
	User, Password string
	// Addr and Source are the client's address and host:port.
	Addr   netip.Addr
	Source string
	// Via names the front for the MFA trail ("http", "postgres").
	Via string
	// CodeRequired says whether the subject must present a verification
	// code, beyond the user's own mfa: required (a policy's
	// require_mfa for what is asked); groups are its directory groups.
	CodeRequired func(snap *inventory.Snapshot, id inventory.Identity, groups []string) bool
}

// Result is the outcome of a sign-in.
type Result struct {
	OK     bool
	Ident  inventory.Identity
	Groups []string // directory groups (Checker.Groups)
	MFA    bool     // a verification code was checked
	// Method is "password" or "directory password".
	Method string
	// Why goes to the audit trail; Tell, when set, to the client (it
	// reveals nothing the client does not know).
	Why, Tell string
	// Known is the user name for the audit trail, set only when such an
	// identity exists (people type passwords into user name fields).
	Known string
	// CodeMissing says the password was right and a verification code is
	// required but none was given: a client with a field of its own for
	// the code asks for it and tries again.
	CodeMissing bool
}

// CodeDigits is the length of a verification code after the password.
const CodeDigits = 6

const tellCode = "a verification code is required: append the 6-digit code to your password"

// Check checks an attempt. Every path that checks a password costs one
// password verification, so that timing does not tell unknown users from
// wrong passwords.
func (c *Checker) Check(ctx context.Context, a Attempt) Result {
	res := Result{Method: "password"}
	pw := a.Password
	if len(pw) == 0 || len(pw) > password.MaxLen {
		_, _ = password.Verify(password.Dummy(), "x")
		res.Why = "empty or overlong password"
		return res
	}
	snap := c.Snapshot()
	id, exists := snap.Identity(a.User)
	if exists {
		res.Known = a.User
	}
	required := func(snap *inventory.Snapshot, id inventory.Identity, groups []string) bool {
		if id.Kind != policy.SubjectUser {
			return false
		}
		return snap.Engine.UserRequiresMFA(id.Name) || a.CodeRequired != nil && a.CodeRequired(snap, id, groups)
	}
	wantCode := exists && required(snap, id, nil)
	code, missingCode := "", false
	if wantCode {
		// Without six digits at its end the whole is checked as the
		// password: only who knows it learns that a code is missing.
		if len(pw) > CodeDigits && digits(pw[len(pw)-CodeDigits:]) {
			pw, code = pw[:len(pw)-CodeDigits], pw[len(pw)-CodeDigits:]
		} else {
			missingCode = true
		}
	}
	encoded, err := c.Credentials.PasswordHash(ctx, a.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		res.Why, res.Tell = fmt.Sprintf("read password hash: %v", err), "cannot check your password now; try again later"
		return res
	}
	local := exists && encoded != ""
	if !local {
		encoded = password.Dummy()
	}
	match, err := password.Verify(encoded, pw)
	if err != nil && !errors.Is(err, password.ErrMalformed) {
		res.Why = fmt.Sprintf("verify password: %v", err)
		return res
	}
	switch {
	case local && match:
	case !local && c.DirectoryPassword != nil:
		res.Method = "directory password"
		ok, err := c.DirectoryPassword(ctx, a.User, pw)
		if err != nil {
			res.Why, res.Tell = fmt.Sprintf("directory: %v", err), "cannot check your password now; try again later"
			return res
		}
		if !ok {
			res.Why = "wrong user name or password"
			return res
		}
		snap = c.Snapshot()
		if id, exists = snap.Identity(a.User); !exists {
			res.Why = "directory user has no identity after sign-in"
			return res
		}
		res.Known = a.User
	default:
		res.Why = "wrong user name or password"
		return res
	}
	if c.Groups != nil && id.Kind == policy.SubjectUser {
		if res.Groups, err = c.Groups(ctx, a.User); err != nil {
			res.Why, res.Tell = fmt.Sprintf("directory groups: %v", err), "cannot check your groups now; try again later"
			return res
		}
	}
	if !wantCode && required(snap, id, res.Groups) {
		// A directory user created just now, or a directory group that
		// a require_mfa policy names.
		res.Why, res.Tell, res.CodeMissing = "verification code required, none given", tellCode, true
		return res
	}
	res.Ident = id
	if missingCode {
		res.Why, res.Tell, res.CodeMissing = "no verification code after the password", tellCode, true
		return res
	}
	if wantCode {
		if c.MFA == nil {
			res.Why = "a verification code is required and the gateway has no MFA service"
			return res
		}
		if _, err := c.MFA.Verify(ctx, mfa.Attempt{User: a.User, Code: code, Addr: a.Addr, Source: a.Source, Via: a.Via}); err != nil {
			res.Why, res.Tell = err.Error(), "wrong or already used verification code"
			if errors.Is(err, mfa.ErrLocked) {
				res.Tell = err.Error()
			}
			return res
		}
		res.MFA = true
	}
	res.OK = true
	return res
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
