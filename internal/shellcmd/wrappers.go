package shellcmd

import (
	"strings"
)

// notJudged says why a command cannot be judged from its text, or "".
func notJudged(name string, args []arg) string {
	switch name {
	case "eval", "source", ".", "alias", "trap", "fc", "hash", "enable", "bind", "complete", "compgen",
		"emulate", "autoload", "zmodload", "sched", "zpty", "functions":
		// emulate -c, autoload, zmodload, sched and zpty are zsh's ways to
		// the same ends.
		// They run text the rules never see (eval, source, fc, trap,
		// bind -x, complete -C), or change what a later name runs
		// (alias, hash -p, enable -f).
		return name
	case "mapfile", "readarray":
		for _, a := range args {
			if strings.HasPrefix(a.text, "-C") {
				return name + " -C"
			}
		}
	case "watch", "flock", "unshare", "nsenter", "strace", "ltrace", "systemd-run", "parallel", "setpriv", "su-exec", "gosu":
		// Programs that run a command the package does not follow.
		return name + " (runs a command the gateway does not follow)"
	}
	switch name {
	case "mapfile", "readarray", "unset", "declare", "typeset", "local", "export", "readonly":
		// Their words are variable names (or options): a computed one may
		// name PS4 or carry a subscript, and "read $x" with x=PS4 sets it.
		for _, a := range args {
			if !a.lit {
				return name + " with a computed variable name"
			}
		}
	case "read", "wait", "getopts":
		// The same for the words that are names: read's operands and
		// -a NAME, wait -p NAME, getopts' second word. Values (read -p
		// "$prompt", wait "$pid", getopts' "$@") may be computed.
		for i, a := range args {
			if a.lit || !isNameWord(name, args, i) {
				continue
			}
			return name + " with a computed variable name"
		}
	case "printf", "test", "[":
		// printf -v NAME, test -v NAME and -R NAME take a variable name.
		for i, a := range args {
			if i > 0 && !a.lit && (args[i-1].text == "-v" || (name != "printf" && args[i-1].text == "-R")) {
				return name + " with a computed variable name"
			}
			if name == "printf" && !a.lit && strings.HasPrefix(a.text, "-v") {
				return name + " with a computed variable name"
			}
		}
	}
	switch name {
	case "declare", "typeset", "local", "export", "readonly":
		for _, a := range args {
			if t := a.text; len(t) > 1 && (t[0] == '-' || t[0] == '+') && strings.ContainsAny(t[1:], "ni") {
				return name + " " + t + " (a nameref or an integer variable: later assignments run what the text does not show)"
			}
		}
	}
	switch name {
	case "printf", "read", "declare", "typeset", "local", "export", "readonly", "unset", "test", "[", "wait", "let",
		"getopts", "mapfile", "readarray":
		// These take variable names, and bash evaluates a subscript in a
		// name: "read 'a[$(cmd)]'" runs cmd. Setting BASH_ENV or PS4 this
		// way is as good as an assignment.
		for _, a := range args {
			if strings.Contains(a.text, "[") && strings.ContainsAny(a.text, "$`") {
				return "a variable subscript that bash evaluates"
			}
			if v, _, _ := strings.Cut(a.text, "="); dangerousVar(v) && name != "unset" {
				return "setting " + v
			}
		}
	}
	return ""
}

// isNameWord reports whether args[i] of read, wait or getopts is a
// variable name.
func isNameWord(name string, args []arg, i int) bool {
	prev := ""
	if i > 0 && args[i-1].lit && strings.HasPrefix(args[i-1].text, "-") {
		prev = args[i-1].text
	}
	switch name {
	case "wait":
		return strings.HasSuffix(prev, "p") && !strings.HasPrefix(prev, "--")
	case "getopts":
		return i == 1
	}
	// read: an option's value follows -d -i -n -N -p -t -u; -a's is a name.
	if prev != "" && len(prev) > 1 {
		switch prev[len(prev)-1] {
		case 'a':
			return true
		case 'd', 'i', 'n', 'N', 'p', 't', 'u':
			return false
		}
	}
	return true
}

// shells read POSIX or bash syntax; "-c STRING" is parsed recursively.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "ksh93": true,
	"mksh": true, "ash": true, "rbash": true, "yash": true, "posh": true, "lksh": true}

