package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// LogLeaks are the marks of a value logged with %v instead of as a
// structured value: a []byte as decimal bytes ("[123 34" is `{"`), a struct
// pointer dumped ("&{"), a nil pointer ("<nil>"), a Go map ("map[").
var LogLeaks = []string{"[123 34", "[91 123", "&{", "<nil>", "map["}

// CheckJSONLog fails t for every line of a JSON-mode slog log that is not
// one JSON object, repeats a key within one object, holds one of LogLeaks,
// or has a string value that says the same thing twice in a row ("target
// unreachable: target unreachable: ..."). It returns the decoded lines for
// further checks.
func CheckJSONLog(t testing.TB, log []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for i, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		for _, leak := range LogLeaks {
			if bytes.Contains(line, []byte(leak)) {
				t.Errorf("log line %d holds %q: %s", i+1, leak, line)
			}
		}
		if err := checkJSONKeys(json.NewDecoder(bytes.NewReader(line))); err != nil {
			t.Errorf("log line %d: %v: %s", i+1, err, line)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("log line %d is not a JSON object: %v: %s", i+1, err, line)
			continue
		}
		walkStrings(m, func(s string) {
			if d := doubled(s); d != "" {
				t.Errorf("log line %d says %q twice: %s", i+1, d, line)
			}
		})
		lines = append(lines, m)
	}
	return lines
}

// checkJSONKeys reads one JSON value and reports a key that appears twice
// in one object (encoding/json would keep the last silently).
func checkJSONKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q appears twice in one object", key)
			}
			seen[key] = true
			if err := checkJSONKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := checkJSONKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil // a scalar, already read
}

func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case map[string]any:
		for _, x := range v {
			walkStrings(x, f)
		}
	case []any:
		for _, x := range v {
			walkStrings(x, f)
		}
	}
}

// doubled returns a part of an error chain that repeats the part before
// it ("X: X: ..."), or "".
func doubled(s string) string {
	parts := strings.Split(s, ": ")
	for i := 1; i < len(parts); i++ {
		if len(parts[i]) > 3 && parts[i] == parts[i-1] {
			return parts[i-1]
		}
	}
	return ""
}
