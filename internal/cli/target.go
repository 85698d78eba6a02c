package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/portcullis/portcullis/internal/api"
)

const targetUsage = `Usage: portcullis target pin NAME [--json]

pin makes the host key the gateway learned for Target NAME on first use its
pinned host_key: from then on a target presenting another key is refused
instead of learned again, even if the learned key is forgotten. Compare
the fingerprint it prints with the target's own
(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the target) before
relying on it: a key learned on first use is only as good as that first
connection. 'portcullis get target NAME -o yaml' shows the learned key as
learned_host_key while none is pinned.

Exit status: 0 pinned, or already pinned to that key; 1 no such target, no
key learned yet, or another key pinned.
` + "\n" + globalFlagsUsage

func runTargetPin(e *env, args []string) error {
	fs := e.flags()
	asJSON := fs.Bool("json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usageErr("want one target NAME, got %d arguments", len(pos))
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var res api.PinResponse
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/targets/"+url.PathEscape(pos[0])+"/pin", nil, "", nil, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, res)
	}
	state := "pinned"
	if res.AlreadyPinned {
		state = "already pinned"
	}
	fmt.Fprintf(e.stdout, "Target/%s %s to %s (learned %s)\n", escapeControls(res.Target), state, res.Fingerprint,
		res.FirstSeen.UTC().Format(time.RFC3339))
	return nil
}
