package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
)

// TestMarshalNormal: marshalNormal gives json.Marshal's bytes for normal
// details, including every case its fast path hands back to json: escapes
// for HTML and control characters, U+2028, fractions, -0, large floats.
func TestMarshalNormal(t *testing.T) {
	for _, d := range []map[string]any{
		{},
		{"sql": "SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "rows": float64(1), "ok": true, "none": nil},
		{"s": `a "quoted" \ back`, "html": "<b>&amp;</b>", "ctl": "tab\tnl\nbs\bff\fnul\x00", "u": "é\u2028\u2029🙂"},
		{"f": []any{0.5, math.Copysign(0, -1), 0.0, 1e21, 1e20, 1e-7, 123456789.125, float64(1 << 53), float64(1<<53 + 2), -42.0, 1e300}},
		{"nested": map[string]any{"b": []any{}, "a": map[string]any{}, "c": []any{map[string]any{"z": "1", "y": "2"}}}},
		{"<key>": "v", "B": "upper before lower", "a": "x", "": "empty key"},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalNormal(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("marshalNormal(%v)\n got %s\nwant %s", d, got, want)
		}
	}
}

// FuzzMarshalNormal builds normal details from the input and compares
// marshalNormal with json.Marshal: the store hashes marshalNormal's bytes
// and the verifier recomputes json.Marshal's, so they must never differ.
func FuzzMarshalNormal(f *testing.F) {
	f.Add([]byte("\x05\x03sql\x04SELE\x02\x01\x00\x00\x00\x00\x00\x00\xf0\x3f"))
	f.Add([]byte("\x05\x01<\x04\x02\xe2\x80\xa8\x06\x01\x03"))
	f.Fuzz(func(t *testing.T, in []byte) {
		g := &gen{in: in}
		d := map[string]any{}
		for len(g.in) > 0 && len(d) < 20 {
			d[g.str()] = g.value(0)
		}
		if !DetailIsNormal(d) {
			return
		}
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalNormal(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("marshalNormal(%#v)\n got %s\nwant %s", d, got, want)
		}
	})
}

// gen reads a normal value from fuzz input.
type gen struct{ in []byte }

func (g *gen) byte() byte {
	if len(g.in) == 0 {
		return 0
	}
	c := g.in[0]
	g.in = g.in[1:]
	return c
}

func (g *gen) str() string {
	n := min(int(g.byte()%16), len(g.in))
	s := string(g.in[:n])
	g.in = g.in[n:]
	return s
}

func (g *gen) value(depth int) any {
	switch k := g.byte() % 7; {
	case k == 0:
		return nil
	case k == 1:
		return g.byte()%2 == 0
	case k == 2:
		var b [8]byte
		n := copy(b[:], g.in)
		g.in = g.in[n:]
		f := math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0.0
		}
		return f
	case k == 3:
		return float64(int64(binary.LittleEndian.Uint16([]byte{g.byte(), g.byte()})) - 1000)
	case k == 4 && depth < 4:
		n := int(g.byte() % 5)
		l := []any{}
		for range n {
			l = append(l, g.value(depth+1))
		}
		return l
	case k == 5 && depth < 4:
		n := int(g.byte() % 5)
		m := map[string]any{}
		for range n {
			m[g.str()] = g.value(depth + 1)
		}
		return m
	default:
		return g.str()
	}
}
