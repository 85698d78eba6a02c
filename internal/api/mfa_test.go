package api_test

import (
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestMFAEnrollFlow: a user enrolls, confirms with the app's code, cannot
// enroll over an active factor, and an admin resets it.
func TestMFAEnrollFlow(t *testing.T) {
	e := newAuthzEnv(t)
	const path = "/api/v1/users/nora/mfa"
	status, out := e.send(t, "norole", "POST", path, "")
	if status != 201 || out["state"] != "pending" || out["qr_png_base64"] == "" || len(out["recovery_codes"].([]any)) != 10 {
		t.Fatalf("enroll: %d %v", status, out)
	}
	code, err := totp.GenerateCodeCustom(out["secret"].(string), time.Now(),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, who, method, path, body string
		want                          int
		state                         string
	}{
		{"wrong code", "norole", "POST", path + "/confirm", `{"code":"12345"}`, 400, ""},
		{"unknown field", "norole", "POST", path + "/confirm", `{"code":"` + code + `","x":1}`, 400, ""},
		{"right code", "norole", "POST", path + "/confirm", `{"code":"` + code + `"}`, 200, "active"},
		{"confirm again", "norole", "POST", path + "/confirm", `{"code":"` + code + `"}`, 409, ""},
		{"state", "norole", "GET", path, "", 200, "active"},
		{"enroll over an active factor", "norole", "POST", path, "", 409, ""},
		{"user resets own", "norole", "DELETE", path, "", 403, ""},
		{"admin resets", "admin", "DELETE", path, "", 204, ""},
		{"state after reset", "admin", "GET", path, "", 200, ""},
		{"unknown user", "admin", "POST", "/api/v1/users/ghost/mfa", "", 404, ""},
	} {
		status, out := e.send(t, c.who, c.method, c.path, c.body)
		if status != c.want || (c.want == 200 && out["state"] != c.state) {
			t.Errorf("%s: %d %v, want %d state %q", c.name, status, out, c.want, c.state)
		}
	}
}
