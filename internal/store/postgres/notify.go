package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis/portcullis/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// Reconnect delays of a change watcher whose connection failed: short at
// first (a blip), growing to a few seconds while the database is away.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// WatchChanges returns a channel that receives after every Apply committed
// by any gateway sharing the database (several Applies in a row may come
// as one receive), for store.Notifier. It listens on RevisionChannel over
// a connection of its own, outside the pool.
//
// The channel also receives each time that connection is (re)established,
// the first time included: an Apply committed while no one listened (before
// the watch began, or while the database was unreachable) is otherwise
// never announced. While the database is unreachable the watcher retries,
// waiting up to watchRetryMax between attempts. The channel is closed when
// ctx ends or the store is closed.
func (s *Store) WatchChanges(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel) // Close ends every watch
	go func() {
		defer close(ch)
		defer cancel()
		defer stop()
		signal := func() {
			select {
			case ch <- struct{}{}:
			default: // one is pending already: the receiver reloads once for both
			}
		}
		delay := watchRetryMin
		for ctx.Err() == nil {
			if listened := s.listen(ctx, signal); listened {
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

// listen connects, listens on RevisionChannel, signals, and then signals
// for every notification until the connection fails or ctx ends. It
// reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, signal func()) bool {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return false
	}
	defer func() {
		// A fresh context: ctx may be why we are leaving.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{RevisionChannel}.Sanitize()); err != nil {
		return false
	}
	signal()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true
		}
		signal()
	}
}
