package sqlstore

import (
	"context"
	"fmt"
)

// CheckWritable makes a write that changes nothing (an update of no row)
// in a transaction it rolls back. It fails as a real write would: the
// database is down, read-only (a file the gateway may not write, a
// PostgreSQL standby), or another process holds its write lock past the
// busy timeout. A read (Revision) passes in all but the first case, which
// is why a store that reads is not taken for one that writes.
func (a Access) CheckWritable(ctx context.Context) error {
	tx, err := a.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("check the store takes writes: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `UPDATE settings SET value = value WHERE name = ''`); err != nil {
		return fmt.Errorf("check the store takes writes: %w", err)
	}
	return nil
}
