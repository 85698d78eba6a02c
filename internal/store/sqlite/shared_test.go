package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/store/storetest"
)

// TestShared runs the cases for several gateways on one database with two
// Stores on one file: as two gateway processes would, each with its own
// connection pools, meeting only in SQLite's file locks.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "portcullis.db")
		var stores [2]store.Store
		for i := range stores {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				for _, open := range stores[:i] {
					_ = open.Close()
				}
				t.Fatalf("Open %s (store %d): %v", path, i, err)
			}
			stores[i] = s
		}
		return stores[0], stores[1]
	})
}
