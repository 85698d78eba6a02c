package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// Single sign-on for SSH, in order:
//
//  1. The SSH front calls BeginSSHSignIn for the login's user: a random
//     code gets a row (marker sshCodeMarker, the SSH user in its user
//     column) expiring with the SSH authentication deadline, and the
//     person is shown https://CONSOLE/ui/oidc/ssh/CODE.
//  2. GET /ui/oidc/ssh/CODE checks that row and starts the console's
//     flow (see oidc.go) with a flow row whose marker names the code's
//     row.
//  3. The callback signs the provider account in as its linked User; if
//     that is the SSH user, the code's row is replaced by a done row (in
//     its own hash domain) naming the user, else the sign-in is refused.
//     No console session is made: the browser only vouched for the SSH
//     login.
//  4. The SSH front polls FinishSSHSignIn, which takes the done row once.
//
// Every row is in the store, so each step may run on any gateway.

// sshSignInPath is where an SSH sign-in's URL points, followed by the
// code.
const sshSignInPath = "/ui/oidc/ssh/"

// Markers of the rows of an SSH sign-in (see ssoFlowMarker). A flow row
// started for one has sshFlowMarkerPrefix followed by the code's row id.
const (
	sshCodeMarker       = "!oidc-ssh"
	sshDoneMarker       = "!oidc-ssh-done"
	sshFlowMarkerPrefix = "!oidc-flow-ssh:"
)

// sshCodeID is the row id of an SSH sign-in code; sshDoneID that of its
// done row, derived from the code's row id so that the callback, which
// only knows that id, can write it.
func sshCodeID(code string) string   { return hashID("oidc-ssh\x00" + code) }
func sshDoneID(codeID string) string { return hashID("oidc-ssh-done\x00" + codeID) }

// BeginSSHSignIn stores a new one-use SSH sign-in code for user, valid
// until expires, and returns it; the person opens
// https://CONSOLE/ui/oidc/ssh/CODE.
func BeginSSHSignIn(ctx context.Context, st store.Store, user string, now, expires time.Time) (string, error) {
	code, err := newToken()
	if err != nil {
		return "", err
	}
	if err := st.CreateWebSession(ctx, store.WebSession{IDHash: sshCodeID(code), User: user, CSRFToken: sshCodeMarker,
		CreatedAt: now, LastSeen: now, ExpiresAt: expires}); err != nil {
		return "", fmt.Errorf("store ssh sign-in code: %w", err)
	}
	return code, nil
}

// FinishSSHSignIn reports whether the browser sign-in of code finished
// for user before it expired; true consumes it. Not finished yet is
// false with no error.
func FinishSSHSignIn(ctx context.Context, st store.Store, code, user string, now time.Time) (bool, error) {
	if !wellFormed(code) {
		return false, nil
	}
	id := sshDoneID(sshCodeID(code))
	ws, err := st.GetWebSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read ssh sign-in: %w", err)
	}
	if ws.CSRFToken != sshDoneMarker || ws.User != user || !now.Before(ws.ExpiresAt) {
		return false, nil
	}
	if err := st.DeleteWebSession(ctx, id); err != nil {
		return false, fmt.Errorf("consume ssh sign-in: %w", err)
	}
	return true, nil
}

// pendingSSHCode returns the unexpired row of an SSH sign-in code's id.
func (c *Console) pendingSSHCode(ctx context.Context, codeID string, now time.Time) (store.WebSession, bool) {
	ws, err := c.cfg.Store.GetWebSession(ctx, codeID)
	if err != nil || ws.CSRFToken != sshCodeMarker || !now.Before(ws.ExpiresAt) {
		return store.WebSession{}, false
	}
	return ws, true
}

// serveSSHSignIn answers GET /ui/oidc/ssh/CODE: the provider's sign-in
// for a waiting SSH login.
func (c *Console) serveSSHSignIn(w http.ResponseWriter, r *http.Request, code string) {
	if !wellFormed(code) {
		c.ssoFail(w, r, "", ssoErrExpired, errors.New("malformed ssh sign-in code"))
		return
	}
	codeID := sshCodeID(code)
	if _, ok := c.pendingSSHCode(r.Context(), codeID, c.now()); !ok {
		c.ssoFail(w, r, "", ssoErrExpired, errors.New("the ssh sign-in code expired or was already used"))
		return
	}
	c.startSSOFlow(w, r, sshFlowMarkerPrefix+codeID)
}

// finishSSHSignIn ends a callback started by serveSSHSignIn: user, whom
// the provider account signed in as, must be the SSH login's.
func (c *Console) finishSSHSignIn(w http.ResponseWriter, r *http.Request, codeID, user string, now time.Time) {
	ctx := r.Context()
	ws, ok := c.pendingSSHCode(ctx, codeID, now)
	if !ok {
		c.ssoFail(w, r, user, ssoErrExpired, errors.New("the ssh sign-in code expired or was already used"))
		return
	}
	if ws.User != user {
		c.ssoFail(w, r, user, ssoErrWrongUser, fmt.Errorf("the provider account is %s's, the ssh login is %s's", user, ws.User))
		return
	}
	// The code is spent before the done row exists, so a second callback
	// cannot finish it again.
	if err := c.cfg.Store.DeleteWebSession(ctx, codeID); err != nil {
		c.ssoFail(w, r, user, ssoErrInternal, fmt.Errorf("spend ssh sign-in code: %w", err))
		return
	}
	if err := c.cfg.Store.CreateWebSession(ctx, store.WebSession{IDHash: sshDoneID(codeID), User: user, CSRFToken: sshDoneMarker,
		Source: sourceKey(r.RemoteAddr), CreatedAt: now, LastSeen: now, ExpiresAt: ws.ExpiresAt}); err != nil {
		c.ssoFail(w, r, user, ssoErrInternal, fmt.Errorf("store ssh sign-in: %w", err))
		return
	}
	c.audit(ctx, store.AuditEvent{Type: EventSSHSignIn, Outcome: audit.Success, User: user, Source: r.RemoteAddr,
		Message: "browser sign-in for an SSH login", Detail: map[string]any{"via": "oidc"}})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/ui/#sso_ssh=done", http.StatusFound)
}
