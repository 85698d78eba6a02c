// Package loginstr parses the SSH user name that carries who and where
// (DESIGN section 1): "USER~TARGET" or "USER~ACCOUNT~TARGET".
//
// It is the first thing the gateway does with outside input on every
// connection, so it is strict, allocation-light, and fuzzed.
package loginstr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis/portcullis/internal/resource"
)

// Separator splits the parts of a login string.
const Separator = "~"

// maxLen bounds the whole string; SSH allows longer user names, but no valid
// login string comes close and a short bound keeps logs readable.
const maxLen = 300

// Login is a parsed login string.
type Login struct {
	User    string // gateway identity: a user or a service account
	Account string // target user; empty when the policy is to choose
	Target  string // target name
}

// String formats the login back into its canonical form.
func (l Login) String() string {
	if l.Account == "" {
		return l.User + Separator + l.Target
	}
	return l.User + Separator + l.Account + Separator + l.Target
}

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed login string")

// Usage is the one-line hint shown to a client whose login string is wrong.
const Usage = "use USER~TARGET or USER~ACCOUNT~TARGET, e.g. ssh -p 2222 alice~web1@gateway"

// Parse splits s into its parts and checks each against the resource name
// rules. The error says which part is wrong and never echoes more than the
// bounded input.
func Parse(s string) (Login, error) {
	if len(s) > maxLen {
		return Login{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	parts := strings.Split(s, Separator)
	var l Login
	switch len(parts) {
	case 2:
		l = Login{User: parts[0], Target: parts[1]}
	case 3:
		l = Login{User: parts[0], Account: parts[1], Target: parts[2]}
	case 1:
		return Login{}, fmt.Errorf("%w: %q names no target", ErrMalformed, s)
	default:
		return Login{}, fmt.Errorf("%w: %q has %d parts, at most 3", ErrMalformed, s, len(parts))
	}
	if !resource.ValidName(l.User) {
		return Login{}, fmt.Errorf("%w: user %q is not a valid name", ErrMalformed, l.User)
	}
	if len(parts) == 3 && !resource.ValidTargetUser(l.Account) {
		return Login{}, fmt.Errorf("%w: account %q is not a valid login name", ErrMalformed, l.Account)
	}
	if !resource.ValidName(l.Target) {
		return Login{}, fmt.Errorf("%w: target %q is not a valid name", ErrMalformed, l.Target)
	}
	return l, nil
}
