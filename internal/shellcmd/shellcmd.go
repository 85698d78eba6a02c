// Package shellcmd turns a command string into the simple commands a POSIX
// shell or bash would run for it, so that command rules are judged on what
// runs and not on the raw text.
//
// The target's sshd hands an exec command to the account's shell, so each
// of these runs rm:
//
//	 rm x
//	\rm x
//	r''m x
//	true; rm x
//	env rm x
//	bash -c 'rm x'
//
// Parse reads the string with a real shell parser
// (mvdan.cc/sh/v3/syntax, bash dialect), walks every simple command in the
// tree (lists, pipelines, && and ||, subshells, blocks, loops, command and
// process substitutions, here-documents, redirections), removes quotes to
// get each argv, and follows the wrappers it knows (env, command, exec,
// nice, nohup, timeout, sudo, xargs, find -exec, ...) and "sh -c STRING" to
// the commands they run.
//
// What the text alone cannot tell (eval, source, a command name computed
// from a variable, a function definition, an interpreter given its program
// on the command line or on its input, a parse error) is reported as
// Result.Unjudgeable, so that a caller with command rules can deny it.
//
// The package knows syntax, not programs: a program that runs others by
// itself (vim's :!, less's !, awk's system(), an allowed script) is seen as
// that program only.
package shellcmd

import (
	"path"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// Bounds on the work one command may cause. Real exec commands are a line
// or a short script; past these the command is unjudgeable, not slow.
const (
	// MaxLen is the longest command judged, in bytes.
	MaxLen = 64 << 10
	// maxDepth bounds "sh -c" inside "sh -c" (and sudo -s, su -c).
	maxDepth = 8
	// maxNesting bounds the opening brackets of a command: the parser
	// recurses on each, and a 64 KiB string of them costs it a third of
	// a second.
	maxNesting = 1024
	// maxCommands bounds the simple commands (and wrapper layers) of one
	// command string, counted over every level.
	maxCommands = 512
)

// Command is one simple command the shell would run.
type Command struct {
	// Forms are the texts a deny rule is tried on: the argv after quote
	// removal joined by single spaces, the same with a path argv[0] cut to
	// its base name ("/bin/rm x" and "rm x"), and for a wrapper the same
	// again for each command it runs, outermost first.
	Forms []string
	// Runs are the forms of the program finally run, past every wrapper:
	// what an allow rule must match.
	Runs []string
	// Name is the base name of the program finally run.
	Name string
	// Elevations holds, for each wrapper that changes who runs the command
	// (sudo, doas, su, runuser, chroot, setpriv, pkexec), the forms of that
	// layer ("sudo ls /root"). Such a layer is not transparent to an allow
	// list: allowing "ls" must not allow "sudo ls", so one form of each
	// layer must be allowed as well.
	Elevations [][]string
}

// Result is what Parse found in a command string.
type Result struct {
	// Commands are the simple commands, in the order they appear.
	Commands []Command
	// Unjudgeable names the first construct whose effect the text does not
	// tell ("eval", "a function definition", ...); empty when every command
	// was found. A caller with command rules denies such a command.
	Unjudgeable string
	// Interactive is set when a command starts a shell or interpreter that
	// reads its commands from the session's input (bash, bash -i, python
	// with no script, sudo -i...).
	Interactive bool
}

// Parse finds the simple commands cmd would run in a POSIX shell or bash.
// It never fails: what it cannot follow is reported in Result.Unjudgeable.
func Parse(cmd string) Result {
	w := &walker{}
	if len(cmd) > MaxLen {
		w.fail("a command longer than 64 KiB")
		return w.res
	}
	if strings.IndexByte(cmd, 0) >= 0 {
		// sshd refuses or cuts such a command; the shell would never see
		// what follows the NUL as this parser does.
		w.fail("a NUL byte")
		return w.res
	}
	if strings.Count(cmd, "(")+strings.Count(cmd, "{")+strings.Count(cmd, "`") > maxNesting {
		w.fail("a command with too many brackets")
		return w.res
	}
	if strings.IndexByte(cmd, '\r') >= 0 {
		// The parser reads a carriage return as a blank, bash as part of
		// a word: in "ls \r#; rm x" the parser sees a comment after ls,
		// bash a word "\r#" and then rm.
		w.fail("a carriage return")
		return w.res
	}
	if argv, ok := plainWords(cmd); ok {
		// Most exec commands are a program and plain arguments: no parser
		// needed, which keeps a policy decision in microseconds.
		w.src = cmd
		w.simple(argv, false, nil)
		return w.res
	}
	w.parse(cmd, 0)
	return w.res
}

// Incomplete reports whether a shell reading s as typed lines would wait
// for more before running anything: a trailing backslash, an unclosed
// quote or block, a here-document without its end line, a trailing && or
// |. An interactive gateway joins such lines with the next before judging
// them, as the shell will.
func Incomplete(s string) bool {
	if len(s) > MaxLen || strings.Count(s, "(")+strings.Count(s, "{")+strings.Count(s, "`") > maxNesting {
		return false // judged (and denied) as it stands
	}
	if n := len(s) - len(strings.TrimRight(s, "\\")); n%2 == 1 {
		return true
	}
	// Typed lines end with a newline; a here-document starts after it.
	_, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(s+"\n"), "")
	return err != nil && syntax.IsIncomplete(err)
}

