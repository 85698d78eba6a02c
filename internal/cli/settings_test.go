package cli_test

import (
	"encoding/json"
	"testing"
)

func TestSettingsFlags(t *testing.T) {
	g := noGateway(t)
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"bool not true or false", []string{"set", "global_registration_keys", "yes"}, `global_registration_keys takes true or false, not "yes"`},
		{"bool in capitals", []string{"set", "global_registration_keys", "TRUE"}, "takes true or false"},
		{"no value", []string{"set", "global_registration_keys"}, "want NAME VALUE, got 1 arguments"},
		{"too many", []string{"set", "a", "b", "c"}, "want NAME VALUE, got 3 arguments"},
		{"two names", []string{"get", "a", "b"}, `unexpected argument "b"`},
		{"unknown subcommand", []string{"unset", "a"}, `unknown command "unset"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g.run(t, "", append([]string{"settings"}, tc.args...)...).want(t, 2, nil, []string{tc.stderr})
		})
	}
}

func TestSettings(t *testing.T) {
	g := startGateway(t)
	g.run(t, "", "settings", "get").want(t, 0, []string{"NAME", "VALUE", "global_registration_keys", "true"}, nil)
	g.run(t, "", "settings", "get", "global_registration_keys").want(t, 0, []string{"true\n"}, nil)

	g.run(t, "", "settings", "set", "global_registration_keys", "false").want(t, 0,
		[]string{"global_registration_keys set to false\n"}, nil)
	r := g.run(t, "", "settings", "get", "--json")
	r.want(t, 0, nil, nil)
	var all map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil {
		t.Fatalf("settings get --json: not a JSON object: %v\n%s", err, r.stdout)
	}
	if all["global_registration_keys"] != false {
		t.Errorf("settings get --json: global_registration_keys %v, want false", all["global_registration_keys"])
	}
	g.run(t, "", "settings", "get", "global_registration_keys", "--json").want(t, 0,
		[]string{`"global_registration_keys": false`}, nil)

	g.run(t, "", "settings", "get", "no_such_setting").want(t, 2, nil, []string{`unknown setting "no_such_setting"`, "global_registration_keys"})
	g.run(t, "", "settings", "set", "no_such_setting", "1").want(t, 1, nil, []string{`no setting "no_such_setting"`})
	g.run(t, "", "audit", "ls", "--type", "setting.change").want(t, 0, []string{"global_registration_keys set to false"}, nil)
}
