package sshgate

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// TestLimitsNeedNoGoroutine: a session's max_session, idle_timeout and
// valid_until wait on runtime timers, so thousands of idle sessions with
// limits cost no goroutine (and no stack) each. A watcher goroutine per
// session, as before, fails this.
func TestLimitsNeedNoGoroutine(t *testing.T) {
	c := &conn{ctx: context.Background()}
	ob := policy.Obligations{MaxSession: time.Hour, IdleTimeout: time.Hour, NotAfter: time.Now().Add(time.Hour)}
	const sessions = 100
	before := runtime.NumGoroutine()
	var stops []func()
	for range sessions {
		stops = append(stops, c.enforceLimits(&grant{}, ob, &activity{}, func(string) {
			t.Error("a limit fired an hour early")
		}))
	}
	if grew := runtime.NumGoroutine() - before; grew >= sessions/2 {
		t.Errorf("%d sessions with limits started %d goroutines; want none per session", sessions, grew)
	}
	for _, stop := range stops {
		stop()
		stop() // twice is harmless
	}
}

// TestLimitFiresOnceAndStops: a limit already due ends the session once,
// with its reason, and stop afterwards is harmless; a stopped session is
// never ended; on a connection that is ending, no limit fires.
func TestLimitFiresOnceAndStops(t *testing.T) {
	past := policy.Obligations{NotAfter: time.Now().Add(-time.Second), MaxSession: time.Nanosecond}
	for _, tt := range []struct {
		name      string
		stopFirst bool
		ended     bool // the connection's context is done
		wantEnd   bool
	}{
		{"due", false, false, true},
		{"stopped before", true, false, false},
		{"connection ending", false, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.ended {
				cancel()
			}
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c := &conn{ctx: ctx, srv: &Server{}}
			c.srv.cfg.Audit = audit.New(st, slog.New(slog.DiscardHandler))
			reasons := make(chan string, 4)
			var stop func()
			if tt.stopFirst {
				// Stopped under the same lock the timers are set up
				// under: nothing can fire in between.
				stop = c.enforceLimits(&grant{}, policy.Obligations{MaxSession: time.Hour}, &activity{}, func(r string) { reasons <- r })
				stop()
			} else {
				stop = c.enforceLimits(&grant{}, past, &activity{}, func(r string) { reasons <- r })
			}
			if !tt.wantEnd {
				stop()
				select {
				case r := <-reasons:
					t.Fatalf("session ended (%q), want not", r)
				default:
				}
				return
			}
			r := <-reasons // both limits are due; only one may end it
			if r == "" {
				t.Fatal("empty reason")
			}
			stop()
			select {
			case r2 := <-reasons:
				t.Fatalf("session ended twice: %q then %q", r, r2)
			default:
			}
		})
	}
}
