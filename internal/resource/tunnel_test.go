package resource

import (
	"strings"
	"testing"
)

func TestParseTunnelRule(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "127.0.0.1:5432", want: "127.0.0.1:5432"},
		{in: "db.internal:5432", want: "db.internal:5432"},
		{in: "DB.Internal.:5432", want: "db.internal:5432"},
		{in: "10.0.0.0/8:443", want: "10.0.0.0/8:443"},
		{in: "10.1.2.3/8:443", want: "10.0.0.0/8:443"},
		{in: "[::1]:22", want: "[::1]:22"},
		{in: "[fd00::/8]:443", want: "[fd00::/8]:443"},
		{in: "[::ffff:127.0.0.1]:22", want: "127.0.0.1:22"},
		{in: "db.internal:*", want: "db.internal:*"},
		{in: "::1:22", wantErr: "not HOST:PORT"},
		{in: "db.internal", wantErr: "not HOST:PORT"},
		{in: "db.internal:0", wantErr: "port \"0\""},
		{in: "db.internal:65536", wantErr: "port \"65536\""},
		{in: "db.internal:022", wantErr: "port \"022\""},
		{in: "db.internal:-1", wantErr: "port"},
		{in: "0x7f.1:22", wantErr: "non-standard form"},
		{in: "127.1:22", wantErr: "non-standard form"},
		{in: "2130706433:22", wantErr: "non-standard form"},
		{in: "0177.0.0.1:22", wantErr: "non-standard form"},
		{in: "db_1.internal:22", wantErr: "not a host name"},
		{in: "-db.internal:22", wantErr: "not a host name"},
		{in: "db..internal:22", wantErr: "not a host name"},
		{in: "10.0.0.0/33:22", wantErr: "not a CIDR"},
		{in: "[fe80::1%eth0]:22", wantErr: "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTunnelRule(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTunnelRule(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseTunnelRule(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestTunnelDestinations: a destination matches a rule only in the one
// form the target reads the same way; encodings that name the same
// address in another way are refused, never matched.
func TestTunnelDestinations(t *testing.T) {
	rules := []string{"127.0.0.1:5432", "db.internal:5432", "10.0.0.0/8:443", "[::1]:22"}
	tests := []struct {
		host    string
		port    uint32
		allowed bool
		refused string // a parse error, which is a refusal too
	}{
		{host: "127.0.0.1", port: 5432, allowed: true},
		{host: "::ffff:127.0.0.1", port: 5432, allowed: true}, // the same IPv4 address
		{host: "db.internal", port: 5432, allowed: true},
		{host: "DB.INTERNAL.", port: 5432, allowed: true},
		{host: "10.200.1.1", port: 443, allowed: true},
		{host: "::1", port: 22, allowed: true},
		{host: "[::1]", port: 22, allowed: true},
		{host: "127.0.0.1", port: 5433},
		{host: "127.0.0.2", port: 5432},
		{host: "db.internal", port: 22},
		{host: "db.internal.evil.example", port: 5432},
		{host: "11.0.0.1", port: 443},
		{host: "10.0.0.1", port: 444},
		{host: "localhost", port: 5432},                    // a name never matches an address rule
		{host: "0:0:0:0:0:0:0:1", port: 22, allowed: true}, // ::1 written out
		{host: "::127.0.0.1", port: 5432},                  // IPv4-compatible IPv6 is another address
		{host: "0x7f.1", port: 5432, refused: "non-standard"},
		{host: "0X7F000001", port: 5432, refused: "non-standard"},
		{host: "2130706433", port: 5432, refused: "non-standard"},
		{host: "127.1", port: 5432, refused: "non-standard"},
		{host: "0177.0.0.1", port: 5432, refused: "non-standard"},
		{host: "127.0.0.1", port: 0, refused: "port 0"},
		{host: "127.0.0.1", port: 65536 + 5432, refused: "port 70968"},
		{host: "fe80::1%lo", port: 22, refused: "zone"},
		{host: "", port: 22, refused: "host name"},
		{host: "db.internal\x00.evil", port: 5432, refused: "host name"},
		{host: "[::1", port: 22, refused: "not a host"},
		{host: "db internal", port: 5432, refused: "host name"},
	}
	var eps []Endpoint
	for _, r := range rules {
		ep, err := ParseTunnelRule(r)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			d, err := ParseTunnelDestination(tt.host, tt.port)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("ParseTunnelDestination(%q, %d) = %v, %v; want error containing %q", tt.host, tt.port, d, err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTunnelDestination(%q, %d): %v", tt.host, tt.port, err)
			}
			got := false
			for _, ep := range eps {
				got = got || ep.Matches(d)
			}
			if got != tt.allowed {
				t.Fatalf("%s:%d allowed = %v, want %v", tt.host, tt.port, got, tt.allowed)
			}
		})
	}
}

func TestValidateTunnels(t *testing.T) {
	tests := []struct {
		name    string
		actions []string
		to      []string
		wantErr string
	}{
		{name: "ok", actions: []string{ActionTunnel}, to: []string{"127.0.0.1:5432", "db.internal:*"}},
		{name: "without the tunnel action", actions: []string{ActionShell}, to: []string{"127.0.0.1:5432"}, wantErr: "field tunnels: is used only with the tunnel action"},
		{name: "empty", actions: []string{ActionTunnel}, to: nil, wantErr: "field tunnels.to: lists no destination"},
		{name: "bad entry", actions: []string{ActionTunnel}, to: []string{"127.0.0.1:5432", "0x7f.1:22"}, wantErr: "field tunnels.to[1]: \"0x7f.1:22\""},
		{name: "twice", actions: []string{ActionTunnel}, to: []string{"db.internal:22", "DB.internal.:22"}, wantErr: "field tunnels.to[1]: \"DB.internal.:22\" is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			p.Actions, p.Tunnels = tt.actions, &TunnelRules{To: tt.to}
			err := p.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
	// The field round-trips through YAML, as get -o yaml | apply -f needs.
	objs, err := DecodeYAML([]byte("kind: Policy\nname: p\ntype: target-access\nsubjects: {users: [a]}\ntargets: {names: [t]}\n" +
		"target_users: [u]\nactions: [tunnel]\ntunnels: {to: [\"[::1]:22\", 10.0.0.0/8:443]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := objs[0].(*Policy); p.Tunnels == nil || len(p.Tunnels.To) != 2 || p.Tunnels.To[0] != "[::1]:22" {
		t.Fatalf("decoded %+v", objs[0])
	}
}

// FuzzTunnelDestination: any host and port either parse to something that
// prints back and parses to itself, or are refused; never a panic.
func FuzzTunnelDestination(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "[::1]", "db.internal.", "0x7f.1", "2130706433", "127.1",
		"::ffff:127.0.0.1", "fe80::1%eth0", "", "a..b", "[", "é.example", strings.Repeat("a.", 200)} {
		f.Add(s, uint32(22))
	}
	f.Add("localhost", uint32(0))
	f.Add("localhost", uint32(1<<20))
	f.Fuzz(func(t *testing.T, host string, port uint32) {
		d, err := ParseTunnelDestination(host, port)
		if err != nil {
			return
		}
		if d.Port == 0 || (d.Name == "") == !d.Prefix.IsValid() {
			t.Fatalf("%q:%d parsed to %+v", host, port, d)
		}
		back, err := ParseTunnelRule(d.String())
		if err != nil || back != d || !back.Matches(d) {
			t.Fatalf("%q:%d -> %s -> %+v, %v", host, port, d, back, err)
		}
	})
}
