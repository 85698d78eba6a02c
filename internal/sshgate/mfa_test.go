package sshgate_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// totpOpts are the parameters the gateway enrolls with.
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// sshWithCode runs the real ssh client as login, answering the
// keyboard-interactive prompt with answer through SSH_ASKPASS, as a person
// at a terminal would type it. It returns stdout, stderr, the exit code
// and the prompts askpass was shown.
func (w *world) sshWithCode(t *testing.T, answer, login string, command ...string) (string, string, int, []string) {
	t.Helper()
	dir := t.TempDir()
	answerFile, promptLog := filepath.Join(dir, "answer"), filepath.Join(dir, "prompts")
	if err := os.WriteFile(answerFile, []byte(answer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	askpass := filepath.Join(dir, "askpass")
	// Test names put parentheses in temp paths: quote them for sh.
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$1\" >> '%s'\ncat '%s'\n", promptLog, answerFile)
	if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	// BatchMode=yes would refuse to ask anything: this client answers.
	args := slices.Clone(w.opts(true))
	for i := range args {
		if args[i] == "BatchMode=yes" {
			args[i] = "BatchMode=no"
		}
	}
	args = append(args, "-o", "KbdInteractiveAuthentication=yes", "-o", "NumberOfPasswordPrompts=1",
		"-l", login, "127.0.0.1")
	args = append(args, command...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	var prompts []string
	if b, err := os.ReadFile(promptLog); err == nil {
		prompts = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return out.String(), errOut.String(), code, prompts
}

// wrongCode returns a six-digit code that no step in the skew window
// accepts now.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		c, err := totp.GenerateCodeCustom(secret, time.Now().Add(d), totpOpts)
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !valid[c] {
			return c
		}
	}
}

// TestSecondFactorSSH drives the real OpenSSH client through a user who
// must present a verification code after the key.
func TestSecondFactorSSH(t *testing.T) {
	w := newWorld(t, "exec")
	ctx := context.Background()
	// alice now says mfa: required.
	w.gw.apply(fmt.Sprintf("kind: User\nname: alice\nemail: alice@example.com\nmfa: required\nssh_keys: [%q]\n", w.client.AuthorizedKey))

	// Not enrolled: refused, with what to do.
	_, errOut, code, prompts := w.sshWithCode(t, "123456", "alice~web1", "echo ok")
	if code != 255 || !strings.Contains(errOut, "portcullis mfa enroll alice") || len(prompts) != 0 {
		t.Fatalf("not enrolled: code %d, prompts %q, stderr %q", code, prompts, errOut)
	}

	en, err := w.gw.mfa.Enroll(ctx, "alice", mfa.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := totp.GenerateCodeCustom(en.Secret, time.Now(), totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.gw.mfa.Confirm(ctx, mfa.Attempt{User: "alice", Code: first, Via: "test"}); err != nil {
		t.Fatal(err)
	}
	// A code of the step after the confirming one: the confirming code
	// itself counts as used.
	code1, err := totp.GenerateCodeCustom(en.Secret, time.Now().Add(30*time.Second), totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	if code1 == first {
		code1, _ = totp.GenerateCodeCustom(en.Secret, time.Now().Add(-30*time.Second), totpOpts)
	}

	for _, c := range []struct {
		name      string
		answer    string
		wantOK    bool
		stderr    string // part of the client's stderr on refusal
		event     string // audit event type the attempt leaves
		reason    string // its Detail["reason"], for failures
		wantAsked bool
	}{
		{name: "right code", answer: code1, wantOK: true, event: audit.MFASuccess, wantAsked: true},
		{name: "same code again (replay)", answer: code1, stderr: "wrong or already used verification code",
			event: audit.MFAFailure, reason: "replayed", wantAsked: true},
		{name: "wrong code", answer: wrongCode(t, en.Secret), stderr: "wrong or already used verification code",
			event: audit.MFAFailure, reason: "wrong_code", wantAsked: true},
		{name: "recovery code", answer: en.RecoveryCodes[0], wantOK: true, event: audit.MFARecoveryUsed, wantAsked: true},
		{name: "recovery code again", answer: strings.ToLower(en.RecoveryCodes[0]), stderr: "wrong or already used verification code",
			event: audit.MFAFailure, reason: "wrong_recovery_code", wantAsked: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(w.gw.events(c.event))
			out, errOut, code, prompts := w.sshWithCode(t, c.answer, "alice~web1", "echo ok")
			if ok := code == 0 && out == "ok\n"; ok != c.wantOK {
				t.Fatalf("code %d out %q stderr %q, want success %v", code, out, errOut, c.wantOK)
			}
			if !c.wantOK && !strings.Contains(errOut, c.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, c.stderr)
			}
			if asked := len(prompts) > 0; asked != c.wantAsked {
				t.Errorf("prompts %q, want asked %v", prompts, c.wantAsked)
			}
			evs := w.gw.events(c.event)
			if len(evs) != before+1 {
				t.Fatalf("%d %s events, want %d", len(evs), c.event, before+1)
			}
			ev := evs[len(evs)-1]
			if ev.User != "alice" || ev.Detail["via"] != "ssh" || ev.SessionID == "" || (c.reason != "" && ev.Detail["reason"] != c.reason) {
				t.Errorf("event %+v", ev)
			}
		})
	}
	// The prompt is the documented one.
	_, _, _, prompts = w.sshWithCode(t, "000000", "alice~web1", "true")
	if got := strings.Join(prompts, " "); !strings.Contains(got, "Verification code (or a recovery code):") {
		t.Errorf("prompt %q", got)
	}
	// The login event says how alice got in.
	w.gw.waitEvent(audit.LoginSuccess, func(ev store.AuditEvent) bool {
		return ev.User == "alice" && strings.Contains(ev.Message, "recovery code")
	})
}

// TestSecondFactorAutologin: a service account with autologin from its
// network is not asked, even where a require_mfa policy also covers it,
// while a service account without autologin is refused (it cannot answer).
func TestSecondFactorAutologin(t *testing.T) {
	w := newWorld(t, "exec")
	bot := testenv.NewClientKey(t, w.clientDir)
	other := testenv.NewClientKey(t, w.clientDir)
	w.gw.apply(fmt.Sprintf(`
kind: ServiceAccount
name: bot
owner: alice
ssh_keys: [%q]
---
kind: ServiceAccount
name: bot2
owner: alice
ssh_keys: [%q]
---
kind: Policy
name: bot-auto
type: target-access
subjects: {service_accounts: [bot]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec]
source_cidrs: [127.0.0.0/8]
autologin: true
---
kind: Policy
name: web1-mfa
type: target-access
subjects: {service_accounts: [bot, bot2]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec]
require_mfa: true
`, bot.AuthorizedKey, other.AuthorizedKey, w.unixUser, w.unixUser))
	for _, c := range []struct {
		name   string
		key    *testenv.ClientKey
		login  string
		wantOK bool
		stderr string
	}{
		{"autologin", bot, "bot~web1", true, ""},
		{"no autologin", other, "bot2~web1", false, "a service account cannot give"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// BatchMode=yes: the client cannot answer a prompt.
			args := testenv.SSHArgs(w.clientDir, c.key, w.gw.addr, w.gw.hostKey)
			for i := range args {
				if args[i] == "LogLevel=ERROR" {
					args[i] = "LogLevel=INFO"
				}
			}
			args = append(args, "-l", c.login, "127.0.0.1", "echo ok")
			out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", args...)
			if ok := code == 0 && out == "ok\n"; ok != c.wantOK {
				t.Fatalf("code %d out %q stderr %q, want success %v", code, out, errOut, c.wantOK)
			}
			if !strings.Contains(errOut, c.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, c.stderr)
			}
		})
	}
	if evs := w.gw.events("mfa."); len(evs) != 0 {
		t.Errorf("service accounts left MFA events: %+v", evs)
	}
}
