package sshgate

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// DefaultAcceptEnv is what passes to the target when Config.AcceptEnv is
// nil: the locale, the terminal and the time zone, as Debian's sshd_config
// accepts. Variables such as LD_PRELOAD or BASH_ENV change what the
// target's programs run, so they never pass by default.
var DefaultAcceptEnv = []string{"LANG", "LC_*", "TERM", "TZ", "COLORTERM"}

// envPattern is one entry of AcceptEnv: a name, or a glob of '*' and '?'.
type envPattern string

// compileEnvPatterns checks AcceptEnv; nil takes DefaultAcceptEnv.
func compileEnvPatterns(list []string) ([]envPattern, error) {
	if list == nil {
		list = DefaultAcceptEnv
	}
	out := make([]envPattern, 0, len(list))
	for _, p := range list {
		if !ValidEnvPattern(p) {
			return nil, fmt.Errorf("accept env: %q is not a variable name or a glob of one (letters, digits, '_', '*', '?')", p)
		}
		out = append(out, envPattern(p))
	}
	return out, nil
}

// ValidEnvPattern reports whether p may be an AcceptEnv entry: a variable
// name in which '*' and '?' may stand for characters. No '[': a character
// class would make "what passes" harder to read than a list.
func ValidEnvPattern(p string) bool {
	if p == "" || len(p) > 128 {
		return false
	}
	for _, r := range p {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '*', r == '?':
		default:
			return false
		}
	}
	return true
}

// envAccepted reports whether an env request may pass to the target, and
// the variable's name (for the log). A malformed request never passes.
func (s *Server) envAccepted(payload []byte) (name string, ok bool) {
	var p struct{ Name, Value string }
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return "", false
	}
	// A name that is not a plain variable name ("A=B", "", one with a
	// NUL) matches nothing: sshd and the shell would read it differently.
	if !validEnvName(p.Name) {
		return p.Name, false
	}
	for _, pat := range s.acceptEnv {
		if ok, _ := path.Match(string(pat), p.Name); ok {
			return p.Name, true
		}
	}
	return p.Name, false
}

func validEnvName(n string) bool {
	return n != "" && len(n) <= 128 && !strings.ContainsAny(n, "*?") && ValidEnvPattern(n)
}