// otherShells have their own syntax: their command strings are not judged.
var otherShells = map[string]bool{"fish": true, "csh": true, "tcsh": true, "rc": true, "es": true, "elvish": true,
	"nu": true, "xonsh": true, "pwsh": true}

// interpreter describes how a language interpreter takes its program.
type interpreter struct {
	code    string // short options whose argument is a program ("c" for python)
	longs   []string
	withArg string // other short options that take an argument
	inter   string // short options that force an interactive session afterwards
	always  bool   // a REPL whatever its arguments
}

var interpreters = map[string]interpreter{
	"python": {code: "c", withArg: "WXQ", inter: "i"},
	"perl":   {code: "eE"},
	"ruby":   {code: "e", withArg: "IrCEK"},
	"node":   {code: "ep", longs: []string{"--eval", "--print"}, withArg: "r", inter: "i"},
	"nodejs": {code: "ep", longs: []string{"--eval", "--print"}, withArg: "r", inter: "i"},
	"bun":    {code: "ep", longs: []string{"--eval", "--print"}},
	"php":    {code: "rBRE", withArg: "cdz", inter: "a"},
	"lua":    {code: "e", withArg: "l", inter: "i"},
	"luajit": {code: "e", withArg: "lj", inter: "i"},
	"tclsh":  {},
	"wish":   {},
	"irb":    {always: true},
	"pry":    {always: true},
	"jshell": {always: true},
	"ghci":   {always: true},
	"R":      {code: "e", inter: "i"},
	"gdb":    {code: "", withArg: "x", always: true},
}

// interpreterFor finds the interpreter of a command name: python3.11 is
// python.
func interpreterFor(name string) (interpreter, bool) {
	if it, ok := interpreters[name]; ok {
		return it, true
	}
	// Distributions install versioned names: python3.11, perl5.36.0,
	// ruby3.1, php8.2, lua5.4, pypy3.
	base := strings.TrimRight(name, "0123456789.")
	if base == "pypy" {
		base = "python"
	}
	if it, ok := interpreters[base]; ok && base != "" {
		return it, true
	}
	return interpreter{}, false
}

