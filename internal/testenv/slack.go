package testenv

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Slack serves Slack's side of the Web API methods the gateway calls
// (chat.postMessage, chat.update, users.lookupByEmail, conversations.open)
// and a response_url, on loopback, as Slack documents them: a Bearer bot
// token on every call (invalid_auth otherwise), JSON or form bodies,
// answers of HTTP 200 with {"ok": true, ...} or {"ok": false, "error":
// CODE}. Slack itself cannot be reached from test machines. It also signs
// interactive callbacks the way Slack does (SignedCallback), so that tests
// click buttons as Slack would deliver the click.
type Slack struct {
	URL   string // the Web API base, .../api/
	Token string
	// SigningSecret is the app's signing secret.
	SigningSecret []byte

	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	users    map[string]string // email -> user ID
	channels map[string]bool   // channel IDs that exist
	messages []*SlackMessage
	dms      map[string]string // user ID -> DM channel ID
	replies  []string          // texts posted to response_urls
	fail     int               // answer the next calls with HTTP 503
	next     int
}

// SlackMessage is a message as the fake holds it.
type SlackMessage struct {
	Channel string
	TS      string
	Text    string
	Blocks  json.RawMessage
	Updates int
}

// StartSlack starts a fake Slack with the channel and users (email -> Slack
// user ID) given.
func StartSlack(t testing.TB, channel string, users map[string]string) *Slack {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Slack{Token: "xoxb-test-" + strconv.FormatInt(time.Now().UnixNano(), 36), SigningSecret: []byte("8f742231b10e8888abcd99yyyzzz85a5"),
		ln: ln, users: users, channels: map[string]bool{channel: true}, dms: map[string]string{}}
	s.URL = "http://" + ln.Addr().String() + "/api/"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat.postMessage", s.api(s.postMessage))
	mux.HandleFunc("POST /api/chat.update", s.api(s.update))
	mux.HandleFunc("POST /api/users.lookupByEmail", s.api(s.lookupByEmail))
	mux.HandleFunc("POST /api/conversations.open", s.api(s.open))
	mux.HandleFunc("POST /response/{id}", s.response)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// ResponseHost is the host:port of the fake's response_url endpoint.
func (s *Slack) ResponseHost() string { return s.ln.Addr().String() }

// FailNext makes the next n Web API calls answer HTTP 503, as Slack does
// when it is unavailable.
func (s *Slack) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = n
}

type slackArgs map[string]any

func (a slackArgs) str(k string) string { v, _ := a[k].(string); return v }

// api checks the token and reads a JSON or form body, as Slack accepts.
func (s *Slack) api(fn func(slackArgs) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		failing := s.fail > 0
		if failing {
			s.fail--
		}
		s.mu.Unlock()
		if failing {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		reply := func(v map[string]any) { _ = json.NewEncoder(w).Encode(v) }
		if r.Header.Get("Authorization") != "Bearer "+s.Token {
			reply(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		args := slackArgs{}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		switch ct := r.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/json"):
			if err := json.Unmarshal(body, &args); err != nil {
				reply(map[string]any{"ok": false, "error": "invalid_json"})
				return
			}
		case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
			form, err := url.ParseQuery(string(body))
			if err != nil {
				reply(map[string]any{"ok": false, "error": "invalid_form_data"})
				return
			}
			for k := range form {
				args[k] = form.Get(k)
			}
		default:
			reply(map[string]any{"ok": false, "error": "invalid_form_data"})
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		reply(fn(args))
	}
}

func (s *Slack) knownChannel(id string) bool {
	if s.channels[id] {
		return true
	}
	for _, dm := range s.dms {
		if dm == id {
			return true
		}
	}
	return false
}

func (s *Slack) postMessage(a slackArgs) map[string]any {
	ch := a.str("channel")
	if !s.knownChannel(ch) {
		return map[string]any{"ok": false, "error": "channel_not_found"}
	}
	blocks, _ := json.Marshal(a["blocks"])
	if a.str("text") == "" && a["blocks"] == nil {
		return map[string]any{"ok": false, "error": "no_text"}
	}
	s.next++
	m := &SlackMessage{Channel: ch, TS: fmt.Sprintf("1700000000.%06d", s.next), Text: a.str("text"), Blocks: blocks}
	s.messages = append(s.messages, m)
	return map[string]any{"ok": true, "channel": ch, "ts": m.TS, "message": map[string]any{"text": m.Text}}
}

func (s *Slack) update(a slackArgs) map[string]any {
	for _, m := range s.messages {
		if m.Channel == a.str("channel") && m.TS == a.str("ts") {
			m.Text = a.str("text")
			m.Blocks, _ = json.Marshal(a["blocks"])
			m.Updates++
			return map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text}
		}
	}
	return map[string]any{"ok": false, "error": "message_not_found"}
}

func (s *Slack) lookupByEmail(a slackArgs) map[string]any {
	id, ok := s.users[a.str("email")]
	if !ok {
		return map[string]any{"ok": false, "error": "users_not_found"}
	}
	return map[string]any{"ok": true, "user": map[string]any{"id": id, "profile": map[string]any{"email": a.str("email")}}}
}

func (s *Slack) open(a slackArgs) map[string]any {
	user := a.str("users")
	known := false
	for _, id := range s.users {
		known = known || id == user
	}
	if !known {
		return map[string]any{"ok": false, "error": "user_not_found"}
	}
	if _, ok := s.dms[user]; !ok {
		s.dms[user] = "D" + user
	}
	return map[string]any{"ok": true, "channel": map[string]any{"id": s.dms[user]}}
}

func (s *Slack) response(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.replies = append(s.replies, body.Text)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// Messages returns copies of the messages posted so far.
func (s *Slack) Messages() []SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SlackMessage, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

// Replies returns the texts posted to response_urls so far.
func (s *Slack) Replies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.replies...)
}

// BlockActions returns the form body Slack posts when user clicks the
// button actionID with value on a message in channel.
func (s *Slack) BlockActions(user, channel, ts, actionID, value string) []byte {
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "username": user, "team_id": "T1"},
		"api_app_id": "A1", "token": "verification-token-deprecated", "trigger_id": "1.2.3",
		"team":         map[string]any{"id": "T1"},
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": channel},
		"channel":      map[string]any{"id": channel},
		"response_url": "http://" + s.ResponseHost() + "/response/" + ts,
		"actions": []map[string]any{{"type": "button", "action_id": actionID, "block_id": "b1", "value": value,
			"action_ts": ts, "text": map[string]any{"type": "plain_text", "text": actionID}}},
	})
	return []byte(url.Values{"payload": {string(payload)}}.Encode())
}

// SignedCallback builds the POST Slack sends to a Request URL: the body,
// X-Slack-Request-Timestamp at, and X-Slack-Signature "v0=" + hex
// HMAC-SHA256 of "v0:TIMESTAMP:BODY" under secret.
func SignedCallback(t testing.TB, requestURL string, secret []byte, at time.Time, body []byte) *http.Request {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "v0:%s:", ts)
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, requestURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return req
}
