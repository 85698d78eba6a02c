// Package agentproto is what the agent (package agent, on a target) and the
// gateway's agent front (package agentgate) agree on: the SSH requests and
// channel types of the agent's connection, their payloads, and which agent
// versions a gateway serves.
//
// Why SSH and not TLS for the agent's connection: the agent's identity is an
// Ed25519 key and the gateway already has an SSH host key, so mutual
// authentication is SSH's own (the agent pins the gateway's host key, the
// gateway checks the agent's public key) with no certificate authority to
// run; and SSH multiplexes: each session to the target is one channel on the
// agent's single connection, with flow control per channel, where TLS would
// need a multiplexer of its own on top.
//
// The connection, in order:
//
//  1. The agent dials the gateway's agent address; SSH key exchange (the
//     agent checks the gateway's host key against the one it pinned at
//     registration) and public-key authentication with the agent's
//     identity, as user UserRegister (registration) or as its target's
//     name.
//  2. The agent sends ReqHello with its Hello; the gateway answers with its
//     own Hello, or refuses with one line naming both versions (VersionError).
//  3. Registration: the agent sends ReqRegister with a Registration and gets
//     a Registered; then the connection ends.
//     An agent: the gateway opens one ChanSession channel per session to the
//     target; the agent sends ReqKeepalive every heartbeat and treats an
//     unanswered one as a dead connection.
package agentproto

import (
	"fmt"
	"strconv"
	"strings"
)

// SSH user names and request and channel types of the agent's connection.
const (
	// UserRegister is the login of a connection that registers an agent;
	// any other login is the name of an agent's target.
	UserRegister = "register"
	ReqHello     = "hello@portcullis"
	ReqRegister  = "register@portcullis"
	ReqKeepalive = "keepalive@portcullis"
	// ReqGoAway, from the gateway, says it is about to close the
	// connection (it is stopping) and how to spread the reconnects.
	ReqGoAway = "goaway@portcullis"
	// ChanSession carries one SSH connection to the target: to its sshd
	// (forward mode) or to the agent's built-in server.
	ChanSession = "session@portcullis"
)

// Modes an agent serves sessions in.
const (
	ModeForward = "forward" // to the host's own sshd
	ModeBuiltin = "builtin" // the agent runs the session itself
)

// Hello is the payload of ReqHello and of its answer.
type Hello struct {
	Version string `json:"version"`
	Mode    string `json:"mode,omitempty"`
	// Gateway is the answering gateway's id.
	Gateway string `json:"gateway,omitempty"`
	// UserCA is the gateway's user certificate authority, authorized_keys
	// format: a built-in agent accepts the certificates it signs.
	UserCA string `json:"user_ca,omitempty"`
	// UserCAs are the user CAs of the other gateways sharing this one's
	// store (proxy peering): a session forwarded from one of them logs in
	// with its certificate.
	UserCAs []string `json:"user_cas,omitempty"`
	// HeartbeatSeconds, in the gateway's answer, is how often the agent
	// sends ReqKeepalive; the gateway closes a connection silent for three
	// of them.
	HeartbeatSeconds int `json:"heartbeat_seconds,omitempty"`
}

// Registration is the payload of ReqRegister. Key is the registration key
// value: it travels only inside the encrypted, host-key-checked connection.
type Registration struct {
	Key         string            `json:"key"`
	Name        string            `json:"name"`
	Environment string            `json:"environment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Force       bool              `json:"force,omitempty"`
	Mode        string            `json:"mode"`
	// HostKey is the key sessions to the target must find: the host's sshd
	// key in forward mode; empty in built-in mode (the agent's identity is
	// the host key).
	HostKey string `json:"host_key,omitempty"`
	// Address is the sshd address of forward mode, for the record.
	Address string `json:"address,omitempty"`
}

// Registered answers a registration.
type Registered struct {
	Target  string `json:"target"`
	Gateway string `json:"gateway"`
}

// GoAway is the payload of ReqGoAway: the agent waits a uniformly random
// time below SpreadMillis before it reconnects, so that the gateway's
// agents come back at the rate it chose rather than all at once.
type GoAway struct {
	SpreadMillis int64 `json:"spread_ms"`
}

// Refusal is the payload of a refused request: one line for the agent's
// operator.
type Refusal struct {
	Message string `json:"message"`
}

// Version is a parsed release version: MAJOR.MINOR[.PATCH], with an
// optional leading "v". Devel is a build without a release version
// ("devel"), which is served and serves every version.
type Version struct {
	Major, Minor int
	Devel        bool
}

// ParseVersion parses v.
func ParseVersion(v string) (Version, error) {
	if v == "" || v == "devel" {
		return Version{Devel: true}, nil
	}
	s := strings.TrimPrefix(v, "v")
	// Drop a pre-release or build suffix: 1.4.0-rc1, 1.4.0+dirty.
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR[.PATCH]", v)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || len(p) > 9 {
			return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR[.PATCH]", v)
		}
		n[i] = x
	}
	return Version{Major: n[0], Minor: n[1]}, nil
}

// VersionError is a gateway refusing an agent's version.
type VersionError struct {
	Gateway, Agent string
}

func (e *VersionError) Error() string {
	g, _ := ParseVersion(e.Gateway)
	prev := ""
	if g.Minor > 0 {
		prev = fmt.Sprintf(" and %d.%d", g.Major, g.Minor-1)
	}
	return fmt.Sprintf("gateway %s serves agents of version %d.%d%s; this agent is %s: install the gateway's version of the agent",
		e.Gateway, g.Major, g.Minor, prev, e.Agent)
}

// Compatible reports whether a gateway of version gateway serves an agent of
// version agent: the same major version and the gateway's minor version or
// the one before it (an agent is upgraded after its gateway). An agent
// version that does not parse is refused.
func Compatible(gateway, agent string) error {
	// A build always serves itself, released or not: `make run` from a
	// clone without release tags stamps the commit ("5cdf108") as the
	// version, and its in-process agent serves target local.
	if gateway == agent {
		return nil
	}
	g, err := ParseVersion(gateway)
	if err != nil {
		return fmt.Errorf("gateway %w", err)
	}
	a, err := ParseVersion(agent)
	if err != nil {
		return &VersionError{Gateway: gateway, Agent: strconv.Quote(agent)}
	}
	if g.Devel || a.Devel {
		return nil
	}
	if a.Major == g.Major && (a.Minor == g.Minor || a.Minor == g.Minor-1) {
		return nil
	}
	return &VersionError{Gateway: gateway, Agent: agent}
}
