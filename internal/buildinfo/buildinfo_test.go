package buildinfo

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name, version, commit string
		want                  []string
	}{
		{"stamped", "1.2.3", "abc123", []string{"portcullis 1.2.3", "commit abc123"}},
		{"plain go build", "devel", "", []string{"portcullis devel", "commit "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldV, oldC := Version, Commit
			t.Cleanup(func() { Version, Commit = oldV, oldC })
			Version, Commit = tc.version, tc.commit
			info := Read()
			if info.Commit == "" {
				t.Error("empty commit; want the stamped one, the vcs one or \"unknown\"")
			}
			s := info.String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q lacks %q", s, w)
				}
			}
		})
	}
}
