package policy

import (
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/shellcmd"
)

// commandSite has one user per rule set: dan with deny ["^rm ", "passwd"],
// al with allow ["^ls( |$)", "^uptime$", "^cat /proc/"], vi with a deny
// list and fullscreen [vim, less], and su with allow ["^ls( |$)", "^sudo ls( |$)"].
func commandSite(t testing.TB) *Engine {
	t.Helper()
	pol := func(name, user string, rules *resource.CommandRules) *resource.Policy {
		return &resource.Policy{Name: name, Type: resource.PolicyTargetAccess,
			Subjects: resource.Subjects{Users: []string{user}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
			TargetUsers: []string{"root"}, Actions: []string{"exec", "shell"}, Commands: rules}
	}
	return mustCompile(t, Input{
		Users:   []*resource.User{{Name: "dan"}, {Name: "al"}, {Name: "vi"}, {Name: "su"}},
		Targets: []*resource.Target{{Name: "web1", Auth: resource.AuthCertificate}},
		Policies: []*resource.Policy{
			pol("dan-deny", "dan", &resource.CommandRules{Deny: []string{"^rm ", "passwd"}}),
			pol("al-allow", "al", &resource.CommandRules{Allow: []string{"^ls( |$)", "^uptime$", "^cat /proc/"}}),
			pol("vi-full", "vi", &resource.CommandRules{Deny: []string{"^rm "}, Fullscreen: []string{"vim", "less"}}),
			pol("su-allow", "su", &resource.CommandRules{Allow: []string{"^ls( |$)", "^sudo ls( |$)"}}),
		},
	})
}

func TestDecideParsedCommands(t *testing.T) {
	e := commandSite(t)
	req := func(user, cmd string) Request {
		return Request{Kind: SubjectUser, Subject: user, Action: resource.ActionExec, Target: "web1", TargetUser: "root", Command: cmd}
	}
	tests := []struct {
		user, cmd string
		allow     bool
		reason    string // substring of the denial
	}{
		// Issue 11's bypasses of deny ["^rm ", "passwd"], and more.
		{"dan", " rm v2", false, "denied by policy dan-deny"},
		{"dan", `\rm v3`, false, "denied"},
		{"dan", "r''m v4", false, "denied"},
		{"dan", "true; rm v5", false, "denied"},
		{"dan", "$(echo rm) v6", false, "a command name from a variable, substitution or glob cannot be judged"},
		{"dan", "true\nrm v7", false, "denied"},
		{"dan", "env rm v8", false, "denied"},
		{"dan", "bash -c 'rm v9'", false, "denied"},
		{"dan", "/bin/rm v10", false, "denied"},
		{"dan", "\trm v11", false, "denied"},
		{"dan", `pass""wd --help`, false, "denied"},
		{"dan", "command rm x", false, "denied"},
		{"dan", "echo x | xargs rm", false, "denied"},
		{"dan", `find . -exec rm {} \;`, false, "denied"},
		{"dan", "echo `rm x`", false, "denied"},
		{"dan", "exec rm x", false, "denied"},
		{"dan", "nice rm x", false, "denied"},
		{"dan", "timeout 5 rm x", false, "denied"},
		{"dan", "sudo rm x", false, "denied"},
		{"dan", `sh -c "sh -c 'rm x'"`, false, "denied"},
		{"dan", "f(){ rm x; }; f", false, "a function definition cannot be judged"},
		{"dan", "eval rm x", false, "eval cannot be judged"},
		{"dan", ". ./script", false, ". cannot be judged"},
		{"dan", "$CMD x", false, "cannot be judged"},
		{"dan", `r\m x`, false, "denied"},
		{"dan", `"rm" x`, false, "denied"},
		{"dan", "(rm x)", false, "denied"},
		{"dan", "{ rm x; }", false, "denied"},
		{"dan", "cat <(rm x)", false, "denied"},
		{"dan", "rm${IFS}x", false, "cannot be judged"},
		{"dan", "echo 'unclosed", false, "does not parse"},
		{"dan", "python3 -c 'import os'", false, "python3 -c"},
		{"dan", "echo rm x | sh", false, "reading its program from input"},
		// Found in the review of issue 11.
		{"dan", "ls \r#; rm x", false, "a carriage return cannot be judged"},
		{"dan", "true # x \\\nrm x", false, "a comment ending in a backslash"},
		{"dan", "bash -c 'true #\\\nrm x'", false, "a comment ending in a backslash"},
		{"dan", "true # a comment\nls", true, ""},
		{"dan", "jobs -x rm x", false, "denied by policy dan-deny"},
		{"dan", "env -- A=b rm x", false, "denied by policy dan-deny"},
		{"dan", "env -- BASH_ENV=x ls", false, "setting BASH_ENV"},
		{"dan", "pkexec rm x", false, "denied by policy dan-deny"},
		{"dan", "pkexec --user root rm x", false, "denied by policy dan-deny"},
		{"dan", "declare -n r=PS4; r='$(rm x)'; set -x; :", false, "nameref"},
		{"dan", "typeset -n r; r=PS4", false, "nameref"},
		{"dan", "builtin declare -n r=PS4", false, "cannot be judged"},
		{"dan", "declare -i x; x='a[$(rm x)]'", false, "integer variable"},
		{"dan", "local -ai x", false, "integer variable"},
		{"dan", "RANDOM='a[$(rm x)]'", false, "setting RANDOM"},
		{"dan", "OPTIND=$y", false, "setting OPTIND"},
		{"dan", "BASH_COMPAT='a[$(rm x)]'", false, "setting BASH_COMPAT"},
		{"dan", "x='a[$(rm v)]'; echo ${!x}", false, "indirect expansion"},
		{"dan", "x=PS4; read $x <<< '$(rm v)'", false, "read with a computed variable name"},
		{"dan", `x='PS4=$(rm v)'; export "$x"`, false, "declare with a computed argument"},
		{"dan", "x='-n r=PS4'; declare $x", false, "declare with a computed argument"},
		{"dan", `printf -v "$x" %s y`, false, "printf with a computed variable name"},
		{"dan", `[ -v "$x" ]`, false, "[ with a computed variable name"},
		{"dan", "perl5.36.0 -e 'unlink 1'", false, "perl5.36.0 -e"},
		{"dan", "ruby3.1 -e 1", false, "ruby3.1 -e"},
		{"dan", "pypy3 -c 1", false, "pypy3 -c"},
		{"dan", "echo ${!a[@]} ${!pre*}", true, ""},
		{"dan", `printf '%s\n' "$x"`, true, ""},
		{"dan", `[ -n "$x" ]`, true, ""},
		{"dan", `sleep 1 & wait $!`, true, ""},
		{"dan", `read -r -p "$p" -t "$t" x`, true, ""},
		{"dan", `read -a "$x"`, false, "read with a computed variable name"},
		{"dan", `wait -n -p "$x" 1`, false, "wait with a computed variable name"},
		{"dan", `getopts ab "$x"`, false, "getopts with a computed variable name"},
		{"dan", `getopts ab o "$@"`, true, ""},
		{"dan", "export X=1 Y=2", true, ""},
		{"dan", "declare -r X=1", true, ""},
		// What dan may still do.
		{"dan", "uptime", true, ""},
		{"dan", "ls -la /tmp", true, ""},
		{"dan", `ls "a b"`, true, ""},
		{"dan", "echo rm is fine as an argument", true, ""},

		// allow ["^ls( |$)", ...]: every command must be allowed.
		{"al", "ls ; id -un", false, "not in the allowed list of policy al-allow"},
		{"al", "ls -d / && whoami", false, "not in the allowed list"},
		{"al", "ls # \\\nid -un", false, "a comment ending in a backslash"},
		{"al", "/usr/bin/time -o .bashrc -f 'id > x' ls", false, "time -o"},
		{"al", "\\time --output=.bashrc ls", false, "time -o"},
		{"al", "command time -ao x ls", false, "time -o"},
		{"al", "xargs -a /etc/shadow ls", false, "xargs -a"},
		{"al", "xargs --arg-file=/etc/shadow ls", false, "xargs -a"},
		{"al", "/usr/bin/time -p ls", true, ""},
		{"al", "echo x | xargs ls", false, "not in the allowed list"},
		{"dan", "time -- rm x", false, "denied by policy dan-deny"},
		{"dan", "repeat 1 rm x", false, "denied by policy dan-deny"}, // zsh
		{"dan", "time -p -- rm x", false, "denied by policy dan-deny"},
		{"al", "ls $(id)", false, "not in the allowed list"},
		{"al", "ls | sh", false, "reading its program from input"},
		{"al", "", false, "not in the allowed list"},
		{"al", "uptime", true, ""},
		{"al", "cat /proc/loadavg", true, ""},
		{"al", "ls -la /tmp", true, ""},
		{"al", `ls "a b"`, true, ""},
		{"al", "/bin/ls /", true, ""},
		{"al", "nice ls /root", true, ""},                         // wrappers are transparent to allow lists...
		{"al", "sudo ls /root", false, "not in the allowed list"}, // ...but not those that change who runs it
		{"al", "sudo -u root ls", false, "not in the allowed list"},
		{"al", "doas ls", false, "not in the allowed list"},
		{"al", "su -c ls", false, "not in the allowed list"},
		{"al", "runuser -u x -- ls", false, "not in the allowed list"},
		{"al", "nice sudo ls", false, "not in the allowed list"},
		{"al", "env sudo ls", false, "not in the allowed list"},
		{"al", "/usr/bin/sudo ls", false, "not in the allowed list"},
		{"al", "echo x | sudo xargs ls", false, "not in the allowed list"},
		{"su", "sudo ls /root", true, ""}, // an allow list that names sudo ls
		{"su", "sudo -u root ls", false, "not in the allowed list"},
		{"su", "sudo rm x", false, "not in the allowed list"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.cmd, func(t *testing.T) {
			d := e.Decide(req(tt.user, tt.cmd))
			if d.Allow != tt.allow || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Decide(%q) = allow %v reason %q; want allow %v reason ~%q", tt.cmd, d.Allow, d.Reason, tt.allow, tt.reason)
			}
		})
	}
}

