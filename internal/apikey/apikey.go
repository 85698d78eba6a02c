// Package apikey makes, parses and checks API key values: what a client
// puts in the X-API-KEY header.
//
// A value is "pck_" + ID + "." + secret: ID is 16 lowercase hex characters
// (public: listings, revocation and the audit trail name keys by it),
// secret is 32 random bytes in unpadded base64url. The prefix lets secret
// scanners (and people) recognise a leaked key.
//
// Only a hash of the secret is stored: hex SHA-256 over a domain string,
// the ID and the secret. A plain fast hash is right here, unlike for
// passwords: the secret has 256 bits of entropy, so there is nothing to
// guess, and every API request checks one. Binding the ID into the hash
// stops a stored hash from being moved to another key's row.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every key value.
const Prefix = "pck_"

const (
	idLen     = 16 // hex characters
	secretLen = 32 // bytes before encoding
)

// ErrMalformed is returned by Parse for a value that is not a key.
var ErrMalformed = errors.New("malformed API key")

var b64 = base64.RawURLEncoding

// New returns a fresh key: its ID, and the whole header value to hand to
// the client once.
func New() (id, value string, err error) {
	var idb [idLen / 2]byte
	secret := make([]byte, secretLen)
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", fmt.Errorf("new API key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("new API key: %w", err)
	}
	id = hex.EncodeToString(idb[:])
	return id, Prefix + id + "." + b64.EncodeToString(secret), nil
}

// Parse splits a header value into its ID and secret. The error never
// quotes the value: it may be a real secret with a typo.
func Parse(value string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(value, Prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: it does not start with %q", ErrMalformed, Prefix)
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok {
		return "", "", fmt.Errorf("%w: no '.' between id and secret", ErrMalformed)
	}
	if !validID(id) {
		return "", "", fmt.Errorf("%w: the id is not %d lowercase hex characters", ErrMalformed, idLen)
	}
	raw, err := b64.DecodeString(secret)
	if err != nil || len(raw) != secretLen {
		return "", "", fmt.Errorf("%w: the secret is not %d bytes of base64url", ErrMalformed, secretLen)
	}
	return id, secret, nil
}

// ValidID reports whether id has the shape of a key ID, so that routes
// can refuse garbage before asking the store.
func ValidID(id string) bool { return validID(id) }

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Hash returns what the store keeps for the key id with secret.
func Hash(id, secret string) string {
	h := sha256.New()
	h.Write([]byte("portcullis api key v1\x00"))
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// Verify reports whether secret belongs to the key id whose stored hash
// is stored, in constant time.
func Verify(stored, id, secret string) bool {
	got := Hash(id, secret)
	return subtle.ConstantTimeCompare([]byte(got), []byte(stored)) == 1
}
