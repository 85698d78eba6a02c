package vault

import (
	"bytes"
	"crypto"
	//lint:ignore SA1019 imported only to recognise DSA keys and refuse them
	"crypto/dsa"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

const (
	// minRSABits follows OpenSSH 9.x, which refuses smaller RSA keys.
	minRSABits = 2048
	// maxRSABits is the largest key ssh-keygen makes; larger ones only buy
	// slower handshakes.
	maxRSABits = 16384
)

// rsaAlgorithms are the only signature algorithms offered for RSA keys:
// ssh-rsa signs with SHA-1, which OpenSSH servers refuse since 8.8.
var rsaAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

const acceptedKeys = "use ed25519 (recommended), RSA of 2048 bits or more, or ECDSA on P-256, P-384 or P-521"

// GenerateAccountKey makes a new ed25519 key for an Account and returns its
// private half sealed under aad, and its public half for the admin to
// install on the target.
func (v *Vault) GenerateAccountKey(aad string) ([]byte, ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("vault: generate account key: %w", err)
	}
	defer clear(priv)
	return v.sealKey(priv, aad)
}

// ImportAccountKey takes an existing private key in any unencrypted PEM form
// that ssh.ParseRawPrivateKey reads (OpenSSH, PKCS#1, PKCS#8, SEC 1 EC) and
// returns it sealed under aad, re-encoded as OpenSSH PEM, with its public
// key. Keys a modern sshd would refuse (DSA, RSA under 2048 bits) are
// rejected here rather than failing later at connection time, and so are
// passphrase-protected keys: the gateway would have nowhere safe to keep the
// passphrase, and the master key already protects the key at rest.
func (v *Vault) ImportAccountKey(pemBytes []byte, aad string) ([]byte, ssh.PublicKey, error) {
	key, err := parsePrivateKey(pemBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("vault: import account key: %w", err)
	}
	// A key whose public half does not match its private half (possible in
	// the OpenSSH format, which stores both) would parse but never log in.
	if err := checkKeyPair(key); err != nil {
		return nil, nil, fmt.Errorf("vault: import account key: %w", err)
	}
	return v.sealKey(key, aad)
}

// Signer opens an account key sealed by GenerateAccountKey or
// ImportAccountKey and returns a signer for logging in to the target. The
// key is parsed on every call; callers on a hot path may keep the signer,
// which is safe for concurrent use.
func (v *Vault) Signer(sealed []byte, aad string) (ssh.Signer, error) {
	pemBytes, err := v.Open(sealed, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pemBytes)
	// The blob is authenticated, so it was validated when sealed; parsing
	// again still guards against a key sealed by an older, laxer release.
	key, err := parsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("vault: sealed key %q: %w", aad, err)
	}
	signer, err := newSigner(key)
	if err != nil {
		return nil, fmt.Errorf("vault: sealed key %q: %w", aad, err)
	}
	return signer, nil
}

// sealKey stores key as OpenSSH PEM, so every sealed key has one format
// whatever it was imported from.
func (v *Vault) sealKey(key crypto.Signer, aad string) ([]byte, ssh.PublicKey, error) {
	pemBytes, err := marshalKey(key, "")
	if err != nil {
		return nil, nil, fmt.Errorf("vault: seal key: %w", err)
	}
	defer clear(pemBytes)
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("vault: seal key: %w", err)
	}
	sealed, err := v.Seal(pemBytes, aad)
	if err != nil {
		return nil, nil, err
	}
	return sealed, pub, nil
}

// LoadOrCreateHostKey returns the gateway's SSH host key from the file at
// path, creating an ed25519 key there when it does not exist; the bool
// reports which happened. The file is plain OpenSSH PEM, as sshd keeps its
// own, so operators can read its fingerprint with ssh-keygen -l -f. The same
// rules as for the master key apply: mode 0600, parent directory must exist.
// An existing RSA or ECDSA host key is accepted under the same rules as
// imported account keys.
func LoadOrCreateHostKey(path string) (ssh.Signer, bool, error) {
	var signer ssh.Signer
	created, err := loadOrCreate(path, "host key file",
		func() ([]byte, error) {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("generate host key: %w", err)
			}
			defer clear(priv)
			return marshalKey(priv, "portcullis host key")
		},
		func(data []byte) error {
			key, err := parsePrivateKey(data)
			if err != nil {
				return fmt.Errorf("host key file %s: %w", path, err)
			}
			if err := checkKeyPair(key); err != nil {
				return fmt.Errorf("host key file %s: %w", path, err)
			}
			signer, err = newSigner(key)
			if err != nil {
				return fmt.Errorf("host key file %s: %w", path, err)
			}
			return nil
		})
	if err != nil {
		return nil, false, err
	}
	return signer, created, nil
}

