package jit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// receiver is a webhook endpoint that checks the signature as the README
// tells receivers to.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	got    []WebhookPayload
	bad    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get("X-Portcullis-Timestamp")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Header.Get("X-Portcullis-Signature") != WebhookSignature(rc.secret, ts, body) {
		rc.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p WebhookPayload
	_ = json.Unmarshal(body, &p)
	rc.got = append(rc.got, p)
}

func TestWebhookLinks(t *testing.T) {
	rc := &receiver{secret: []byte("shared")}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	wh := &Webhook{URL: srv.URL, Secret: []byte("shared"), ConsoleURL: "https://gw.example:8443"}
	s := newSite(t, wh)
	wh.Attach(s.svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.svc.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()

	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var p WebhookPayload
	waitFor(t, func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.got) > 0 {
			p = rc.got[0]
		}
		return len(rc.got) > 0
	})
	if rc.bad != 0 || p.Event != EventRequested || p.Request != req.ID || !strings.HasPrefix(p.ApproveURL, "https://gw.example:8443/ui/#/jit?link=") {
		t.Fatalf("payload %+v (bad %d)", p, rc.bad)
	}
	approve := strings.TrimPrefix(p.ApproveURL, "https://gw.example:8443/ui/#/jit?link=")
	deny := strings.TrimPrefix(p.DenyURL, "https://gw.example:8443/ui/#/jit?link=")
	for _, c := range []struct {
		name, token, who string
		kind             error
	}{
		{"garbage", "abc", "frank", ErrNotFound},
		{"unknown token", strings.Repeat("A", 43), "frank", ErrNotFound},
		{"requester", approve, "erin", ErrForbidden},
		{"not an approver", approve, "hal", ErrForbidden},
	} {
		if _, err := s.svc.UseLink(ctx, c.token, Decision{Approver: c.who}); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", c.name, err, c.kind)
		}
	}
	// The refused uses did not spend the link: frank still approves.
	got, err := s.svc.UseLink(ctx, approve, Decision{Approver: "frank"})
	if err != nil || got.State != store.JITApproved {
		t.Fatalf("approve by link: %+v %v", got, err)
	}
	if _, err := s.svc.UseLink(ctx, approve, Decision{Approver: "frank"}); err == nil {
		t.Fatal("a link worked twice")
	}
	if _, err := s.svc.UseLink(ctx, deny, Decision{Approver: "frank"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("deny link after approval: %v", err)
	}
	hist, _ := s.svc.History(ctx, req.ID)
	found := false
	for _, ev := range hist {
		found = found || (ev.Kind == "approved" && ev.Channel == ChannelWebhook && ev.Actor == "frank")
	}
	if !found {
		t.Fatalf("history %+v", hist)
	}
}
