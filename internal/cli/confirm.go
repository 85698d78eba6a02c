package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Destructive commands on evidence and credentials (delete, recordings rm,
// account rotate) ask before they act. On a terminal they ask; with --yes
// they do not; and when stdin is not a terminal and --yes was not given
// they refuse (exit 2) rather than proceed: a script that deletes must say
// so, and a pipe that happens to start with "y" must not be taken as a
// person's answer.

// yesFlag registers --yes (and -y) on fs.
func yesFlag(fs *flag.FlagSet) *bool {
	yes := fs.Bool("yes", false, "")
	fs.BoolVar(yes, "y", false, "")
	return yes
}

const yesUsage = `  -y, --yes        do not ask for confirmation (needed when stdin is not a terminal)
`

// typedByPerson reports whether r is a terminal a person types into. It
// asks the terminal driver (an ioctl), not the file mode: /dev/null is a
// character device too, and "< /dev/null" is no one's answer.
func typedByPerson(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks "question [y/N]" on stderr and reads the answer from stdin,
// unless yes is set. It returns nil to go on, or the error to stop with:
// exit 1 when the person says no, exit 2 when nobody can be asked.
func (e *env) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	if !typedByPerson(e.stdin) {
		return inputErr("%s: refusing without confirmation, because stdin is not a terminal; add --yes to confirm", question)
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(e.stderr)
		return &exitError{code: exitNo, msg: "not confirmed: nothing was changed"}
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &exitError{code: exitNo, msg: "not confirmed: nothing was changed"}
}