// follow returns the command a wrapper runs (more is true), or handles a
// shell or interpreter itself (more is false). outer are the forms of the
// command so far, for commands found inside it (find -exec).
func (w *walker) follow(name string, args []arg, stdin bool, outer []string) (next []arg, more bool) {
	if shells[name] || otherShells[name] {
		w.shell(name, args, stdin)
		return nil, false
	}
	if name == "busybox" {
		if len(args) > 0 && !strings.HasPrefix(args[0].text, "-") {
			return args, true
		}
		return nil, false
	}
	if it, ok := interpreterFor(name); ok {
		w.interpreter(name, it, args, stdin)
		return nil, false
	}
	switch name {
	case "env":
		rest, seen, bad := skipOptions(args, opts{flags: "i0v", withArg: "uCPS", longs: map[string]bool{
			"ignore-environment": false, "null": false, "unset": true, "chdir": true, "split-string": true,
			"debug": false, "ignore-signal": false, "default-signal": false, "block-signal": false,
			"list-signal-handling": false}, assigns: true, assignsAfterDashDash: true, dash: true})
		if strings.ContainsRune(seen, 'S') {
			bad = "env -S"
		}
		return w.wrapped(rest, bad)
	case "jobs":
		// jobs -x CMD ARGS runs CMD.
		if len(args) > 0 && args[0].text == "-x" {
			return args[1:], len(args) > 1
		}
		return nil, false
	case "pkexec":
		rest, _, bad := skipOptions(args, opts{longs: map[string]bool{"user": true, "disable-internal-agent": false,
			"keep-cwd": false}})
		return w.wrapped(rest, bad)
	case "-", "noglob", "nocorrect":
		// zsh's precommand modifiers run the next word.
		return args, len(args) > 0
	case "repeat":
		// zsh's "repeat N CMD" (a short loop) runs CMD N times.
		rest, _, bad := skipOptions(args, opts{operands: 1})
		return w.wrapped(rest, bad)
	case "command", "builtin":
		rest, _, bad := skipOptions(args, opts{flags: "pvV"})
		return w.wrapped(rest, bad)
	case "exec":
		rest, _, bad := skipOptions(args, opts{flags: "cl", withArg: "a"})
		return w.wrapped(rest, bad)
	case "nohup":
		rest, _, bad := skipOptions(args, opts{})
		return w.wrapped(rest, bad)
	case "nice":
		rest, _, bad := skipOptions(args, opts{withArg: "n", numeric: true, longs: map[string]bool{"adjustment": true}})
		return w.wrapped(rest, bad)
	case "timeout":
		rest, _, bad := skipOptions(args, opts{flags: "v", withArg: "sk", operands: 1, longs: map[string]bool{
			"signal": true, "kill-after": true, "foreground": false, "preserve-status": false, "verbose": false}})
		return w.wrapped(rest, bad)
	case "stdbuf":
		rest, _, bad := skipOptions(args, opts{withArg: "ioe", longs: map[string]bool{"input": true, "output": true, "error": true}})
		return w.wrapped(rest, bad)
	case "setsid":
		rest, _, bad := skipOptions(args, opts{flags: "cfw", longs: map[string]bool{"ctty": false, "fork": false, "wait": false}})
		return w.wrapped(rest, bad)
	case "ionice":
		rest, seen, bad := skipOptions(args, opts{flags: "t", withArg: "cnpPu", longs: map[string]bool{
			"class": true, "classdata": true, "pid": true, "pgid": true, "uid": true, "ignore": false}})
		if strings.ContainsAny(seen, "pPu") {
			return nil, false // acts on running processes
		}
		return w.wrapped(rest, bad)
	case "taskset":
		rest, seen, bad := skipOptions(args, opts{flags: "ac", operands: 1, longs: map[string]bool{"all-tasks": false, "cpu-list": false}})
		if strings.ContainsRune(seen, 'p') {
			return nil, false
		}
		return w.wrapped(rest, bad)
	case "time":
		rest, seen, bad := skipOptions(args, opts{flags: "apqv", withArg: "fo", longs: map[string]bool{
			"format": true, "output": true, "append": false, "verbose": false, "portability": false, "quiet": false}})
		if bad == "" && (strings.ContainsRune(seen, 'o') || hasLong(args[:len(args)-len(rest)], "--output")) {
			// time -o FILE -f FORMAT writes FORMAT to any file: with an
			// allow list that sees only the command, "time -o ~/.bashrc
			// -f CMD ls" would plant CMD.
			bad = "time -o (writes a file the rules do not see)"
		}
		return w.wrapped(rest, bad)
	case "chroot":
		rest, _, bad := skipOptions(args, opts{operands: 1, longs: map[string]bool{"userspec": true, "groups": true, "skip-chdir": false}})
		if bad == "" && len(rest) == 0 && len(args) > 0 {
			w.session(stdin) // chroot DIR runs "$SHELL -i"
		}
		return w.wrapped(rest, bad)
	case "sudo", "doas":
		return w.sudo(name, args, stdin)
	case "su", "runuser":
		return w.su(name, args, stdin)
	case "script", "screen", "tmux", "byobu", "expect":
		// Terminal multiplexers and script start a shell of their own; any
		// command line of theirs is not followed.
		if len(args) == 0 {
			w.session(stdin)
			return nil, false
		}
		w.fail(name + " (runs a command the gateway does not follow)")
		return nil, false
	case "xargs":
		rest, seen, bad := skipOptions(args, opts{flags: "0rtpxo", withArg: "aEeIiLlnPsd", longs: map[string]bool{
			"null": false, "arg-file": true, "delimiter": true, "eof": true, "replace": true, "max-lines": true,
			"max-args": true, "max-procs": true, "max-chars": true, "interactive": false, "no-run-if-empty": false,
			"verbose": false, "exit": false, "open-tty": false, "process-slot-var": true, "show-limits": false}})
		options := args[:len(args)-len(rest)]
		if bad == "" && (strings.ContainsRune(seen, 'a') || hasLong(options, "--arg-file")) {
			// xargs -a FILE passes a file's contents to a command an allow
			// list admits: "xargs -a /etc/shadow ls" prints them.
			bad = "xargs -a (reads its input from a file the rules do not see)"
		}
		if bad != "" {
			w.fail(bad)
			return nil, false
		}
		if len(rest) == 0 {
			rest = []arg{{text: "echo", lit: true}}
		}
		if repl := xargsReplace(options); repl != "" {
			// -I R: the words holding R are replaced by what xargs reads.
			rest = input(rest, repl)
		} else if !strings.ContainsAny(seen, "Ii") {
			// xargs appends what it reads: "{}" stands for it, so that
			// "xargs rm" is seen as "rm {}" and "^rm " matches it. It is
			// not literal: "xargs sh -c" runs what it reads.
			rest = append(rest[:len(rest):len(rest)], arg{text: "{}", lit: false})
		}
		return rest, true
	case "find":
		w.find(args, stdin, outer)
		return nil, false
	}
	return nil, false
}

