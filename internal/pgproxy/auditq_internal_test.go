package pgproxy

import (
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestAuditQueue: a session's items come out in the order queued, the
// writer is told once per filling of the queue, and a full queue makes
// the session wait for the writer instead of growing or dropping.
func TestAuditQueue(t *testing.T) {
	srv := &Server{stmts: make(chan *session, 4)}
	sess := &session{srv: srv, id: "pg-test"}
	sess.queueAudit(auditItem{stmt: stmtRecord{SQL: "select 1"}})
	sess.queueAudit(auditItem{ev: &store.AuditEvent{Type: "x"}})
	sess.queueAudit(auditItem{stmt: stmtRecord{SQL: "select 2"}})
	if n := len(srv.stmts); n != 1 {
		t.Fatalf("writer told %d times for one filling of the queue", n)
	}
	<-srv.stmts
	got := sess.takeAudit()
	if len(got) != 3 || got[0].stmt.SQL != "select 1" || got[1].ev == nil || got[2].stmt.SQL != "select 2" {
		t.Fatalf("queue %+v", got)
	}

	for range maxQueued {
		sess.queueAudit(auditItem{stmt: stmtRecord{SQL: "select 3"}})
	}
	<-srv.stmts
	done := make(chan struct{})
	go func() {
		defer close(done)
		sess.queueAudit(auditItem{stmt: stmtRecord{SQL: "select 4"}})
	}()
	select {
	case <-done:
		t.Fatal("a full queue took one more item")
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(sess.takeAudit()); n != maxQueued {
		t.Fatalf("took %d items, want %d", n, maxQueued)
	}
	<-done
	<-srv.stmts // the waiting item filled the queue anew
	if got := sess.takeAudit(); len(got) != 1 || got[0].stmt.SQL != "select 4" {
		t.Fatalf("after the wait: %+v", got)
	}
}