// HistoryExpansion reports whether an interactive bash would rewrite line
// from its history before running it: a "!" not followed by a blank, "="
// or "(" outside single quotes, or a "^" quick substitution at the start.
// The result ("!!:s/echo //", "!rm") is not in the text, so a line that
// uses it cannot be judged. Scripts and exec commands have no history
// expansion.
func HistoryExpansion(line string) bool {
	if strings.HasPrefix(line, "^") {
		return true
	}
	single, double := false, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case single:
			single = c != '\''
		case c == '\\':
			i++
		case c == '\'' && !double:
			single = true
		case c == '"':
			double = !double
		case c == '!':
			if i+1 < len(line) && strings.IndexByte(" \t\n=(\"", line[i+1]) < 0 {
				return true
			}
		}
	}
	return false
}

// plainWords splits cmd into words when it holds nothing a shell would
// interpret: letters, digits, spaces and a few punctuation marks that are
// literal in every position, and no reserved word.
func plainWords(cmd string) ([]arg, bool) {
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(" _./:,+@%-", c) >= 0:
		default:
			return nil, false
		}
	}
	argv := make([]arg, 0, strings.Count(cmd, " ")+1)
	for f := range strings.FieldsSeq(cmd) {
		if syntax.IsKeyword(f) {
			return nil, false
		}
		argv = append(argv, arg{text: f, lit: true})
	}
	return argv, true
}

// arg is one word after quote removal. lit is false when the shell would
// change it further (a parameter, a substitution, a glob, braces): such a
// word may be an argument, never a command name.
type arg struct {
	text string
	lit  bool
}

type walker struct {
	res   Result
	src   string // the text being walked, for rendering expansions
	depth int    // "sh -c" nesting
	work  int    // commands and layers seen, against maxCommands
}

// fail records the first unjudgeable construct.
func (w *walker) fail(construct string) {
	if w.res.Unjudgeable == "" {
		w.res.Unjudgeable = construct
	}
}

func (w *walker) failed() bool { return w.res.Unjudgeable != "" }

// parse parses src as a shell program and walks it.
func (w *walker) parse(src string, depth int) {
	if depth > maxDepth {
		w.fail("shell command strings nested too deeply")
		return
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true)).Parse(strings.NewReader(src), "")
	if err != nil {
		w.fail("a command that does not parse (" + err.Error() + ")")
		return
	}
	if strings.IndexByte(src, '#') >= 0 && continuedComment(f) {
		w.fail("a comment ending in a backslash")
		return
	}
	oldSrc, oldDepth := w.src, w.depth
	w.src, w.depth = src, depth
	w.stmts(f.Stmts, false)
	w.src, w.depth = oldSrc, oldDepth
}

// continuedComment reports whether a comment of f ends in a backslash
// before its newline. The parser joins the next line to the comment's
// line, and so reads "ls # x \<newline>rm y" as "ls rm y"; bash and dash
// end the comment at the newline and run rm.
func continuedComment(f *syntax.File) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.Comment); ok && strings.IndexByte(c.Text, '\n') >= 0 {
			found = true
		}
		return !found
	})
	return found
}

