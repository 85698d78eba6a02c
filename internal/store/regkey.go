package store

import (
	"fmt"
	"path"
	"time"
)

// EnvironmentLabel is the label a registered target carries for the
// environment its registration key names: an Environment resource with
// `selector: {environment: NAME}` collects them.
const EnvironmentLabel = "environment"

// RegistrationRefusal is why a registration key may not do what it was
// asked. Its message is for the key's holder: it names what is wrong,
// never the key's value.
type RegistrationRefusal struct{ Msg string }

func (e *RegistrationRefusal) Error() string { return e.Msg }

func refuseRegistration(format string, args ...any) error {
	return &RegistrationRefusal{Msg: fmt.Sprintf(format, args...)}
}

// RegistrationKeyUsable refuses a key that is not a registration key or
// that can register nothing more at now: revoked, expired or used up.
// Every front that acts on a registration key checks this, so that a
// spent key opens no side door (an autodiscovery script minting a fresh
// key, say).
func RegistrationKeyUsable(k APIKey, now time.Time) error {
	switch {
	case k.Kind != APIKeyRegistration:
		return refuseRegistration("the key is not a registration key")
	case !k.RevokedAt.IsZero():
		return refuseRegistration("the registration key is revoked")
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return refuseRegistration("the registration key has expired")
	case k.MaxUses > 0 && k.Uses >= k.MaxUses:
		return refuseRegistration("the registration key is used up")
	}
	return nil
}

// CheckRegistration applies the limits of registration key k to a target
// named name that asks for environment env (empty: none), and answers the
// environment the target gets: the key's when it names one. It is the one
// check of every front that registers targets; the use itself is then
// counted with Store.UseRegistrationKey, whose check and count are one
// statement. The source address is the front's to check: only it knows
// where the request came from.
func CheckRegistration(k APIKey, name, env string, now time.Time) (string, error) {
	if err := RegistrationKeyUsable(k, now); err != nil {
		return "", err
	}
	if k.Environment != "" {
		if env != "" && env != k.Environment {
			return "", refuseRegistration("the registration key registers targets in environment %q only", k.Environment)
		}
		env = k.Environment
	}
	if k.NamePattern != "" {
		if ok, _ := path.Match(k.NamePattern, name); !ok {
			return "", refuseRegistration("the registration key registers names matching %q only", k.NamePattern)
		}
	}
	return env, nil
}
