package store

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseSearch(t *testing.T) {
	w := func(s string) SearchTerm { return SearchTerm{Text: s} }
	p := func(s string) SearchTerm { return SearchTerm{Text: s, Phrase: true} }
	cases := []struct {
		in   string
		want []SearchTerm
	}{
		{"systemctl restart", []SearchTerm{w("systemctl"), w("restart")}},
		{`"systemctl restart"`, []SearchTerm{p("systemctl restart")}},
		{`  nginx   "sudo   systemctl"  -f `, []SearchTerm{w("nginx"), p("sudo systemctl"), w("-f")}},
		{`foo"bar`, []SearchTerm{w(`foo"bar`)}},
		{`foo"bar baz"`, []SearchTerm{w("foo"), p("bar baz")}},
		{`a"b"c`, []SearchTerm{w("a"), p("b"), w("c")}},
		{`"unterminated phrase`, []SearchTerm{w(`"unterminated`), w("phrase")}},
		{`AND OR NOT NEAR(`, []SearchTerm{w("AND"), w("OR"), w("NOT"), w("NEAR(")}},
		{`* - "" " " x*`, []SearchTerm{w("x*")}},
		{"nginx.conf", []SearchTerm{w("nginx.conf")}},
		{"ünï\x00code \xff", []SearchTerm{w("ünï\uFFFDcode")}},
		{"日本語", []SearchTerm{w("日本語")}},
	}
	for _, c := range cases {
		got, err := ParseSearch(c.in)
		if err != nil {
			t.Errorf("ParseSearch(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSearch(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, in := range []string{"", " ", `""`, `"*"`, "*", "-- ++ ..", "\x00", "\xff"} {
		if got, err := ParseSearch(in); !errors.Is(err, ErrEmptyQuery) {
			t.Errorf("ParseSearch(%q) = %+v, %v; want ErrEmptyQuery", in, got, err)
		}
	}
}

func TestNormalizeDetailIsStable(t *testing.T) {
	type s struct {
		B int    `json:"b"`
		A string `json:"a"`
	}
	d := map[string]any{"s": s{1, "\xff<>"}, "n": uint64(1)<<63 + 5, "f": float32(0.1), "l": []int(nil)}
	norm, b, err := NormalizeDetail(d)
	if err != nil {
		t.Fatal(err)
	}
	again, b2, err := NormalizeDetail(norm)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) || !reflect.DeepEqual(norm, again) {
		t.Errorf("a second normalization changed %s to %s", b, b2)
	}
	if HashEvent("p", AuditEvent{Detail: norm}) != HashEvent("p", AuditEvent{Detail: again}) {
		t.Error("hash changed on a second normalization")
	}
	if n, b, err := NormalizeDetail(map[string]any{}); n != nil || b != nil || err != nil {
		t.Errorf("empty: %v %s %v", n, b, err)
	}
	if _, _, err := NormalizeDetail(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("a Detail JSON cannot encode normalized")
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "": "", "ünï": "ünï", "a\x00b": "a\uFFFDb", "a\xffb": "a\uFFFDb", "\xff\xfe": "\uFFFD",
	} {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}
