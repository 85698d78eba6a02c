package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CancelChannel is the LISTEN/NOTIFY channel on which gateways sharing the
// database pass PostgreSQL cancel requests for each other's sessions
// (package pgproxy): a client's CancelRequest may land on another gateway
// than the one holding its session.
const CancelChannel = "portcullis_pg_cancel"

// PublishCancel notifies every gateway listening on CancelChannel, this
// one included. msg is delivered as is; NOTIFY payloads stay under 8000
// bytes.
func (s *Store) PublishCancel(ctx context.Context, msg string) error {
	if _, err := s.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", CancelChannel, msg); err != nil {
		return fmt.Errorf("postgres store %s: notify cancel: %w", s.where, err)
	}
	return nil
}

// WatchCancels returns the payloads published on CancelChannel, from a
// connection of its own outside the pool, reconnecting while the database
// is away (a cancel published meanwhile is lost: the client may press
// Ctrl-C again). The channel is closed when ctx ends or the store closes.
func (s *Store) WatchCancels(ctx context.Context) <-chan string {
	ch := make(chan string, 16)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	go func() {
		defer close(ch)
		defer cancel()
		defer stop()
		delay := watchRetryMin
		for ctx.Err() == nil {
			if s.listenCancels(ctx, ch) {
				delay = watchRetryMin
			}
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, watchRetryMax)
		}
	}()
	return ch
}

// listenCancels forwards notifications until the connection fails or ctx
// ends; it reports whether it got as far as listening.
func (s *Store) listenCancels(ctx context.Context, ch chan<- string) bool {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{CancelChannel}.Sanitize()); err != nil {
		return false
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		select {
		case ch <- n.Payload:
		case <-ctx.Done():
			return true
		}
	}
}
