// Package vault keeps every secret the gateway holds and is the only code
// that sees private key bytes.
//
// Secrets at rest are sealed with AES-256-GCM under a master key that lives in
// its own file, so a copy of the database or the data directory without that
// file reveals nothing. Callers store sealed blobs and public keys; they get
// private keys back only as ssh.Signer values, never as bytes.
//
// Every sealed blob is bound to the record it belongs to by additional data
// (for example "account:web1/svc-stats"): a blob copied into another record
// fails to open instead of silently granting that record's access.
package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrAuthentication is returned (wrapped) by Open when a sealed secret fails
// its integrity check. GCM cannot tell the causes apart, so the message names
// both: the vault was opened with another master key, or the blob or its
// additional data was changed.
var ErrAuthentication = errors.New("wrong master key or tampered secret")

const (
	masterKeySize = 32
	// formatVersion leads every sealed blob so that a later change of cipher
	// or layout can be read side by side with blobs already stored.
	formatVersion = 1
	nonceSize     = 12
	tagSize       = 16
	sealedMinSize = 1 + nonceSize + tagSize
)

// Vault seals and opens secrets under one master key. It is safe for
// concurrent use.
type Vault struct {
	aead cipher.AEAD
}

// New returns a Vault for a 32-byte master key. The key is expanded into the
// cipher at once; the caller may clear its slice afterwards.
func New(masterKey []byte) (*Vault, error) {
	if len(masterKey) != masterKeySize {
		return nil, fmt.Errorf("vault: master key is %d bytes, want %d", len(masterKey), masterKeySize)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("vault: init AES: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: init GCM: %w", err)
	}
	return &Vault{aead: aead}, nil
}

// LoadOrCreateMasterKey returns a Vault for the master key in the file at
// path, creating the file with a fresh random key when it does not exist;
// created reports which happened.
//
// The file holds 64 hex characters and an optional trailing newline, so an
// operator can back it up or move it with any text tool. A file that group
// or others may access is refused rather than used: the key unlocks every
// secret the gateway keeps. The parent directory must already exist; it is
// not created here because its ownership and mode are the operator's call.
// When two processes start at once on an empty directory, one creates the
// key and the other loads it.
func LoadOrCreateMasterKey(path string) (*Vault, bool, error) {
	var v *Vault
	created, err := loadOrCreate(path, "master key file",
		func() ([]byte, error) {
			key := make([]byte, masterKeySize)
			if _, err := rand.Read(key); err != nil {
				return nil, fmt.Errorf("generate master key: %w", err)
			}
			defer clear(key)
			out := make([]byte, 0, 2*masterKeySize+1)
			out = hex.AppendEncode(out, key)
			return append(out, '\n'), nil
		},
		func(data []byte) error {
			key, err := parseMasterKey(path, data)
			if err != nil {
				return err
			}
			defer clear(key)
			v, err = New(key)
			return err
		})
	if err != nil {
		return nil, false, err
	}
	return v, created, nil
}

// parseMasterKey decodes the master key file's contents. Errors describe the
// shape of what is wrong but never echo the contents, which may be most of a
// valid key.
func parseMasterKey(path string, data []byte) ([]byte, error) {
	text := bytes.TrimSuffix(data, []byte("\n"))
	text = bytes.TrimSuffix(text, []byte("\r"))
	if len(text) == 0 {
		return nil, fmt.Errorf("master key file %s is empty; it must hold 64 hex characters (delete it to have a new key generated, losing every sealed secret)", path)
	}
	if len(text) != 2*masterKeySize {
		return nil, fmt.Errorf("master key file %s holds %d characters, want exactly %d hex characters (32 bytes) and an optional newline", path, len(text), 2*masterKeySize)
	}
	for i, c := range text {
		if !isHexDigit(c) {
			return nil, fmt.Errorf("master key file %s: character %d is not a hex digit; the file must hold only 64 hex characters (0-9, a-f)", path, i+1)
		}
	}
	key := make([]byte, masterKeySize)
	if _, err := hex.Decode(key, text); err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Seal encrypts plaintext and binds it to aad, which names the record the
// secret belongs to (for example "account:web1/svc-stats"). The same aad
// must be given to Open. The output is a version byte, a random 12-byte
// nonce, and the ciphertext with its tag; random nonces are safe here
// because one master key seals far fewer than 2^32 secrets.
func (v *Vault) Seal(plaintext []byte, aad string) ([]byte, error) {
	if aad == "" {
		return nil, errors.New("vault: seal: additional data is empty; pass the name of the record the secret belongs to")
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = formatVersion
	nonce := out[1 : 1+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("vault: seal: generate nonce: %w", err)
	}
	return v.aead.Seal(out, nonce, plaintext, additionalData(aad)), nil
}

// Open decrypts a blob made by Seal with the same aad. A blob sealed under
// another master key, sealed for another record, or altered in any byte
// fails with an error wrapping ErrAuthentication.
func (v *Vault) Open(sealed []byte, aad string) ([]byte, error) {
	if aad == "" {
		return nil, errors.New("vault: open: additional data is empty; pass the name of the record the secret belongs to")
	}
	if len(sealed) == 0 {
		return nil, fmt.Errorf("vault: open secret %q: sealed secret is empty", aad)
	}
	if sealed[0] != formatVersion {
		return nil, fmt.Errorf("vault: open secret %q: unknown format version %d (this gateway reads version %d; was it sealed by a newer release, or is it not a sealed secret?)", aad, sealed[0], formatVersion)
	}
	if len(sealed) < sealedMinSize {
		return nil, fmt.Errorf("vault: open secret %q: sealed secret is %d bytes, shorter than the %d-byte minimum (truncated?)", aad, len(sealed), sealedMinSize)
	}
	nonce := sealed[1 : 1+nonceSize]
	plaintext, err := v.aead.Open(nil, nonce, sealed[1+nonceSize:], additionalData(aad))
	if err != nil {
		return nil, fmt.Errorf("vault: open secret %q: %w", aad, ErrAuthentication)
	}
	return plaintext, nil
}

// additionalData authenticates the version byte along with the caller's aad,
// so a future format cannot be confused with this one by flipping that byte.
func additionalData(aad string) []byte {
	ad := make([]byte, 0, 1+len(aad))
	ad = append(ad, formatVersion)
	return append(ad, aad...)
}