// hasLong reports whether options hold the long option name, with or
// without "=VALUE".
func hasLong(options []arg, name string) bool {
	for _, a := range options {
		if a.text == name || strings.HasPrefix(a.text, name+"=") {
			return true
		}
	}
	return false
}

// xargsReplace returns the replace string of xargs options (-I R, -iR,
// --replace), or "".
func xargsReplace(options []arg) string {
	for i, a := range options {
		t := a.text
		switch {
		case t == "-I" && i+1 < len(options):
			return options[i+1].text
		case strings.HasPrefix(t, "-I") && len(t) > 2:
			return t[2:]
		case t == "-i" || t == "--replace":
			return "{}"
		case strings.HasPrefix(t, "-i"):
			return t[2:]
		case strings.HasPrefix(t, "--replace="):
			return strings.TrimPrefix(t, "--replace=")
		}
	}
	return ""
}

// input marks the words that hold placeholder as not literal: xargs and
// find -exec put what they read (a file name, a line) there.
func input(argv []arg, placeholder string) []arg {
	out := make([]arg, len(argv))
	for i, a := range argv {
		out[i] = a
		if strings.Contains(a.text, placeholder) {
			out[i].lit = false
		}
	}
	return out
}

// wrapped returns what a wrapper runs, or records why it cannot be told.
func (w *walker) wrapped(rest []arg, bad string) ([]arg, bool) {
	if bad != "" {
		w.fail(bad)
		return nil, false
	}
	return rest, len(rest) > 0
}

// session records a shell or interpreter that reads its program from its
// input: the session's (an interactive session), or a pipe or redirection
// (a program that is not in the text: unjudgeable).
func (w *walker) session(stdin bool) {
	if stdin {
		w.fail("a shell or interpreter reading its program from input")
		return
	}
	w.res.Interactive = true
}

// shell handles sh, bash and the like: "-c STRING" is parsed; no operand
// (or -s, -i) is an interactive shell.
func (w *walker) shell(name string, args []arg, stdin bool) {
	cmdMode, interactive, stdinMode := false, false, false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !a.lit {
			w.fail(name + " with a computed option")
			return
		}
		t := a.text
		if t == "--" || t == "-" {
			i++
			break
		}
		if strings.HasPrefix(t, "--") {
			if t == "--rcfile" || t == "--init-file" {
				i++
			}
			continue
		}
		if len(t) < 2 || (t[0] != '-' && t[0] != '+') {
			break
		}
		for _, c := range t[1:] {
			switch c {
			case 'c':
				cmdMode = true
			case 'i':
				interactive = true
			case 's':
				stdinMode = true
			case 'o', 'O':
				i++ // -o OPTION
			}
		}
	}
	operands := args[min(i, len(args)):]
	if cmdMode {
		if len(operands) == 0 {
			return // "sh -c" alone is an error
		}
		if otherShells[name] {
			w.fail(name + " -c (not POSIX shell syntax)")
			return
		}
		if !operands[0].lit {
			w.fail(name + " -c with a computed command string")
			return
		}
		w.parse(operands[0].text, w.depth+1)
		if interactive && !w.failed() {
			// bash -ic runs the string in an interactive shell, which reads
			// start-up files but not the session's input.
			return
		}
		return
	}
	if len(operands) == 0 || stdinMode || interactive {
		w.session(stdin)
	}
	// Otherwise it runs a script file: judged as the command it is.
}

