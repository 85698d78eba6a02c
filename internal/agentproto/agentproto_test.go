package agentproto

import (
	"errors"
	"strings"
	"testing"
)

func TestCompatible(t *testing.T) {
	cases := []struct {
		gateway, agent string
		ok             bool
	}{
		{"1.4.0", "1.4.2", true},
		{"1.4.0", "1.3.9", true},
		{"v1.4.0", "1.4", true},
		{"1.4.0", "1.2.0", false},
		{"1.4.0", "1.5.0", false}, // an agent newer than its gateway
		{"2.0.0", "1.9.0", false}, // across a major version
		{"1.0.0", "0.9.0", false},
		{"1.4.0", "devel", true},
		{"devel", "1.2.0", true},
		{"1.4.0-rc1", "1.3.0", true},
		{"1.4.0", "1.4.0 ; rm -rf /", false},
		{"1.4.0", "1", false},
		{"1.4.0", "1.x", false},
		{"1.4.0", "-1.4", false},
		{"5cdf108", "5cdf108", true},             // the same unreleased build (make run in a clone without tags)
		{"5cdf108-dirty", "5cdf108-dirty", true}, // ... with local changes
		{"1.4.0", "5cdf108", false},              // an unreleased agent on a released gateway
	}
	for _, c := range cases {
		err := Compatible(c.gateway, c.agent)
		if (err == nil) != c.ok {
			t.Errorf("Compatible(%q, %q) = %v, want ok %v", c.gateway, c.agent, err, c.ok)
		}
		var ve *VersionError
		if err != nil && !errors.As(err, &ve) {
			t.Errorf("Compatible(%q, %q) = %T, want *VersionError", c.gateway, c.agent, err)
		}
	}
	// The refusal is one line naming both versions.
	msg := Compatible("1.4.0", "1.2.0").Error()
	if !strings.Contains(msg, "1.4.0") || !strings.Contains(msg, "1.2.0") || !strings.Contains(msg, "1.4 and 1.3") || strings.Contains(msg, "\n") {
		t.Fatalf("refusal %q", msg)
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.4.0", "v2.0", "devel", "", "1.4.0-rc1+x", "99999999999.1", "1..2", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err == nil && !v.Devel && (v.Major < 0 || v.Minor < 0) {
			t.Fatalf("ParseVersion(%q) = %+v", s, v)
		}
		_ = Compatible("1.4.0", s)
	})
}