// stmts walks a statement list. stdin is set when the list's input is not
// the session's (a pipe or a redirection).
func (w *walker) stmts(list []*syntax.Stmt, stdin bool) {
	for _, s := range list {
		if w.failed() {
			return
		}
		w.stmt(s, stdin)
	}
}

func (w *walker) stmt(s *syntax.Stmt, stdin bool) {
	stdin = stdin || redirectsStdin(s.Redirs)
	for _, r := range s.Redirs {
		if r.Word != nil {
			w.word(r.Word)
		}
		if r.Hdoc != nil {
			// An unquoted here-document expands $(...) in its body.
			w.word(r.Hdoc)
		}
	}
	if s.Cmd == nil {
		return
	}
	switch x := s.Cmd.(type) {
	case *syntax.CallExpr:
		for _, a := range x.Assigns {
			w.assign(a)
		}
		if len(x.Args) == 0 {
			return
		}
		if len(x.Args) == 1 && x.Args[0].Lit() == "exec" && redirectsStdin(s.Redirs) {
			// exec <file: the shell reads its next commands from file.
			w.fail("exec redirecting the shell's input")
			return
		}
		argv := make([]arg, 0, len(x.Args))
		for _, a := range x.Args {
			w.word(a)
			argv = append(argv, w.argOf(a))
		}
		w.simple(argv, stdin, nil)
	case *syntax.BinaryCmd:
		w.stmt(x.X, stdin)
		if x.Op == syntax.Pipe || x.Op == syntax.PipeAll {
			w.stmt(x.Y, true)
		} else {
			w.stmt(x.Y, stdin)
		}
	case *syntax.Subshell:
		w.stmts(x.Stmts, stdin)
	case *syntax.Block:
		w.stmts(x.Stmts, stdin)
	case *syntax.IfClause:
		for c := x; c != nil; c = c.Else {
			w.stmts(c.Cond, stdin)
			w.stmts(c.Then, stdin)
		}
	case *syntax.WhileClause:
		w.stmts(x.Cond, stdin)
		w.stmts(x.Do, stdin)
	case *syntax.ForClause:
		switch l := x.Loop.(type) {
		case *syntax.WordIter:
			if l.Name != nil && dangerousVar(l.Name.Value) {
				w.fail("setting " + l.Name.Value)
			}
			for _, it := range l.Items {
				w.word(it)
			}
		case *syntax.CStyleLoop:
			w.arithm(l.Init)
			w.arithm(l.Cond)
			w.arithm(l.Post)
		}
		w.stmts(x.Do, stdin)
	case *syntax.CaseClause:
		w.word(x.Word)
		for _, it := range x.Items {
			for _, p := range it.Patterns {
				w.word(p)
			}
			w.stmts(it.Stmts, stdin)
		}
	case *syntax.FuncDecl:
		w.fail("a function definition")
	case *syntax.ArithmCmd:
		w.arithm(x.X)
	case *syntax.LetClause:
		for _, e := range x.Exprs {
			w.arithm(e)
		}
	case *syntax.TestClause:
		w.test(x.X)
	case *syntax.DeclClause:
		// declare, local, export, readonly, typeset, nameref: builtins
		// that set variables. They are commands too, so rules see them.
		argv := []arg{{text: x.Variant.Value, lit: true}}
		if x.Variant.Value == "nameref" {
			w.fail("a nameref (assignments through it set a variable the text does not name)")
			return
		}
		for _, a := range x.Args {
			if why := declNotJudged(a); why != "" {
				w.fail(why)
				return
			}
			w.assign(a)
			// Computed arguments failed above; the rest are names and
			// assignments whose values were walked.
			argv = append(argv, arg{text: w.source(a), lit: true})
		}
		w.simple(argv, stdin, nil)
	case *syntax.TimeClause:
		if x.Stmt != nil {
			inner := x.Stmt
			if call, ok := inner.Cmd.(*syntax.CallExpr); ok && len(call.Args) > 0 && call.Args[0].Lit() == "--" {
				// bash's time ends its options at "--" ("time -- rm x"
				// runs rm); the parser keeps it as the command name.
				c := *call
				c.Args = c.Args[1:]
				s := *inner
				s.Cmd = &c
				inner = &s
			}
			w.stmt(inner, stdin)
		}
	case *syntax.CoprocClause:
		if x.Stmt != nil {
			w.stmt(x.Stmt, true)
		}
	default:
		w.fail("an unsupported shell construct")
	}
}

