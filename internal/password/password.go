// Package password hashes and checks local passwords (the web console's
// sign-in) with argon2id, stored as PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 unpadded>$<hash, base64 unpadded>
//
// The parameters are OWASP's minimum for argon2id (19 MiB, 2 passes, one
// lane): a guess costs an attacker with the database tens of milliseconds
// of a core and 19 MiB, and a sign-in costs the gateway the same once.
// Stored strings carry their own parameters, so raising them later keeps
// old hashes valid. golang.org/x/crypto/argon2 computes the hash; only the
// PHC encoding is written here, because x/crypto has none.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Bounds on parameters read back from a stored hash, so that a corrupted
// or planted row cannot make a sign-in allocate gigabytes or spin.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxPasses    = 20
	maxLanes     = 16
)

// MaxLen is the longest password accepted; argon2 takes any length, but a
// megabyte "password" is a way to burn CPU, not a secret.
const MaxLen = 1024

// ErrMalformed is returned for a stored hash that is not an argon2id PHC
// string this package can check.
var ErrMalformed = errors.New("malformed password hash")

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of pw under a fresh random salt.
func Hash(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("hash password: empty password")
	}
	if len(pw) > MaxLen {
		return "", fmt.Errorf("hash password: longer than %d bytes", MaxLen)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, passes, memoryKiB, lanes, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, passes, lanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// params is a decoded PHC string.
type params struct {
	memory uint32
	passes uint32
	lanes  uint8
	salt   []byte
	key    []byte
}

// parse decodes a PHC string, checking every field and bound.
func parse(encoded string) (params, error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return params{}, fmt.Errorf("%w: not an argon2id PHC string", ErrMalformed)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return params{}, fmt.Errorf("%w: version %q, want v=%d", ErrMalformed, parts[2], argon2.Version)
	}
	var p params
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return params{}, fmt.Errorf("%w: parameters %q", ErrMalformed, parts[3])
	}
	for i, want := range []string{"m", "t", "p"} {
		name, val, ok := strings.Cut(kv[i], "=")
		if !ok || name != want {
			return params{}, fmt.Errorf("%w: parameter %d is %q, want %s=N", ErrMalformed, i+1, kv[i], want)
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n == 0 {
			return params{}, fmt.Errorf("%w: parameter %s=%q", ErrMalformed, want, val)
		}
		switch want {
		case "m":
			if n > maxMemoryKiB {
				return params{}, fmt.Errorf("%w: memory %d KiB is over %d", ErrMalformed, n, maxMemoryKiB)
			}
			p.memory = uint32(n)
		case "t":
			if n > maxPasses {
				return params{}, fmt.Errorf("%w: %d passes is over %d", ErrMalformed, n, maxPasses)
			}
			p.passes = uint32(n)
		case "p":
			if n > maxLanes {
				return params{}, fmt.Errorf("%w: %d lanes is over %d", ErrMalformed, n, maxLanes)
			}
			p.lanes = uint8(n)
		}
	}
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return params{}, fmt.Errorf("%w: salt", ErrMalformed)
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return params{}, fmt.Errorf("%w: hash", ErrMalformed)
	}
	if p.memory < 8*uint32(p.lanes) {
		return params{}, fmt.Errorf("%w: memory below 8 KiB per lane", ErrMalformed)
	}
	return p, nil
}

// Verify reports whether pw matches encoded, comparing in constant time.
// A malformed encoded string is an error wrapping ErrMalformed, never a
// match.
func Verify(encoded, pw string) (bool, error) {
	p, err := parse(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxLen || pw == "" {
		return false, nil
	}
	key := argon2.IDKey([]byte(pw), p.salt, p.passes, p.memory, p.lanes, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// dummy is a valid hash of a random password, for Dummy.
var dummy = func() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h, err := Hash(b64.EncodeToString(b[:]))
	if err != nil {
		panic(err) // cannot happen: the password is short and not empty
	}
	return h
}()

// Dummy returns a hash no password matches. Checking a sign-in for an
// unknown user against it costs the same time as for a known one, so that
// the answer's timing does not tell which user names exist.
func Dummy() string { return dummy }
