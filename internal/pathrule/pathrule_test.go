package pathrule

import (
	"strings"
	"testing"
)

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		glob  string
		err   string // "" for valid
		exact bool
	}{
		{"/srv/data/**", "", false},
		{"/srv/*.csv", "", false},
		{"~/uploads/**", "", false},
		{"~/.bashrc", "", true},
		{"/home/u/.ssh/authorized_keys", "", true},
		{"/", "", true},
		{"~", "", true},
		{"", "empty", false},
		{"srv/data", "neither absolute", false},
		{"~root/x", "neither absolute", false},
		{"/srv/", "ends in", false},
		{"/srv//x", "empty segment", false},
		{"/srv/./x", `"." segment`, false},
		{"/srv/../etc", `".." segment`, false},
		{"/srv/a**b", "whole segment", false},
		{"/srv/[a", "bad pattern", false},
		{"/srv/\x00x", "NUL", false},
	} {
		g, err := Compile(tc.glob)
		if tc.err == "" {
			if err != nil {
				t.Errorf("Compile(%q): %v", tc.glob, err)
			} else if g.exact != tc.exact {
				t.Errorf("Compile(%q).exact = %v, want %v", tc.glob, g.exact, tc.exact)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Compile(%q) = %v, want an error with %q", tc.glob, err, tc.err)
		}
	}
}

func TestClean(t *testing.T) {
	const home = "/home/u"
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{".bashrc", "/home/u/.bashrc"},
		{"./.bashrc", "/home/u/.bashrc"},
		{"//home/u/.bashrc", "/home/u/.bashrc"},
		{"/home/u/./.bashrc", "/home/u/.bashrc"},
		{"/home/u/.ssh/", "/home/u/.ssh"},
		{"/home//u///x/", "/home/u/x"},
		{".", "/home/u"},
		{"/", "/"},
		{"dir/../.bashrc", ""},
		{"/srv/upload/../../home/u/.bashrc", ""},
		{"..", ""},
		{"", ""},
		{"/home/u/.bashrc\x00.txt", ""},
	} {
		got, err := Clean(tc.in, home)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Clean(%q) = %q, want refused", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Clean(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := Clean("x", ""); err == nil {
		t.Error("relative path with unknown home was accepted")
	}
}

