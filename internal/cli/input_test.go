package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/password"
)

func TestAPIKeyRequest(t *testing.T) {
	tests := []struct {
		name    string
		flags   apiKeyFlags
		expires string
		cidrs   []string
	}{
		{"minimal", apiKeyFlags{name: "ci", kind: "access"}, "", nil},
		{"hours", apiKeyFlags{name: "ci", kind: "access", expires: "720h"}, "720h0m0s", nil},
		// The gateway reads Go durations, which have no days.
		{"days", apiKeyFlags{name: "ci", kind: "registration", expires: "1d12h"}, "36h0m0s", nil},
		{"cidrs", apiKeyFlags{name: "ci", kind: "access", cidrs: cidrList{"10.0.0.0/8", "2001:DB8::/32"}}, "", []string{"10.0.0.0/8", "2001:db8::/32"}},
	}
	for _, tc := range tests {
		req, err := tc.flags.request()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if req.Name != tc.flags.name || req.Kind != tc.flags.kind || req.ExpiresIn != tc.expires || !slices.Equal(req.SourceCIDRs, tc.cidrs) {
			t.Errorf("%s: request %+v, want expires_in %q source_cidrs %q", tc.name, req, tc.expires, tc.cidrs)
		}
	}
}

func TestCIDRListFlag(t *testing.T) {
	var l cidrList
	for _, s := range []string{"10.0.0.0/8, 192.0.2.0/24", "", "2001:db8::/32,"} {
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"}; !slices.Equal(l, want) {
		t.Fatalf("cidrs %q, want %q", l, want)
	}
}

func TestReadPasswordLine(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "correct horse\n", want: "correct horse"},
		{in: "correct horse\r\n", want: "correct horse"},
		{in: "correct horse", want: "correct horse"},
		{in: " spaces kept \n", want: " spaces kept "},
		{in: "first\nsecond\n", want: "first"},
		{in: "", want: ""},
		{in: strings.Repeat("x", password.MaxLen) + "\n", want: strings.Repeat("x", password.MaxLen)},
		{in: strings.Repeat("x", password.MaxLen) + "\r\n", want: strings.Repeat("x", password.MaxLen)},
		{in: strings.Repeat("x", password.MaxLen+1), bad: true},
	}
	for _, tc := range tests {
		got, err := readPasswordLine(strings.NewReader(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("readPasswordLine(%.20q...) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("readPasswordLine(%.20q) = %.20q, %v; want %.20q", tc.in, got, err, tc.want)
		}
	}
}

func TestPromptNewPassword(t *testing.T) {
	const good = "correct horse battery staple"
	errTerm := errors.New("terminal gone")
	tests := []struct {
		name    string
		typed   []string // lines typed, in order
		readErr error    // returned once the lines run out
		want    string
		errText string
		reads   int
	}{
		{name: "twice the same", typed: []string{good, good}, want: good, reads: 2},
		{name: "mismatch", typed: []string{good, good + "!"}, errText: "do not match", reads: 2},
		{name: "short asked once", typed: []string{"hunter2"}, errText: "has 7 characters", reads: 1},
		{name: "empty asked once", typed: []string{""}, errText: "empty password refused", reads: 1},
		{name: "terminal error", readErr: errTerm, errText: "terminal gone", reads: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var prompts strings.Builder
			reads := 0
			read := func() ([]byte, error) {
				reads++
				if reads > len(tc.typed) {
					return nil, tc.readErr
				}
				return []byte(tc.typed[reads-1]), nil
			}
			got, err := promptNewPassword(&prompts, "alice", read)
			if reads != tc.reads {
				t.Errorf("read %d times, want %d", reads, tc.reads)
			}
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %v, want one with %q", err, tc.errText)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
			if p := prompts.String(); !strings.Contains(p, "New password for alice: ") || !strings.Contains(p, "Repeat it: ") ||
				strings.Contains(p, good) {
				t.Errorf("prompts %q", p)
			}
		})
	}
}
