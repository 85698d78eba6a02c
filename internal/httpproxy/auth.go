package httpproxy

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

// signIn is the outcome of an intercepted login.
type signIn struct {
	ok     bool
	ident  inventory.Identity
	groups []string
	mfa    bool
	method string // "password" or "directory password"
	// why goes to the audit trail; tell, when set, to the client.
	why, tell string
	// known is the user name for the audit trail, set only when such an
	// identity exists (people type passwords into user name fields).
	known string
}

// codeDigits is the length of a verification code appended to a password.
const codeDigits = 6

// checkLogin checks a user name and password given to an intercepted
// vSphere login against the gateway: the user's gateway password, or the
// directory's for a user with none. When the user (mfa: required) or a
// proxy policy for the target (require_mfa) asks a verification code, it
// is the password's last six digits: vSphere clients have no other field
// for it. Then the subject must be covered by a proxy policy for the
// target (each request is authorized later, on its own). Every path costs
// one password verification, so that timing does not tell unknown users
// from wrong passwords.
func (s *Server) checkLogin(ctx context.Context, target, name, pw string, src netip.Addr) signIn {
	res := signIn{method: "password"}
	snap := s.cfg.Snapshot()
	if len(pw) == 0 || len(pw) > password.MaxLen {
		_, _ = password.Verify(password.Dummy(), "x")
		res.why = "empty or overlong password"
		return res
	}
	id, exists := snap.Identity(name)
	if exists {
		res.known = name
	}
	wantCode := exists && id.Kind == policy.SubjectUser && s.codeRequired(snap, id, target, src, nil)
	code := ""
	missingCode := false
	if wantCode {
		if len(pw) > codeDigits && digits(pw[len(pw)-codeDigits:]) {
			pw, code = pw[:len(pw)-codeDigits], pw[len(pw)-codeDigits:]
		} else {
			missingCode = true
		}
	}
	encoded, err := s.cfg.Credentials.PasswordHash(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		res.why, res.tell = fmt.Sprintf("read password hash: %v", err), "cannot check your password now; try again later"
		return res
	}
	local := exists && encoded != ""
	if !local {
		encoded = password.Dummy()
	}
	match, err := password.Verify(encoded, pw)
	if err != nil && !errors.Is(err, password.ErrMalformed) {
		res.why = fmt.Sprintf("verify password: %v", err)
		return res
	}
	switch {
	case local && match:
	case !local && s.cfg.DirectoryPassword != nil:
		res.method = "directory password"
		ok, err := s.cfg.DirectoryPassword(ctx, name, pw)
		if err != nil {
			res.why, res.tell = fmt.Sprintf("directory: %v", err), "cannot check your password now; try again later"
			return res
		}
		if !ok {
			res.why = "wrong user name or password"
			return res
		}
		snap = s.cfg.Snapshot()
		if id, exists = snap.Identity(name); !exists {
			res.why = "directory user has no identity after sign-in"
			return res
		}
		res.known = name
	default:
		res.why = "wrong user name or password"
		return res
	}
	if s.cfg.Groups != nil && id.Kind == policy.SubjectUser {
		if res.groups, err = s.cfg.Groups(ctx, name); err != nil {
			res.why, res.tell = fmt.Sprintf("directory groups: %v", err), "cannot check your groups now; try again later"
			return res
		}
	}
	if !wantCode && id.Kind == policy.SubjectUser && s.codeRequired(snap, id, target, src, res.groups) {
		// A directory user created just now, or a group from the
		// directory that a require_mfa policy names.
		res.why = "verification code required, none given"
		res.tell = "a verification code is required: append the 6-digit code to your password"
		return res
	}
	res.ident = id
	if missingCode {
		res.why = "no verification code after the password"
		res.tell = "a verification code is required: append the 6-digit code to your password"
		return res
	}
	if wantCode {
		if s.cfg.MFA == nil {
			res.why = "a verification code is required and the gateway has no MFA service"
			return res
		}
		if _, err := s.cfg.MFA.Verify(ctx, mfa.Attempt{User: name, Code: code, Addr: src, Source: src.String(), Via: "http"}); err != nil {
			res.why, res.tell = err.Error(), "wrong or already used verification code"
			return res
		}
		res.mfa = true
	}
	d := snap.Engine.DecideHTTP(policy.Request{Kind: id.Kind, Subject: name, Target: target, Source: src, Groups: res.groups})
	if !d.Allow {
		res.why, res.tell = d.Reason, d.Reason
		return res
	}
	res.ok = true
	return res
}

// codeRequired reports whether the subject must present a verification
// code to sign in to target.
func (s *Server) codeRequired(snap *inventory.Snapshot, id inventory.Identity, target string, src netip.Addr, groups []string) bool {
	if snap.Engine.UserRequiresMFA(id.Name) {
		return true
	}
	d := snap.Engine.DecideHTTP(policy.Request{Kind: id.Kind, Subject: id.Name, Target: target, Source: src, Groups: groups})
	return d.Allow && d.RequireMFA
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
