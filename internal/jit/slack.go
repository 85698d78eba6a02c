package jit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// Slack posts requests to a channel as Block Kit messages with Approve and
// Deny buttons, updates them when the request is decided or ends, tells
// the requester in a direct message, and handles the buttons' interactive
// callbacks (ServeHTTP). Written by hand against Slack's documented Web
// API (chat.postMessage, chat.update, users.lookupByEmail,
// conversations.open) and request signing: the two Go Slack clients
// (slack-go/slack and its forks) bring a websocket stack and far more API
// than these four calls and one HMAC, and the signing check is the part
// that must be exactly right, so it is kept in view here.
type Slack struct {
	// Token is the bot token (xoxb-...), sent as a Bearer token.
	Token string
	// SigningSecret verifies callbacks (Slack app "Signing Secret").
	SigningSecret []byte
	// Channel is the channel ID approvals are posted to.
	Channel string
	// APIURL is the Web API base; default https://slack.com/api/.
	APIURL string
	// ResponseHosts are the hosts a callback's response_url may point
	// to; default hooks.slack.com.
	ResponseHosts []string
	// HTTP sends the requests; nil: a client with a 15 s timeout.
	HTTP *http.Client
	// Now is the clock for the timestamp window; nil: time.Now.
	Now func() time.Time

	svc *Service

	mu sync.Mutex
	// seen holds the signatures of accepted callbacks until they leave
	// the 5-minute window, so that a captured callback is not replayed
	// (per gateway: a replay to another gateway finds the request
	// already decided).
	seen map[string]time.Time
	// posts maps a request ID to its channel message.
	posts map[string]slackRef
	// ids caches Slack user IDs by email.
	ids map[string]string
}

type slackRef struct{ channel, ts string }

// slackWindow is how old a callback's timestamp may be (Slack's advice).
const slackWindow = 5 * time.Minute

// Action IDs of the message's buttons.
const (
	slackApprove = "jit_approve"
	slackDeny    = "jit_deny"
)

// Attach binds the Slack notifier to the service whose requests its
// buttons decide.
func (s *Slack) Attach(svc *Service) { s.svc = svc }

// Name implements Notifier.
func (s *Slack) Name() string { return "slack" }

func (s *Slack) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Slack) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 15 * time.Second}
}

// call invokes a Web API method with a JSON body (or a form, for the
// methods that take no JSON) and decodes the answer into out. Slack
// answers HTTP 200 with ok:false and an error code for API errors.
func (s *Slack) call(ctx context.Context, method string, body any, form url.Values, out any) error {
	base := s.APIURL
	if base == "" {
		base = "https://slack.com/api/"
	}
	var (
		rd    io.Reader
		ctype string
	)
	if form != nil {
		rd, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	} else {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("slack %s: encode: %w", method, err)
		}
		rd, ctype = bytes.NewReader(b), "application/json; charset=utf-8"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/"+method, rd)
	if err != nil {
		return fmt.Errorf("slack %s: %w", method, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", ctype)
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("slack %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("slack %s: read answer: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("slack %s: HTTP %d", method, resp.StatusCode)
	}
	var status struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &status); err != nil {
		return fmt.Errorf("slack %s: answer is not JSON: %w", method, err)
	}
	if !status.OK {
		return fmt.Errorf("slack %s: %s", method, status.Error)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("slack %s: decode answer: %w", method, err)
		}
	}
	return nil
}

// Block Kit, the parts used here.
type (
	slackText struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	slackElement struct {
		Type     string    `json:"type"`
		Text     slackText `json:"text"`
		ActionID string    `json:"action_id"`
		Value    string    `json:"value"`
		Style    string    `json:"style,omitempty"`
	}
	slackBlock struct {
		Type     string         `json:"type"`
		Text     *slackText     `json:"text,omitempty"`
		Elements []slackElement `json:"elements,omitempty"`
	}
)

// escape keeps user text from being read as Slack mrkdwn controls.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func summary(n Notification) string {
	r := n.Request
	return fmt.Sprintf("*%s* requests *%s* on *%s* for %s under jit policy %s (request %s). Reason: %s",
		escape(r.Requester), escape(orAny(r.Account)), escape(r.Target), r.Duration, escape(r.Policy), r.ID, escape(r.Reason))
}

