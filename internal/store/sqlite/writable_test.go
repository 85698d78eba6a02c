package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckWritableUnderAnotherWriter: while another connection holds the
// file's write lock, the store still reads (Revision) but CheckWritable
// fails, as every write would; once the lock is released it passes.
func TestCheckWritableUnderAnotherWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	defer s.Close()
	if err := s.CheckWritable(ctx); err != nil {
		t.Fatalf("CheckWritable on a free store: %v", err)
	}
	other := rawDB(t, path)
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revision(ctx); err != nil {
		t.Fatalf("Revision under another writer's lock: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	err = s.CheckWritable(cctx)
	cancel()
	if err == nil {
		t.Fatal("CheckWritable passed while another connection holds the write lock")
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWritable(ctx); err != nil {
		t.Fatalf("CheckWritable after the lock is released: %v", err)
	}
}
