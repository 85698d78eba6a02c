package agent

import (
	"reflect"
	"testing"
)

func TestParseLabels(t *testing.T) {
	cases := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"", nil, false},
		{"role=web", map[string]string{"role": "web"}, false},
		{" role=web , tier=db ", map[string]string{"role": "web", "tier": "db"}, false},
		{"empty=", map[string]string{"empty": ""}, false},
		{"novalue", nil, true},
		{"=x", nil, true},
		{"a=1,a=2", nil, true},
	}
	for _, c := range cases {
		got, err := parseLabels(c.in)
		if (err != nil) != c.wantErr || (!c.wantErr && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("parseLabels(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"a=b", "a=b,c=d", "=", ",,,", "a==b", "k8s.io/role=web"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseLabels(s)
		if err == nil {
			for k := range m {
				if k == "" {
					t.Fatalf("parseLabels(%q) gave an empty key", s)
				}
			}
		}
	})
}