func TestDecideFullscreen(t *testing.T) {
	e := commandSite(t)
	for cmd, want := range map[string]bool{
		"vim /etc/hosts":            true,
		"/usr/bin/less -R log":      true,
		"sudo vim x":                true,
		"top":                       false, // not listed
		"vim x; printf x":           false, // more than the program
		"printf '\\033[?1049h'":     false,
		"less $(printf '\\033[?h')": false,
	} {
		d := e.Decide(Request{Kind: SubjectUser, Subject: "vi", Action: resource.ActionShell, Target: "web1", TargetUser: "root", Command: cmd})
		if !d.Allow || d.Fullscreen != want {
			t.Errorf("Decide(%q): allow %v fullscreen %v, want fullscreen %v (%s)", cmd, d.Allow, d.Fullscreen, want, d.Reason)
		}
	}
	// A policy without the list never pauses checking.
	if d := e.Decide(Request{Kind: SubjectUser, Subject: "dan", Action: resource.ActionShell, Target: "web1", TargetUser: "root", Command: "vim x"}); d.Fullscreen {
		t.Error("fullscreen without commands.fullscreen")
	}
}

// FuzzDecideCommand: arbitrary command strings never panic the decision,
// and what the parser cannot judge (parse errors included) is denied.
func FuzzDecideCommand(f *testing.F) {
	for _, s := range []string{" rm v2", `\rm v3`, "r''m v4", "true; rm v5", "$(echo rm) v6", "true\nrm v7", "env rm v8",
		"bash -c 'rm v9'", "/bin/rm v10", "\trm v11", `pass""wd --help`, "ls ; id -un", "ls -d / && whoami", "uptime",
		"cat /proc/loadavg", `ls "a b"`, "echo 'x", "((", "$((", "<<EOF", "x=(", "find -exec", "sudo -u", "xargs -I"} {
		f.Add(s)
	}
	e := commandSite(f)
	f.Fuzz(func(t *testing.T, cmd string) {
		for _, user := range []string{"dan", "al"} {
			d := e.Decide(Request{Kind: SubjectUser, Subject: user, Action: resource.ActionExec, Target: "web1", TargetUser: "root", Command: cmd})
			if d.Allow == (d.Reason != "") {
				t.Fatalf("%q: Allow=%v with Reason %q", cmd, d.Allow, d.Reason)
			}
			if d.Allow && strings.Contains(d.Reason, "cannot be judged") {
				t.Fatalf("%q allowed", cmd)
			}
		}
		// What the parser cannot judge (parse errors included) is denied.
		if res := shellcmd.Parse(cmd); res.Unjudgeable != "" {
			d := e.Decide(Request{Kind: SubjectUser, Subject: "dan", Action: resource.ActionExec, Target: "web1", TargetUser: "root", Command: cmd})
			if d.Allow {
				t.Fatalf("%q allowed though %s", cmd, res.Unjudgeable)
			}
		}
	})
}

