package cli_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

var secretRE = regexp.MustCompile(`Secret, to type into an app by hand: ([A-Z2-7]+)`)

func TestMFAInput(t *testing.T) {
	g := noGateway(t)
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"enroll without user", []string{"enroll"}, "USER is required"},
		{"enroll two users", []string{"enroll", "a", "b"}, `unexpected argument "b"`},
		{"confirm without code", []string{"confirm", "alice"}, "CODE is required"},
		{"reset without user", []string{"reset"}, "USER is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.run(t, "", append([]string{"mfa"}, tc.args...)...).want(t, 2, nil, []string{tc.stderr})
		})
	}
}

// TestMFAEnroll: enroll prints everything once and leaves the factor
// pending; a code from the app confirms it; reset removes it.
func TestMFAEnroll(t *testing.T) {
	g := startGateway(t)
	applyUsers(t, g)
	r := g.run(t, "", "mfa", "enroll", "alice")
	r.want(t, 0, []string{"otpauth://totp/Portcullis:alice?", "issuer=Portcullis", "▀", "Recovery codes",
		"Not confirmed yet: run 'portcullis mfa confirm alice CODE'"}, nil)
	if n := len(regexp.MustCompile(`(?m)^  [A-Z2-7]{5}-[A-Z2-7]{5}$`).FindAllString(r.stdout, -1)); n != 10 {
		t.Errorf("%d recovery codes printed, want 10", n)
	}
	m := secretRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no secret in:\n%s", r.stdout)
	}
	code, err := totp.GenerateCodeCustom(m[1], time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"status pending", "", []string{"status", "alice"}, 0, "alice: pending", ""},
		{"wrong code", "", []string{"confirm", "alice", "1234"}, 2, "", "wrong or already used code"},
		{"right code", "", []string{"confirm", "alice", code}, 0, "second factor of alice confirmed: active", ""},
		{"status active", "", []string{"status", "alice"}, 0, "alice: active since", ""},
		{"enroll over an active factor", "", []string{"enroll", "alice"}, 1, "", "already has an active second factor"},
		{"reset", "", []string{"reset", "alice"}, 0, "second factor of alice reset", ""},
		{"status after reset", "", []string{"status", "alice"}, 0, "alice: no second factor", ""},
		{"code from stdin", "000000\n", []string{"enroll", "bob"}, 2, "Recovery codes", "wrong or already used code"},
		{"unknown user", "", []string{"enroll", "nobody"}, 1, "", `no user "nobody"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut []string
			if tc.stdout != "" {
				out = []string{tc.stdout}
			}
			if tc.stderr != "" {
				errOut = []string{tc.stderr}
			}
			g.run(t, tc.stdin, append([]string{"mfa"}, tc.args...)...).want(t, tc.code, out, errOut)
		})
	}
	g.run(t, "", "audit", "ls", "--type", "mfa.enroll").want(t, 0, []string{"second factor of alice confirmed", "second factor of alice reset"}, nil)
}
