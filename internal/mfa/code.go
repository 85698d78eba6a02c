package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Kinds of code a user may type.
const (
	// KindTOTP is a six-digit code from an authenticator app.
	KindTOTP = "totp"
	// KindRecovery is a one-time recovery code, ten base32 characters,
	// shown as XXXXX-XXXXX.
	KindRecovery = "recovery"
)

const (
	totpDigits     = 6
	recoveryLen    = 10
	recoveryCount  = 10
	maxCodeInput   = 64
	base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

// ErrMalformed is returned (wrapped) by ParseCode for input that is neither
// a six-digit code nor a recovery code.
var ErrMalformed = errors.New("not a 6-digit verification code or a recovery code")

// ParseCode reads what a user typed: six digits (a TOTP code) or ten base32
// characters (a recovery code, any case). Spaces and dashes anywhere are
// ignored, since authenticator apps show "123 456" and recovery codes are
// printed "ABCDE-FGHIJ". It returns the kind and the code normalized
// (digits, or upper-case recovery characters).
func ParseCode(s string) (kind, code string, err error) {
	if len(s) > maxCodeInput {
		return "", "", fmt.Errorf("code of %d bytes: %w", len(s), ErrMalformed)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		if r > 0x7f {
			return "", "", ErrMalformed
		}
		b.WriteRune(r)
	}
	code = b.String()
	switch {
	case len(code) == totpDigits && allIn(code, "0123456789"):
		return KindTOTP, code, nil
	case len(code) == recoveryLen && allIn(code, base32Alphabet):
		return KindRecovery, code, nil
	}
	return "", "", ErrMalformed
}

func allIn(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// newRecoveryCodes returns recoveryCount codes, formatted for printing
// (XXXXX-XXXXX), and the hashes the store keeps.
func newRecoveryCodes() (codes, hashes []string, err error) {
	buf := make([]byte, recoveryCount*recoveryLen)
	if _, err := rand.Read(buf); err != nil {
		return nil, nil, fmt.Errorf("generate recovery codes: %w", err)
	}
	for i := range recoveryCount {
		c := make([]byte, recoveryLen)
		for j := range c {
			// 256 is a multiple of 32: no bias.
			c[j] = base32Alphabet[buf[i*recoveryLen+j]%32]
		}
		codes = append(codes, string(c[:5])+"-"+string(c[5:]))
		hashes = append(hashes, hashRecovery(string(c)))
	}
	return codes, hashes, nil
}

// hashRecovery is what the store keeps of a normalized recovery code. A
// plain SHA-256 suffices: a code is 50 random bits, used once, and guesses
// against the gateway are rate limited.
func hashRecovery(code string) string {
	h := sha256.Sum256([]byte(code))
	return hex.EncodeToString(h[:])
}
