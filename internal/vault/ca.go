package vault

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	// caPEMType labels the CA file so an operator can tell what it is, and
	// so a plain OpenSSH key dropped in its place is refused, not trusted.
	caPEMType = "PORTCULLIS SEALED SSH CA KEY"
	// caAAD binds the sealed CA key to its role, not to its path, so the
	// data directory can move.
	caAAD = "ca:user"
	// clockSkew backdates certificates so a target whose clock runs a
	// little behind the gateway's still accepts them.
	clockSkew = time.Minute
)

// CA is the gateway's user certificate authority. Targets with auth:
// certificate trust its public key (sshd TrustedUserCAKeys), and the gateway
// signs a short-lived certificate for each upstream connection, so no
// long-lived credential for those targets exists anywhere. A CA is safe for
// concurrent use.
type CA struct {
	signer ssh.Signer
	// now is the clock for validity windows; tests replace it.
	now func() time.Time
}

// LoadOrCreateCA returns the user CA whose key is in the file at path,
// creating a new ed25519 CA there when the file does not exist. The file
// holds the key sealed under v's master key, so a copy of the data directory
// without the master key cannot sign certificates. The file rules are those
// of LoadOrCreateMasterKey.
func (v *Vault) LoadOrCreateCA(path string) (*CA, error) {
	var ca *CA
	_, err := loadOrCreate(path, "user CA key file",
		func() ([]byte, error) {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("generate CA key: %w", err)
			}
			defer clear(priv)
			sealed, _, err := v.sealKey(priv, caAAD)
			if err != nil {
				return nil, err
			}
			return pem.EncodeToMemory(&pem.Block{Type: caPEMType, Bytes: sealed}), nil
		},
		func(data []byte) error {
			block, _ := pem.Decode(data)
			if block == nil || block.Type != caPEMType {
				return fmt.Errorf("user CA key file %s is not a sealed CA key (want a %q PEM block)", path, caPEMType)
			}
			signer, err := v.Signer(block.Bytes, caAAD)
			if err != nil {
				if errors.Is(err, ErrAuthentication) {
					return fmt.Errorf("user CA key file %s: %w (is this the master key the CA was created with?)", path, err)
				}
				return fmt.Errorf("user CA key file %s: %w", path, err)
			}
			ca = &CA{signer: signer, now: time.Now}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return ca, nil
}

// PublicKey returns the CA's public key, the line targets put in their
// TrustedUserCAKeys file.
func (c *CA) PublicKey() ssh.PublicKey {
	return c.signer.PublicKey()
}

// UserCertPermits says which permit-* extensions a user certificate
// carries: only what the actions granted on the target need, so that the
// target's sshd refuses the rest even if the gateway's own check were
// bypassed. Agent and X11 forwarding (a path back to the client) and user
// rc files are never permitted.
type UserCertPermits struct {
	// PTY is permit-pty: a shell, or a command run with ssh -t.
	PTY bool
	// PortForwarding is permit-port-forwarding: the tunnel action.
	PortForwarding bool
}

func (p UserCertPermits) extensions() map[string]string {
	ext := map[string]string{}
	if p.PTY {
		ext["permit-pty"] = ""
	}
	if p.PortForwarding {
		ext["permit-port-forwarding"] = ""
	}
	return ext
}

// SignUserCert certifies pub as a user key valid for exactly one principal,
// the target user, from one minute ago (clock skew) until ttl from now.
// keyID is what the target's sshd logs for the login, so it should name the
// gateway user and session ("portcullis:alice:SESSION"). The certificate
// carries the extensions permits names and no others.
func (c *CA) SignUserCert(pub ssh.PublicKey, principal, keyID string, ttl time.Duration, permits UserCertPermits) (*ssh.Certificate, error) {
	switch {
	case pub == nil:
		return nil, errors.New("vault: sign user certificate: no public key")
	case principal == "":
		return nil, errors.New("vault: sign user certificate: empty principal")
	case keyID == "":
		return nil, errors.New("vault: sign user certificate: empty key ID")
	case ttl <= 0:
		return nil, fmt.Errorf("vault: sign user certificate: lifetime %s is not positive", ttl)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, errors.New("vault: sign user certificate: the key to certify is itself a certificate")
	}

	var serial [8]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, fmt.Errorf("vault: sign user certificate: serial: %w", err)
	}
	now := c.now()
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: []string{principal},
		ValidAfter:      unixSeconds(now.Add(-clockSkew)),
		ValidBefore:     unixSeconds(now.Add(ttl)),
		Permissions: ssh.Permissions{
			Extensions: permits.extensions(),
		},
	}
	if err := cert.SignCert(rand.Reader, c.signer); err != nil {
		return nil, fmt.Errorf("vault: sign user certificate for %q: %w", principal, err)
	}
	return cert, nil
}

// NewEphemeralCertSigner returns a signer for a fresh in-memory ed25519 key
// with a certificate for principal, ready for ssh.PublicKeys on an upstream
// connection. The key exists only as long as the signer, so nothing outlives
// the connection but a certificate that expires after ttl.
func (c *CA) NewEphemeralCertSigner(principal, keyID string, ttl time.Duration, permits UserCertPermits) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("vault: generate ephemeral key: %w", err)
	}
	signer, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("vault: ephemeral key signer: %w", err)
	}
	cert, err := c.SignUserCert(signer.PublicKey(), principal, keyID, ttl, permits)
	if err != nil {
		return nil, err
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, fmt.Errorf("vault: ephemeral certificate signer: %w", err)
	}
	return certSigner, nil
}

// unixSeconds converts t for a certificate field, clamping times before the
// epoch, which the unsigned field cannot hold.
func unixSeconds(t time.Time) uint64 {
	if s := t.Unix(); s > 0 {
		return uint64(s)
	}
	return 0
}
