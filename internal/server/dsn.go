package server

import (
	"net/url"
	"regexp"
	"strings"
)

// keywordPassword finds password=VALUE in a libpq keyword/value DSN, quoted
// ('...' with \' escapes) or bare.
var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:\\.|[^'\\])*'|\S+)`)

// redactDSN returns a PostgreSQL connection string fit for an error message
// or a log line: the password, in URL or keyword form, is replaced.
func redactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// Unparseable: say nothing of its contents.
			return "(unparseable connection string)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return keywordPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// oneLine folds a multi-line error (pgx lists each address it tried on a
// line of its own) into the single line an operator sees at start.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), ":\n", ": ")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