// interpreter handles python, perl, node...: a program on the command line
// is unjudgeable; none at all (or -i) is an interactive session.
func (w *walker) interpreter(name string, it interpreter, args []arg, stdin bool) {
	interactive := it.always
	script := false
	for i := 0; i < len(args) && !script; i++ {
		a := args[i]
		if !a.lit {
			w.fail(name + " with a computed argument")
			return
		}
		t := a.text
		switch {
		case t == "-":
			interactive = true // the program comes from input
			script = true
		case t == "--":
			script = i+1 < len(args)
		case strings.HasPrefix(t, "--"):
			for _, l := range it.longs {
				if t == l || strings.HasPrefix(t, l+"=") {
					w.fail(name + " " + l + " (a program on the command line)")
					return
				}
			}
		case len(t) > 1 && t[0] == '-':
			for j := 1; j < len(t); j++ {
				c := t[j]
				if strings.IndexByte(it.code, c) >= 0 {
					w.fail(name + " -" + string(c) + " (a program on the command line)")
					return
				}
				if strings.IndexByte(it.inter, c) >= 0 {
					interactive = true
				}
				if name == "python" || strings.HasPrefix(name, "python") {
					if c == 'm' {
						script = true // -m MODULE runs a module
						break
					}
				}
				if strings.IndexByte(it.withArg, c) >= 0 {
					if j == len(t)-1 {
						i++
					}
					break
				}
			}
		default:
			script = true
		}
	}
	if !script || interactive {
		w.session(stdin)
	}
}

// sudo handles sudo and doas: options, NAME=VALUE, then the command; -s
// and -i run it through a shell (or start one).
func (w *walker) sudo(name string, args []arg, stdin bool) ([]arg, bool) {
	o := opts{flags: "AbBEHKklNnPSisVve", withArg: "CDghpRrtTUu", assigns: true, longs: map[string]bool{
		"askpass": false, "background": false, "bell": false, "close-from": true, "chdir": true, "preserve-env": false,
		"edit": false, "group": true, "set-home": false, "help": false, "host": true, "login": false,
		"remove-timestamp": false, "reset-timestamp": false, "list": false, "non-interactive": false,
		"preserve-groups": false, "prompt": true, "chroot": true, "role": true, "stdin": false, "shell": false,
		"type": true, "command-timeout": true, "other-user": true, "user": true, "validate": false, "version": false}}
	if name == "doas" {
		o = opts{flags: "Lns", withArg: "uC"}
	}
	rest, seen, bad := skipOptions(args, o)
	if bad != "" {
		w.fail(bad)
		return nil, false
	}
	switch {
	case strings.ContainsRune(seen, 'e'):
		return nil, false // sudoedit: edits files, runs no command
	case strings.ContainsAny(seen, "is"):
		if len(rest) == 0 {
			w.session(stdin)
			return nil, false
		}
		// "sudo -s CMD" runs "$SHELL -c CMD".
		w.parseArgs(name, rest)
		return nil, false
	}
	return rest, len(rest) > 0
}

// su handles su and runuser: -c STRING is parsed; without it a login shell
// starts. "runuser -u USER -- CMD" runs CMD.
func (w *walker) su(name string, args []arg, stdin bool) ([]arg, bool) {
	for i := 0; i < len(args); i++ {
		t := args[i].text
		switch {
		case !args[i].lit:
			w.fail(name + " with a computed argument")
			return nil, false
		case t == "-c" || t == "--command" || t == "--session-command":
			if i+1 < len(args) {
				w.parseArgs(name, args[i+1:i+2])
			}
			return nil, false
		case strings.HasPrefix(t, "--command=") || strings.HasPrefix(t, "--session-command="):
			_, v, _ := strings.Cut(t, "=")
			w.parse(v, w.depth+1)
			return nil, false
		case name == "runuser" && t == "-u" && i+1 < len(args):
			rest, _, bad := skipOptions(args[i+2:], opts{})
			return w.wrapped(rest, bad)
		case len(t) > 1 && t[0] == '-' && t[1] != '-' && strings.ContainsRune(t, 'c'):
			w.fail(name + " " + t)
			return nil, false
		}
	}
	w.session(stdin)
	return nil, false
}

// parseArgs parses words joined by spaces as a shell command string.
func (w *walker) parseArgs(name string, words []arg) {
	texts := make([]string, len(words))
	for i, a := range words {
		if !a.lit {
			w.fail(name + " with a computed command")
			return
		}
		texts[i] = a.text
	}
	w.parse(strings.Join(texts, " "), w.depth+1)
}

