// Package upstream dials a target the way every part of the gateway must:
// TCP, key exchange with only the gateway's algorithms, the target's host
// key verified (pinned, or learned on first use) before any credential is
// offered, then public-key authentication with a key the caller brings.
//
// The SSH front uses it for every proxied connection; credential rotation
// and user provisioning use it to log in as an account on their own. Keeping
// one dialer means one place decides what "the target is who it claims to
// be" means.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/quickack"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Algorithms the gateway offers when it is the client. Only curve25519 /
// ML-KEM key exchange and AEAD or encrypt-then-MAC ciphers; aes128-gcm first
// because AES-NI makes it the cheapest on the gateway's own legs.
var (
	KeyExchanges = []string{ssh.KeyExchangeCurve25519, ssh.KeyExchangeMLKEM768X25519}
	Ciphers      = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}
	MACs         = []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
)

// ErrHostKeyMismatch is wrapped by every host key refusal: no credential
// was offered to the target.
var ErrHostKeyMismatch = errors.New("target host key mismatch")

// ErrUnreachable is wrapped when the TCP connection to the target fails.
var ErrUnreachable = errors.New("target unreachable")

// ErrAgentNotConnected is wrapped (with ErrUnreachable) when a target
// reached through its agent has no agent connected.
var ErrAgentNotConnected = errors.New("the target's agent is not connected")

// AgentDialer reaches targets whose agent dials out to the gateway
// (resource.Target.Via "agent"): the connection it returns carries the
// SSH session to the target (its own sshd, or the agent's built-in
// server) as a TCP connection would, so that everything above the byte
// stream (host key check, login, channels) is the same code for both kinds
// of target.
type AgentDialer interface {
	DialAgent(ctx context.Context, target string) (net.Conn, error)
}

// HostKeyStore remembers target host keys learned on first use.
type HostKeyStore interface {
	HostKey(ctx context.Context, target string) (store.HostKey, error)
	RecordHostKey(ctx context.Context, hk store.HostKey) error
}

// Config describes one login. Target, User, Signer and HostKeys are
// required.
type Config struct {
	Target *resource.Target
	// User is the login name on the target.
	User string
	// Signer is the credential: an account key or a short-lived certificate.
	Signer ssh.Signer
	// HostKeys holds the keys learned on first use; consulted when the
	// target has no pinned host_key.
	HostKeys HostKeyStore
	// Audit, if set, receives hostkey.learned and hostkey.mismatch events;
	// the caller fills in who and why (session, user, source).
	Audit func(store.AuditEvent)
	// Timeout bounds the TCP connect, key exchange and authentication.
	// Zero means 10 seconds.
	Timeout time.Duration
	// Agents reaches targets that dial out; nil: such a target is
	// unreachable.
	Agents AgentDialer
}

