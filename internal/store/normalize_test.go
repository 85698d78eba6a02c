package store

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// TestDetailIsNormal: what DetailIsNormal accepts is exactly what a JSON
// round trip leaves as it is, so that NormalizeDetail's shortcut stores and
// hashes what the round trip would have.
func TestDetailIsNormal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		d      map[string]any
		normal bool
	}{
		{"JSON kinds", map[string]any{"a": "x<&>\u2028", "n": 1.5, "b": true, "z": nil, "l": []any{"x", 2.0, []any{}},
			"m": map[string]any{"k": math.Copysign(0, -1), "big": 1e300, "e": map[string]any{}}}, true},
		{"int", map[string]any{"i": 1}, false},
		{"int64 in a list", map[string]any{"l": []any{int64(1)}}, false},
		{"invalid UTF-8 value", map[string]any{"s": "\xff"}, false},
		{"invalid UTF-8 key", map[string]any{"\xff": 1.0}, false},
		{"nil list", map[string]any{"l": []any(nil)}, false},
		{"nil map", map[string]any{"m": map[string]any(nil)}, false},
		{"typed list", map[string]any{"l": []string{"a"}}, false},
		{"struct", map[string]any{"s": struct{ A int }{1}}, false},
		{"NaN", map[string]any{"f": math.NaN()}, false},
		{"infinity", map[string]any{"f": math.Inf(1)}, false},
		{"raw JSON", map[string]any{"r": json.RawMessage(`{"a":1}`)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DetailIsNormal(tc.d); got != tc.normal {
				t.Fatalf("DetailIsNormal = %v, want %v", got, tc.normal)
			}
			if !tc.normal {
				return
			}
			b, err := json.Marshal(tc.d)
			if err != nil {
				t.Fatal(err)
			}
			var round map[string]any
			if err := json.Unmarshal(b, &round); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(round, tc.d) {
				t.Fatalf("a round trip changed a normal Detail: %v to %v", tc.d, round)
			}
			norm, stored, err := NormalizeDetail(tc.d)
			if err != nil || string(stored) != string(b) || !reflect.DeepEqual(norm, round) {
				t.Fatalf("NormalizeDetail = %v %s %v, want %v %s", norm, stored, err, round, b)
			}
			if HashEventJSON("p", AuditEvent{Detail: norm}, stored) != HashEvent("p", AuditEvent{Detail: round}) {
				t.Error("HashEventJSON differs from HashEvent")
			}
		})
	}
	if HashEventJSON("p", AuditEvent{}, nil) != HashEvent("p", AuditEvent{}) {
		t.Error("empty Detail: HashEventJSON differs from HashEvent")
	}
}