func TestProtected(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"/home/u/.bashrc", true},
		{"/home/u/.BashRC", true},
		{"/srv/upload/.bashrc", true},
		{"/home/u/.profile", true},
		{"/home/u/.zshenv", true},
		{"/home/u/.pam_environment", true},
		{"/home/u/.ssh", true},
		{"/home/u/.ssh/rc", true},
		{"/home/u/.SSH/config", true},
		{"/home/u/.ssh/x/y", true},
		{"/etc/ssh/authorized_keys2", true},
		{"/home/u/authorized_keys.new", true},
		{"/home/u/.config/fish/config.fish", true},
		{"/home/u/.config/systemd/user/x.service", true},
		{"/home/u/.config/nvim/init.vim", false},
		{"/home/u/.config", true},
		{"/srv/x/.CONFIG", true},
		{"/home/u/.local", true},
		{"/home/u", true}, // a link to the home would reach ~/bin by another name
		{"/home", true},
		{"/", true},
		{"/home/u/bashrc", false},
		{"/home/u/.bashrc.bak/x", false},
		{"/home/u/notes.txt", false},
		{"/home/u/bin", true},
		{"/home/u/bin/ls", true},
		{"/home/u/.local/bin/scp", true},
		{"/home/u/.local/share/x", false},
		{"/home/u/.local/share", true},
		{"/home/u/.local/share/systemd/user/default.target.wants/x.service", true},
		{"/srv/x/.LOCAL/Share/systemd", true},
		{"/home/u/.local/share/systemdx", false},
		{"/srv/app/bin/x", false},
		{"/home/u/binary", false},
		{"/proc/self/cwd/bin/ls", true}, // the home of whoever opens it
		{"/proc/thread-self/cwd", true},
		{"/proc/1/root/home/u/bin", true},
		{"/dev/fd/3/bin", true},
		{"/dev/stdout", true},
		{"/process/x", false},
		{"/dev/null", false},
	} {
		if got := Protected(tc.p, "/home/u"); got != tc.want {
			t.Errorf("Protected(%q) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func mustGlobs(t *testing.T, src ...string) []Glob {
	t.Helper()
	var out []Glob
	for _, s := range src {
		g, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

// TestAllow is the path decision table: globs, "**", the home, and the
// protected files that only an exact paths.write entry opens.
func TestAllow(t *testing.T) {
	const home = "/home/u"
	open := &Rules{}
	open.AllowAll()
	restricted := &Rules{}
	restricted.Add(mustGlobs(t, "/srv/data/**", "~/pub/*.txt"), mustGlobs(t, "/srv/upload/**", "~/inbox/*"))
	named := &Rules{}
	named.Add(nil, mustGlobs(t, "~/.bashrc", "/home/u/.ssh/**", "/srv/**"))
	both := &Rules{} // a restricted policy and an open one: the union
	both.Add(nil, mustGlobs(t, "/srv/upload/**"))
	both.AllowAll()
	for _, tc := range []struct {
		name  string
		rules *Rules
		a     Access
		p     string
		want  bool
	}{
		{"default read", open, Read, "/etc/passwd", true},
		{"default write", open, Write, "/home/u/notes.txt", true},
		{"default .bashrc", open, Write, "/home/u/.bashrc", false},
		{"default .bashrc read", open, Read, "/home/u/.bashrc", true},
		{"default .ssh dir", open, Write, "/home/u/.ssh", false},
		{"default authorized_keys", open, Write, "/home/u/.ssh/authorized_keys", false},
		{"default authorized_keys2 elsewhere", open, Write, "/tmp/authorized_keys2", false},
		{"default case trick", open, Write, "/home/u/.BASHRC", false},
		{"default .profile", open, Write, "/home/u/.profile", false},
		{"** matches the dir", restricted, Read, "/srv/data", true},
		{"** matches deep", restricted, Read, "/srv/data/a/b/c.csv", true},
		{"** not a sibling", restricted, Read, "/srv/database", false},
		{"read not write", restricted, Write, "/srv/data/x", false},
		{"write glob", restricted, Write, "/srv/upload/x/y", true},
		{"write not read", restricted, Read, "/srv/upload/x", false},
		{"home glob", restricted, Read, "/home/u/pub/a.txt", true},
		{"* one segment", restricted, Read, "/home/u/pub/sub/a.txt", false},
		{"* dotfile", restricted, Write, "/home/u/inbox/.x", true},
		{"wildcard does not open .bashrc", restricted, Write, "/srv/upload/.bashrc", false},
		{"wildcard does not open inbox .profile", restricted, Write, "/home/u/inbox/.profile", false},
		{"outside", restricted, Read, "/etc/shadow", false},
		{"exact entry opens .bashrc", named, Write, "/home/u/.bashrc", true},
		{"exact entry is exact", named, Write, "/home/u/.bash_profile", false},
		{"** does not open .ssh", named, Write, "/home/u/.ssh/authorized_keys", false},
		{"** does not open .bashrc", named, Write, "/srv/x/.bashrc", false},
		{"union allows", both, Write, "/etc/motd", true},
		{"union keeps protected", both, Write, "/srv/upload/.zshrc", false},
	} {
		got, why := tc.rules.Allow(tc.a, tc.p, home)
		if got != tc.want {
			t.Errorf("%s: Allow(%v, %q) = %v (%s), want %v", tc.name, tc.a, tc.p, got, why, tc.want)
		}
		if !got && why == "" {
			t.Errorf("%s: refused without a reason", tc.name)
		}
	}
	// An unknown home: "~" globs match nothing.
	if ok, _ := restricted.Allow(Read, "/home/u/pub/a.txt", ""); ok {
		t.Error("~ glob matched with an unknown home")
	}
	var none *Rules
	if ok, _ := none.Allow(Read, "/x", home); ok {
		t.Error("nil rules allowed")
	}
}

// FuzzMatch checks that compiling and matching never panic, that a match
// with a "**"-only glob agrees with a prefix test, and that Clean's
// output never holds what it promises to remove.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/srv/**", "/srv/a/b"}, {"~/x/*", "x/y"}, {"/a/**/b/**/c", "/a/b/c"}, {"/[", "/["},
		{"/**/**/**/**/**/**/**/**/**/**/x", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/y"}, {"/", "//"}, {"~", "."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, glob, p string) {
		c, err := Clean(p, "/home/u")
		if err == nil {
			if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") || strings.Contains(c, "/./") ||
				strings.Contains(c, "/../") || (len(c) > 1 && strings.HasSuffix(c, "/")) || strings.IndexByte(c, 0) >= 0 {
				t.Fatalf("Clean(%q) = %q", p, c)
			}
		}
		g, err := Compile(glob)
		if err != nil {
			return
		}
		_ = g.Match(c, "/home/u")
		_ = Protected(c, "/home/u")
	})
}

func TestCoversTree(t *testing.T) {
	const home = "/home/u"
	r := &Rules{}
	r.Add(mustGlobs(t, "/srv/pub/**", "/srv/*.txt"), mustGlobs(t, "~/backup/**", "/data/*/in/**"))
	open := &Rules{}
	open.AllowAll()
	for _, tc := range []struct {
		rules    *Rules
		a        Access
		p        string
		explicit bool
		want     bool
	}{
		{r, Read, "/srv/pub", false, true},
		{r, Read, "/srv/pub/deep/er", false, true},
		{r, Read, "/srv", false, false},
		{r, Read, "/srv/a.txt", false, false}, // a glob without ** covers no tree
		{r, Write, "/home/u/backup", false, true},
		{r, Write, "/home/u/backup/x", false, true},
		{r, Write, "/home/u", false, false},
		{r, Write, "/data/x/in", false, true},
		{r, Write, "/data/x", false, false},
		{open, Read, "/", false, true},
		{open, Write, "/srv", true, false},
	} {
		if got := tc.rules.CoversTree(tc.a, tc.p, home, tc.explicit); got != tc.want {
			t.Errorf("CoversTree(%v, %q, explicit %v) = %v, want %v", tc.a, tc.p, tc.explicit, got, tc.want)
		}
	}
	if !Within("/home/u/x", "/home/u") || Within("/home/ux", "/home/u") || !Within("/a", "/") {
		t.Error("Within")
	}
}
