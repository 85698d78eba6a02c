// Package buildinfo says which build of Portcullis is running: the version
// the Makefile stamps in with -ldflags, and the commit the Go toolchain
// records on its own, so that a plain `go build` still names its source.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Version is the release this binary was built as. The Makefile sets it
// with -ldflags "-X github.com/portcullis/portcullis/internal/buildinfo.Version=...";
// a build without the Makefile says "devel" rather than guess.
var Version = "devel"

// Commit is the source revision, set by the Makefile like Version. When
// empty, the revision the go command embedded (vcs.revision) is used, so
// `go build` and `go install` from a checkout still report it.
var Commit = ""

// Info is what `portcullis version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`             // "unknown" when neither source knows it
	Modified  bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		info.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
		if info.Version == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			// `go install module@version` knows the module version.
			info.Version = bi.Main.Version
		}
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String is the one line `portcullis version` prints.
func (i Info) String() string {
	commit := i.Commit
	if i.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("portcullis %s (commit %s, %s)", i.Version, commit, i.GoVersion)
}
