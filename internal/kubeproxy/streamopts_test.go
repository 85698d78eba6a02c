package kubeproxy

import (
	"net/url"
	"testing"
)

func TestStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		query                      string
		stdin, stdout, stderr, tty bool
		err                        bool
	}{
		{query: "stdout=true&stderr=true", stdout: true, stderr: true},
		{query: "stdin=1&stdout=1&tty=1&stderr=1", stdin: true, stdout: true, tty: true},
		{query: "stdin=true&stdout=false", stdin: true},
		{query: "command=sh", err: true},
		{query: "stdout=yes", err: true},
		// The API server reads f as true: refused, not taken as false.
		{query: "stdin=f&stdout=true", err: true},
		{query: "stdout=true&tty=F", err: true},
		{query: "stdout=TRUE&stdin=False", stdout: true},
		{query: "stdout=true&stdout=false", err: true},
		{query: "stdout=false&stderr=false&stdin=false", err: true},
	} {
		q, _ := url.ParseQuery(tc.query)
		o, err := streamOptions(q)
		if (err != nil) != tc.err {
			t.Fatalf("%s: err %v", tc.query, err)
		}
		if err == nil && (o.Stdin != tc.stdin || o.Stdout != tc.stdout || o.Stderr != tc.stderr || o.TTY != tc.tty) {
			t.Fatalf("%s: %+v", tc.query, o)
		}
	}
}

func FuzzStreamOptions(f *testing.F) {
	for _, s := range []string{"stdout=true", "stdin=1&tty=1&stderr=1", "stdout=%zz", "stdout=true&stdout=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := streamOptions(q)
		if err == nil && (!o.Stdin && !o.Stdout && !o.Stderr || o.TTY && o.Stderr) {
			t.Fatalf("%q: accepted %+v", raw, o)
		}
	})
}
