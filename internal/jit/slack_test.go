package jit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

type slackSite struct {
	*site
	slack *testenv.Slack
	url   string // the gateway's interactivity Request URL
	cb    *Slack
}

func newSlackSite(t *testing.T) *slackSite {
	t.Helper()
	fake := testenv.StartSlack(t, "C0APPROVALS", map[string]string{
		"erin@example.com": "UERIN", "frank@example.com": "UFRANK", "hal@example.com": "UHAL", "mallory@example.com": "UMALLORY"})
	cb := &Slack{Token: fake.Token, SigningSecret: fake.SigningSecret, Channel: "C0APPROVALS", APIURL: fake.URL,
		ResponseHosts: []string{fake.ResponseHost()}}
	s := newSite(t, cb)
	cb.Now = s.clock.Now
	cb.Attach(s.svc)
	srv := httptest.NewServer(cb)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.svc.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })
	return &slackSite{site: s, slack: fake, url: srv.URL + "/slack/interactions", cb: cb}
}

func (s *slackSite) send(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// posted waits for the channel message of a request.
func (s *slackSite) posted(t *testing.T, id string) testenv.SlackMessage {
	t.Helper()
	var msg testenv.SlackMessage
	waitFor(t, func() bool {
		for _, m := range s.slack.Messages() {
			if m.Channel == "C0APPROVALS" && strings.Contains(string(m.Blocks), id) {
				msg = m
				return true
			}
		}
		return false
	})
	return msg
}

func TestSlackApprovalAndAttacks(t *testing.T) {
	s := newSlackSite(t)
	ctx := context.Background()
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Account: "deploy", Reason: "incident <!channel>", Channel: ChannelCLI})
	if err != nil {
		t.Fatal(err)
	}
	msg := s.posted(t, req.ID)
	for _, want := range []string{`"action_id":"jit_approve"`, `"action_id":"jit_deny"`, `"value":"` + req.ID + `"`, `\u0026lt;!channel\u0026gt;`} {
		if !strings.Contains(string(msg.Blocks), want) {
			t.Fatalf("message blocks lack %s: %s", want, msg.Blocks)
		}
	}
	now := s.clock.Now()
	click := func(user, action string) []byte {
		return s.slack.BlockActions(user, msg.Channel, msg.TS, action, req.ID)
	}
	for _, c := range []struct {
		name   string
		req    *http.Request
		status int
		reply  string // the ephemeral answer, if any
	}{
		{"bad signature", testenv.SignedCallback(t, s.url, []byte("not the secret"), now, click("UFRANK", slackApprove)), 401, ""},
		{"stale timestamp", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now.Add(-6*time.Minute), click("UFRANK", slackApprove)), 401, ""},
		{"future timestamp", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now.Add(6*time.Minute), click("UFRANK", slackApprove)), 401, ""},
		{"requester approves own", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UERIN", slackApprove)), 200, "may not approve or deny their own request"},
		{"not an approver", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UHAL", slackApprove)), 200, "hal is not an approver"},
		{"slack user with no gateway user", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UMALLORY", slackApprove)), 200, "No gateway user"},
		{"action of another app", testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UFRANK", "delete_all")), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(s.slack.Replies())
			if got := s.send(t, c.req); got != c.status {
				t.Fatalf("status %d, want %d", got, c.status)
			}
			if c.reply != "" {
				replies := s.slack.Replies()
				if len(replies) != before+1 || !strings.Contains(replies[before], c.reply) {
					t.Fatalf("replies %q, want one with %q", replies[before:], c.reply)
				}
			}
			if got, _ := s.svc.Get(ctx, req.ID); got.State != store.JITPending {
				t.Fatalf("request moved: %+v", got)
			}
		})
	}
	// A signed click with its body changed after signing (another request
	// id) fails verification.
	tampered := testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UFRANK", slackApprove))
	forged := testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, click("UFRANK", slackDeny))
	forged.Header.Set("X-Slack-Signature", tampered.Header.Get("X-Slack-Signature"))
	if got := s.send(t, forged); got != 401 {
		t.Fatalf("tampered body: %d", got)
	}

	// frank approves; his exact callback replayed is refused.
	approve := click("UFRANK", slackApprove)
	if got := s.send(t, testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, approve)); got != 200 {
		t.Fatalf("approve: %d", got)
	}
	got, _ := s.svc.Get(ctx, req.ID)
	if got.State != store.JITApproved || got.DecidedBy != "frank" {
		t.Fatalf("after approval %+v", got)
	}
	if st := s.send(t, testenv.SignedCallback(t, s.url, s.slack.SigningSecret, now, approve)); st != 401 {
		t.Fatalf("replay: %d", st)
	}
	hist, _ := s.svc.History(ctx, req.ID)
	found := false
	for _, ev := range hist {
		found = found || (ev.Kind == "approved" && ev.Channel == ChannelSlack && ev.Actor == "frank")
	}
	if !found {
		t.Fatalf("history %+v", hist)
	}
	// The channel message says APPROVED, and erin hears in a DM.
	waitFor(t, func() bool {
		var updated, dm bool
		for _, m := range s.slack.Messages() {
			updated = updated || (m.TS == msg.TS && m.Updates == 1 && strings.Contains(string(m.Blocks), "APPROVED by frank") && !strings.Contains(string(m.Blocks), "jit_approve"))
			dm = dm || (m.Channel == "DUERIN" && strings.Contains(m.Text, req.ID) && strings.Contains(m.Text, "APPROVED"))
		}
		return updated && dm
	})

	// Expiry updates the message again.
	s.clock.Add(time.Hour)
	if err := s.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		for _, m := range s.slack.Messages() {
			if m.TS == msg.TS && strings.Contains(string(m.Blocks), "EXPIRED") {
				return true
			}
		}
		return false
	})
}

func TestSlackDenyAndOutage(t *testing.T) {
	s := newSlackSite(t)
	ctx := context.Background()
	// Slack is down for the first two calls: the post is retried.
	s.slack.FailNext(2)
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	msg := s.posted(t, req.ID)
	body := s.slack.BlockActions("UFRANK", msg.Channel, msg.TS, slackDeny, req.ID)
	if got := s.send(t, testenv.SignedCallback(t, s.url, s.slack.SigningSecret, s.clock.Now(), body)); got != 200 {
		t.Fatalf("deny: %d", got)
	}
	if got, _ := s.svc.Get(ctx, req.ID); got.State != store.JITDenied {
		t.Fatalf("after deny %+v", got)
	}
	waitFor(t, func() bool {
		for _, m := range s.slack.Messages() {
			if m.TS == msg.TS && strings.Contains(string(m.Blocks), "DENIED by frank") {
				return true
			}
		}
		return false
	})
}

func FuzzParseBlockActions(f *testing.F) {
	f.Add([]byte(`payload={"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"jit_approve","value":"req-1"}]}`))
	f.Add([]byte(`payload=%7B%7D`))
	f.Add([]byte(`payload=1&payload=2`))
	f.Add([]byte("%zz"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseBlockActions(body)
		if err == nil && (p.Type != "block_actions" || len(p.Actions) != 1 || !strings.HasPrefix(p.Actions[0].Value, "req-")) {
			t.Fatalf("accepted %+v", p)
		}
	})
}
