package policy

import "time"

// SecondFactor is whether a subject must present a verification code
// (TOTP) when it connects, and why.
type SecondFactor struct {
	// Required: ask a code before the connection is accepted.
	Required bool
	// Reason says what requires it, for logs: "user mfa: required" or
	// "policy NAME".
	Reason string
}

// SecondFactor answers, at authentication time, whether r's subject must
// present a verification code to connect to r.Target from r.Source. The
// action is not known yet (no channel is open), so every target-access
// policy that covers the subject, the target, the time and the source
// counts, whatever actions it grants:
//
//   - A user whose User resource says mfa: required is always asked. It is
//     a statement about the person; no policy waives it.
//   - Otherwise the subject is asked when a covering policy has
//     require_mfa, unless a covering policy has autologin: autologin is
//     script access from the policy's source networks, with no one to
//     type a code (Validate refuses both on one policy).
//
// Service accounts cannot enroll; a require_mfa policy without autologin
// therefore refuses them, which fails closed. Decide enforces the same
// through Obligations.RequireMFA on every request, so that a policy
// change during a connection is caught by re-checks.
//
// It allocates nothing; a subject named by no require_mfa policy costs a
// map lookup.
func (e *Engine) SecondFactor(r Request) SecondFactor {
	if r.Kind == SubjectUser {
		if u, ok := e.users[r.Subject]; ok && u.mfaRequired {
			return SecondFactor{Required: true, Reason: "user mfa: required"}
		}
	}
	if !e.anyRequireMFA {
		return SecondFactor{}
	}
	var buf [8][]*compiled
	_, cands, ok := e.candidates(e.access, &r, buf[:0])
	if !ok {
		return SecondFactor{}
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	var requiring *compiled
	for _, list := range cands {
		for _, c := range list {
			if !c.targets[r.Target] || !c.activeAt(now) || (len(c.cidrs) > 0 && !r.AnySource && !inCIDRs(c.cidrs, r.Source)) {
				continue
			}
			if c.autologin {
				return SecondFactor{}
			}
			if c.requireMFA && (requiring == nil || c.name < requiring.name) {
				requiring = c
			}
		}
	}
	if requiring == nil {
		return SecondFactor{}
	}
	return SecondFactor{Required: true, Reason: "policy " + requiring.name}
}

// UserRequiresMFA reports whether the user called name says mfa: required.
func (e *Engine) UserRequiresMFA(name string) bool {
	u, ok := e.users[name]
	return ok && u.mfaRequired
}
