package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/mfa"
)

const mfaUsage = `Usage: portcullis mfa enroll USER [--confirm-code CODE]
       portcullis mfa confirm USER CODE
       portcullis mfa status USER [--json]
       portcullis mfa reset USER

enroll gives USER a TOTP second factor (6 digits, 30 seconds, SHA-1: what
every authenticator app reads). It prints, once, the otpauth:// URI, a QR
code of it for the phone's camera, the secret for typing in by hand, and
ten one-time recovery codes; the gateway keeps the secret sealed and the
codes only as hashes, so none of it can be printed again. The enrollment
is pending until a first code from the app confirms it: enroll asks for
that code on the terminal, reads the first line of stdin when stdin is
not a terminal, or takes --confirm-code. Without a code it stays pending:
confirm it later with 'mfa confirm'.

Who is asked a code: a User with 'mfa: required' (SSH and console), and
anyone a target-access policy with 'require_mfa: true' covers when they
connect to its targets (SSH), unless an autologin policy lets them in from
where they are. A user who must give a code and has no active factor is
refused with a message naming this command.

reset removes USER's second factor (a lost phone): they must enroll again.
An active factor cannot be enrolled over; reset it first.

Flags:
  --confirm-code CODE   confirm the new enrollment with this code
  --json                status as JSON
` + "\n" + globalFlagsUsage

// mfaPath is the API path of a user's second factor.
func mfaPath(user string) string { return "/api/v1/users/" + url.PathEscape(user) + "/mfa" }

// oneUser checks the positionals: USER, and CODE when want is 2.
func oneUser(pos []string, want int) ([]string, error) {
	switch {
	case len(pos) < want:
		if len(pos) == 0 {
			return nil, usageErr("USER is required")
		}
		return nil, usageErr("CODE is required")
	case len(pos) > want:
		return nil, usageErr("unexpected argument %q", pos[want])
	case pos[0] == "":
		return nil, usageErr("USER is empty")
	}
	return pos, nil
}

func runMFAEnroll(e *env, args []string) error {
	fs := e.flags()
	var code string
	fs.StringVar(&code, "confirm-code", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if pos, err = oneUser(pos, 1); err != nil {
		return err
	}
	user := pos[0]
	c, err := e.api()
	if err != nil {
		return err
	}
	var en api.MFAEnrollResponse
	if err := c.do(e.ctx, http.MethodPost, mfaPath(user), nil, "", nil, &en); err != nil {
		return err
	}
	qr, err := mfa.TerminalQR(en.URI)
	if err != nil {
		return fmt.Errorf("render the QR code: %w", err)
	}
	w := e.stdout
	fmt.Fprintf(w, "Second factor for %s, pending until confirmed with a first code.\n\n", escapeControls(user))
	fmt.Fprintf(w, "Scan this QR code with an authenticator app, or import the URI:\n\n%s\n%s\n", qr, en.URI)
	fmt.Fprintf(w, "Secret, to type into an app by hand: %s\n\n", en.Secret)
	fmt.Fprintln(w, "Recovery codes: each signs in once when the phone is lost. Keep them safe;")
	fmt.Fprintln(w, "they are not shown again.")
	for _, rc := range en.RecoveryCodes {
		fmt.Fprintf(w, "  %s\n", rc)
	}
	fmt.Fprintln(w)

	if code == "" {
		if code, err = readCode(e); err != nil {
			return err
		}
	}
	if code == "" {
		fmt.Fprintf(w, "Not confirmed yet: run 'portcullis mfa confirm %s CODE' with a code from the app.\n", escapeControls(user))
		return nil
	}
	return confirmMFA(e, c, user, code)
}

// readCode asks the confirming code on the terminal, or reads the first
// line of stdin when it is not one; "" when none is given.
func readCode(e *env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Code from the app, to confirm (empty to confirm later): ")
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the confirming code: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func confirmMFA(e *env, c *client, user, code string) error {
	body, err := json.Marshal(api.MFAConfirmRequest{Code: code})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	var st mfa.Status
	if err := c.do(e.ctx, http.MethodPost, mfaPath(user)+"/confirm", nil, "application/json", body, &st); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "second factor of %s confirmed: %s\n", escapeControls(user), st.State)
	return nil
}

func runMFAConfirm(e *env, args []string) error {
	fs := e.flags()
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if pos, err = oneUser(pos, 2); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	return confirmMFA(e, c, pos[0], pos[1])
}

func runMFAStatus(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if pos, err = oneUser(pos, 1); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var st mfa.Status
	if err := c.do(e.ctx, http.MethodGet, mfaPath(pos[0]), nil, "", nil, &st); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	switch st.State {
	case "":
		fmt.Fprintf(e.stdout, "%s: no second factor\n", escapeControls(pos[0]))
	case "pending":
		fmt.Fprintf(e.stdout, "%s: pending (enrolled, not confirmed)\n", escapeControls(pos[0]))
	default:
		fmt.Fprintf(e.stdout, "%s: %s since %s, %d recovery codes left\n", escapeControls(pos[0]), st.State,
			st.ActivatedAt.Format("2006-01-02T15:04:05Z07:00"), st.RecoveryLeft)
	}
	return nil
}

func runMFAReset(e *env, args []string) error {
	fs := e.flags()
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if pos, err = oneUser(pos, 1); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	if err := c.do(e.ctx, http.MethodDelete, mfaPath(pos[0]), nil, "", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "second factor of %s reset\n", escapeControls(pos[0]))
	return nil
}