// Notify implements Notifier.
func (s *Slack) Notify(ctx context.Context, n Notification) error {
	if n.Event == EventRequested {
		blocks := []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: summary(n)}},
			{Type: "actions", Elements: []slackElement{
				{Type: "button", Text: slackText{Type: "plain_text", Text: "Approve"}, ActionID: slackApprove, Value: n.Request.ID, Style: "primary"},
				{Type: "button", Text: slackText{Type: "plain_text", Text: "Deny"}, ActionID: slackDeny, Value: n.Request.ID, Style: "danger"},
			}},
		}
		var out struct {
			Channel string `json:"channel"`
			TS      string `json:"ts"`
		}
		if err := s.call(ctx, "chat.postMessage", map[string]any{"channel": s.Channel, "text": "Access request " + n.Request.ID, "blocks": blocks}, nil, &out); err != nil {
			return err
		}
		s.mu.Lock()
		if s.posts == nil {
			s.posts = map[string]slackRef{}
		}
		s.posts[n.Request.ID] = slackRef{out.Channel, out.TS}
		s.mu.Unlock()
		return nil
	}
	status := strings.ToUpper(n.Event)
	line := status
	if n.Actor != "" {
		line += " by " + escape(n.Actor)
	}
	if n.Reason != "" {
		line += ": " + escape(n.Reason)
	}
	s.mu.Lock()
	ref, ok := s.posts[n.Request.ID]
	s.mu.Unlock()
	if ok {
		blocks := []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: summary(n)}},
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: "*" + line + "*"}},
		}
		if err := s.call(ctx, "chat.update", map[string]any{"channel": ref.channel, "ts": ref.ts, "text": status, "blocks": blocks}, nil, nil); err != nil {
			return err
		}
	}
	return s.tellRequester(ctx, n, line)
}

