package sshgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
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
// use. A failed dial is remembered: the client is told once per request,
// and a connection never hammers a target that refused it.
func (c *conn) upstreamFor() (ssh.Conn, error) {
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
	cl, err := c.dial(tu)
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
// credential.
func (c *conn) dial(targetUser string) (ssh.Conn, error) {
	snap := c.srv.cfg.Snapshot()
	target := snap.Engine.Target(c.login.Target)
	if target == nil {
		return nil, errors.New("target no longer exists")
	}
	var signer ssh.Signer
	switch target.AuthMode() {
	case resource.AuthCertificate:
		if c.srv.cfg.CA == nil {
			return nil, errors.New("no user CA is configured")
		}
		s, err := c.srv.cfg.CA.NewEphemeralCertSigner(targetUser, fmt.Sprintf("portcullis:%s:%s", c.ident.Name, c.id), c.srv.cfg.CertTTL)
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
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", target.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTargetDown, err)
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	hk := &hostKeyCheck{c: c, target: target}
	cfg := &ssh.ClientConfig{
		User:            targetUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk.check,
		ClientVersion:   "SSH-2.0-Portcullis",
		Timeout:         c.srv.cfg.DialTimeout,
	}
	cfg.KeyExchanges = []string{ssh.KeyExchangeCurve25519, ssh.KeyExchangeMLKEM768X25519}
	cfg.Ciphers = cipherAlgos
	cfg.MACs = macAlgos
	// Ask for the expected key's type so a server with several host keys
	// presents the one we can check; on first use, only plain keys with
	// SHA-2 signatures (no certificates, no ssh-rsa SHA-1, no DSA).
	cfg.HostKeyAlgorithms = tofuHostKeyAlgos
	if want, err := hk.expected(); err == nil && want != nil {
		cfg.HostKeyAlgorithms = hostKeyAlgosFor(want.Type())
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, target.Address, cfg)
	if err != nil {
		nc.Close()
		if hk.mismatch != nil {
			return nil, hk.mismatch
		}
		return nil, fmt.Errorf("log in to %s as %s: %w", target.Name, targetUser, err)
	}
	_ = nc.SetDeadline(time.Time{})
	// The connection's own loop (conn.serve) turns down whatever the target
	// opens or asks, instead of ssh.NewClient's two goroutines.
	c.upInbox <- upstreamInbox{chans: chans, reqs: reqs}
	return sc, nil
}

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

var tofuHostKeyAlgos = []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

func hostKeyAlgosFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// errHostKeyMismatch is wrapped by every host key refusal.
var errHostKeyMismatch = errors.New("target host key mismatch")

// hostKeyCheck verifies the target's host key against the pinned key, or
// the key learned on first use, before any credential is offered: x/crypto
// calls HostKeyCallback during key exchange, before user authentication.
type hostKeyCheck struct {
	c        *conn
	target   *resource.Target
	mismatch error
}

// expected returns the key the target must present: the pinned one, or
// the one learned on first use; nil with no error means first use. A stored
// key that does not parse, or a store that cannot be read, is an error:
// fail closed rather than learn again.
func (h *hostKeyCheck) expected() (ssh.PublicKey, error) {
	if h.target.HostKey != "" {
		k, err := resource.ParseAuthorizedKey(h.target.HostKey)
		if err != nil {
			return nil, fmt.Errorf("pinned host_key of %s: %w", h.target.Name, err)
		}
		return k, nil
	}
	hk, err := h.c.srv.cfg.HostKeys.HostKey(h.c.ctx, h.target.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read learned host key of %s: %w", h.target.Name, err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hk.Key))
	if err != nil {
		return nil, fmt.Errorf("learned host key of %s does not parse: %w", h.target.Name, err)
	}
	return k, nil
}

func (h *hostKeyCheck) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	for attempt := 0; ; attempt++ {
		want, err := h.expected()
		if err != nil {
			return h.fail(key, err.Error())
		}
		if want != nil {
			if !bytes.Equal(want.Marshal(), key.Marshal()) {
				return h.fail(key, fmt.Sprintf("expected %s", ssh.FingerprintSHA256(want)))
			}
			return nil
		}
		// Trust on first use: record it and say so in the audit trail. A
		// concurrent first use by another connection wins the race once;
		// then this one compares against the winner's key.
		err = h.c.srv.cfg.HostKeys.RecordHostKey(h.c.ctx, store.HostKey{
			Target: h.target.Name, Key: authorizedKeyLine(key), FirstSeen: time.Now().UTC()})
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("record host key of %s: %w", h.target.Name, err)
		}
		_ = h.c.audit(store.AuditEvent{Type: audit.HostKeyLearned, Outcome: audit.Info,
			Message: fmt.Sprintf("host key of %s learned on first use: %s", h.target.Name, ssh.FingerprintSHA256(key)),
			Detail:  map[string]any{"fingerprint": ssh.FingerprintSHA256(key)}})
		return nil
	}
}

func (h *hostKeyCheck) fail(got ssh.PublicKey, why string) error {
	h.mismatch = fmt.Errorf("%w: %s presented %s, %s", errHostKeyMismatch, h.target.Name, ssh.FingerprintSHA256(got), why)
	_ = h.c.audit(store.AuditEvent{Type: audit.HostKeyMismatch, Outcome: audit.Failure, Message: h.mismatch.Error(),
		Detail: map[string]any{"fingerprint": ssh.FingerprintSHA256(got)}})
	return h.mismatch
}

func authorizedKeyLine(k ssh.PublicKey) string {
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))
}
