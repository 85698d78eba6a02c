package sshgate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/policy"
)

// codePrompt is the keyboard-interactive prompt for the second factor.
const codePrompt = "Verification code (or a recovery code): "

// secondFactorAsk is what the keyboard-interactive step needs from the
// public key step that preceded it.
type secondFactorAsk struct {
	ident     inventory.Identity
	ext       map[string]string // the verified key's permission extensions
	reason    string            // what requires the code, for the log
	src       netip.Addr
	srcStr    string
	sessionID string
}

// askCode returns the keyboard-interactive callback that asks a
// verification code after the key succeeded (only users get here: a
// service account cannot enroll and is refused at its key). The client is
// refused with a banner it shows when the code cannot be asked at all: a
// user not enrolled (fail closed, with what to do), or a lockout. A wrong code is an ordinary failure, and the client may
// try again within MaxAuthTries.
func (s *Server) askCode(ctx context.Context, a secondFactorAsk) func(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	refuse := func(msg string, err error) error {
		return &ssh.BannerError{Err: err, Message: "portcullis: " + msg + "\r\n"}
	}
	return func(_ ssh.ConnMetadata, challenge ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
		if s.cfg.MFA == nil {
			s.cfg.Log.Error("a verification code is required but the SSH front has no MFA service", "user", a.ident.Name, "reason", a.reason)
			return nil, refuse("a verification code is required and cannot be checked; contact an admin", errors.New("no MFA service"))
		}
		st, err := s.cfg.MFA.Status(ctx, a.ident.Name)
		if err != nil {
			s.cfg.Log.Error("read second factor enrollment", "user", a.ident.Name, "err", err)
			return nil, refuse("the verification code cannot be checked now; try again later", err)
		}
		if st.State != "active" {
			return nil, refuse(fmt.Sprintf("%s must present a verification code (%s) but has no second factor enrolled: ask an admin to run `portcullis mfa enroll %s`",
				a.ident.Name, a.reason, a.ident.Name), fmt.Errorf("%s has no active second factor", a.ident.Name))
		}
		answers, err := challenge("", "", []string{codePrompt}, []bool{false})
		if err != nil {
			return nil, fmt.Errorf("ask verification code: %w", err)
		}
		if len(answers) != 1 {
			return nil, fmt.Errorf("ask verification code: %d answers to one prompt", len(answers))
		}
		kind, err := s.cfg.MFA.Verify(ctx, mfa.Attempt{User: a.ident.Name, Code: answers[0], Addr: a.src, Source: a.srcStr,
			Via: "ssh", SessionID: a.sessionID})
		switch {
		case errors.Is(err, mfa.ErrLocked):
			return nil, refuse(err.Error(), err)
		case errors.Is(err, mfa.ErrInvalid):
			return nil, refuse("wrong or already used verification code", err)
		case err != nil:
			s.cfg.Log.Error("verify second factor", "user", a.ident.Name, "err", err)
			return nil, refuse("the verification code cannot be checked now; try again later", err)
		}
		ext := make(map[string]string, len(a.ext)+1)
		for k, v := range a.ext {
			ext[k] = v
		}
		ext[extMFA] = kind
		return &ssh.Permissions{Extensions: ext}, nil
	}
}

// codeMissing reports whether an allowed decision needs a verification
// code this connection did not present: a granting policy requires one and
// no granting policy has autologin. Authentication asks for it already;
// this catches a policy that changed since.
func (c *conn) codeMissing(d policy.Decision) bool {
	return c.mfa == "" && d.RequireMFA && !d.Autologin
}
