// Package pathrule decides which files on a target a file transfer may
// read or write: the globs of a policy's `paths: {read, write}`, the
// cleaning of a path a client sent into the one absolute path a glob is
// matched against, and the files that are protected because writing them
// lets the writer run code on the target (shell start-up files, ~/.ssh,
// authorized_keys).
//
// # Globs
//
// A glob is an absolute path ("/srv/data/*.csv") or one under the target
// account's home ("~" or "~/uploads/**"). It is split at "/" into
// segments, each matched against one segment of the path:
//
//   - "*" matches any run of characters within one segment, "?" one
//     character, "[a-z]" one character of a class (Go's path.Match);
//     leading dots are not special: "*" matches ".hidden".
//   - "**" as a whole segment matches zero or more whole segments, so
//     "/srv/**" matches "/srv" itself and everything beneath it; "**"
//     inside a longer segment ("a**b") is an error.
//   - A glob with "..", "." or empty segments ("//"), a trailing "/", a
//     NUL byte or a relative start is refused when the policy is applied.
//
// Matching is byte for byte and case-sensitive, as Linux file names are.
//
// # Paths
//
// [Clean] turns what a client sent into an absolute path: a relative path
// is taken under the account's home (where sftp-server and scp start);
// "//" and "/./" and a trailing "/" are removed; a ".." segment is refused
// rather than resolved, because the target resolves it after following
// symbolic links, so "link/../x" may name a file outside what the text
// says; a NUL byte is refused, because the target's C code would stop at
// it and act on a shorter path than the one judged.
//
// # Protected files
//
// Writing a shell start-up file, anything under a ".ssh" directory, an
// authorized_keys file or a program in ~/bin lets a subject who holds only
// file-transfer run commands the next time any login shell or sshd starts
// for that account. [Protected] names them; [Rules.Allow] refuses a write to one
// unless a policy lists it in paths.write exactly (no wildcard), whatever
// the other globs say. Names are compared without regard to case and in
// any directory (not only the home), so that a symbolic link to the home
// or a case-insensitive file system does not open a way around.
//
// The list protects the account's own start-up. It cannot protect an
// account that may write system files (root, or one that can write
// /etc/profile.d, cron or systemd directories, or programs on the system
// PATH): such an account runs code through any write; only paths.write
// keeps it from them.
package pathrule

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// maxGlob bounds a glob's length, as Linux bounds a path (PATH_MAX).
const maxGlob = 4096

// Glob is one compiled glob of paths.read or paths.write.
type Glob struct {
	src  string
	home bool     // starts with "~": segments follow the home's
	segs []string // segments after "/" or "~/"
	// exact is set when the glob has no wildcard: only then may it name
	// a protected file.
	exact bool
}

// String returns the glob as written.
func (g Glob) String() string { return g.src }