// parsePrivateKey reads one unencrypted PEM private key and returns it if the
// gateway will use it: ed25519, RSA of minRSABits to maxRSABits with two
// primes, or ECDSA on a curve SSH defines.
func parsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	if len(pemBytes) > maxSecretFileSize {
		return nil, fmt.Errorf("key is %d bytes, larger than any private key (%d KiB)", len(pemBytes), maxSecretFileSize>>10)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		if looksLikePublicKey(pemBytes) {
			return nil, errors.New("this is a public key; the private key is needed (the file without .pub)")
		}
		return nil, errors.New("no PEM-encoded private key found (expected a block like -----BEGIN OPENSSH PRIVATE KEY-----)")
	}
	switch block.Type {
	case "PUBLIC KEY", "RSA PUBLIC KEY", "SSH2 PUBLIC KEY":
		return nil, errors.New("this is a public key; the private key is needed (the file without .pub)")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errPassphrase
	case "DSA PRIVATE KEY":
		return nil, errDSA
	}

	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
			return nil, errPassphrase
		}
		return nil, fmt.Errorf("parse private key: %w", err)
	}

	switch k := raw.(type) {
	case *ed25519.PrivateKey: // OpenSSH format yields a pointer, PKCS#8 a value
		if k == nil {
			return nil, errors.New("parse private key: empty ed25519 key")
		}
		return checkEd25519(*k)
	case ed25519.PrivateKey:
		return checkEd25519(k)
	case *rsa.PrivateKey:
		bits := k.N.BitLen()
		if bits < minRSABits {
			return nil, fmt.Errorf("RSA key is %d bits; at least %d are required (OpenSSH refuses smaller keys); %s", bits, minRSABits, acceptedKeys)
		}
		if bits > maxRSABits {
			return nil, fmt.Errorf("RSA key is %d bits; at most %d are supported", bits, maxRSABits)
		}
		// The OpenSSH format, which keys are stored in, holds exactly two primes.
		if len(k.Primes) != 2 {
			return nil, fmt.Errorf("RSA key has %d primes; only two-prime keys are supported", len(k.Primes))
		}
		k.Precompute()
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		name := "unknown"
		if k.Curve != nil {
			name = k.Curve.Params().Name
		}
		return nil, fmt.Errorf("ECDSA key on curve %s is not usable with SSH; %s", name, acceptedKeys)
	case *dsa.PrivateKey:
		return nil, errDSA
	default:
		return nil, fmt.Errorf("unsupported private key type %T; %s", raw, acceptedKeys)
	}
}

var (
	errPassphrase = errors.New("private key is protected by a passphrase; remove it (ssh-keygen -p -N '' -f FILE on a copy) and import again: the gateway keeps the key encrypted under its master key instead")
	errMismatch   = errors.New("private key does not match its public key (corrupt key file?)")
	errDSA        = errors.New("DSA keys are not accepted (OpenSSH disabled ssh-dss in 7.0); " + acceptedKeys)
)

func checkEd25519(k ed25519.PrivateKey) (crypto.Signer, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	// The OpenSSH format stores the public half beside the seed without
	// checking them against each other; a mismatch would fail every login.
	derived := ed25519.NewKeyFromSeed(k.Seed())
	defer clear(derived)
	if !bytes.Equal(derived[ed25519.SeedSize:], k[ed25519.SeedSize:]) {
		return nil, errMismatch
	}
	return k, nil
}

// looksLikePublicKey catches the common mistake of pointing at KEY.pub.
func looksLikePublicKey(b []byte) bool {
	b = bytes.TrimSpace(b)
	for _, prefix := range []string{"ssh-", "ecdsa-sha2-", "sk-"} {
		if bytes.HasPrefix(b, []byte(prefix)) {
			return true
		}
	}
	return false
}

// checkKeyPair signs and verifies a test message, proving the private half
// matches the public half a target would be told to trust.
func checkKeyPair(key crypto.Signer) error {
	signer, err := newSigner(key)
	if err != nil {
		return err
	}
	msg := []byte("portcullis key check")
	var sig *ssh.Signature
	if ms, ok := signer.(ssh.MultiAlgorithmSigner); ok {
		// Sign would use ssh-rsa (SHA-1) for RSA; test what logins use.
		sig, err = ms.SignWithAlgorithm(rand.Reader, msg, ms.Algorithms()[0])
	} else {
		sig, err = signer.Sign(rand.Reader, msg)
	}
	if err != nil {
		return fmt.Errorf("test signature: %w", err)
	}
	if err := signer.PublicKey().Verify(msg, sig); err != nil {
		return errMismatch
	}
	return nil
}

// newSigner wraps key for SSH. RSA keys are restricted to SHA-2 signatures,
// so a handshake never falls back to SHA-1 that the peer would refuse.
func newSigner(key crypto.Signer) (ssh.Signer, error) {
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return nil, fmt.Errorf("make signer: %w", err)
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return signer, nil
	}
	as, ok := signer.(ssh.AlgorithmSigner)
	if !ok {
		return nil, errors.New("make signer: RSA signer cannot choose its algorithm")
	}
	restricted, err := ssh.NewSignerWithAlgorithms(as, rsaAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("make signer: %w", err)
	}
	return restricted, nil
}

// marshalKey encodes key as OpenSSH PEM. The caller owns the returned bytes
// and should clear them when done.
func marshalKey(key crypto.Signer, comment string) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(block.Bytes)
	return pem.EncodeToMemory(block), nil
}
