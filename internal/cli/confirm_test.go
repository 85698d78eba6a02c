package cli_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestCLIConfirm checks that delete, recordings rm and account rotate ask
// on a real terminal, take --yes, and refuse when nobody can be asked:
// a pipe or /dev/null is not a person, even when it says "y".
func TestCLIConfirm(t *testing.T) {
	rg := startRecGateway(t)
	g := startGateway(t)
	rec := rg.record(t, "rec1", "alice", "web1", "$ ls\r\n")
	if _, _, err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T) {
		t.Helper()
		g.run(t, "kind: User\nname: carol\n", "apply", "-f", "-").want(t, 0, []string{"User/carol"}, nil)
	}
	exists := func(t *testing.T, gw *gateway, args ...string) bool {
		t.Helper()
		return gw.run(t, "", args...).code == 0
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	pipe := func(t *testing.T, text string) io.Reader {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Close() })
		if _, err := pw.WriteString(text); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		return pr
	}
	// typed returns a real terminal on which answer has been typed.
	typed := func(t *testing.T, answer string) io.Reader {
		master, slave := testenv.OpenPTY(t)
		if _, err := master.WriteString(answer); err != nil {
			t.Fatal(err)
		}
		return slave
	}

	tests := []struct {
		name       string
		stdin      func(t *testing.T) io.Reader
		args       []string
		code       int
		stderr     string
		gone       bool
		check      []string // a command that succeeds while the thing exists
		setupCarol bool
	}{
		{"delete from a string", func(t *testing.T) io.Reader { return strings.NewReader("y\n") },
			[]string{"delete", "user", "carol"}, 2, "stdin is not a terminal; add --yes", false, []string{"get", "user", "carol"}, true},
		{"delete from a pipe saying y", func(t *testing.T) io.Reader { return pipe(t, "y\n") },
			[]string{"delete", "user", "carol"}, 2, "stdin is not a terminal", false, []string{"get", "user", "carol"}, true},
		{"delete from /dev/null", func(t *testing.T) io.Reader { return devNull },
			[]string{"delete", "user", "carol"}, 2, "stdin is not a terminal", false, []string{"get", "user", "carol"}, true},
		{"delete on a terminal, answered n", func(t *testing.T) io.Reader { return typed(t, "n\n") },
			[]string{"delete", "user", "carol"}, 1, "not confirmed", false, []string{"get", "user", "carol"}, true},
		{"delete on a terminal, answered with enter", func(t *testing.T) io.Reader { return typed(t, "\n") },
			[]string{"delete", "user", "carol"}, 1, "Delete User/carol? It cannot be undone [y/N]", false, []string{"get", "user", "carol"}, true},
		{"delete on a terminal, answered yesplease", func(t *testing.T) io.Reader { return typed(t, "yesplease\n") },
			[]string{"delete", "user", "carol"}, 1, "not confirmed", false, []string{"get", "user", "carol"}, true},
		{"delete on a terminal, answered y", func(t *testing.T) io.Reader { return typed(t, "y\n") },
			[]string{"delete", "user", "carol"}, 0, "[y/N]", true, []string{"get", "user", "carol"}, true},
		{"delete with --yes from a pipe", func(t *testing.T) io.Reader { return pipe(t, "") },
			[]string{"delete", "--yes", "user", "carol"}, 0, "", true, []string{"get", "user", "carol"}, true},
		{"recordings rm from a pipe", func(t *testing.T) io.Reader { return pipe(t, "yes\n") },
			[]string{"recordings", "rm", "rec1"}, 2, "stdin is not a terminal", false, []string{"recordings", "download", "rec1", "-o", "-"}, false},
		{"recordings rm on a terminal, answered no", func(t *testing.T) io.Reader { return typed(t, "no\n") },
			[]string{"recordings", "rm", "rec1"}, 1, "It is evidence", false, []string{"recordings", "download", "rec1", "-o", "-"}, false},
		{"account rotate from a pipe", func(t *testing.T) io.Reader { return pipe(t, "y\n") },
			[]string{"account", "rotate", "web1/svc"}, 2, "stdin is not a terminal", false, nil, false},
		{"account rotate on a terminal, answered n", func(t *testing.T) io.Reader { return typed(t, "n\n") },
			[]string{"account", "rotate", "web1/svc"}, 1, "a person's too [y/N]", false, nil, false},
		{"recordings rm on a terminal, answered YES", func(t *testing.T) io.Reader { return typed(t, "YES\n") },
			[]string{"recordings", "rm", "rec1"}, 0, "", true, []string{"recordings", "download", "rec1", "-o", "-"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setupCarol {
				apply(t)
			}
			gw := rg.gateway
			if tc.setupCarol {
				gw = g
			}
			r := gw.runIn(t, tc.stdin(t), tc.args...)
			r.want(t, tc.code, nil, []string{tc.stderr})
			if tc.check != nil {
				if got := exists(t, gw, tc.check...); got == tc.gone {
					t.Errorf("after %v: exists = %v, want %v", tc.args, got, !tc.gone)
				}
			}
		})
	}
}
