package shellcmd

import (
	"testing"
	"unicode/utf8"
)

// FuzzParse: no input panics, and every command found has a form and a
// name.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"rm x", "true; rm x", "$(echo rm) x", "bash -c 'rm x'", "find . -exec rm {} \\;",
		"env -i A=1 sudo -u r nice -n 3 rm x", "cat <<EOF\n$(rm x)\nEOF\n", "f(){ :; }", "r\\\nm x", "xargs", "sudo -s",
		"((", "${x@P}", "$'\\x00'", "a=(1 2)", "[[ a -eq b ]]", "coproc rm x", "time -p rm x", "select x in a; do rm; done",
		"ls \r#; rm x", "jobs -x rm x", "env -- A=b rm x", "declare -n r=PS4", "declare $x", "echo ${!x} ${!a[@]}",
		"read $x", "printf -v \"$x\" y", "[ -v \"$x\" ]", "pkexec --user r rm x", "perl5.36.0 -e 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Parse(s)
		for _, c := range r.Commands {
			if len(c.Forms) == 0 || len(c.Runs) == 0 {
				t.Fatalf("%q: command without forms: %+v", s, c)
			}
		}
		if r.Unjudgeable != "" && !utf8.ValidString(r.Unjudgeable) && utf8.ValidString(s) {
			t.Fatalf("%q: bad message %q", s, r.Unjudgeable)
		}
	})
}
