package loginstr

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Login
		wantErr string
	}{
		{in: "alice~web1", want: Login{User: "alice", Target: "web1"}},
		{in: "scriptuser~svc-stats~web1", want: Login{User: "scriptuser", Account: "svc-stats", Target: "web1"}},
		{in: "alice@example.com~db.prod-1", want: Login{User: "alice@example.com", Target: "db.prod-1"}},
		{in: "alice", wantErr: "names no target"},
		{in: "", wantErr: "names no target"},
		{in: "alice~", wantErr: `target "" is not a valid name`},
		{in: "~web1", wantErr: `user "" is not a valid name`},
		{in: "alice~~web1", wantErr: `account "" is not a valid login name`},
		{in: "a~b~c~d", wantErr: "has 4 parts"},
		{in: "alice~root;rm~web1", wantErr: "account"},
		{in: "alice~web1/x", wantErr: "target"},
		{in: "alice~1bad~web1", wantErr: "account"},
		{in: strings.Repeat("a", 400) + "~b", wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice~web1", "a~b~c", "a~b~c~d", "~", "", "alice~root~web1", "ü~ß", "a\x00~b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if l.User == "" || l.Target == "" {
			t.Fatalf("Parse(%q) accepted empty parts: %+v", s, l)
		}
		if again, err := Parse(l.String()); err != nil || again != l {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