// redirectsStdin reports whether redirs give the command another input.
func redirectsStdin(redirs []*syntax.Redirect) bool {
	for _, r := range redirs {
		if r.N == nil || r.N.Value == "0" {
			switch r.Op {
			case syntax.RdrIn, syntax.RdrInOut, syntax.DplIn, syntax.Hdoc, syntax.DashHdoc, syntax.WordHdoc:
				return true
			}
		}
	}
	return false
}

// declNotJudged says why an argument of declare and the like cannot be
// judged, or "". A computed argument may expand to options or to
// NAME=VALUE ("declare $x" with x="-n r=PS4"); -n makes a nameref, through
// which a later plain assignment sets PS4 or BASH_ENV; -i makes bash
// evaluate every value assigned to the variable as arithmetic, where
// "a[$(cmd)]" runs cmd.
func declNotJudged(a *syntax.Assign) string {
	if !a.Naked || a.Name != nil || a.Value == nil {
		return ""
	}
	lit := a.Value.Lit()
	switch {
	case lit == "":
		return "declare with a computed argument"
	case (lit[0] == '-' || lit[0] == '+') && strings.ContainsRune(lit[1:], 'n'):
		return "a nameref (assignments through it set a variable the text does not name)"
	case (lit[0] == '-' || lit[0] == '+') && strings.ContainsRune(lit[1:], 'i'):
		return "an integer variable (bash evaluates what is assigned to it as code)"
	}
	return ""
}

// dangerousVar reports whether setting a variable of this name makes a
// shell or the loader run code the command does not show: BASH_ENV and
// ENV name start-up files, PS0-PS4 and PROMPT_COMMAND are expanded (and
// their $(...) run), BASH_FUNC_* imports functions, SHELLOPTS and BASHOPTS
// switch on xtrace, LD_* loads libraries. Bash evaluates a value assigned
// to RANDOM, SRANDOM, OPTIND, HISTCMD, BASH_COMPAT or BASH_XTRACEFD as
// arithmetic, where "a[$(cmd)]" runs cmd.
func dangerousVar(name string) bool {
	switch name {
	case "BASH_ENV", "ENV", "PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS",
		"RANDOM", "SRANDOM", "OPTIND", "HISTCMD", "BASH_COMPAT", "BASH_XTRACEFD":
		return true
	}
	return strings.HasPrefix(name, "BASH_FUNC_") || strings.HasPrefix(name, "LD_")
}

// assign walks an assignment: its value may hold substitutions, and an
// array subscript is evaluated as arithmetic.
func (w *walker) assign(a *syntax.Assign) {
	if a.Name != nil && dangerousVar(a.Name.Value) {
		w.fail("setting " + a.Name.Value)
		return
	}
	if a.Index != nil {
		w.arithm(a.Index)
	}
	if a.Value != nil {
		w.word(a.Value)
	}
	if a.Array != nil {
		for _, el := range a.Array.Elems {
			if el.Index != nil {
				w.arithm(el.Index)
			}
			if el.Value != nil {
				w.word(el.Value)
			}
		}
	}
}

// word walks the commands nested in a word: command and process
// substitutions, and arithmetic.
func (w *walker) word(wd *syntax.Word) {
	for _, p := range wd.Parts {
		w.part(p)
	}
}