// Dial connects and logs in. It returns the raw connection and the
// channels the target may open or requests it may send, so that a caller
// with its own loop (the SSH front) need not run ssh.NewClient's
// goroutines; Client wraps them for callers that just run commands.
func Dial(ctx context.Context, cfg Config) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	if cfg.Target == nil || cfg.Signer == nil || cfg.HostKeys == nil || cfg.User == "" {
		return nil, nil, nil, errors.New("upstream: Target, User, Signer and HostKeys are required")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	nc, err := dialTCP(ctx, &cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	hk := &hostKeyCheck{ctx: ctx, cfg: &cfg}
	ccfg := clientConfig(&cfg, hk, ssh.PublicKeys(cfg.Signer))
	sc, chans, reqs, err := ssh.NewClientConn(nc, cfg.Target.Address, ccfg)
	if err != nil {
		nc.Close()
		if hk.mismatch != nil {
			return nil, nil, nil, hk.mismatch
		}
		return nil, nil, nil, fmt.Errorf("log in to %s as %s: %w", cfg.Target.Name, cfg.User, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return sc, chans, reqs, nil
}

func (cfg *Config) timeout() time.Duration {
	if cfg.Timeout <= 0 {
		return 10 * time.Second
	}
	return cfg.Timeout
}

// dialTCP connects to cfg's target with the deadline of ctx set on the
// connection, for the handshake that follows: over TCP, or through the
// target's agent.
func dialTCP(ctx context.Context, cfg *Config) (net.Conn, error) {
	target := cfg.Target
	if target.ThroughAgent() {
		if cfg.Agents == nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreachable, ErrAgentNotConnected)
		}
		nc, err := cfg.Agents.DialAgent(ctx, target.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		deadline, _ := ctx.Deadline()
		_ = nc.SetDeadline(deadline)
		return nc, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", target.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	// The target's sshd writes small packets with Nagle's algorithm on
	// until a session starts; acknowledging them at once spares the login
	// a 40 ms delayed-acknowledgement stall (see package quickack).
	nc = quickack.Wrap(nc, quickack.SetupReads)
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	return nc, nil
}

// clientConfig is the gateway's client configuration for one login.
func clientConfig(cfg *Config, hk *hostKeyCheck, auth ssh.AuthMethod) *ssh.ClientConfig {
	ccfg := &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: hk.check,
		ClientVersion:   "SSH-2.0-Portcullis",
		Timeout:         cfg.timeout(),
	}
	ccfg.KeyExchanges = KeyExchanges
	ccfg.Ciphers = Ciphers
	ccfg.MACs = MACs
	// Ask for the expected key's type so a server with several host keys
	// presents the one we can check; on first use, only plain keys with
	// SHA-2 signatures (no certificates, no ssh-rsa SHA-1, no DSA).
	ccfg.HostKeyAlgorithms = tofuHostKeyAlgos
	if want, err := hk.expected(); err == nil && want != nil {
		ccfg.HostKeyAlgorithms = hostKeyAlgosFor(want.Type())
	}
	return ccfg
}

// Client dials like Dial and returns an ssh.Client for running commands.
// Channels and requests the target sends unasked are refused by the
// client's own goroutines.
func Client(ctx context.Context, cfg Config) (*ssh.Client, error) {
	sc, chans, reqs, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

var tofuHostKeyAlgos = []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

func hostKeyAlgosFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// hostKeyCheck verifies the target's host key against the pinned key, or
// the key learned on first use, before any credential is offered: x/crypto
// calls HostKeyCallback during key exchange, before user authentication.
type hostKeyCheck struct {
	ctx context.Context
	cfg *Config
	// ahead marks a connection made ahead of need (Prepare): it learns no
	// key on first use and writes no audit event, since no authorized
	// request asked for it yet; Dial does both if it comes to that.
	ahead    bool
	mismatch error
	// looked is the first answer of expected, which the host key
	// algorithms were chosen from: the check during key exchange uses it
	// instead of reading the store a second time per dial.
	looked    bool
	lookedKey ssh.PublicKey
	lookedErr error
}

// expected returns the key the target must present: the pinned one, or
// the one learned on first use; nil with no error means first use. A stored
// key that does not parse, or a store that cannot be read, is an error:
// fail closed rather than learn again.
func (h *hostKeyCheck) expected() (ssh.PublicKey, error) {
	if !h.looked {
		h.looked = true
		h.lookedKey, h.lookedErr = h.lookup()
	}
	return h.lookedKey, h.lookedErr
}

// lookup reads the key expected returns, from the target or the store.
func (h *hostKeyCheck) lookup() (ssh.PublicKey, error) {
	t := h.cfg.Target
	if t.HostKey != "" {
		k, err := resource.ParseAuthorizedKey(t.HostKey)
		if err != nil {
			return nil, fmt.Errorf("pinned host_key of %s: %w", t.Name, err)
		}
		return k, nil
	}
	hk, err := h.cfg.HostKeys.HostKey(h.ctx, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read learned host key of %s: %w", t.Name, err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hk.Key))
	if err != nil {
		return nil, fmt.Errorf("learned host key of %s does not parse: %w", t.Name, err)
	}
	return k, nil
}

func (h *hostKeyCheck) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	t := h.cfg.Target
	for attempt := 0; ; attempt++ {
		want, err := h.expected()
		if attempt > 0 {
			// Another connection learned a key meanwhile: read it.
			want, err = h.lookup()
		}
		if err != nil {
			return h.fail(key, err.Error())
		}
		if want != nil {
			if !bytes.Equal(want.Marshal(), key.Marshal()) {
				return h.fail(key, fmt.Sprintf("expected %s", ssh.FingerprintSHA256(want)))
			}
			return nil
		}
		if h.ahead {
			return errUnknownHostKey
		}
		// Trust on first use: record it and say so in the audit trail. A
		// concurrent first use by another connection wins the race once;
		// then this one compares against the winner's key.
		err = h.cfg.HostKeys.RecordHostKey(h.ctx, store.HostKey{
			Target: t.Name, Key: AuthorizedKeyLine(key), FirstSeen: time.Now().UTC()})
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("record host key of %s: %w", t.Name, err)
		}
		h.audit(store.AuditEvent{Type: audit.HostKeyLearned, Outcome: audit.Info,
			Message: fmt.Sprintf("host key of %s learned on first use: %s", t.Name, ssh.FingerprintSHA256(key)),
			Detail:  map[string]any{"fingerprint": ssh.FingerprintSHA256(key)}})
		return nil
	}
}

func (h *hostKeyCheck) fail(got ssh.PublicKey, why string) error {
	h.mismatch = fmt.Errorf("%w: %s presented %s, %s", ErrHostKeyMismatch, h.cfg.Target.Name, ssh.FingerprintSHA256(got), why)
	h.audit(store.AuditEvent{Type: audit.HostKeyMismatch, Outcome: audit.Failure, Message: h.mismatch.Error(),
		Detail: map[string]any{"fingerprint": ssh.FingerprintSHA256(got)}})
	return h.mismatch
}

func (h *hostKeyCheck) audit(ev store.AuditEvent) {
	if h.cfg.Audit != nil && !h.ahead {
		h.cfg.Audit(ev)
	}
}

// AuthorizedKeyLine returns k in authorized_keys format without a comment
// or trailing newline.
func AuthorizedKeyLine(k ssh.PublicKey) string {
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))
}

// Run executes script on c with stdin (key material goes there, never on
// a command line) and returns its standard output; an error carries its
// standard error. Rotation and provisioning run their remote steps so.
func Run(c *ssh.Client, script, stdin string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr = &out, &errOut
	if err := s.Run(script); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}
