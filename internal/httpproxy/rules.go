package httpproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/internal/resource"
)

// mapping is what a request is: an operation on an object.
type mapping struct {
	op     string
	object string // TYPE:ID, or "" when the rule names no object
	rule   string // which rule or catalogue entry mapped it, for the audit trail
}

// matchRules returns the mapping of the first rule that matches; ok is
// false when none does. A rule whose object cannot be found in the request
// (a missing parameter, a body that is not JSON) does not match: a request
// is never granted for an object the gateway could not read.
func matchRules(rules []resource.HTTPRule, method, path string, query url.Values, body []byte) (mapping, bool) {
	for i := range rules {
		r := &rules[i]
		if r.Method != "" && r.Method != method {
			continue
		}
		vars, ok := matchPath(r.Path, path)
		if !ok || !matchQuery(r.Query, query) {
			continue
		}
		m := mapping{op: r.Operation, rule: fmt.Sprintf("rules[%d]", i)}
		if r.Object != nil {
			id, ok := objectID(r.Object, vars, query, body)
			if !ok {
				continue
			}
			m.object = r.Object.Type + ":" + id
		}
		return m, true
	}
	return mapping{}, false
}

// matchPath matches a clean path against a rule path, segment by segment.
func matchPath(pattern, path string) (map[string]string, bool) {
	ps := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	ss := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var vars map[string]string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "...}") {
			if i >= len(ss) {
				return nil, false
			}
			if vars == nil {
				vars = map[string]string{}
			}
			vars[p[1:len(p)-4]] = strings.Join(ss[i:], "/")
			return vars, true
		}
		if i >= len(ss) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") {
			if ss[i] == "" {
				return nil, false
			}
			if vars == nil {
				vars = map[string]string{}
			}
			vars[p[1:len(p)-1]] = ss[i]
			continue
		}
		if p != ss[i] {
			return nil, false
		}
	}
	return vars, len(ps) == len(ss)
}

// matchQuery requires each listed parameter once, with exactly its value:
// a repeated parameter (action=start&action=stop) could be read either
// way upstream, so it matches nothing.
func matchQuery(want map[string]string, q url.Values) bool {
	for k, v := range want {
		got := q[k]
		if len(got) != 1 || got[0] != v {
			return false
		}
	}
	return true
}

func objectID(o *resource.HTTPObject, vars map[string]string, q url.Values, body []byte) (string, bool) {
	var id string
	switch o.From {
	case "path":
		id = vars[o.Name]
	case "query":
		v := q[o.Name]
		if len(v) != 1 {
			return "", false
		}
		id = v[0]
	case "json":
		var ok bool
		if id, ok = jsonPointer(body, o.Name); !ok {
			return "", false
		}
	}
	return id, id != "" && len(id) <= 1024
}

// jsonPointer reads a string or number at pointer (RFC 6901) in a JSON
// body. A body with a duplicated key anywhere on the way is refused: JSON
// parsers differ on which duplicate wins.
func jsonPointer(body []byte, pointer string) (string, bool) {
	if !json.Valid(body) {
		return "", false
	}
	raw := json.RawMessage(body)
	for _, tok := range strings.Split(pointer, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		trimmed := bytes.TrimSpace(raw)
		switch {
		case len(trimmed) > 0 && trimmed[0] == '{':
			obj, ok := decodeObjectNoDup(trimmed)
			if !ok {
				return "", false
			}
			if raw, ok = obj[tok]; !ok {
				return "", false
			}
		case len(trimmed) > 0 && trimmed[0] == '[':
			var arr []json.RawMessage
			n, err := strconv.Atoi(tok)
			if json.Unmarshal(trimmed, &arr) != nil || err != nil || n < 0 || n >= len(arr) || tok != strconv.Itoa(n) {
				return "", false
			}
			raw = arr[n]
		default:
			return "", false
		}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&n) == nil {
		return n.String(), true
	}
	return "", false
}

// decodeObjectNoDup decodes one JSON object's members, refusing a
// duplicated key, also when only the case differs (Go's encoding/json
// matches struct fields case-insensitively, the last one winning).
func decodeObjectNoDup(b []byte) (map[string]json.RawMessage, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	out := map[string]json.RawMessage{}
	folded := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, false
		}
		k, ok := t.(string)
		if !ok {
			return nil, false
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, false
		}
		if folded[strings.ToLower(k)] {
			return nil, false
		}
		folded[strings.ToLower(k)] = true
		out[k] = v
	}
	return out, true
}