func (w *walker) part(p syntax.WordPart) {
	if w.failed() {
		return
	}
	switch x := p.(type) {
	case *syntax.DblQuoted:
		for _, q := range x.Parts {
			w.part(q)
		}
	case *syntax.CmdSubst:
		w.stmts(x.Stmts, false)
	case *syntax.ProcSubst:
		// >(cmd) reads what the outer command writes; <(cmd) inherits
		// the shell's input.
		w.stmts(x.Stmts, x.Op == syntax.CmdOut)
	case *syntax.ArithmExp:
		w.arithm(x.X)
	case *syntax.ParamExp:
		w.param(x)
	case *syntax.ExtGlob:
		// *(...) is an extended glob in bash, and in zsh may carry a glob
		// qualifier that runs code: *(e:'cmd':).
		w.fail("an extended glob")
	}
}

func (w *walker) param(x *syntax.ParamExp) {
	if x.Excl && x.Names == 0 && (x.Index == nil || !isAllIndex(x.Index)) {
		// ${!x} expands the variable x names, and a name with a
		// subscript ("a[$(cmd)]") has it evaluated.
		w.fail("an indirect expansion ${!...}")
		return
	}
	if x.Exp != nil {
		if x.Exp.Op == syntax.OtherParamOps {
			// ${v@P} expands the value as a prompt, running any $(...)
			// in it.
			w.fail("a ${...@...} transformation")
			return
		}
		if x.Exp.Word != nil {
			w.word(x.Exp.Word)
		}
	}
	if x.Index != nil && !isAllIndex(x.Index) {
		w.arithm(x.Index)
	}
	if x.Slice != nil {
		w.arithm(x.Slice.Offset)
		w.arithm(x.Slice.Length)
	}
	if x.Repl != nil {
		if x.Repl.Orig != nil {
			w.word(x.Repl.Orig)
		}
		if x.Repl.With != nil {
			w.word(x.Repl.With)
		}
	}
	if x.NestedParam != nil {
		w.part(x.NestedParam)
	}
}

// isAllIndex reports whether an index is [@] or [*]: ${!a[@]} lists keys.
func isAllIndex(e syntax.ArithmExpr) bool {
	wd, ok := e.(*syntax.Word)
	return ok && (wd.Lit() == "@" || wd.Lit() == "*")
}

// arithm accepts arithmetic on numbers only: bash evaluates the value of a
// variable named in arithmetic as an expression, and "a[$(cmd)]" there
// runs cmd, so a variable makes the command unjudgeable.
func (w *walker) arithm(e syntax.ArithmExpr) {
	if e == nil || w.failed() {
		return
	}
	syntax.Walk(e, func(n syntax.Node) bool {
		if wd, ok := n.(*syntax.Word); ok {
			if lit := wd.Lit(); lit == "" || strings.TrimLeft(lit, "0123456789") != "" {
				w.fail("arithmetic on a variable (bash evaluates its value as code)")
			}
			return false
		}
		return true
	})
}

// test walks a [[ ]] expression: its words may hold substitutions, and
// its arithmetic comparisons evaluate variables as expressions.
func (w *walker) test(e syntax.TestExpr) {
	syntax.Walk(e, func(n syntax.Node) bool {
		switch x := n.(type) {
		case *syntax.BinaryTest:
			switch x.Op {
			case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
				for _, side := range []syntax.TestExpr{x.X, x.Y} {
					if wd, ok := side.(*syntax.Word); !ok || strings.TrimLeft(wd.Lit(), "0123456789-") != "" || wd.Lit() == "" {
						w.fail("arithmetic on a variable (bash evaluates its value as code)")
					}
				}
			}
		case *syntax.UnaryTest:
			// [[ -v 'a[$(cmd)]' ]] evaluates the subscript.
			if x.Op == syntax.TsVarSet || x.Op == syntax.TsRefVar {
				if wd, ok := x.X.(*syntax.Word); !ok || !isName(wd.Lit()) {
					w.fail("a variable subscript that bash evaluates")
				}
			}
		case *syntax.Word:
			w.word(x)
			return false
		}
		return true
	})
}

// isName reports whether s is a plain variable name.
func isName(s string) bool {
	return s != "" && isAssign(s+"=")
}

