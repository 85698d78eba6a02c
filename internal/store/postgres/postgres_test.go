package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/migrations"
	"github.com/portcullis/portcullis/internal/store/postgres"
	"github.com/portcullis/portcullis/internal/store/storetest"
	"github.com/portcullis/portcullis/internal/testenv"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestPostgres runs everything that can share one server: starting
// PostgreSQL costs about a second, a new database a fraction of that, so
// every case gets a database of its own on one server.
func TestPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t)

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, pg.NewDatabase(t)) })
	})
	t.Run("Shared", func(t *testing.T) {
		storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
			url := pg.NewDatabase(t)
			return open(t, url), open(t, url)
		})
	})
	t.Run("OpenTogether", func(t *testing.T) { testOpenTogether(t, pg.NewDatabase(t)) })
	t.Run("NotifyOnApply", func(t *testing.T) { testNotifyOnApply(t, pg.NewDatabase(t)) })
	t.Run("WatchChanges", func(t *testing.T) { testWatchChanges(t, pg.NewDatabase(t)) })
	t.Run("RefusesCLocale", func(t *testing.T) { testRefusesCLocale(t, pg.URL) })
}

// testOpenTogether: gateways starting at once against a new database
// serialize on the migrations' lock; every one opens, and the schema is
// migrated once.
func testOpenTogether(t *testing.T, url string) {
	const gateways = 4
	stores := make([]*postgres.Store, gateways)
	errs := make([]error, gateways)
	var wg sync.WaitGroup
	for i := range gateways {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(context.Background(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("gateway %d: Open: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, top int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &top); err != nil {
		t.Fatal(err)
	}
	if rows != migrations.Latest() || top != migrations.Latest() {
		t.Errorf("schema_migrations: %d rows up to version %d, want each of the %d versions once", rows, top, migrations.Latest())
	}
}

// testNotifyOnApply: a listener on RevisionChannel hears each Apply's
// revision once it commits, and nothing from a failed Apply.
func testNotifyOnApply(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := open(t, url)
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.RevisionChannel); err != nil {
		t.Fatal(err)
	}
	put := func(name string) store.Change {
		return store.Change{Record: store.Record{Kind: "User", Name: name, Spec: json.RawMessage(`{}`)}}
	}
	if err := s.Apply(ctx, []store.Change{{Record: store.Record{Kind: "User", Name: "nobody"}, Delete: true}}); err == nil {
		t.Fatal("Apply deleting a missing record succeeded")
	}
	for _, name := range []string{"alice", "bob"} {
		if err := s.Apply(ctx, []store.Change{put(name)}); err != nil {
			t.Fatal(err)
		}
	}
	for want := int64(1); want <= 2; want++ {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("waiting for revision %d: %v", want, err)
		}
		got, err := strconv.ParseInt(n.Payload, 10, 64)
		if n.Channel != postgres.RevisionChannel || err != nil || got != want {
			t.Errorf("notification %q on %q, want revision %d on %q", n.Payload, n.Channel, want, postgres.RevisionChannel)
		}
	}
	if rev, err := s.Revision(ctx); err != nil || rev != 2 {
		t.Errorf("Revision = %d, %v; want 2", rev, err)
	}
}

// watchBound bounds the wait for a change announcement. It is not a
// latency requirement (a few milliseconds is usual): it only keeps a
// broken watcher from hanging the test.
const watchBound = 30 * time.Second

// recv waits for one receive on ch, and fails the test if ch is closed or
// nothing comes within watchBound.
func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the watch channel was closed", what)
		}
	case <-time.After(watchBound):
		t.Fatalf("%s: nothing announced within %v", what, watchBound)
	}
}

// testWatchChanges: a gateway watching learns of an Apply made through
// another; the watch ends when its context does or the store closes.
func testWatchChanges(t *testing.T, url string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := open(t, url), open(t, url)
	defer b.Close()
	ch := a.WatchChanges(ctx)
	recv(t, ch, "first listen") // announced once listening: nothing missed before
	start := time.Now()
	if err := b.Apply(ctx, []store.Change{{Record: store.Record{Kind: "User", Name: "alice", Spec: json.RawMessage(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, "Apply through another store")
	t.Logf("an Apply through b reached a's watcher in %v", time.Since(start))

	// Close ends a watch whose context is still live.
	other := a.WatchChanges(ctx)
	recv(t, other, "second watch")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range other { // drains, and returns once the channel is closed
	}
	cancel()
	for range ch {
	}
}

// testRefusesCLocale: a database whose character type is C would search
// wrong without a word: Open refuses it and says how to create one that
// works.
func testRefusesCLocale(t *testing.T, adminURL string) {
	ctx := context.Background()
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE clocale ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := admin.ExecContext(ctx, `DROP DATABASE clocale WITH (FORCE)`); err != nil {
			t.Error(err)
		}
	}()
	url := strings.Replace(adminURL, "/"+dbName(t, adminURL)+"?", "/clocale?", 1)
	s, err := postgres.Open(ctx, url)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with LC_CTYPE C succeeded")
	}
	if !strings.Contains(err.Error(), "LC_CTYPE") || !strings.Contains(err.Error(), "CREATE DATABASE") {
		t.Errorf("Open err = %v, want one naming LC_CTYPE and how to create the database", err)
	}
}

func dbName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, ""); err == nil {
		t.Error("Open of an empty URL succeeded")
	}
	_, err := postgres.Open(ctx, "postgres://u:secretpw@127.0.0.1:1/db?sslmode=bogus")
	if err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error %q shows the password", err)
	}
	// Nothing listens on port 1: the error names where it tried.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://u:secretpw@127.0.0.1:1/db?sslmode=disable")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/db") || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("Open of an unreachable server: err = %v, want one naming 127.0.0.1:1/db without the password", err)
	}
}

// TestRestart: the database restarting under a store (the gateway keeps
// running) fails calls while it is down, and the same store works again
// once it is back, with everything committed before still there.
func TestRestart(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	s := open(t, pg.URL)
	defer s.Close()
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "before"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := s.WatchChanges(wctx)
	recv(t, changes, "first listen")
	pg.Stop(t)
	down, cancelDown := context.WithTimeout(ctx, 30*time.Second)
	defer cancelDown()
	if _, err := s.AppendAudit(down, store.AuditEvent{Type: "while.down"}); err == nil {
		t.Error("AppendAudit succeeded while the database was down")
	}
	pg.Start(t)
	// database/sql drops the connections the restart broke and dials new
	// ones, but pgx only checks a pooled connection idle for over a
	// second: a call may still meet one broken connection.
	var after int64
	for attempt := 0; ; attempt++ {
		after, err = s.AppendAudit(ctx, store.AuditEvent{Type: "after"})
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		t.Fatalf("AppendAudit after the restart: %v", err)
	}
	evs, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// The watcher reconnected, and says so: changes may have been missed.
	recv(t, changes, "reconnect after the restart")
	if len(evs) != 2 || evs[0].ID != id || evs[1].ID != after || evs[1].PrevHash != evs[0].Hash {
		t.Errorf("after the restart: %+v, want the event from before and the new one chained to it", evs)
	}
}
