package store

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// marshalNormal encodes a Detail that DetailIsNormal accepts, byte for byte
// as json.Marshal does (sorted keys, HTML-safe escaping, json's float
// format), without reflection: the PostgreSQL front stores a Detail of
// thousands of small maps a second, and encoding/json spent a third of the
// append on them. What has no fast path here (a string to escape, a
// fraction, a float past 2^53) is encoded by json.Marshal itself, so the
// output cannot drift from what HashEvent recomputes from a listing.
func marshalNormal(d map[string]any) ([]byte, error) {
	return appendNormal(make([]byte, 0, 256), d)
}

func appendNormal(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return appendNormalString(b, v)
	case float64:
		// An integer of at most 2^53 prints as its digits in json's 'f'
		// format; -0 prints as "-0", so it is left to json.
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 && !(v == 0 && math.Signbit(v)) {
			return strconv.AppendInt(b, int64(v), 10), nil
		}
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendNormal(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		var buf [16]string
		keys := buf[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendNormalString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendNormal(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, out...), nil
}

// appendNormalString quotes s as json.Marshal does. Printable ASCII that
// json leaves alone is copied; anything else (a quote, a backslash, a
// control character, <, > or &, which json escapes for HTML, or a byte
// past ASCII, where U+2028 and U+2029 are escaped) sends s to json.Marshal.
func appendNormalString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			out, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			return append(b, out...), nil
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}
