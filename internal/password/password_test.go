package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want argon2id PHC with the documented parameters", h)
	}
	h2, _ := Hash("correct horse battery staple")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, c := range []struct {
		pw   string
		want bool
	}{
		{"correct horse battery staple", true},
		{"correct horse battery stapl", false},
		{"", false},
		{strings.Repeat("x", MaxLen+1), false},
	} {
		ok, err := Verify(h, c.pw)
		if err != nil || ok != c.want {
			t.Errorf("Verify(%.20q) = %v, %v; want %v", c.pw, ok, err, c.want)
		}
	}
	if ok, err := Verify(Dummy(), ""); ok || err != nil {
		t.Errorf("Verify(Dummy) = %v, %v", ok, err)
	}
}

func TestHashRefuses(t *testing.T) {
	for _, pw := range []string{"", strings.Repeat("x", MaxLen+1)} {
		if _, err := Hash(pw); err == nil {
			t.Errorf("Hash(%d bytes) succeeded", len(pw))
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, _ := Hash("pw")
	parts := strings.Split(good, "$")
	for name, enc := range map[string]string{
		"empty":       "",
		"bcrypt":      "$2b$10$abcdefghijklmnopqrstuv",
		"argon2i":     strings.Replace(good, "argon2id", "argon2i", 1),
		"version":     strings.Replace(good, "v=19", "v=16", 1),
		"huge memory": strings.Replace(good, "m=19456", "m=99999999", 1),
		"zero passes": strings.Replace(good, "t=2", "t=0", 1),
		"many lanes":  strings.Replace(good, "p=1", "p=255", 1),
		"param order": strings.Replace(good, "m=19456,t=2", "t=2,m=19456", 1),
		"bad salt":    strings.Join(append(parts[:4:4], "!!", parts[5]), "$"),
		"short hash":  strings.Join(append(parts[:5:5], "AAAA"), "$"),
		"extra field": good + "$x",
		"tiny memory": strings.Replace(good, "m=19456", "m=1", 1),
	} {
		ok, err := Verify(enc, "pw")
		if ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %v, %v; want ErrMalformed", name, ok, err)
		}
	}
}

// FuzzVerify feeds Verify stored strings it did not make: it must never
// panic, and only a well-formed string may match. Strings that parse with
// more than 64 KiB of memory are only parsed: hashing each would make the
// fuzzer allocate up to the 1 GiB bound per input.
func FuzzVerify(f *testing.F) {
	good, _ := Hash("pw")
	f.Add(good, "pw")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, enc, pw string) {
		if p, err := parse(enc); err == nil && p.memory > 64 {
			return
		}
		ok, err := Verify(enc, pw)
		if ok && err != nil {
			t.Fatalf("match with error %v", err)
		}
	})
}
