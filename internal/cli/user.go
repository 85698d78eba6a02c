package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/password"
)

const userUsage = `Usage: portcullis user passwd NAME [--password-stdin]

passwd sets the local password NAME logs in to the web console with. NAME
is a User resource. The gateway stores only an argon2id hash of it; the
change is audited.

The password is read twice from the terminal, without echo. With
--password-stdin it is read once from stdin instead: the first line,
without its line ending (printf '%s\n' "$PW" | portcullis user passwd
alice --password-stdin). A password must have at least 12 characters.

Flags:
  --password-stdin   read the password from stdin, for scripts
` + "\n" + globalFlagsUsage

func runUserPasswd(e *env, args []string) error {
	fs := e.flags()
	var fromStdin bool
	fs.BoolVar(&fromStdin, "password-stdin", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErr("user NAME is required")
	case len(pos) > 1:
		return usageErr("unexpected argument %q: want one user NAME", pos[1])
	case pos[0] == "":
		return usageErr("user NAME is empty")
	}
	name := pos[0]
	var pw string
	if fromStdin {
		if pw, err = readPasswordLine(e.stdin); err != nil {
			return err
		}
		if err := checkPassword(pw); err != nil {
			return err
		}
	} else {
		f, ok := e.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return usageErr("stdin is not a terminal: to pipe the password in, use --password-stdin")
		}
		fd := int(f.Fd())
		read := func() ([]byte, error) { return readTerminal(e.ctx, fd) }
		if pw, err = promptNewPassword(e.stderr, name, read); err != nil {
			return err
		}
	}
	body, err := json.Marshal(api.PasswordRequest{Password: pw})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(name)+"/password", nil, "application/json", body, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "password of %s set\n", escapeControls(name))
	return nil
}

// checkPassword refuses what must not become a password, before anything
// is sent.
func checkPassword(pw string) error {
	if pw == "" {
		return inputErr("empty password refused")
	}
	if !utf8.ValidString(pw) {
		return inputErr("the password is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(pw); n < api.MinPasswordLen {
		return inputErr("the password has %d characters; at least %d are required", n, api.MinPasswordLen)
	}
	if len(pw) > password.MaxLen {
		return inputErr("the password is longer than %d bytes", password.MaxLen)
	}
	return nil
}

// readPasswordLine reads the first line of r, without its line ending
// ("\n" or "\r\n"); a last line without one is taken whole. It reads at
// most a little over password.MaxLen, so that piping a file by mistake
// fails fast instead of sending it.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, password.MaxLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if len(line) > password.MaxLen {
		return "", inputErr("the password on stdin is longer than %d bytes (is stdin the right file?)", password.MaxLen)
	}
	return line, nil
}

// promptNewPassword asks for a password on the terminal and for it again,
// writing the prompts to w. read returns one line typed without echo.
func promptNewPassword(w io.Writer, name string, read func() ([]byte, error)) (string, error) {
	ask := func(prompt string) (string, error) {
		fmt.Fprint(w, prompt)
		b, err := read()
		// The Enter that ended the line was not echoed either.
		fmt.Fprintln(w)
		if err != nil {
			var ee *exitError
			if errors.As(err, &ee) {
				return "", err
			}
			return "", fmt.Errorf("read the password from the terminal: %w", err)
		}
		return string(b), nil
	}
	pw, err := ask(fmt.Sprintf("New password for %s: ", escapeControls(name)))
	if err != nil {
		return "", err
	}
	// Refuse a bad password before asking for it twice.
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	again, err := ask("Repeat it: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", inputErr("the passwords do not match; nothing was changed")
	}
	return pw, nil
}

// readTerminal reads one line from the terminal fd without echo. On
// Ctrl-C it puts the terminal back before returning: term.ReadPassword
// would otherwise leave echo off when the signal ends the process. The
// goroutine still blocked in the read is left behind; the command returns
// and the process ends with it.
func readTerminal(ctx context.Context, fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read the terminal's state: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- line{b, err}
	}()
	select {
	case l := <-ch:
		if errors.Is(l.err, io.EOF) {
			return nil, inputErr("no password given (end of input)")
		}
		return l.b, l.err
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		return nil, &exitError{code: exitFailure, msg: "interrupted; nothing was changed"}
	}
}
