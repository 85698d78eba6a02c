package jit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Webhook posts every notification as JSON to a URL, for Microsoft Teams
// or Mattermost workflows and anything else. The body is signed:
// X-Portcullis-Timestamp is the Unix time, and X-Portcullis-Signature is
// "v1=" + hex HMAC-SHA256, under the shared secret, of TIMESTAMP + "." +
// body; receivers should refuse a timestamp more than 5 minutes away.
// A new request's notification carries approve and deny links into the
// console: each works once, expires with the request, and still needs the
// approver to sign in and be an approver (a link alone decides nothing).
type Webhook struct {
	URL    string
	Secret []byte
	// ConsoleURL is the console's base, https://GATEWAY:PORT.
	ConsoleURL string
	HTTP       *http.Client

	svc *Service
}

// Attach binds the webhook to the service whose links it makes.
func (w *Webhook) Attach(svc *Service) { w.svc = svc }

// Name implements Notifier.
func (w *Webhook) Name() string { return "webhook" }

// WebhookPayload is the JSON a webhook receives.
type WebhookPayload struct {
	Event     string     `json:"event"`
	Request   string     `json:"request"`
	Requester string     `json:"requester"`
	Target    string     `json:"target"`
	Account   string     `json:"account,omitempty"`
	Duration  string     `json:"duration"`
	Reason    string     `json:"reason,omitempty"`
	State     string     `json:"state"`
	Actor     string     `json:"actor,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Text      string     `json:"text"`
	// ApproveURL and DenyURL come with event requested.
	ApproveURL string `json:"approve_url,omitempty"`
	DenyURL    string `json:"deny_url,omitempty"`
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	if w.svc == nil {
		return errors.New("webhook: not attached to the JIT service")
	}
	r := n.Request
	p := WebhookPayload{Event: n.Event, Request: r.ID, Requester: r.Requester, Target: r.Target, Account: r.Account,
		Duration: r.Duration.String(), Reason: r.Reason, State: r.State, Actor: n.Actor}
	if !r.ExpiresAt.IsZero() {
		t := r.ExpiresAt
		p.ExpiresAt = &t
	}
	p.Text = fmt.Sprintf("%s: %s requests %s on %s for %s (%s)", n.Event, r.Requester, orAny(r.Account), r.Target, r.Duration, r.ID)
	if n.Event == EventRequested {
		var err error
		if p.ApproveURL, err = w.link(ctx, r, "approve"); err != nil {
			return err
		}
		if p.DenyURL, err = w.link(ctx, r, "deny"); err != nil {
			return err
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	ts := strconv.FormatInt(w.svc.cfg.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Portcullis-Timestamp", ts)
	req.Header.Set("X-Portcullis-Signature", WebhookSignature(w.Secret, ts, body))
	hc := w.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

// WebhookSignature is the X-Portcullis-Signature of body sent at ts.
func WebhookSignature(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// link stores a single-use link and returns its console URL. Only the
// token's hash is stored.
func (w *Webhook) link(ctx context.Context, r store.JITRequest, action string) (string, error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	l := store.JITLink{TokenHash: linkHash(token), Request: r.ID, Action: action, ExpiresAt: r.CreatedAt.Add(w.svc.cfg.PendingTTL)}
	if err := w.svc.cfg.Store.CreateJITLink(ctx, l); err != nil {
		return "", err
	}
	return w.ConsoleURL + "/ui/#/jit?link=" + token, nil
}

func linkHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// UseLink decides a request through a webhook link, as the signed-in
// approver: the approver's rights are checked before the link is spent,
// so that someone who may not decide cannot burn it.
func (s *Service) UseLink(ctx context.Context, token string, d Decision) (store.JITRequest, error) {
	if len(token) != 43 {
		return store.JITRequest{}, refuse(ErrNotFound, "this link is not valid")
	}
	// The link names the request; find it without spending the link.
	peek, err := s.cfg.Store.GetJITLink(ctx, linkHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return store.JITRequest{}, refuse(ErrNotFound, "this link is not valid")
	}
	if err != nil {
		return store.JITRequest{}, err
	}
	d.ID, d.Channel = peek.Request, ChannelWebhook
	if _, err := s.pendingFor(ctx, d); err != nil {
		return store.JITRequest{}, err
	}
	l, err := s.cfg.Store.UseJITLink(ctx, linkHash(token), s.cfg.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return store.JITRequest{}, refuse(ErrNotFound, "this link was used or has expired")
	}
	if err != nil {
		return store.JITRequest{}, err
	}
	if l.Action == "deny" {
		d.Reason = "denied through the webhook link"
		return s.Deny(ctx, d)
	}
	return s.Approve(ctx, d)
}
