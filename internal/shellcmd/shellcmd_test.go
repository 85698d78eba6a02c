package shellcmd

import (
	"slices"
	"strings"
	"testing"
)

// runs lists the Runs[0] of every command, the text an allow rule sees.
func runs(r Result) []string {
	var out []string
	for _, c := range r.Commands {
		out = append(out, c.Runs[0])
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		cmd         string
		runs        []string // Runs[0] of each command, in order (nil: not checked)
		forms       string   // one of the forms must be this (""; not checked)
		unjudgeable string   // substring of Unjudgeable; "" means judgeable
		interactive bool
	}{
		// The bypasses of issue 11 and those found since: each must
		// surface "rm ..." (or passwd) as a command.
		{cmd: " rm v2", runs: []string{"rm v2"}},
		{cmd: `\rm v3`, runs: []string{"rm v3"}},
		{cmd: "r''m v4", runs: []string{"rm v4"}},
		{cmd: "true; rm v5", runs: []string{"true", "rm v5"}},
		{cmd: "$(echo rm) v6", unjudgeable: "command name from a variable"},
		{cmd: "true\nrm v7", runs: []string{"true", "rm v7"}},
		{cmd: "env rm v8", runs: []string{"rm v8"}, forms: "env rm v8"},
		{cmd: "bash -c 'rm v9'", runs: []string{"rm v9", "bash -c rm v9"}},
		{cmd: "/bin/rm v10", forms: "rm v10"},
		{cmd: "\trm v11", runs: []string{"rm v11"}},
		{cmd: `pass""wd --help`, runs: []string{"passwd --help"}},
		{cmd: "command rm x", runs: []string{"rm x"}},
		{cmd: "command -p rm x", runs: []string{"rm x"}},
		{cmd: "builtin eval x", unjudgeable: "eval"},
		{cmd: "echo v | xargs rm", runs: []string{"echo v", "rm {}"}},
		{cmd: "xargs -0 -n 1 rm -f", runs: []string{"rm -f {}"}},
		{cmd: "xargs -I% rm %", runs: []string{"rm %"}},
		{cmd: `find . -exec rm {} \;`, runs: []string{"rm {}", "find . -exec rm {} ;"}},
		{cmd: `find . -name x -execdir /bin/rm -f {} + -ok id \;`, forms: "rm -f {}"},
		{cmd: "echo `rm x`", runs: []string{"rm x", "echo `rm x`"}},
		{cmd: "exec rm x", runs: []string{"rm x"}},
		{cmd: "exec -a foo rm x", runs: []string{"rm x"}},
		{cmd: "nice rm x", runs: []string{"rm x"}},
		{cmd: "nice -n 5 rm x", runs: []string{"rm x"}},
		{cmd: "nice -10 rm x", runs: []string{"rm x"}},
		{cmd: "nohup rm x", runs: []string{"rm x"}},
		{cmd: "timeout 5 rm x", runs: []string{"rm x"}},
		{cmd: "timeout -s KILL --kill-after=3 5s rm x", runs: []string{"rm x"}},
		{cmd: "sudo rm x", runs: []string{"rm x"}, forms: "sudo rm x"},
		{cmd: "sudo -u root -E -- rm x", runs: []string{"rm x"}},
		{cmd: "sudo -s 'rm x'", runs: []string{"rm x", "sudo -s rm x"}},
		{cmd: "sudo -X rm x", unjudgeable: "option the gateway does not know"},
		{cmd: `sh -c "sh -c 'rm x'"`, runs: []string{"rm x", "sh -c rm x", "sh -c sh -c 'rm x'"}},
		{cmd: "bash -ec 'rm x'", runs: []string{"rm x", "bash -ec rm x"}},
		{cmd: "su -c 'rm x' root", runs: []string{"rm x", "su -c rm x root"}},
		{cmd: "env -i PATH=/bin rm x", runs: []string{"rm x"}},
		{cmd: "env - rm x", runs: []string{"rm x"}},
		{cmd: "env -S 'rm x'", unjudgeable: "env -S"},
		{cmd: "stdbuf -oL rm x", runs: []string{"rm x"}},
		{cmd: "setsid -f rm x", runs: []string{"rm x"}},
		{cmd: "ionice -c 3 rm x", runs: []string{"rm x"}},
		{cmd: "chroot / rm x", runs: []string{"rm x"}},
		{cmd: "time rm x", runs: []string{"rm x"}},
		{cmd: "busybox rm x", runs: []string{"rm x"}},
		{cmd: "f(){ rm x; }; f", unjudgeable: "function definition"},
		{cmd: "function f { rm x; }", unjudgeable: "function definition"},
		{cmd: "eval rm x", unjudgeable: "eval"},
		{cmd: ". ./script", unjudgeable: "."},
		{cmd: "source ./script", unjudgeable: "source"},
		{cmd: "alias ls=rm", unjudgeable: "alias"},
		{cmd: "trap 'rm x' EXIT", unjudgeable: "trap"},
		{cmd: "hash -p /bin/rm ls; ls x", unjudgeable: "hash"},
		{cmd: "$CMD x", unjudgeable: "command name from a variable"},
		{cmd: "${CMD} x", unjudgeable: "command name from a variable"},
		{cmd: "rm${IFS}x", unjudgeable: "command name from a variable"},
		{cmd: "{rm,x}", unjudgeable: "glob"},
		{cmd: "/bin/r? x", unjudgeable: "glob"},
		{cmd: "/bin/r[m] x", unjudgeable: "glob"},
		{cmd: `r\m x`, runs: []string{"rm x"}},
		{cmd: "r\\\nm v21", runs: []string{"rm v21"}},
		{cmd: `"rm" x`, runs: []string{"rm x"}},
		{cmd: `$'\x72m' x`, runs: []string{"rm x"}},
		{cmd: `$'\162m' x`, runs: []string{"rm x"}},
		{cmd: "(rm x)", runs: []string{"rm x"}},
		{cmd: "{ rm x; }", runs: []string{"rm x"}},
		{cmd: "cat <(rm x)", runs: []string{"rm x", "cat <(rm x)"}},
		{cmd: "echo >(rm x)", runs: []string{"rm x", "echo >(rm x)"}},
		{cmd: "true && rm x || rm y", runs: []string{"true", "rm x", "rm y"}},
		{cmd: "ls | rm x &", runs: []string{"ls", "rm x"}},
		{cmd: "if true; then rm x; else rm y; fi", runs: []string{"true", "rm x", "rm y"}},
		{cmd: "while false; do rm x; done", runs: []string{"false", "rm x"}},
		{cmd: "for f in $(rm y); do rm $f; done", runs: []string{"rm y", "rm $f"}},
		{cmd: "case $(rm x) in a) rm y;; esac", runs: []string{"rm x", "rm y"}},
		{cmd: "x=$(rm x) true", runs: []string{"rm x", "true"}},
		{cmd: "export X=$(rm x)", runs: []string{"rm x", "export X=$(rm x)"}},
		{cmd: "cat <<EOF\n$(rm x)\nEOF\n", runs: []string{"rm x", "cat"}},
		{cmd: "cat > /tmp/x <<< \"$(rm x)\"", runs: []string{"rm x", "cat"}},
		{cmd: "echo $((a[$(rm x)]))", unjudgeable: "arithmetic on a variable"},
		{cmd: "(( x ))", unjudgeable: "arithmetic on a variable"},
		{cmd: "[[ $x -eq 1 ]]", unjudgeable: "arithmetic on a variable"},
		{cmd: "read 'a[$(rm x)]'", unjudgeable: "subscript"},
		{cmd: "echo ${x@P}", unjudgeable: "${...@...}"},
		{cmd: "echo 'unterminated", unjudgeable: "does not parse"},
		{cmd: "rm (", unjudgeable: "does not parse"},
		{cmd: "watch rm x", unjudgeable: "watch"},
		{cmd: "python3 -c 'import os'", unjudgeable: "python3 -c"},
		{cmd: "perl -ne 'print'", unjudgeable: "perl -e"},
		{cmd: "node -e 1", unjudgeable: "node -e"},
		{cmd: "node --eval=1", unjudgeable: "node --eval"},
		{cmd: "echo rm x | sh", unjudgeable: "reading its program from input"},
		{cmd: "sh < script", unjudgeable: "reading its program from input"},
		{cmd: "python3 <<EOF\nimport os\nEOF", unjudgeable: "reading its program from input"},
		{cmd: "fish -c 'rm x'", unjudgeable: "not POSIX"},
		{cmd: strings.Repeat("x", MaxLen+1), unjudgeable: "longer than 64 KiB"},
		{cmd: strings.Repeat("true;", 600), unjudgeable: "too many commands"},
		{cmd: nestShells(3, "rm x"), forms: "rm x"},
		{cmd: nestShells(9, "rm x"), unjudgeable: "nested too deeply"},

		{cmd: "ls\x00; rm x", unjudgeable: "NUL"},
		{cmd: "=rm x", unjudgeable: "starting with ="},
		{cmd: "- rm x", runs: []string{"rm x"}},
		{cmd: "noglob rm x", runs: []string{"rm x"}},
		{cmd: "emulate sh -c 'rm x'", unjudgeable: "emulate"},
		{cmd: "ls *(e:'rm x':)", unjudgeable: "extended glob"},
		{cmd: "[[ -v 'a[$(rm x)]' ]]", unjudgeable: "subscript"},
		{cmd: "[[ -v HOME ]]", runs: nil},
		{cmd: "getopts ab 'a[$(rm x)]'", unjudgeable: "subscript"},

		{cmd: `{"rm",x}`, unjudgeable: "glob"},
		{cmd: "timeout $T -c 'rm x'", unjudgeable: "computed argument"},
		{cmd: "nice -n $N rm x", unjudgeable: "computed argument"},
		{cmd: "echo 'rm x' | xargs sh -c", unjudgeable: "computed"},
		{cmd: "xargs -I{} sh -c {}", unjudgeable: "computed"},
		{cmd: "xargs -I{} echo {}", runs: []string{"echo {}"}},
		{cmd: "xargs -I % rm %", runs: []string{"rm %"}},
		{cmd: `find 'rm x' -prune -exec sh -c {} \;`, unjudgeable: "computed"},
		{cmd: "find . $X", unjudgeable: "find with a computed argument"},
		{cmd: "BASH_ENV=./s bash -c true", unjudgeable: "setting BASH_ENV"},
		{cmd: "env 'BASH_FUNC_true%%=() { rm x; }' bash -c true", unjudgeable: "setting BASH_FUNC_true%%"},
		{cmd: "sudo LD_PRELOAD=./x.so ls", unjudgeable: "setting LD_PRELOAD"},
		{cmd: "PS4='$(rm x)' bash -xc true", unjudgeable: "setting PS4"},
		{cmd: "export BASH_ENV=./s; bash -c true", unjudgeable: "setting BASH_ENV"},
		{cmd: "read BASH_ENV < f", unjudgeable: "setting BASH_ENV"},
		{cmd: "for PS4 in x; do :; done", unjudgeable: "setting PS4"},
		{cmd: "exec < ./script", unjudgeable: "exec redirecting"},
		{cmd: "exec 3< ./file", runs: []string{"exec"}},
		{cmd: "env X=1 rm x", runs: []string{"rm x"}},
		{cmd: "ls *.log", runs: []string{"ls *.log"}},

		// Interactive sessions started by exec.
		{cmd: "bash", interactive: true},
		{cmd: "bash -i", interactive: true},
		{cmd: "bash -l", interactive: true},
		{cmd: "sh -s", interactive: true},
		{cmd: "exec zsh", interactive: true},
		{cmd: "python3", interactive: true},
		{cmd: "python3.11 -u", interactive: true},
		{cmd: "python -i script.py", interactive: true},
		{cmd: "perl", interactive: true},
		{cmd: "irb", interactive: true},
		{cmd: "node", interactive: true},
		{cmd: "sudo -i", interactive: true},
		{cmd: "sudo bash", interactive: true},
		{cmd: "su -", interactive: true},
		{cmd: "env bash", interactive: true},
		{cmd: "true; bash", interactive: true},
		{cmd: "screen", interactive: true},

		// Allowed forms keep their meaning.
		{cmd: "uptime", runs: []string{"uptime"}},
		{cmd: "cat /proc/loadavg", runs: []string{"cat /proc/loadavg"}},
		{cmd: "ls -la /tmp", runs: []string{"ls -la /tmp"}},
		{cmd: `ls "a b"`, runs: []string{"ls a b"}},
		{cmd: `ls 'a b' "c\"d"`, runs: []string{`ls a b c"d`}},
		{cmd: "bash script.sh", runs: []string{"bash script.sh"}},
		{cmd: "python3 -m http.server", runs: []string{"python3 -m http.server"}},
		{cmd: "[ -f /etc/hosts ]", runs: []string{"[ -f /etc/hosts ]"}},
		{cmd: "echo $((2+3))", runs: []string{"echo $((2+3))"}},
		{cmd: "X=1", runs: nil},
		{cmd: "", runs: nil},
	}
	for _, tt := range tests {
		name := tt.cmd
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			r := Parse(tt.cmd)
			if tt.unjudgeable == "" && r.Unjudgeable != "" {
				t.Fatalf("unjudgeable %q", r.Unjudgeable)
			}
			if tt.unjudgeable != "" {
				if !strings.Contains(r.Unjudgeable, tt.unjudgeable) {
					t.Fatalf("unjudgeable %q, want %q", r.Unjudgeable, tt.unjudgeable)
				}
				return
			}
			if r.Interactive != tt.interactive {
				t.Fatalf("interactive %v, want %v", r.Interactive, tt.interactive)
			}
			if tt.runs != nil || (!tt.interactive && tt.forms == "") {
				if got := runs(r); !slices.Equal(got, tt.runs) {
					t.Fatalf("runs %q, want %q", got, tt.runs)
				}
			}
			if tt.forms != "" {
				found := false
				for _, c := range r.Commands {
					found = found || slices.Contains(c.Forms, tt.forms)
				}
				if !found {
					t.Fatalf("no form %q in %+v", tt.forms, r.Commands)
				}
			}
		})
	}
}

