package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis/portcullis/internal/rotate"
)

const accountRotateUsage = `Usage: portcullis account rotate TARGET/NAME [--json]

Takes the account over: the gateway logs in with its current key, makes
~NAME/.ssh/authorized_keys on TARGET hold only a new gateway key (every
other key there stops working; with lock_password: true on the Account the
password is disabled too), verifies the new key with a fresh login and that
the old one is refused, and only then forgets the old key. If any step
fails, the old key stays and keeps working; the error says which step.
Prints the old and new key fingerprints. Accounts with rotate_every are
rotated on that schedule by the gateway itself.

Exit status: 0 rotated; 1 no such account; 3 the rotation failed.
` + "\n" + globalFlagsUsage

func runAccountRotate(e *env, args []string) error {
	fs := e.flags()
	asJSON := fs.Bool("json", false, "")
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
