package jit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// Run expires grants and stale requests and delivers notifications until
// ctx ends, then returns once its delivery goroutine has stopped. The
// caller owns it (one goroutine). Notifications still queued or waiting
// for a retry when ctx ends are not sent (the request's history says
// which were).
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.deliver(ctx)
	}()
	defer func() { <-done }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Expire(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("expire JIT requests", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wakeup:
		}
	}
}

// Expire ends, now by the Service's clock, every approved request whose
// time is up and every pending request older than PendingTTL, and deletes
// JIT grants no approved request stands behind (left by a crash between
// two steps). Several gateways may run it at once: each request moves
// once (the store's transition names the state it leaves).
func (s *Service) Expire(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	var errs []error
	approved, err := s.cfg.Store.ListJITRequests(ctx, store.JITFilter{State: store.JITApproved})
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, r := range approved {
		if now.Before(r.ExpiresAt) {
			live[r.Grant] = true
			continue
		}
		if _, err := s.end(ctx, r, store.JITExpired, "gateway", ChannelGateway); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, fmt.Errorf("expire %s: %w", r.ID, err))
		}
	}
	pending, err := s.cfg.Store.ListJITRequests(ctx, store.JITFilter{State: store.JITPending})
	if err != nil {
		return err
	}
	for _, r := range pending {
		if now.Sub(r.CreatedAt) < s.cfg.PendingTTL {
			continue
		}
		exp := r
		exp.State, exp.DecidedAt = store.JITExpired, now
		err := s.cfg.Store.TransitionJITRequest(ctx, exp, store.JITPending, store.JITEvent{Time: now, Kind: "expired",
			Actor: "gateway", Channel: ChannelGateway, Detail: "no decision within " + s.cfg.PendingTTL.String()})
		switch {
		case err == nil:
			s.notify(Notification{Event: EventExpired, Request: exp, Actor: "gateway"})
		case !errors.Is(err, store.ErrConflict):
			errs = append(errs, fmt.Errorf("expire pending %s: %w", r.ID, err))
		}
	}
	// Orphan grants: a JIT policy whose request is not approved (or is
	// past its time) is deleted too.
	objs, err := s.cfg.Inventory.List(ctx, resource.KindPolicy)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, o := range objs {
		p, ok := o.(*resource.Policy)
		if !ok || p.JITGrant == nil || live[p.Name] || !strings.HasPrefix(p.Name, resource.JITGrantPrefix) {
			continue
		}
		if r, err := s.cfg.Store.GetJITRequest(ctx, p.JITGrant.Request); err == nil && r.State == store.JITApproved && now.Before(r.ExpiresAt) {
			continue // approved since we listed
		}
		if err := s.deleteGrant(ctx, p.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Wake asks Run to look for expired requests now (tests that move the
// clock; an admin's revoke elsewhere).
func (s *Service) Wake() {
	select {
	case s.wakeup <- struct{}{}:
	default:
	}
}
