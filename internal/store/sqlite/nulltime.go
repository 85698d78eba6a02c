package sqlite

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Time and row helpers of the SQLite store. The API keys, settings,
// passwords and console sessions themselves are sqlstore.Access, which
// Store embeds.

// nullNanos stores a zero time as NULL.
func nullNanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return nanos(t)
}

// fromNullNanos reads a nullable time column; NULL is the zero time.
func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// mustAffect turns an update or delete that touched no row into
// store.ErrNotFound.
func mustAffect(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
