package apikey

import (
	"errors"
	"strings"
	"testing"
)

func TestNewParseVerify(t *testing.T) {
	id, value, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(value, Prefix+id+".") {
		t.Fatalf("value %q does not start with the prefix and id %q", value, id)
	}
	pid, secret, err := Parse(value)
	if err != nil || pid != id {
		t.Fatalf("Parse = %q, %v; want id %q", pid, err, id)
	}
	stored := Hash(id, secret)
	if !Verify(stored, id, secret) {
		t.Error("Verify of the right secret failed")
	}
	other, value2, _ := New()
	_, secret2, _ := Parse(value2)
	for name, c := range map[string][2]string{
		"other secret":      {id, secret2},
		"hash moved to key": {other, secret},
	} {
		if Verify(stored, c[0], c[1]) {
			t.Errorf("%s: Verify succeeded", name)
		}
	}
	if id2, _, _ := New(); id2 == id {
		t.Error("two keys share an id")
	}
}

func TestParseMalformed(t *testing.T) {
	_, good, _ := New()
	id, secret, _ := Parse(good)
	for name, v := range map[string]string{
		"empty":         "",
		"no prefix":     id + "." + secret,
		"no dot":        Prefix + id + secret,
		"short id":      Prefix + id[:15] + "." + secret,
		"upper id":      Prefix + strings.ToUpper(id) + "." + secret,
		"short secret":  Prefix + id + "." + secret[:40],
		"padded secret": Prefix + id + "." + secret + "=",
		"std base64":    Prefix + id + "." + strings.NewReplacer("-", "+", "_", "/").Replace(secret) + "+",
		"bearer":        "Bearer " + good,
	} {
		if _, _, err := Parse(v); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q quotes the secret", name, err)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts round-trips.
func FuzzParse(f *testing.F) {
	_, good, _ := New()
	f.Add(good)
	f.Add("pck_0123456789abcdef.x")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id, secret, err := Parse(v)
		if err != nil {
			return
		}
		if Prefix+id+"."+secret != v || !ValidID(id) {
			t.Fatalf("Parse(%q) accepted %q %q", v, id, secret)
		}
	})
}