// argOf removes quotes from a word. Expansions are kept as written.
func (w *walker) argOf(wd *syntax.Word) arg {
	var b strings.Builder
	lit := true
	brace := false // an unquoted { was seen: a later , or .. makes a brace expansion
	for _, p := range wd.Parts {
		switch x := p.(type) {
		case *syntax.Lit:
			v := x.Value
			if strings.ContainsAny(v, "*?") || (strings.Contains(v, "[") && !(len(wd.Parts) == 1 && (v == "[" || v == "[["))) {
				lit = false // a pathname pattern
			}
			rest := v
			if i := strings.IndexByte(v, '{'); i >= 0 {
				brace, rest = true, v[i:]
			}
			if brace && (strings.Contains(rest, ",") || strings.Contains(rest, "..")) {
				lit = false // {rm,x}, {"rm",x}, {a..c}
			}
			b.WriteString(unescape(v, false))
		case *syntax.SglQuoted:
			if !x.Dollar {
				b.WriteString(x.Value)
				continue
			}
			s, _, err := expand.Format(nil, x.Value, nil)
			if err != nil {
				lit = false
				s = x.Value
			}
			if i := strings.IndexByte(s, 0); i >= 0 {
				s = s[:i] // bash ends a $'...' string at a NUL
			}
			b.WriteString(s)
		case *syntax.DblQuoted:
			for _, q := range x.Parts {
				if l, ok := q.(*syntax.Lit); ok {
					b.WriteString(unescape(l.Value, true))
					continue
				}
				lit = false
				b.WriteString(w.source(q))
			}
		default:
			lit = false
			b.WriteString(w.source(p))
		}
	}
	return arg{text: b.String(), lit: lit}
}

// unescape removes the backslashes a shell removes: every one outside
// quotes, and inside double quotes only before $ ` " \ and newline. A
// backslash-newline joins lines.
func unescape(s string, dq bool) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		n := s[i+1]
		switch {
		case n == '\n':
			i++
		case !dq || strings.IndexByte("$`\"\\", n) >= 0:
			b.WriteByte(n)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// source returns the text of n as written.
func (w *walker) source(n syntax.Node) string {
	from, to := n.Pos().Offset(), n.End().Offset()
	if from <= to && int(to) <= len(w.src) {
		return w.src[from:to]
	}
	return "?"
}

// elevating names the wrappers that run their command as someone else or
// somewhere else: an allow list must name them (Command.Elevations).
var elevating = map[string]bool{"sudo": true, "doas": true, "su": true, "runuser": true, "chroot": true,
	"setpriv": true, "pkexec": true}

// forms returns the texts rules see for argv: joined by single spaces, and
// again with a path argv[0] cut to its base name.
func forms(argv []arg) []string {
	if len(argv) == 1 && !strings.Contains(argv[0].text, "/") {
		return []string{argv[0].text}
	}
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.text)
	}
	full := b.String()
	name := argv[0].text
	if !strings.Contains(name, "/") {
		return []string{full}
	}
	return []string{full, path.Base(name) + full[len(name):]}
}

// simple records one simple command, following wrappers to the command
// they run. outer holds the forms of the wrappers around argv.
func (w *walker) simple(argv []arg, stdin bool, outer []string) {
	all := outer
	var runs []string
	var elevations [][]string
	base := ""
	for len(argv) > 0 {
		if w.failed() {
			return
		}
		if w.work++; w.work > maxCommands {
			w.fail("too many commands")
			return
		}
		if !argv[0].lit {
			w.fail("a command name from a variable, substitution or glob")
			return
		}
		if strings.HasPrefix(argv[0].text, "=") {
			// zsh expands =cmd to the path of cmd.
			w.fail("a command name starting with =")
			return
		}
		runs = forms(argv)
		if len(all) == 0 {
			all = runs[:len(runs):len(runs)] // a later append copies
		} else {
			all = append(all[:len(all):len(all)], runs...)
		}
		base = path.Base(argv[0].text)
		if elevating[base] {
			elevations = append(elevations, runs)
		}
		if why := notJudged(base, argv[1:]); why != "" {
			w.fail(why)
			return
		}
		next, more := w.follow(base, argv[1:], stdin, all)
		if !more {
			break
		}
		argv = next
	}
	if runs == nil {
		return
	}
	w.res.Commands = append(w.res.Commands, Command{Forms: all, Runs: runs, Name: base, Elevations: elevations})
}
