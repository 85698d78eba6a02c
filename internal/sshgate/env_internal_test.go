package sshgate

import (
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestEnvAccepted(t *testing.T) {
	def, err := compileEnvPatterns(nil)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := compileEnvPatterns([]string{"APP_?", "GIT_*"})
	if err != nil {
		t.Fatal(err)
	}
	none, err := compileEnvPatterns([]string{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		patterns []envPattern
		env      string
		want     bool
	}{
		{"LANG", def, "LANG", true},
		{"LC_ALL", def, "LC_ALL", true},
		{"LC_ prefix alone", def, "LC_", true},
		{"TERM", def, "TERM", true},
		{"TZ", def, "TZ", true},
		{"COLORTERM", def, "COLORTERM", true},
		{"LD_PRELOAD", def, "LD_PRELOAD", false},
		{"BASH_ENV", def, "BASH_ENV", false},
		{"PATH", def, "PATH", false},
		{"case matters", def, "lang", false},
		{"name with =", def, "LANG=C LD_PRELOAD", false},
		{"name with NUL", def, "LANG\x00LD_PRELOAD", false},
		{"empty name", def, "", false},
		{"glob in the name", def, "LC_*", false},
		{"TERMINFO is not TERM", def, "TERMINFO", false},
		{"custom ?", custom, "APP_1", true},
		{"custom ? is one character", custom, "APP_12", false},
		{"custom *", custom, "GIT_AUTHOR_NAME", true},
		{"custom replaces the default", custom, "LANG", false},
		{"empty list passes none", none, "LANG", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{acceptEnv: tt.patterns}
			_, got := s.envAccepted(ssh.Marshal(struct{ Name, Value string }{tt.env, "v"}))
			if got != tt.want {
				t.Fatalf("env %q accepted = %v, want %v", tt.env, got, tt.want)
			}
		})
	}
	if _, ok := (&Server{acceptEnv: def}).envAccepted([]byte{0, 0, 0, 9, 'L'}); ok {
		t.Fatal("malformed env request accepted")
	}
	for _, bad := range []string{"", "A B", "LC_[A-Z]*", "X=1", "LD/PRELOAD"} {
		if _, err := compileEnvPatterns([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