// Compile checks and compiles one glob. Its errors say what is wrong
// without naming the field; the caller adds that.
func Compile(src string) (Glob, error) {
	g := Glob{src: src}
	switch {
	case src == "":
		return g, errors.New("is empty")
	case len(src) > maxGlob:
		return g, fmt.Errorf("is longer than %d bytes", maxGlob)
	case strings.IndexByte(src, 0) >= 0:
		return g, errors.New("contains a NUL byte")
	case src == "/":
		g.exact = true
		return g, nil
	case src == "~":
		g.home, g.exact = true, true
		return g, nil
	case strings.HasPrefix(src, "~/"):
		g.home = true
		src = src[2:]
	case strings.HasPrefix(src, "/"):
		src = src[1:]
	default:
		return g, fmt.Errorf("%q is neither absolute (/...) nor under the home (~/...)", g.src)
	}
	if strings.HasSuffix(src, "/") || src == "" {
		return g, fmt.Errorf("%q ends in \"/\" (write the directory without it, or DIR/** for what is inside)", g.src)
	}
	g.segs = strings.Split(src, "/")
	g.exact = true
	for _, s := range g.segs {
		switch {
		case s == "":
			return g, fmt.Errorf("%q has an empty segment (\"//\")", g.src)
		case s == "." || s == "..":
			return g, fmt.Errorf("%q has a %q segment; write the path it means", g.src, s)
		case s == "**":
			g.exact = false
			continue
		case strings.Contains(s, "**"):
			return g, fmt.Errorf("%q: \"**\" must be a whole segment", g.src)
		}
		if _, err := path.Match(s, ""); err != nil {
			return g, fmt.Errorf("%q: bad pattern in segment %q", g.src, s)
		}
		if strings.ContainsAny(s, `*?[\`) {
			g.exact = false
		}
	}
	return g, nil
}

// segments returns the glob's segments as absolute path segments for
// home, and false if the glob is under the home and the home is unknown.
func (g Glob) segments(home string) ([]string, bool) {
	if !g.home {
		return g.segs, true
	}
	if home == "" || home[0] != '/' {
		return nil, false
	}
	h := splitPath(home)
	return append(h[:len(h):len(h)], g.segs...), true
}

// Match reports whether the cleaned absolute path p matches the glob,
// with "~" standing for home (a glob under the home matches nothing when
// home is empty).
func (g Glob) Match(p, home string) bool {
	segs, ok := g.segments(home)
	if !ok {
		return false
	}
	return matchSegs(segs, splitPath(p))
}

// Names reports whether the glob, without wildcards, names exactly the
// cleaned absolute path p.
func (g Glob) Names(p, home string) bool {
	return g.exact && g.Match(p, home)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// matchSegs matches path segments against glob segments. It works row by
// row over the glob (dynamic programming), so many "**" cost
// len(glob)*len(path) steps, never an exponential search.
func matchSegs(glob, p []string) bool {
	// cur[j]: glob[:i] matches p[:j].
	cur := make([]bool, len(p)+1)
	next := make([]bool, len(p)+1)
	cur[0] = true
	for _, gs := range glob {
		clear(next)
		if gs == "**" {
			seen := false
			for j := range cur {
				seen = seen || cur[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(p); j++ {
				if cur[j-1] {
					ok, _ := path.Match(gs, p[j-1])
					next[j] = ok
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(p)]
}

// Clean turns a path a client sent into the absolute path it names on the
// target: relative paths are under home. See the package comment for what
// is refused and why.
func Clean(p, home string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("path contains a NUL byte")
	case len(p) > maxGlob:
		return "", fmt.Errorf("path longer than %d bytes", maxGlob)
	}
	if !strings.HasPrefix(p, "/") {
		if home == "" || !strings.HasPrefix(home, "/") {
			return "", errors.New("relative path and the account's home directory is unknown")
		}
		p = home + "/" + p
	}
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return "", errors.New(`path contains ".." (the target would resolve it through symbolic links)`)
		}
	}
	return path.Clean(p), nil
}

// startupFiles are read and run by a shell, sshd, PAM or another program
// that starts for the account, without the account asking for it
// interactively. Compared without regard to case.
var startupFiles = []string{
	".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".bash_aliases", ".profile",
	".zshenv", ".zshrc", ".zprofile", ".zlogin", ".zlogout",
	".cshrc", ".tcshrc", ".login", ".logout", ".kshrc", ".mkshrc", ".xonshrc",
	".pam_environment", ".inputrc", ".forward",
}

// startupDirs are directories under ".config" whose files programs run at
// log-in (fish's config, systemd user units and environment, autostart).
var startupDirs = []string{"fish", "systemd", "environment.d", "autostart"}

// procAliases are trees whose names lead, through the process that opens
// them, to its working directory (the home), its root or its open files.
var procAliases = []string{"/proc", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr"}

// homeBinDirs are directories under the home that Debian's and Ubuntu's
// default .profile puts first on PATH: a program uploaded there runs in
// place of the system's at the account's next log-in.
var homeBinDirs = []string{"bin", ".local/bin"}

// Protected reports whether writing the cleaned absolute path p could make
// the target run code: a shell or login start-up file in any directory,
// anything in or named ".ssh", an authorized_keys* file, ".config" and
// the start-up directories under it, .local/share and .local/share/systemd,
// anything under /proc or /dev/fd, and (when home is known) ~/bin,
// ~/.local/bin, ~/.local itself, and the home and its parents. The directories that hold start-up
// files are protected themselves because renaming a directory onto one,
// or making one a symbolic link, brings a start-up file along.
func Protected(p, home string) bool {
	for _, d := range procAliases {
		if Within(p, d) {
			// /proc/self/cwd is the home of the sftp-server or scp that
			// opens it, /proc/self/fd/N any directory it holds open, and
			// /dev/fd is /proc/self/fd: names that reach ~/bin or the
			// home itself without being in it.
			return true
		}
	}
	if home != "" {
		for _, d := range homeBinDirs {
			if Within(p, path.Join(home, d)) {
				return true
			}
		}
		// ~/.local itself, for the same reason as ".config"; and the home
		// and its parents, whose writes are only chmod and links pointing
		// at them, which would reach ~/bin under another name.
		if p == path.Join(home, ".local") || Within(home, p) {
			return true
		}
	}
	segs := splitPath(p)
	for i, s := range segs {
		if strings.EqualFold(s, ".ssh") {
			return true
		}
		if strings.EqualFold(s, ".local") && i+1 < len(segs) && strings.EqualFold(segs[i+1], "share") &&
			(i+2 == len(segs) || strings.EqualFold(segs[i+2], "systemd")) {
			// systemd --user loads units (and their .wants) from
			// ~/.local/share/systemd/user as from ~/.config/systemd/user;
			// ".local/share" itself for the same reason as ".config".
			return true
		}
		if strings.EqualFold(s, ".config") {
			if i+1 == len(segs) {
				// ".config" itself: renaming a directory onto it, or a
				// symbolic link named it, would bring a fish/ or
				// systemd/ along without writing inside it.
				return true
			}
			for _, d := range startupDirs {
				if strings.EqualFold(segs[i+1], d) {
					return true
				}
			}
		}
	}
	if len(segs) == 0 {
		return false
	}
	base := segs[len(segs)-1]
	if len(base) >= len("authorized_keys") && strings.EqualFold(base[:len("authorized_keys")], "authorized_keys") {
		return true
	}
	for _, f := range startupFiles {
		if strings.EqualFold(base, f) {
			return true
		}
	}
	return false
}

// Access says whether an operation reads or changes what a path names.
type Access uint8

// Kinds of access.
const (
	Read Access = iota + 1
	Write
)

func (a Access) String() string {
	if a == Write {
		return "write"
	}
	return "read"
}

// Rules are the path rules of the policies that grant one file-transfer
// session, merged: a path is allowed when any of them allows it
// (policies are permissive). The zero value allows nothing; a policy
// without paths allows everything but writes to protected files.
type Rules struct {
	anyRead, anyWrite bool
	read, write       []Glob
}

// AllowAll adds a policy without paths: every read, and every write but
// to protected files.
func (r *Rules) AllowAll() { r.anyRead, r.anyWrite = true, true }

// Add adds a policy's compiled globs.
func (r *Rules) Add(read, write []Glob) {
	r.read = append(r.read, read...)
	r.write = append(r.write, write...)
}

// Restricted reports whether the rules limit anything beyond the
// protected files.
func (r *Rules) Restricted() bool { return !(r.anyRead && r.anyWrite) }

// ExplicitWrite reports whether a policy's paths.write covers p (a glob
// matches it), as opposed to every path being allowed by default.
func (r *Rules) ExplicitWrite(p, home string) bool {
	for _, g := range r.write {
		if g.Match(p, home) {
			return true
		}
	}
	return false
}

// Allow decides one access to the cleaned absolute path p, with home the
// account's home directory ("" if unknown). The reason of a refusal is
// safe to show the client.
func (r *Rules) Allow(a Access, p, home string) (bool, string) {
	if r == nil {
		return false, "no policy grants file transfer"
	}
	if a == Write && Protected(p, home) {
		for _, g := range r.write {
			if g.Names(p, home) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("writing %s is refused: it could make the target run commands (a policy's paths.write must name it exactly)", p)
	}
	any, list := r.anyRead, r.read
	if a == Write {
		any, list = r.anyWrite, r.write
	}
	if any {
		return true, ""
	}
	for _, g := range list {
		if g.Match(p, home) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%s of %s is not allowed by paths.%s", a, p, a)
}

// Union returns rules that allow what a or b allows. Neither is changed
// (compiled rules are shared between decisions).
func Union(a, b *Rules) *Rules {
	switch {
	case a == nil:
		return b
	case b == nil || a == b:
		return a
	}
	return &Rules{
		anyRead: a.anyRead || b.anyRead, anyWrite: a.anyWrite || b.anyWrite,
		read:  append(append([]Glob(nil), a.read...), b.read...),
		write: append(append([]Glob(nil), a.write...), b.write...),
	}
}

// CoversTree reports whether every path at or under the cleaned absolute
// path p may be accessed a, for a transfer whose individual files the
// gateway cannot see (rsync's file list): a glob "X/**" where X matches p
// or one of its parents, or, unless explicit, a policy without paths. It
// does not exempt protected files: for writes the caller checks what the
// tree may contain.
func (r *Rules) CoversTree(a Access, p, home string, explicit bool) bool {
	if r == nil {
		return false
	}
	any, list := r.anyRead, r.read
	if a == Write {
		any, list = r.anyWrite, r.write
	}
	if any && !explicit {
		return true
	}
	segs := splitPath(p)
	for _, g := range list {
		gs, ok := g.segments(home)
		if !ok || len(gs) == 0 || gs[len(gs)-1] != "**" {
			continue
		}
		for k := 0; k <= len(segs); k++ {
			if matchSegs(gs[:len(gs)-1], segs[:k]) {
				return true
			}
		}
	}
	return false
}

// Within reports whether the cleaned absolute path p is dir or lies
// under it.
func Within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