// tellRequester sends the requester a direct message, when their User has
// an email Slack knows (the answer to gravitational/teleport#32620).
func (s *Slack) tellRequester(ctx context.Context, n Notification, line string) error {
	email := s.email(n.Request.Requester)
	if email == "" {
		return nil
	}
	id, err := s.lookup(ctx, email)
	if err != nil || id == "" {
		return err
	}
	var conv struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if err := s.call(ctx, "conversations.open", map[string]any{"users": id}, nil, &conv); err != nil {
		return err
	}
	text := fmt.Sprintf("Your request %s for %s on %s: %s", n.Request.ID, orAny(n.Request.Account), n.Request.Target, line)
	if n.Event == EventApproved {
		text += fmt.Sprintf(" (until %s)", n.Request.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return s.call(ctx, "chat.postMessage", map[string]any{"channel": conv.Channel.ID, "text": text}, nil, nil)
}

// lookup returns the Slack user ID of an email ("" when Slack has none).
func (s *Slack) lookup(ctx context.Context, email string) (string, error) {
	s.mu.Lock()
	id, ok := s.ids[email]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	err := s.call(ctx, "users.lookupByEmail", nil, url.Values{"email": {email}}, &out)
	if err != nil && strings.HasSuffix(err.Error(), ": users_not_found") {
		err = nil
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.ids == nil {
		s.ids = map[string]string{}
	}
	s.ids[email] = out.User.ID
	s.mu.Unlock()
	return out.User.ID, nil
}

// email returns the gateway user's email, "" if none.
func (s *Slack) email(user string) string {
	if s.svc == nil {
		return ""
	}
	obj, err := s.svc.cfg.Inventory.Get(context.Background(), resource.KindUser, user)
	if err != nil {
		return ""
	}
	if u, ok := obj.(*resource.User); ok {
		return u.Email
	}
	return ""
}

// gatewayUser maps a Slack user ID to the gateway user whose email Slack
// gives that ID. Users are looked up by email, the one identity both
// sides hold; a Slack user no gateway user's email leads to maps to none.
func (s *Slack) gatewayUser(ctx context.Context, slackID string) (string, error) {
	objs, err := s.svc.cfg.Inventory.List(ctx, resource.KindUser)
	if err != nil {
		return "", err
	}
	for _, o := range objs {
		u, ok := o.(*resource.User)
		if !ok || u.Email == "" {
			continue
		}
		id, err := s.lookup(ctx, u.Email)
		if err != nil {
			return "", err
		}
		if id != "" && id == slackID {
			return u.Name, nil
		}
	}
	return "", nil
}

// errSlackAuth is the one answer to a callback that fails verification.
var errSlackAuth = errors.New("slack callback refused")

// Verify checks a callback as Slack signs it: X-Slack-Request-Timestamp
// within five minutes of now, and X-Slack-Signature equal to "v0=" and
// the hex HMAC-SHA256, under the signing secret, of "v0:" + timestamp +
// ":" + the raw body, compared in constant time; then that the same
// signature was not accepted before.
func (s *Slack) Verify(h http.Header, body []byte) error {
	tsText := h.Get("X-Slack-Request-Timestamp")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a number", errSlackAuth, tsText)
	}
	now := s.now()
	if d := now.Sub(time.Unix(ts, 0)); d > slackWindow || d < -slackWindow {
		return fmt.Errorf("%w: timestamp is %s away from now (at most %s)", errSlackAuth, d.Round(time.Second), slackWindow)
	}
	if len(s.SigningSecret) == 0 {
		return fmt.Errorf("%w: no signing secret configured", errSlackAuth)
	}
	mac := hmac.New(sha256.New, s.SigningSecret)
	fmt.Fprintf(mac, "v0:%s:", tsText)
	mac.Write(body)
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	got := h.Get("X-Slack-Signature")
	if !hmac.Equal([]byte(got), []byte(want)) {
		return fmt.Errorf("%w: bad signature", errSlackAuth)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	for sig, at := range s.seen {
		if now.Sub(at) > 2*slackWindow {
			delete(s.seen, sig)
		}
	}
	if _, dup := s.seen[got]; dup {
		return fmt.Errorf("%w: replayed", errSlackAuth)
	}
	s.seen[got] = now
	return nil
}

// blockActions is the part of Slack's block_actions payload read here.
type blockActions struct {
	Type string `json:"type"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
}

// ParseBlockActions reads a callback body: a form whose payload field is
// the JSON of a block_actions interaction with exactly one action of ours.
func ParseBlockActions(body []byte) (blockActions, error) {
	var p blockActions
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return p, fmt.Errorf("body is not a form: %w", err)
	}
	payload := form["payload"]
	if len(payload) != 1 {
		return p, errors.New("want exactly one payload field")
	}
	if err := json.Unmarshal([]byte(payload[0]), &p); err != nil {
		return p, fmt.Errorf("payload is not JSON: %w", err)
	}
	switch {
	case p.Type != "block_actions":
		return p, fmt.Errorf("payload type %q is not block_actions", p.Type)
	case p.User.ID == "":
		return p, errors.New("payload names no user")
	case len(p.Actions) != 1:
		return p, fmt.Errorf("want one action, got %d", len(p.Actions))
	case p.Actions[0].ActionID != slackApprove && p.Actions[0].ActionID != slackDeny:
		return p, fmt.Errorf("action %q is not ours", p.Actions[0].ActionID)
	case !strings.HasPrefix(p.Actions[0].Value, "req-"):
		return p, fmt.Errorf("action value %q is not a request id", p.Actions[0].Value)
	}
	return p, nil
}

// ServeHTTP handles the interactivity Request URL. Only a verified
// callback does anything; the clicker must map to a gateway user who may
// approve, and is told in the thread (response_url, ephemeral) when not.
func (s *Slack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := s.Verify(r.Header, body); err != nil {
		s.svc.log.Warn("slack callback refused", "source", r.RemoteAddr, "err", err)
		http.Error(w, "signature verification failed", http.StatusUnauthorized)
		return
	}
	p, err := ParseBlockActions(body)
	if err != nil {
		s.svc.log.Warn("slack callback unreadable", "err", err)
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	user, err := s.gatewayUser(ctx, p.User.ID)
	var msg string
	switch {
	case err != nil:
		s.svc.log.Error("map slack user", "slack_user", p.User.ID, "err", err)
		msg = "The gateway could not check who you are; try again or use the console."
	case user == "":
		msg = "No gateway user has your Slack email address: you cannot decide access requests here."
	default:
		d := Decision{ID: p.Actions[0].Value, Approver: user, Channel: ChannelSlack}
		if p.Actions[0].ActionID == slackApprove {
			_, err = s.svc.Approve(ctx, d)
		} else {
			d.Reason = "denied in Slack"
			_, err = s.svc.Deny(ctx, d)
		}
		var je *Error
		switch {
		case errors.As(err, &je):
			msg = je.Msg
		case err != nil:
			s.svc.log.Error("decide request from slack", "request", d.ID, "err", err)
			msg = "The gateway failed to record your decision; try again."
		}
	}
	if msg != "" {
		s.respond(ctx, p.ResponseURL, msg)
	}
	w.WriteHeader(http.StatusOK)
}

// respond posts an ephemeral message to a callback's response_url, if it
// points to an allowed host.
func (s *Slack) respond(ctx context.Context, responseURL, text string) {
	u, err := url.Parse(responseURL)
	hosts := s.ResponseHosts
	if len(hosts) == 0 {
		hosts = []string{"hooks.slack.com"}
	}
	if err != nil || u.Host == "" || !slices.Contains(hosts, u.Host) || (u.Scheme != "https" && u.Scheme != "http") {
		s.svc.log.Warn("slack response_url refused", "url", responseURL)
		return
	}
	b, _ := json.Marshal(map[string]any{"response_type": "ephemeral", "replace_original": false, "text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client().Do(req)
	if err != nil {
		s.svc.log.Warn("slack response_url", "err", err)
		return
	}
	_ = resp.Body.Close()
}
