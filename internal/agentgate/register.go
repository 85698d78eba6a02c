package agentgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// EnvironmentLabel is the label a registered target carries for the
// environment its registration key (or its agent) names.
const EnvironmentLabel = store.EnvironmentLabel

// registrationError is a refusal the agent's operator sees: it names what
// is wrong, never the key's value.
type registrationError struct{ msg string }

func (e *registrationError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &registrationError{msg: fmt.Sprintf(format, args...)}
}

// serveRegistration answers the one registration request of a connection.
func (s *Server) serveRegistration(sc *ssh.ServerConn, reqs <-chan *ssh.Request, hello agentproto.Hello) {
	if req, ok := <-reqs; ok {
		if req.Type != agentproto.ReqRegister {
			reply(req, false, agentproto.Refusal{Message: "a registration connection takes one " + agentproto.ReqRegister})
			return
		}
		var r agentproto.Registration
		if err := json.Unmarshal(req.Payload, &r); err != nil {
			reply(req, false, agentproto.Refusal{Message: "registration: malformed JSON"})
			return
		}
		ans, err := s.register(sc, r, hello)
		var re *registrationError
		switch {
		case errors.As(err, &re):
			reply(req, false, agentproto.Refusal{Message: re.msg})
		case err != nil:
			s.cfg.Log.Error("agent registration failed", "name", r.Name, "err", err)
			reply(req, false, agentproto.Refusal{Message: "the gateway could not register the target: see its log"})
		default:
			reply(req, true, ans)
		}
	}
}

// register checks the registration key and its limits, then creates (or,
// with Force, replaces) the agent's target and identity. Every outcome
// past the key's id is audited; the key's secret never is.
func (s *Server) register(sc *ssh.ServerConn, r agentproto.Registration, hello agentproto.Hello) (agentproto.Registered, error) {
	ctx := context.WithoutCancel(s.ctx)
	src := sc.RemoteAddr().String()
	agentKey := sc.Permissions.Extensions[extKey]
	keyID, secret, err := apikey.Parse(r.Key)
	if err != nil {
		// Not a key at all: nothing to name in the trail but the source.
		s.write(store.AuditEvent{Type: audit.AgentRegister, Outcome: audit.Failure, Source: src,
			Message: "agent registration refused: malformed registration key", Detail: map[string]any{"name": r.Name}})
		return agentproto.Registered{}, refuse("the registration key is malformed")
	}
	fail := func(msg string) (agentproto.Registered, error) {
		s.write(store.AuditEvent{Type: audit.AgentRegister, Outcome: audit.Failure, Source: src, Target: r.Name,
			Message: "agent registration refused: " + msg,
			Detail:  map[string]any{"key_id": keyID, "name": r.Name, "fingerprint": fingerprint(agentKey)}})
		return agentproto.Registered{}, refuse("%s", msg)
	}
	k, err := s.cfg.Store.GetAPIKey(ctx, keyID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail("unknown registration key")
	case err != nil:
		return agentproto.Registered{}, fmt.Errorf("read registration key %s: %w", keyID, err)
	}
	now := s.cfg.Now()
	if !apikey.Verify(k.SecretHash, keyID, secret) {
		return fail("unknown registration key")
	}
	env, err := store.CheckRegistration(k, r.Name, r.Environment, now)
	var rr *store.RegistrationRefusal
	switch {
	case errors.As(err, &rr):
		return fail(rr.Msg)
	case err != nil:
		return agentproto.Registered{}, fmt.Errorf("check registration key %s: %w", keyID, err)
	case !sourceAllowed(k.SourceCIDRs, sc.RemoteAddr().String()):
		return fail("the registration key is not accepted from this address")
	}
	mode := r.Mode
	if mode != agentproto.ModeForward && mode != agentproto.ModeBuiltin {
		return fail(fmt.Sprintf("mode %q is not forward or builtin", r.Mode))
	}
	t := &resource.Target{Kind: resource.KindTarget, Name: r.Name, Via: resource.ViaAgent, Address: r.Address,
		Labels: maps.Clone(r.Labels)}
	if env != "" {
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Labels[EnvironmentLabel] = env
	}
	switch mode {
	case agentproto.ModeBuiltin:
		// The agent's identity is the built-in server's host key, and
		// the gateway logs in with a certificate of its user CA.
		t.HostKey, t.Auth, t.Address = agentKey, resource.AuthCertificate, ""
	default:
		t.HostKey = strings.TrimSpace(r.HostKey)
		if t.HostKey == "" {
			return fail("forward mode needs the host key of the sshd it forwards to")
		}
	}
	if err := t.Validate(); err != nil {
		return fail(err.Error())
	}
	snap := s.cfg.Inventory.Snapshot()
	if old := snap.Engine.Target(t.Name); old != nil {
		if !old.ThroughAgent() {
			// An agent never takes over a target the gateway dials:
			// that would hand its users' sessions to whoever holds a
			// registration key.
			return fail(fmt.Sprintf("target %q exists and is not an agent target", t.Name))
		}
		if a, err := s.cfg.Store.GetAgent(ctx, t.Name); err == nil && a.PublicKey != agentKey && !r.Force {
			return fail(fmt.Sprintf("target %q is registered to another agent identity; register with --force to replace it", t.Name))
		}
	}
	if err := s.cfg.Store.UseRegistrationKey(ctx, keyID, now); errors.Is(err, store.ErrConflict) {
		return fail("the registration key is used up, revoked or expired")
	} else if err != nil {
		return agentproto.Registered{}, fmt.Errorf("count the use of registration key %s: %w", keyID, err)
	}
	if _, err := s.cfg.Inventory.Apply(ctx, []resource.Object{t}); err != nil {
		return agentproto.Registered{}, fmt.Errorf("store target %s: %w", t.Name, err)
	}
	if err := s.cfg.Store.PutAgent(ctx, store.Agent{Target: t.Name, PublicKey: agentKey, Mode: mode,
		Version: hello.Version, KeyID: keyID, RegisteredAt: now}); err != nil {
		return agentproto.Registered{}, fmt.Errorf("store agent %s: %w", t.Name, err)
	}
	// A replaced identity's connection ends now; the new agent connects
	// next.
	s.mu.Lock()
	old := s.agents[t.Name]
	s.mu.Unlock()
	if old != nil {
		old.sc.Close()
	}
	s.write(store.AuditEvent{Type: audit.AgentRegister, Outcome: audit.Success, Source: src, Target: t.Name, User: "apikey:" + keyID,
		Message: fmt.Sprintf("agent target %s registered (%s mode)", t.Name, mode),
		Detail: map[string]any{"key_id": keyID, "fingerprint": fingerprint(agentKey), "mode": mode, "environment": env,
			"labels": t.Labels, "forced": r.Force, "agent_version": hello.Version}})
	return agentproto.Registered{Target: t.Name, Gateway: s.cfg.GatewayID}, nil
}

// sourceAllowed reports whether addr is in one of cidrs (all when none).
func sourceAllowed(cidrs []string, addr string) bool {
	if len(cidrs) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}
