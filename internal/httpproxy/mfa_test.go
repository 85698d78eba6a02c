package httpproxy_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/testenv"
)

var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TestLoginWithVerificationCode: a proxy policy with require_mfa makes a
// vSphere login need the verification code after the password (the only
// field a vSphere client has), and an API key, which cannot carry one, is
// refused for the same operations.
func TestLoginWithVerificationCode(t *testing.T) {
	testenv.RequireRoot(t)
	s := newVSphereSite(t)
	g := s.gw
	ctx := context.Background()
	g.apply(&resource.Policy{Kind: resource.KindPolicy, Name: "alice-vm", Type: resource.PolicyProxy, RequireMFA: true,
		Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"vc1"}},
		HTTPGrant: resource.HTTPGrant{Operations: []string{"inventory.read", "vm.power_on", "vm.power_off"}}})
	en, err := g.mfa.Enroll(ctx, "alice", mfa.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := totp.GenerateCodeCustom(en.Secret, time.Now(), totpOpts)
	if err := g.mfa.Confirm(ctx, mfa.Attempt{User: "alice", Code: first, Via: "test"}); err != nil {
		t.Fatal(err)
	}
	login := func(pw string) (int, string) {
		code, body, _ := g.soapPost("/t/vc1/sdk", "", envelope(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>alice</userName><password>`+pw+`</password></Login>`))
		return code, body
	}
	if code, body := login(alicePassword); code != 500 || !strings.Contains(body, "verification code is required") {
		t.Fatalf("password alone: %d %s", code, body)
	}
	if code, body := login(alicePassword + "000000"); code != 500 || !strings.Contains(body, "incorrect user name or password") {
		t.Fatalf("wrong code: %d %s", code, body)
	}
	next, _ := totp.GenerateCodeCustom(en.Secret, time.Now().Add(30*time.Second), totpOpts)
	if next == first {
		next, _ = totp.GenerateCodeCustom(en.Secret, time.Now().Add(-30*time.Second), totpOpts)
	}
	tok := g.login("/t/vc1/sdk", "alice", alicePassword+next)
	read := call("RetrievePropertiesEx", "PropertyCollector", "propertyCollector")
	if code, body, _ := g.soapPost("/t/vc1/sdk", tok, read); code == 500 && strings.Contains(body, "portcullis") {
		t.Fatalf("with a code: %d %s", code, body)
	}
	// The same code again is a replay.
	if code, body := login(alicePassword + next); code != 500 {
		t.Fatalf("replayed code: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", g.url+"/t/vc1/sdk", strings.NewReader(read))
	req.Header.Set("X-API-KEY", testAPIKey)
	resp, err := g.client("").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(b), "verification code") {
		t.Fatalf("API key where a code is required: %d %s", resp.StatusCode, b)
	}
}
