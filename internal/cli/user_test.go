package cli_test

import (
	"strings"
	"testing"
)

func TestUserPasswdInput(t *testing.T) {
	g := noGateway(t)
	tests := []struct {
		name   string
		stdin  string
		args   []string
		stderr string
	}{
		{"short", "hunter2\n", []string{"alice", "--password-stdin"}, "the password has 7 characters; at least 12 are required"},
		{"short in characters, not bytes", "ééééééééééé\n", []string{"alice", "--password-stdin"}, "the password has 11 characters"},
		{"empty", "\n", []string{"alice", "--password-stdin"}, "empty password refused"},
		{"empty stdin", "", []string{"alice", "--password-stdin"}, "empty password refused"},
		{"only the first line", "short\ncorrect horse battery staple\n", []string{"alice", "--password-stdin"}, "the password has 5 characters"},
		{"too long", strings.Repeat("x", 2000), []string{"alice", "--password-stdin"}, "the password on stdin is longer than 1024 bytes"},
		{"not a terminal", "correct horse battery staple\n", []string{"alice"}, "stdin is not a terminal: to pipe the password in, use --password-stdin"},
		{"no name", "", []string{"--password-stdin"}, "user NAME is required"},
		{"two names", "", []string{"alice", "bob"}, `unexpected argument "bob"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g.run(t, tc.stdin, append([]string{"user", "passwd"}, tc.args...)...).
				want(t, 2, nil, []string{"portcullis user passwd: " + tc.stderr})
		})
	}
}

func TestUserPasswd(t *testing.T) {
	g := startGateway(t)
	applyUsers(t, g)
	const pw = "correct horse battery staple"
	g.secrets = append(g.secrets, pw)
	tests := []struct {
		name  string
		stdin string
		user  string
		code  int
	}{
		{"newline", pw + "\n", "alice", 0},
		{"crlf", pw + "\r\n", "bob", 0},
		{"no line ending", pw, "alice", 0},
		{"unknown user", pw + "\n", "nobody", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := g.run(t, tc.stdin, "user", "passwd", tc.user, "--password-stdin")
			var stdout []string
			if tc.code == 0 {
				stdout = []string{"password of " + tc.user + " set\n"}
			}
			r.want(t, tc.code, stdout, nil)
		})
	}
	g.run(t, "", "audit", "ls", "--type", "password.change").want(t, 0, []string{"password of alice set", "password of bob set"}, nil)
}