func TestSessionAction(t *testing.T) {
	for _, tt := range []struct{ action, cmd, want string }{
		{"exec", "bash", "shell"},
		{"exec", "bash -i", "shell"},
		{"exec", "python3", "shell"},
		{"exec", "sudo -i", "shell"},
		{"exec", "bash -c 'ls'", "exec"},
		{"exec", "bash script.sh", "exec"},
		{"exec", "echo ls | sh", "exec"}, // unjudgeable, not interactive
		{"exec", "uptime", "exec"},
		{"shell", "", "shell"},
		{"file-transfer", "scp -t /tmp", "file-transfer"},
	} {
		if got := SessionAction(tt.action, tt.cmd); got != tt.want {
			t.Errorf("SessionAction(%q, %q) = %q, want %q", tt.action, tt.cmd, got, tt.want)
		}
	}
}

// TestAllowUncertain: lines the gateway could not reconstruct are refused
// unless every granting policy with command rules says uncertain: allow.
func TestAllowUncertain(t *testing.T) {
	pol := func(name, user, uncertain string) *resource.Policy {
		return &resource.Policy{Name: name, Type: resource.PolicyTargetAccess,
			Subjects: resource.Subjects{Users: []string{user}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
			TargetUsers: []string{"root"}, Actions: []string{"shell"},
			Commands: &resource.CommandRules{Deny: []string{"^rm "}, Uncertain: uncertain}}
	}
	e := mustCompile(t, Input{
		Users:   []*resource.User{{Name: "d"}, {Name: "a"}, {Name: "m"}},
		Targets: []*resource.Target{{Name: "web1", Auth: resource.AuthCertificate}},
		Policies: []*resource.Policy{
			pol("d-default", "d", ""),
			pol("a-allow", "a", resource.UncertainAllow),
			pol("m-allow", "m", resource.UncertainAllow), pol("m-deny", "m", resource.UncertainDeny),
		},
	})
	for _, tc := range []struct {
		user string
		want bool
	}{{"d", false}, {"a", true}, {"m", false}} {
		d := e.Decide(Request{Kind: SubjectUser, Subject: tc.user, Action: resource.ActionShell, Target: "web1",
			TargetUser: "root", Command: "ls"})
		if !d.Allow || !d.CheckCommands || d.AllowUncertain != tc.want {
			t.Errorf("%s: allow %v check %v AllowUncertain %v, want true true %v", tc.user, d.Allow, d.CheckCommands, d.AllowUncertain, tc.want)
		}
	}
}
