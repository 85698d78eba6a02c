package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Helpers every backend uses, so that what one stores reads back (and
// hashes) the same as what another does.

// NormalizeDetail returns an audit event's Detail as a store reads it back,
// and the JSON to store for it. A backend hashes the returned map (with
// HashEvent) and stores the returned JSON, so that the hash recomputed from
// what ListAudit returns equals the hash computed at append.
//
// Detail goes through one JSON round trip: numbers become float64 (integers
// beyond 2^53 lose precision, as they would on reading back anyway), structs
// and typed maps become map[string]any with sorted keys, slices []any,
// strings valid UTF-8. A second round trip changes nothing, which is what
// makes the hash reproducible. An empty or nil Detail gives nil and nil
// (stored as NULL, read back empty, hashed as "{}"). The error is
// encoding/json's, for a Detail it cannot encode.
//
// A Detail already in that form (DetailIsNormal) is returned as it is,
// with one encoding and no round trip: a front that writes thousands of
// events a second builds them that way.
func NormalizeDetail(d map[string]any) (map[string]any, []byte, error) {
	if len(d) == 0 {
		return nil, nil, nil
	}
	if DetailIsNormal(d) {
		b, err := marshalNormal(d)
		if err != nil {
			return nil, nil, err
		}
		return d, b, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, nil, fmt.Errorf("decode own encoding: %w", err)
	}
	if b, err = json.Marshal(out); err != nil {
		return nil, nil, err
	}
	return out, b, nil
}

// DetailIsNormal reports whether d is already what NormalizeDetail
// returns for it: nothing but nil, bool, finite float64, valid UTF-8
// strings, and non-nil []any and map[string]any of those (a nil slice or
// map reads back as nil). Such a Detail encodes without error.
func DetailIsNormal(d map[string]any) bool {
	return d != nil && normalValue(d)
}

func normalValue(v any) bool {
	switch v := v.(type) {
	case nil, bool:
		return true
	case string:
		return utf8.ValidString(v)
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	case []any:
		if v == nil {
			return false
		}
		for _, e := range v {
			if !normalValue(e) {
				return false
			}
		}
		return true
	case map[string]any:
		if v == nil {
			return false
		}
		for k, e := range v {
			if !utf8.ValidString(k) || !normalValue(e) {
				return false
			}
		}
		return true
	}
	return false
}

// CleanText returns s as every backend can store it in a text column:
// bytes that are not UTF-8 and NUL characters (which PostgreSQL refuses in
// text) each become U+FFFD. Valid text without NUL is returned unchanged.
// Stores apply it to free text they are given: audit event fields, command
// lines, recording metadata, indexed text, search queries.
func CleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
