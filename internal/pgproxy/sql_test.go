package pgproxy

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestStatements(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		esc  bool
		want []string
	}{
		{name: "one", sql: "select 1", want: []string{"SELECT 1"}},
		{name: "two with spaces", sql: "  select 1 ;\n\n drop   table t;", want: []string{"SELECT 1", "DROP TABLE T"}},
		{name: "comment before", sql: "/* hi */ drop table t", want: []string{"DROP TABLE T"}},
		{name: "nested comment", sql: "/* a /* b */ select 1; */ drop table t", want: []string{"DROP TABLE T"}},
		{name: "line comment", sql: "-- select 1;\ndrop table t", want: []string{"DROP TABLE T"}},
		{name: "comment in keyword", sql: "dr/**/op table t", want: []string{"DR OP TABLE T"}},
		{name: "semicolon in string", sql: "select ';drop table t'", want: []string{"SELECT ';drop table t'"}},
		{name: "doubled quote", sql: "select 'a'';'; drop table t", want: []string{"SELECT 'a'';'", "DROP TABLE T"}},
		{name: "quoted identifier", sql: `select ";" from "T;"; drop table t`, want: []string{`SELECT ";" FROM "T;"`, "DROP TABLE T"}},
		{name: "dollar quote", sql: "select $x$;drop$x$; drop table t", want: []string{"SELECT $x$;drop$x$", "DROP TABLE T"}},
		{name: "parameter is no dollar quote", sql: "select $1; drop table t", want: []string{"SELECT $1", "DROP TABLE T"}},
		{name: "E string escapes", sql: `select E'\'; drop table t; --'`, want: []string{`SELECT E'\'; drop table t; --'`}},
		{name: "backslash, standard strings", sql: `select 'a\'; drop table t; --'`, want: []string{`SELECT 'a\'`, "DROP TABLE T"}},
		{name: "backslash, escapes on", sql: `select 'a\''; drop table t; --'`, esc: true, want: []string{`SELECT 'a\''`, "DROP TABLE T"}},
		{name: "empty statements", sql: ";;  ; select 1;;", want: []string{"SELECT 1"}},
		{name: "unterminated string", sql: "select 'abc", want: []string{"SELECT 'abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Statements(tt.sql, tt.esc)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Statements(%q) = %q, want %q", tt.sql, got, tt.want)
			}
		})
	}
}

// FuzzStatements checks that any text splits without panicking into
// non-empty statements that start with what is not white space (an
// unterminated literal may end in some), and that each statement's text
// as sent holds its first character.
func FuzzStatements(f *testing.F) {
	for _, s := range []string{"select 1; drop table t", "/* /* */ */ x", "$a$ $a$; 'x''y'", `E'\'' ; "a""b"`, "-- c\n;", "$1$", "$$"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, sql string, esc bool) {
		for _, st := range Split(sql, esc) {
			if st.Norm == "" || strings.TrimLeft(st.Norm, " ") != st.Norm || st.Text == "" {
				t.Fatalf("statement %+v of %q is empty or starts with a space", st, sql)
			}
		}
	})
}

// TestSplitManyStatementsLinear guards Split's memory against a query of
// many short statements (a script sent as one Query, up to MaxMessage):
// sizing each statement's builder to all the text left made it quadratic
// (10,000 "select 1;" allocated some 450 MB for 90 KB of SQL). Bytes
// allocated, not time, so the machine's load does not matter.
func TestSplitManyStatementsLinear(t *testing.T) {
	sql := strings.Repeat("select 1;", 10000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := Split(sql, false)
	runtime.ReadMemStats(&after)
	if len(got) != 10000 {
		t.Fatalf("Split found %d statements, want 10000", len(got))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64*uint64(len(sql)) {
		t.Fatalf("Split of %d bytes in 10000 statements allocated %d bytes, want at most %d", len(sql), n, 64*len(sql))
	}
}
