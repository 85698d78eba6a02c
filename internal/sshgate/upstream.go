package sshgate

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/provision"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
	"github.com/portcullis/portcullis/internal/vault"
)

// Algorithms offered on both legs. Only curve25519 / ML-KEM key exchange,
// AEAD or encrypt-then-MAC ciphers and MACs: no SHA-1, CBC, DSA or NIST-curve
// key exchange. aes128-gcm comes first because AES-NI makes it the cheapest
// on the gateway's own legs (chacha20 costs a third of the throughput here).
var (
	kexAlgos    = []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org"}
	cipherAlgos = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}
	macAlgos    = []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
)

func serverConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-Portcullis",
	}
	cfg.KeyExchanges = kexAlgos
	cfg.Ciphers = cipherAlgos
	cfg.MACs = macAlgos
	cfg.PublicKeyAuthAlgorithms = []string{
		ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256,
	}
	return cfg
}

// upstreamFor returns the connection's upstream client, dialing it on first
// use with the obligations of the request that needs it (which may ask to
// provision the login first). A failed dial is remembered: the client is told once per request,
// and a connection never hammers a target that refused it.
func (c *conn) upstreamFor(ob policy.Obligations) (ssh.Conn, error) {
	// dialMu makes concurrent first channels wait for one dial instead of
	// racing two; c.mu is not held while dialing because the host key
	// check writes audit events, which read c.mu.
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	up, dialErr, ended, tu := c.upstream, c.dialErr, c.ended, c.targetUser
	c.mu.Unlock()
	switch {
	case up != nil:
		return up, nil
	case dialErr != nil:
		return nil, dialErr
	case ended:
		return nil, errors.New("connection is ending")
	}
	cl, err := c.dial(tu, ob)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.dialErr = err
		return nil, err
	case c.ended:
		cl.Close()
		return nil, errors.New("connection is ending")
	}
	c.upstream = cl
	return cl, nil
}

// dial connects to the target and logs in as targetUser with the gateway's
// credential, after creating that login on the target if ob asks for it.
func (c *conn) dial(targetUser string, ob policy.Obligations) (ssh.Conn, error) {
	snap := c.srv.cfg.Snapshot()
	target := snap.Engine.Target(c.login.Target)
	if target == nil {
		return nil, errors.New("target no longer exists")
	}
	// With an account for the login, it exists (the gateway made it or
	// an admin did); only a certificate target needs asking every time,
	// and the provisioner remembers the answer.
	if ob.Provision && c.srv.cfg.Provisioner != nil &&
		(target.AuthMode() == resource.AuthCertificate || snap.Account(target.Name, targetUser) == nil) {
		_, err := c.srv.cfg.Provisioner.Ensure(c.ctx, provision.Request{Target: target.Name, Name: targetUser,
			Sudoers: ob.Sudoers, Subject: c.ident.Name, Source: c.srcStr, SessionID: c.id})
		if err != nil {
			return nil, err
		}
		// The login's new account is in a newer snapshot.
		snap = c.srv.cfg.Snapshot()
	}
	var signer ssh.Signer
	switch target.AuthMode() {
	case resource.AuthCertificate:
		if c.srv.cfg.CA == nil {
			return nil, errors.New("no user CA is configured")
		}
		permits, err := c.certPermits(snap, targetUser)
		if err != nil {
			return nil, err
		}
		s, err := c.srv.cfg.CA.NewEphemeralCertSigner(targetUser, fmt.Sprintf("portcullis:%s:%s", c.ident.Name, c.id), c.srv.cfg.CertTTL, permits)
		if err != nil {
			return nil, fmt.Errorf("sign certificate: %w", err)
		}
		signer = s
	default:
		sealed, aad, ok := snap.AccountKey(target.Name, targetUser)
		if !ok {
			return nil, fmt.Errorf("no account %s/%s", target.Name, targetUser)
		}
		s, err := c.srv.cfg.Vault.Signer(sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("open account key: %w", err)
		}
		signer = s
	}
	if sc, chans, reqs, ok, err := c.loginAhead(target, targetUser, ob, signer); ok || err != nil {
		if err != nil {
			return nil, err
		}
		c.upInbox <- upstreamInbox{chans: chans, reqs: reqs}
		return sc, nil
	}
	sc, chans, reqs, err := upstream.Dial(c.ctx, upstream.Config{
		Target:   target,
		User:     targetUser,
		Signer:   signer,
		HostKeys: c.srv.cfg.HostKeys,
		Audit:    func(ev store.AuditEvent) { _ = c.audit(ev) },
		Timeout:  c.srv.cfg.DialTimeout,
		Agents:   c.srv.cfg.Agents,
	})
	switch {
	case errors.Is(err, upstream.ErrUnreachable):
		return nil, targetDownError{err}
	case err != nil:
		return nil, err
	}
	// The connection's own loop (conn.serve) turns down whatever the target
	// opens or asks, instead of ssh.NewClient's two goroutines.
	c.upInbox <- upstreamInbox{chans: chans, reqs: reqs}
	return sc, nil
}

// certPermits returns the extensions of the certificate for targetUser:
// those of every action some policy grants the subject on this target as
// that user, not only the request that dials. The connection is dialed
// once and shared, so a later channel (a tunnel after an exec) runs under
// the same certificate; each request is still decided by the gateway, and
// the target's sshd refuses what the certificate does not permit even if
// that check were bypassed. An action granted after the dial needs a new
// connection.
func (c *conn) certPermits(snap *inventory.Snapshot, targetUser string) (vault.UserCertPermits, error) {
	groups, err := c.directoryGroups()
	if err != nil {
		return vault.UserCertPermits{}, fmt.Errorf("directory groups: %w", err)
	}
	grants := func(action string) bool {
		return snap.Engine.Grants(policy.Request{Kind: c.ident.Kind, Subject: c.ident.Name, Action: action,
			Target: c.login.Target, TargetUser: targetUser, Source: c.source, Groups: groups})
	}
	return vault.UserCertPermits{
		// A command run with ssh -t needs a pty as much as a shell does.
		PTY:            grants(resource.ActionShell) || grants(resource.ActionExec),
		PortForwarding: grants(resource.ActionTunnel),
	}, nil
}

// targetDownError is an unreachable target: errTargetDown for the
// session's message to the user, the upstream error (which already says
// "target unreachable") for the log, without saying it twice.
type targetDownError struct{ err error }

func (e targetDownError) Error() string        { return e.err.Error() }
func (e targetDownError) Unwrap() error        { return e.err }
func (e targetDownError) Is(target error) bool { return target == errTargetDown }

// upstreamInbox carries what a target may send unasked: channel opens and
// global requests. The gateway refuses both.
type upstreamInbox struct {
	chans <-chan ssh.NewChannel
	reqs  <-chan *ssh.Request
}

func refuseUpstreamChannel(nch ssh.NewChannel) {
	_ = nch.Reject(ssh.Prohibited, "the gateway accepts no channels from targets")
}

func refuseUpstreamRequest(req *ssh.Request) {
	if req.WantReply {
		_ = req.Reply(false, nil)
	}
}

// errHostKeyMismatch is wrapped by every host key refusal.
var errHostKeyMismatch = upstream.ErrHostKeyMismatch