// nestShells wraps cmd in n levels of sh -c, quoted as a shell would.
func nestShells(n int, cmd string) string {
	for range n {
		cmd = "sh -c '" + strings.ReplaceAll(cmd, "'", `'\''`) + "'"
	}
	return cmd
}

// TestParseBounded: a huge or deeply nested command is refused quickly,
// not parsed at length.
func TestParseBounded(t *testing.T) {
	for _, cmd := range []string{
		strings.Repeat("a", 1<<20),
		strings.Repeat("$(", 20000) + strings.Repeat(")", 20000),
		strings.Repeat("(", 30000) + "rm x" + strings.Repeat(")", 30000),
		strings.Repeat("{ ", 20000) + "rm x" + strings.Repeat("; }", 20000),
	} {
		if r := Parse(cmd); r.Unjudgeable == "" {
			t.Errorf("Parse(%.20q...) judgeable: %+v", cmd, r.Commands[:min(3, len(r.Commands))])
		}
	}
}

// BenchmarkParse: a plain command takes the fast path; a compound one the
// parser.
func BenchmarkParse(b *testing.B) {
	for _, cmd := range []string{"uptime", "ls -la /tmp", `ls "a b" && sudo -u root systemctl restart nginx | tee /tmp/x`} {
		b.Run(cmd[:min(len(cmd), 12)], func(b *testing.B) {
			for b.Loop() {
				Parse(cmd)
			}
		})
	}
}

