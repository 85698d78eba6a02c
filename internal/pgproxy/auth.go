package pgproxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store"
)

// authResult is the outcome of checking a password.
type authResult struct {
	ok     bool
	ident  inventory.Identity
	mfa    bool   // a verification code was checked
	method string // "password", "directory password", "api key"
	// why goes to the audit trail; tell, when set, to the client (it
	// must reveal nothing the client does not already know).
	why, tell string
	// knownUser is the user name for the audit trail, set only when such
	// an identity exists (people type passwords into user name fields).
	knownUser string
}

// codeLen is the length of a TOTP code appended to a password.
const codeLen = 6

// authenticate checks the password of the login string's user: an access
// API key (pck_...), or the user's gateway password, or their directory
// password; with a verification code as its last six digits when the
// user or a proxy policy requires one. Every path that checks a password
// costs one argon2id verification, so that timing does not tell unknown
// users from wrong passwords.
func (s *Server) authenticate(ctx context.Context, sess *session, snap *inventory.Snapshot, pw string) authResult {
	name := sess.login.User
	if len(pw) == 0 || len(pw) > password.MaxLen {
		_, _ = password.Verify(password.Dummy(), "x")
		return authResult{why: "empty or overlong password", method: "password"}
	}
	if len(pw) > len(apikey.Prefix) && pw[:len(apikey.Prefix)] == apikey.Prefix {
		return s.apiKeyAuth(ctx, sess, snap, pw)
	}
	id, exists := snap.Identity(name)
	res := authResult{method: "password"}
	if exists {
		res.knownUser = name
	}
	wantCode := exists && id.Kind == policy.SubjectUser && s.codeRequired(snap, sess, id)
	code, missingCode := "", false
	if wantCode {
		// Without six digits at its end the whole is checked as the
		// password: only who knows it learns that a code is missing.
		if len(pw) > codeLen && allDigits(pw[len(pw)-codeLen:]) {
			pw, code = pw[:len(pw)-codeLen], pw[len(pw)-codeLen:]
		} else {
			missingCode = true
		}
	}
	encoded, err := s.cfg.Credentials.PasswordHash(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		res.why = fmt.Sprintf("read password hash: %v", err)
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
		ok, err := s.cfg.DirectoryPassword(ctx, name, pw)
		if err != nil {
			res.why, res.method = fmt.Sprintf("directory: %v", err), "directory password"
			res.tell = "cannot check your password now; try again later"
			return res
		}
		if !ok {
			res.why, res.method = "wrong user name or password", "directory password"
			return res
		}
		snap = s.cfg.Snapshot()
		if id, exists = snap.Identity(name); !exists {
			res.why = "directory user has no identity after sign-in"
			return res
		}
		res.method, res.knownUser = "directory password", name
		// A directory user created just now: ask again whether a code
		// is needed, now that their User exists.
		if !wantCode && s.codeRequired(snap, sess, id) {
			res.why = "verification code required after directory sign-in"
			res.tell = "a verification code is required: append the 6-digit code to your password"
			return res
		}
	default:
		res.why = "wrong user name or password"
		return res
	}
	res.ident = id
	if missingCode {
		res.why = "no verification code after the password"
		res.tell = "a verification code is required: append the 6-digit code to your password"
		return res
	}
	if wantCode {
		if err := s.verifyCode(ctx, sess, name, code); err != nil {
			res.why = err.Error()
			res.tell = "wrong or already used verification code"
			if errors.Is(err, mfa.ErrLocked) {
				res.tell = err.Error()
			}
			return res
		}
		res.mfa = true
	}
	res.ok = true
	return res
}

// codeRequired reports whether the subject must present a verification
// code: the user says mfa: required, or a proxy policy granting this
// login does.
func (s *Server) codeRequired(snap *inventory.Snapshot, sess *session, id inventory.Identity) bool {
	if snap.Engine.UserRequiresMFA(id.Name) {
		return true
	}
	d, _, _, _ := decideLogin(snap, id, sess.login, sess.srcAddr, sess.database, "")
	return d.Allow && d.RequireMFA
}

func (s *Server) verifyCode(ctx context.Context, sess *session, user, code string) error {
	if s.cfg.MFA == nil {
		return errors.New("a verification code is required and the gateway has no MFA service")
	}
	_, err := s.cfg.MFA.Verify(ctx, mfa.Attempt{User: user, Code: code, Addr: sess.srcAddr, Source: sess.src,
		Via: "postgres", SessionID: sess.id})
	return err
}

// apiKeyAuth accepts an access API key as the password: the key's owner
// must be the login string's user. A key cannot carry a verification
// code, so a subject that must present one is refused.
func (s *Server) apiKeyAuth(ctx context.Context, sess *session, snap *inventory.Snapshot, value string) authResult {
	res := authResult{method: "api key"}
	id, secret, err := apikey.Parse(value)
	if err != nil {
		res.why = "malformed API key"
		return res
	}
	key, err := s.cfg.Credentials.GetAPIKey(ctx, id)
	if err != nil {
		res.why = fmt.Sprintf("API key %s: %v", id, err)
		return res
	}
	now := time.Now()
	switch {
	case !apikey.Verify(key.SecretHash, id, secret):
		res.why = fmt.Sprintf("API key %s: wrong secret", id)
	case key.Kind != store.APIKeyAccess:
		res.why = fmt.Sprintf("API key %s is not an access key", id)
	case !key.RevokedAt.IsZero():
		res.why = fmt.Sprintf("API key %s was revoked", id)
	case !key.ExpiresAt.IsZero() && !now.Before(key.ExpiresAt):
		res.why = fmt.Sprintf("API key %s expired", id)
	case key.Owner != sess.login.User:
		res.why = fmt.Sprintf("API key %s belongs to another user", id)
	case len(key.SourceCIDRs) > 0 && !inCIDRs(sess.srcAddr, key.SourceCIDRs):
		res.why = fmt.Sprintf("API key %s is not accepted from %s", id, sess.srcAddr)
	}
	if res.why != "" {
		return res
	}
	ident, ok := snap.Identity(key.Owner)
	if !ok {
		res.why = fmt.Sprintf("API key %s: owner %q does not exist", id, key.Owner)
		return res
	}
	res.knownUser = key.Owner
	if ident.Kind == policy.SubjectUser && s.codeRequired(snap, sess, ident) {
		res.why = "API key used where a verification code is required"
		res.tell = "a verification code is required: sign in with your password and code, not an API key"
		return res
	}
	res.ident, res.ok = ident, true
	return res
}

func inCIDRs(a netip.Addr, cidrs []string) bool {
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
