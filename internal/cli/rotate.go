package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis/portcullis/internal/rotate"
)

const accountRotateUsage = `Usage: portcullis account rotate TARGET/NAME [--yes] [--json]

Takes the account over: the gateway logs in with its current key, makes
~NAME/.ssh/authorized_keys on TARGET hold only a new gateway key (every
other key there stops working; with lock_password: true on the Account the
password is disabled too), verifies the new key with a fresh login and that
the old one is refused, and only then forgets the old key. If any step
fails, the old key stays and keeps working; the error says which step.
Prints the old and new key fingerprints. Accounts with rotate_every are
rotated on that schedule by the gateway itself.

On a terminal it asks first, because every other key in that
authorized_keys stops working, a person's key too. When stdin is not a
terminal it refuses unless --yes is given.

Flags:
` + yesUsage + `  --json           the result as JSON

Exit status: 0 rotated; 1 no such account, or not confirmed; 2 usage, or
not confirmed and stdin is not a terminal; 3 the rotation failed.
` + "\n" + globalFlagsUsage

func runAccountRotate(e *env, args []string) error {
	fs := e.flags()
	asJSON := fs.Bool("json", false, "")
	yes := yesFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one TARGET/NAME, got %d arguments", len(pos))
	}
	target, name, ok := strings.Cut(pos[0], "/")
	if !ok || target == "" || name == "" || strings.Contains(name, "/") {
		return usageErr("%q is not TARGET/NAME (for example web1/svc-stats)", pos[0])
	}
	if err := e.confirm(*yes, fmt.Sprintf("Rotate %s? Every other key in ~%s/.ssh/authorized_keys on %s stops working, a person's too",
		pos[0], name, target)); err != nil {
		return err
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res rotate.Result
	path := "/api/v1/accounts/" + url.PathEscape(target) + "/" + url.PathEscape(name) + "/rotate"
	if err := c.do(e.ctx, http.MethodPost, path, nil, "", nil, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "rotated %s\n  old key %s (no longer accepted)\n  new key %s\n", res.Account, res.OldFingerprint, res.NewFingerprint)
	if res.PasswordLocked {
		fmt.Fprintln(e.stdout, "  password disabled")
	}
	return nil
}
