package pgproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func msg(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

func TestMsgReader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []string // "T:body" per message
		wantErr error
	}{
		{name: "two", in: append(msg('Q', "select 1\x00"), msg('X', "")...), max: 100, want: []string{"Q:select 1\x00", "X:"}},
		{name: "at the cap", in: msg('Q', "12345"), max: 5, want: []string{"Q:12345"}},
		{name: "over the cap", in: msg('Q', "123456"), max: 5, wantErr: errTooLarge},
		{name: "length below 4", in: []byte{'Q', 0, 0, 0, 3}, max: 5, wantErr: errors.New("below 4")},
		{name: "huge length refused before reading", in: []byte{'Q', 0x7f, 0xff, 0xff, 0xff}, max: 1 << 20, wantErr: errTooLarge},
		{name: "truncated body", in: msg('Q', "abc")[:6], max: 100, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &msgReader{r: bufio.NewReader(bytes.NewReader(tt.in)), max: tt.max}
			var got []string
			var err error
			for {
				var typ byte
				var raw, body []byte
				typ, raw, body, err = m.next()
				if err != nil {
					break
				}
				if !bytes.Equal(raw[5:], body) || raw[0] != typ {
					t.Fatalf("raw %q does not frame body %q", raw, body)
				}
				got = append(got, string(typ)+":"+string(body))
			}
			if tt.wantErr == nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("err = %v, want EOF at the end", err)
				}
			} else if !errors.Is(err, tt.wantErr) && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr.Error()))) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadStartup(t *testing.T) {
	startup := func(version uint32, kv ...string) []byte {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, version)
		for _, s := range kv {
			b = append(append(b, s...), 0)
		}
		b = append(b, 0)
		binary.BigEndian.PutUint32(b, uint32(len(b)))
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		params  map[string]string
		wantErr string
	}{
		{name: "params", in: startup(protocol30, "user", "alice~db1", "database", "app"), params: map[string]string{"user": "alice~db1", "database": "app"}},
		{name: "duplicate user", in: startup(protocol30, "user", "alice~db1", "user", "root~db1"), wantErr: "given twice"},
		{name: "unterminated", in: startup(protocol30, "user", "x")[:15], wantErr: "startup"},
		{name: "ssl request", in: []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}},
		{name: "too long", in: []byte{0, 0x01, 0, 0, 0, 3, 0, 0}, wantErr: "out of range"},
		{name: "too short", in: []byte{0, 0, 0, 4, 0, 3, 0, 0}, wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readStartup(bytes.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.params {
				if p.params[k] != v {
					t.Errorf("param %s = %q, want %q", k, p.params[k], v)
				}
			}
		})
	}
}

func TestFilterParams(t *testing.T) {
	p := startupPacket{params: map[string]string{"user": "a~b", "database": "d", "options": "-c role=x", "role": "x",
		"session_authorization": "postgres", "replication": "database", "application_name": "psql", "client_encoding": "UTF8"}}
	p.order = []string{"user", "database", "options", "role", "session_authorization", "replication", "application_name", "client_encoding"}
	keep, dropped := filterParams(p)
	if len(keep) != 2 || keep["application_name"] != "psql" || keep["client_encoding"] != "UTF8" {
		t.Errorf("keep = %v", keep)
	}
	if len(dropped) != 4 {
		t.Errorf("dropped = %v", dropped)
	}
}

// FuzzMsgReader checks that any byte stream frames into messages within
// the cap or ends in an error, never a panic, and that a message's raw
// form is its header and body.
func FuzzMsgReader(f *testing.F) {
	f.Add(append(msg('Q', "select 1\x00"), msg('S', "")...))
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'P', 0, 0, 0, 4, 'B'})
	f.Add(msg('p', "pw\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := &msgReader{r: bufio.NewReader(bytes.NewReader(in)), max: 64}
		for range 100 {
			typ, raw, body, err := m.next()
			if err != nil {
				return
			}
			if len(body) > 64 || raw[0] != typ || int(binary.BigEndian.Uint32(raw[1:5])) != len(body)+4 {
				t.Fatalf("bad frame %q", raw)
			}
		}
	})
}

// FuzzReadStartup checks the startup packet parser on any input.
func FuzzReadStartup(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
	f.Add([]byte{0, 0, 0, 17, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'a', 0, 0, 0})
	f.Add([]byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := readStartup(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(p.params) != len(p.order) {
			t.Fatalf("params %v and order %v differ", p.params, p.order)
		}
		_, _ = filterParams(p)
	})
}
