package postgres

import (
	"database/sql"
	"time"
)

// Nullable time columns. The API keys, settings, passwords and console
// sessions are sqlstore.Access, which Store embeds: kept in the database
// rather than in a gateway's memory, so that every gateway accepts the
// keys and sessions any of them issued.

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
