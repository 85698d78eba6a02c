package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/portcullis/portcullis/internal/api"
)

const settingsUsage = `Usage: portcullis settings get [NAME] [--json]
       portcullis settings set NAME VALUE

Gateway-wide settings, kept in the gateway's store.

get prints every setting as NAME VALUE, or the value of the one named (for
scripts). set changes one; the change is audited.

Settings:
  global_registration_keys   true (default) or false. true: admins create
                             registration keys, shared by the scripts that
                             register targets. false: every admin gets a
                             registration key of their own and may create
                             more.

Flags:
  --json   (get) a JSON object of every setting, or {"NAME": VALUE}
` + "\n" + globalFlagsUsage

// settingKinds gives the type of each setting this CLI knows, so that
// "settings set" checks VALUE before sending it. A setting it does not
// know (a newer gateway's) is sent as JSON if VALUE is JSON, else as a
// string, and the gateway judges it.
var settingKinds = map[string]string{
	"global_registration_keys": "bool",
}

// settingValue turns VALUE into the JSON value the gateway stores for the
// setting.
func settingValue(name, value string) (json.RawMessage, error) {
	switch settingKinds[name] {
	case "bool":
		if value != "true" && value != "false" {
			return nil, usageErr("%s takes true or false, not %q", name, value)
		}
		return json.RawMessage(value), nil
	}
	if json.Valid([]byte(value)) {
		return json.RawMessage(value), nil
	}
	b, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	return b, nil
}

// getSettings reads every setting from the gateway.
func getSettings(e *env) (map[string]json.RawMessage, error) {
	c, err := e.api()
	if err != nil {
		return nil, err
	}
	var s map[string]json.RawMessage
	if err := c.do(e.ctx, http.MethodGet, "/api/v1/settings", nil, "", nil, &s); err != nil {
		return nil, err
	}
	if s == nil {
		s = map[string]json.RawMessage{}
	}
	return s, nil
}

func runSettingsGet(e *env, args []string) error {
	fs := e.flags()
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("unexpected argument %q: want at most one NAME", pos[1])
	}
	settings, err := getSettings(e)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		name := pos[0]
		v, ok := settings[name]
		if !ok {
			return inputErr("unknown setting %q (the gateway has: %s)", name, strings.Join(slices.Sorted(maps.Keys(settings)), ", "))
		}
		if asJSON {
			return printJSON(e, map[string]json.RawMessage{name: v})
		}
		fmt.Fprintln(e.stdout, escapeControls(showValue(v)))
		return nil
	}
	if asJSON {
		return printJSON(e, settings)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	writeRow(tw, []string{"NAME", "VALUE"})
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		writeRow(tw, []string{name, showValue(settings[name])})
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func runSettingsSet(e *env, args []string) error {
	pos, err := e.parse(e.flags(), args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want NAME VALUE, got %d arguments", len(pos))
	}
	name := pos[0]
	if name == "" {
		return usageErr("NAME is empty")
	}
	v, err := settingValue(name, pos[1])
	if err != nil {
		return err
	}
	body, err := json.Marshal(api.SettingRequest{Value: v})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var settings map[string]json.RawMessage
	if err := c.do(e.ctx, http.MethodPut, "/api/v1/settings/"+url.PathEscape(name), nil, "application/json", body, &settings); err != nil {
		return err
	}
	now, ok := settings[name]
	if !ok {
		now = v
	}
	fmt.Fprintf(e.stdout, "%s set to %s\n", name, escapeControls(showValue(now)))
	return nil
}

// showValue prints a setting's JSON value the way it is typed to set it:
// a string without quotes, anything else as compact JSON.
func showValue(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}
