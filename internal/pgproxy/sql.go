package pgproxy

import (
	"strings"
)

// Statements splits SQL text into its statements as PostgreSQL's lexer
// would, each in normal form: comments removed, runs of white space made
// one space, text outside string literals, quoted identifiers and dollar
// quotes in upper case, trimmed. Empty statements are left out.
//
// backslashEscapes reads ordinary '...' literals as PostgreSQL does with
// standard_conforming_strings off (a backslash escapes the next
// character). A client can switch that setting, so a statement is judged
// under both readings (see judge): where the readings split differently,
// the gateway sees every statement either reading finds.
//
// This is the statement-rule check's view of SQL and it is best-effort:
// it sees the first keyword of each statement, not what a function, a DO
// block, a rule, a trigger or a data-modifying WITH runs.
func Statements(sql string, backslashEscapes bool) []string {
	split := Split(sql, backslashEscapes)
	out := make([]string, len(split))
	for i, st := range split {
		out[i] = st.Norm
	}
	return out
}

// Statement is one statement of a query: Text as sent (trimmed), Norm in
// the normal form of Statements.
type Statement struct {
	Text string
	Norm string
}

// Split is Statements with each statement's text as sent, for the audit
// trail.
func Split(sql string, backslashEscapes bool) []Statement {
	var (
		out []Statement
		b   strings.Builder
	)
	space := false // a space is owed before the next visible character
	start := 0     // where the current statement's text begins
	emit := func(end int) {
		if s := b.String(); s != "" {
			out = append(out, Statement{Text: strings.TrimSpace(sql[start:end]), Norm: s})
		}
		b.Reset()
		space = false
		start = end + 1
	}
	put := func(c byte, upper bool) {
		if b.Cap() == 0 {
			// One allocation instead of the builder's doublings, per
			// statement judged: the normal form is never longer than
			// the text up to the next ';' when the statement ends there
			// (a ';' in a literal only costs a doubling). Not all the
			// text left: with many short statements (a script sent as
			// one query) that made Split quadratic in memory.
			hint := len(sql) - start
			if k := strings.IndexByte(sql[start:], ';'); k >= 0 {
				hint = k
			}
			b.Grow(hint)
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == ';':
			emit(i)
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space = true
			i++
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' && sql[i] != '\r' {
				i++
			}
			space = true
		case c == '/' && i+1 < n && sql[i+1] == '*':
			depth := 0
			for i < n {
				if sql[i] == '/' && i+1 < n && sql[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if sql[i] == '*' && i+1 < n && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
			space = true
		case c == '\'':
			// E'...' (or e'...') always takes backslash escapes.
			esc := backslashEscapes || i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i < 2 || !identChar(sql[i-2]))
			j := i + 1
			for j < n {
				if esc && sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == '\'' {
					if j+1 < n && sql[j+1] == '\'' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			j = min(j, n)
			put('\'', false)
			b.WriteString(sql[i+1 : j])
			i = j
		case c == '"':
			j := i + 1
			for j < n {
				if sql[j] == '"' {
					if j+1 < n && sql[j+1] == '"' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			j = min(j, n)
			put('"', false)
			b.WriteString(sql[i+1 : j])
			i = j
		case c == '$' && (i == 0 || !identChar(sql[i-1])):
			tag, ok := dollarTag(sql[i:])
			if !ok {
				put(c, false)
				i++
				continue
			}
			end := strings.Index(sql[i+len(tag):], tag)
			j := n
			if end >= 0 {
				j = i + len(tag) + end + len(tag)
			}
			put('$', false)
			b.WriteString(sql[i+1 : j])
			i = j
		default:
			put(c, true)
			i++
		}
	}
	emit(n)
	return out
}

// identChar reports whether c may continue an identifier.
func identChar(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

// dollarTag returns the opening $tag$ of a dollar quote at the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80 || j > 1 && '0' <= c && c <= '9') {
			return "", false
		}
	}
	return "", false
}
