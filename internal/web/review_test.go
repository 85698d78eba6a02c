package web_test

// Regression tests from the security review of the console. (Deleting a
// user's credentials with the user is the API's job: see
// TestReviewDeletedUserCredentialsRevive in package api.)

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
)

// A user who types the password into the user-name box (a common slip)
// has it written in clear into the audit trail, which auditors and, for
// that "name", anyone later called so read.
func TestReviewLoginFailureAuditsRawUserName(t *testing.T) {
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	if resp, body := b.login(alicePassword, alicePassword); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login: %s %s", resp.Status, body)
	}
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: "console."})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		all, _ := json.Marshal(ev)
		if strings.Contains(string(all), alicePassword) {
			t.Errorf("a failed sign-in's unknown user name (here a password) is stored verbatim: %s", all)
		}
	}
}