func TestIncomplete(t *testing.T) {
	for s, want := range map[string]bool{
		"r\\":                     true,
		"echo a\\\\":              false,
		"echo 'a":                 true,
		"echo \"a":                true,
		"cat <<EOF":               true,
		"cat <<EOF\nx":            true,
		"cat <<EOF\nx\nEOF":       false,
		"true &&":                 true,
		"ls |":                    true,
		"if true; then":           true,
		"{ rm x;":                 true,
		"echo $(":                 true,
		"rm x":                    false,
		"rm )":                    false, // an error, not more to come
		"":                        false,
		"r\\\nm v21":              false,
		strings.Repeat("(", 2000): false,
	} {
		if got := Incomplete(s); got != want {
			t.Errorf("Incomplete(%.30q) = %v, want %v", s, got, want)
		}
	}
}

func TestHistoryExpansion(t *testing.T) {
	for line, want := range map[string]bool{
		"!!":                    true,
		"!!:s/echo //":          true,
		"!rm":                   true,
		"echo !-2":              true,
		"^echo^rm":              true,
		`echo "a!b"`:            true,
		"echo 'a!b'":            false,
		`echo a\!b`:             false,
		"[ ! -f x ]":            false,
		"if ! true; then :; fi": false,
		"x != y":                false,
		"echo hi!":              false,
		"ls":                    false,
	} {
		if got := HistoryExpansion(line); got != want {
			t.Errorf("HistoryExpansion(%q) = %v, want %v", line, got, want)
		}
	}
}
