package jit

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Events a Notification is about.
const (
	EventRequested = "requested"
	EventApproved  = "approved"
	EventDenied    = "denied"
	EventExpired   = store.JITExpired
	EventRevoked   = store.JITRevoked
)

// Notification tells the outside world about a request.
type Notification struct {
	Event   string
	Request store.JITRequest
	Actor   string // who decided, if anyone
	Reason  string // a denial's reason
}

// Notifier delivers notifications to one outside service. Notify may be
// called again with the same notification after an error.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, n Notification) error
}

// A delivery is one notification for one notifier, with its attempts.
type delivery struct {
	to      Notifier
	n       Notification
	attempt int
}

const maxAttempts = 6

// notify queues n for every notifier without waiting: a full queue drops
// the notification and says so in the request's history.
func (s *Service) notify(n Notification) {
	for _, to := range s.cfg.Notifiers {
		select {
		case s.queue <- delivery{to: to, n: n}:
		default:
			s.log.Error("JIT notification queue full", "notifier", to.Name(), "request", n.Request.ID, "event", n.Event)
			_ = s.event(context.Background(), n.Request.ID, "notify-failed", "", to.Name(), n.Event+": queue full")
		}
	}
}

// deliver sends queued notifications until ctx ends, retrying a failed
// one after RetryBase, then twice as long each time, maxAttempts in all.
// A waiting retry does not hold up other notifications.
func (s *Service) deliver(ctx context.Context) {
	retry := make(chan delivery, cap(s.queue))
	for {
		var d delivery
		select {
		case <-ctx.Done():
			return
		case d = <-s.queue:
		case d = <-retry:
		}
		sendCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := d.to.Notify(sendCtx, d.n)
		cancel()
		d.attempt++
		if err == nil {
			_ = s.event(ctx, d.n.Request.ID, "notified", "", d.to.Name(), d.n.Event)
			continue
		}
		if d.attempt >= maxAttempts || ctx.Err() != nil {
			s.log.Error("JIT notification failed", "notifier", d.to.Name(), "request", d.n.Request.ID, "event", d.n.Event, "attempts", d.attempt, "err", err)
			_ = s.event(context.WithoutCancel(ctx), d.n.Request.ID, "notify-failed", "", d.to.Name(), fmt.Sprintf("%s: %v", d.n.Event, err))
			continue
		}
		s.log.Warn("JIT notification will be retried", "notifier", d.to.Name(), "request", d.n.Request.ID, "attempt", d.attempt, "err", err)
		wait := s.cfg.RetryBase << (d.attempt - 1)
		time.AfterFunc(wait, func() {
			select {
			case retry <- d:
			case <-ctx.Done():
			}
		})
	}
}
