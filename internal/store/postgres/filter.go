package postgres

import (
	"fmt"
	"strings"
)

// filter builds the WHERE clause and LIMIT of a listing with numbered
// placeholders ($1, $2, ...), so that only values, never text from a
// filter, reach the database as parameters.
type filter struct {
	where []string
	args  []any
}

// add appends a condition; each %d in cond becomes the placeholder of the
// next value, in order.
func (f *filter) add(cond string, values ...any) {
	nums := make([]any, len(values))
	for i, v := range values {
		f.args = append(f.args, v)
		nums[i] = len(f.args)
	}
	f.where = append(f.where, fmt.Sprintf(cond, nums...))
}

// query returns base with the conditions, orderBy and a LIMIT of limit
// (defaultLimit when limit <= 0), and the arguments to run it with.
func (f *filter) query(base, orderBy string, limit int) (string, []any) {
	q := base
	if len(f.where) > 0 {
		q += "\nWHERE " + strings.Join(f.where, " AND ")
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	args := append(f.args, int64(limit))
	return q + fmt.Sprintf("\nORDER BY %s LIMIT $%d", orderBy, len(args)), args
}