// find records each command of -exec, -execdir, -ok and -okdir (up to ";"
// or "+").
func (w *walker) find(args []arg, stdin bool, outer []string) {
	for _, a := range args {
		if !a.lit {
			// An unquoted $X could split into "-exec cmd ;".
			w.fail("find with a computed argument")
			return
		}
	}
	for i := 0; i < len(args); i++ {
		switch args[i].text {
		case "-exec", "-execdir", "-ok", "-okdir":
		default:
			continue
		}
		j := i + 1
		for j < len(args) && args[j].text != ";" && args[j].text != "+" {
			j++
		}
		if j > i+1 {
			// {} is a file name, which may be anything: "sh -c {}" runs
			// it.
			w.simple(input(args[i+1:j], "{}"), stdin, outer)
		}
		i = j
	}
}

// opts describes a wrapper's options.
type opts struct {
	flags    string          // short options without an argument
	withArg  string          // short options that take one
	longs    map[string]bool // long options, true when they take an argument
	assigns  bool            // NAME=VALUE words may follow the options
	numeric  bool            // "-10" is an option (nice)
	operands int             // words between the options and the command (timeout's duration)
	// assignsAfterDashDash: NAME=VALUE words are still assignments after
	// "--" (env -- A=b rm runs rm; sudo -- A=b runs a program "A=b").
	assignsAfterDashDash bool
	dash                 bool // a lone "-" is an option (env's -i)
}

// skipOptions returns the words after a wrapper's options and operands,
// the short options seen, and what made the command line unreadable (an
// unknown option could take an argument, which would shift the command).
func skipOptions(args []arg, o opts) (rest []arg, seen, bad string) {
	i := 0
	var b strings.Builder
loop:
	for ; i < len(args); i++ {
		a := args[i]
		t := a.text
		if !a.lit {
			if strings.HasPrefix(t, "-") || (o.assigns && strings.Contains(t, "=")) {
				return nil, "", "a wrapper with a computed option"
			}
			break
		}
		switch {
		case t == "--":
			i++
			if o.assignsAfterDashDash {
				for ; i < len(args) && args[i].lit && isAssign(args[i].text); i++ {
					if v, _, _ := strings.Cut(args[i].text, "="); dangerousVar(v) {
						return nil, "", "setting " + v
					}
				}
				if i < len(args) && !args[i].lit && strings.Contains(args[i].text, "=") {
					return nil, "", "a wrapper with a computed option"
				}
			}
			break loop
		case t == "-" && o.dash:
		case strings.HasPrefix(t, "--"):
			name, _, hasValue := strings.Cut(t[2:], "=")
			takes, ok := o.longs[name]
			if !ok {
				return nil, "", "an option the gateway does not know (" + t + ")"
			}
			if takes && !hasValue {
				i++
				if i < len(args) && !args[i].lit {
					return nil, "", "a wrapper with a computed argument"
				}
			}
		case len(t) > 1 && t[0] == '-':
			for j := 1; j < len(t); j++ {
				c := t[j]
				if o.numeric && c >= '0' && c <= '9' {
					break
				}
				b.WriteByte(c)
				if strings.IndexByte(o.flags, c) >= 0 {
					continue
				}
				if strings.IndexByte(o.withArg, c) >= 0 {
					if j == len(t)-1 {
						// An unquoted $X here could split into
						// several words and shift the command.
						if i++; i < len(args) && !args[i].lit {
							return nil, "", "a wrapper with a computed argument"
						}
					}
					break
				}
				return nil, "", "an option the gateway does not know (" + t + ")"
			}
		case o.assigns && strings.Contains(t[1:], "="):
			// env and sudo take any word with "=" as an assignment, even
			// one no shell would (BASH_FUNC_f%%=...).
			if v, _, _ := strings.Cut(t, "="); dangerousVar(v) {
				return nil, "", "setting " + v
			}
		default:
			break loop
		}
	}
	for k := 0; k < o.operands && i < len(args); k++ {
		if !args[i].lit {
			return nil, "", "a wrapper with a computed argument"
		}
		i++
	}
	if i > len(args) {
		i = len(args)
	}
	return args[i:], b.String(), ""
}

// isAssign reports whether t is NAME=VALUE.
func isAssign(t string) bool {
	name, _, ok := strings.Cut(t, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
